"""Text corpus -> vocabulary, co-occurrence matrix, PPMI and SVD word vectors (Parquet).

python -m beam_jobs.cooccurrence --input 'data/sotu/*.txt' --output out/cooccurrence \
    [--window 10] [--min-count 5] [--weighting harmonic|uniform] \
    [--direction symmetric|left] [--ppmi] [--svd-dim 300] [Beam pipeline flags]
"""
from __future__ import annotations

import argparse
import logging
import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import TestOptions

from beam_jobs.common.options import OptionsError, pipeline_options, run_pipeline
from beam_jobs.cooccurrence import pipeline
from beam_jobs.cooccurrence.config import ConfigError, add_arguments, from_args
from beam_jobs.cooccurrence.io import (InputError, OutputExistsError, OutputLayout,
                                       check_input, prepare_output)

JOB_NAME = "cooccurrence"


def run(argv: list[str] | None = None, save_main_session: bool = True) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    known, pipeline_args = parser.parse_known_args(argv)
    config = from_args(known)
    options = pipeline_options(pipeline_args, job_name=JOB_NAME,
                               save_main_session=save_main_session)
    check_input(config.input)
    if not options.view_as(TestOptions).dry_run:
        prepare_output(OutputLayout(config.output), config.overwrite)
    p = beam.Pipeline(options=options)
    pipeline.build(p, config)
    run_pipeline(p, options)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                                                   "%(message)s")
    try:
        run()
    except (ConfigError, OptionsError, InputError, OutputExistsError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
