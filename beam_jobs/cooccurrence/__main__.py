"""Text corpus -> vocabulary, co-occurrence matrix, PPMI and SVD word vectors (Parquet).

python -m beam_jobs.cooccurrence --input 'data/sotu/*.txt' --output out/cooccurrence \\
    [--window 10] [--min-count 5] [--weighting harmonic|uniform] \\
    [--direction symmetric|left] [--ppmi] [--svd-dim 300] [Beam pipeline flags]

The output is a committed "cooccurrence" artifact (read it with
mlbatch.artifacts.cooccurrence.load_cooccurrence). Flags, outputs and semantics:
docs/cooccurrence.md.
"""
from __future__ import annotations

import argparse
import gc
import logging
import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions, TestOptions

from beam_jobs.common.options import (is_dataflow, pipeline_options, refuse_local_paths,
                                      run_pipeline)
from beam_jobs.cooccurrence import artifacts, pipeline
from beam_jobs.cooccurrence.config import add_arguments, from_args
from beam_jobs.cooccurrence.reading import match_corpus
from beam_jobs.cooccurrence.spill import spill_dir
from beam_jobs.cooccurrence.workers import small_pages, start_fork_server
from mlbatch import errors, logs, storage
from mlbatch.artifacts import Manifest

JOB_NAME = "cooccurrence"
LOGGER = logging.getLogger("beam_jobs.cooccurrence")
# Errors of the flags, options, input or output named (UsageError): exit 2, before
# anything runs. The corpus cannot give a result (EmptyVocabularyError) or the result does
# not add up (ReconcileError), both JobError: exit 1, uncommitted (mlbatch.errors).


def _failure(err: BaseException) -> str:
    """A one-line reason for _PENDING.json: the error without Beam's step context."""
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".strip()


def run(argv: list[str] | None = None, save_main_session: bool = True) -> Manifest | None:
    """Runs the job; returns the committed artifact's manifest (None for a dry run).

    Raises ConfigError, OptionsError, InputError, OutputExistsError or StorageError (a
    remote input that does not answer) before anything runs; EmptyVocabularyError or
    ReconcileError (the output stays uncommitted, its reason recorded) when the corpus
    gives no usable result.
    """
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    known, pipeline_args = parser.parse_known_args(argv)
    config = from_args(known)
    refuse_local_paths(pipeline_args, input=config.input, output=config.output)
    options = pipeline_options(pipeline_args, job_name=JOB_NAME,
                               save_main_session=save_main_session)
    dry_run = options.view_as(TestOptions).dry_run
    if config.processes > 1 and not dry_run and _runs_in_this_process(options):
        start_fork_server()  # its imports overlap the input hashing and the pipeline start
    if dry_run and storage.is_remote(config.input):
        corpus = []  # a dry run reaches no bucket
    else:
        corpus = match_corpus(config.input)
    writer = None if dry_run else artifacts.start(config, pipeline_args, corpus)
    LOGGER.debug("phase: %d input files matched and hashed", len(corpus))
    try:
        p = beam.Pipeline(options=options)
        pipeline.build(p, config)
        LOGGER.debug("phase: pipeline built")
        run_pipeline(p, options)
        LOGGER.debug("phase: pipeline done")
        if writer is not None:
            storage.delete(spill_dir(config.output))  # left by a retried bundle, if any
        return None if writer is None else artifacts.finalize(writer, config)
    except BaseException as err:
        if writer is not None:
            storage.delete(spill_dir(config.output))
            writer.fail(_failure(err))
        raise


def _runs_in_this_process(options) -> bool:
    """Whether the DoFns run in this process (the local in-memory runner), so that the
    helpers' fork server is this process's: not on Dataflow, not in Beam's worker
    processes (``--direct_running_mode multi_processing``)."""
    mode = options.view_as(DirectOptions).direct_running_mode
    return not is_dataflow(options) and mode != "multi_processing"


def main(argv: list[str] | None = None) -> int:
    """The command line: 0 when committed, 2 for usage and config errors, 1 when the
    corpus gives no result (the reason is printed and recorded in the output)."""
    try:
        manifest = run(argv)
    except SystemExit as exit_:  # argparse: --help, or a missing/unknown flag value
        return exit_.code if isinstance(exit_.code, int) else 2
    except errors.CAUGHT as err:
        return errors.exit_code(None, err)
    if manifest is not None:
        LOGGER.info("committed %s (%s)", manifest.root, manifest.digest)
    return 0


if __name__ == "__main__":
    logs.setup()
    small_pages()  # this process is the job's alone (see workers.small_pages)
    code = main()
    # By now the artifact is committed (or its failure recorded). What is left is the
    # interpreter's last garbage collection over the objects Beam and the job leave
    # behind: ~0.5 s of a ~9 s run at sotu x10 (docs/cooccurrence.md). Frozen objects
    # are skipped by it; atexit handlers and stream flushes still run as usual.
    gc.freeze()
    sys.exit(code)
