"""The feature job: raw tables -> validated, prepared rows -> tf.Transform features
(`python -m beam_jobs.features`)."""
