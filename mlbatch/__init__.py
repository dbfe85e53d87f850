"""mlbatch: neutral ground that the Beam jobs and the Ray jobs both import.

* ``mlbatch.storage``   local paths and gs:// URIs through pyarrow file systems
* ``mlbatch.artifacts`` the artifact contract: artifact.json, its writer, one reader per type
* ``mlbatch.schema``    the dataset schema language (schemas/<dataset>.yaml)

Nothing here imports Beam, TensorFlow, Ray or JAX.
"""
