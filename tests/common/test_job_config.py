"""The feature and scoring jobs are configured by frozen dataclasses, not Namespaces."""
from __future__ import annotations

import argparse
import dataclasses

import pytest

from beam_jobs.common.config import frozen, recorded
from beam_jobs.features.__main__ import parse_args as feature_args
from beam_jobs.features.config import FeatureConfig
from beam_jobs.score.__main__ import parse_args as score_args
from beam_jobs.score.config import ScoreConfig


def test_the_feature_jobs_flags_become_a_frozen_config():
    config, beam_args = feature_args(["--schema", "s.yaml", "--input", "in", "--output", "out",
                                      "--num-shards", "3", "--overwrite", "--runner", "Direct"])
    assert isinstance(config, FeatureConfig) and beam_args == ["--runner", "Direct"]
    assert (config.num_shards, config.overwrite, config.passes) == (3, True, "auto")
    assert "--max-dead-letter-share" in config.job_flags
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.passes = "1"
    # artifact.json records the flags in their order, less those that do not shape the result
    assert list(recorded(config)) == ["schema", "input", "output", "periods", "chunk_rows",
                                      "compression",
                                      "row_group_rows", "num_shards", "analyzers", "passes",
                                      "max_dead_letter_share"]


def test_the_scoring_jobs_flags_become_a_frozen_config():
    config, _ = score_args(["--features", "f", "--model", "m", "--input", "i", "--output", "o"])
    assert isinstance(config, ScoreConfig) and config.schema is None
    assert recorded(config) == {"features": "f", "model": "m", "registry": None, "input": "i",
                                "period": None, "output": "o",
                                "schema": None, "chunk_rows": 50_000, "compression": "snappy",
                                "row_group_rows": 100_000, "num_shards": 0}


def test_a_flag_without_a_field_is_named():
    known = argparse.Namespace(**{f.name: None for f in dataclasses.fields(ScoreConfig)},
                               extra_flag=1)
    with pytest.raises(TypeError, match=r"flags without a field: \['extra_flag'\], fields "
                                        r"without a flag: \[\]"):
        frozen(ScoreConfig, known)
