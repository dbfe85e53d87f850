"""Every Ray job's command line: main(argv) -> int, exit 2 naming the problem, --help with
defaults and the docs page, console scripts installed beside `python -m`."""
from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

import pytest

JOBS = {"ray_jobs.xgboost": "docs/xgboost.md", "ray_jobs.jax": "docs/jax.md",
        "ray_jobs.tune": "docs/jax.md"}


@pytest.mark.parametrize("job", sorted(JOBS))
def test_help_shows_defaults_and_the_docs_page(job, capsys):
    cli = importlib.import_module(f"{job}.__main__")
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert e.value.code == 0
    assert "(default: " in text and JOBS[job] in text
    assert f"python -m {job}" in text


@pytest.mark.parametrize("job", sorted(JOBS))
def test_a_missing_feature_directory_exits_2_naming_it(job, tmp_path, capsys):
    cli = importlib.import_module(f"{job}.__main__")
    missing = tmp_path / "no_features"
    argv = ["--features", str(missing), "--output", str(tmp_path / "out")]
    if job == "ray_jobs.tune":
        argv = ["--job", "xgboost", *argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"python -m {job}: error: ") and str(missing) in err


def test_xgboost_set_and_tune_set_coerce_numbers():
    from ray_jobs.tune import __main__ as tune_cli
    from ray_jobs.xgboost import __main__ as xgb_cli
    cfg, _overwrite = xgb_cli.parse_args(["--features", "f", "--output", "o", "--set",
                                          "params.eta=1e-3", "--set", "params.max_depth=4"])
    assert dict(cfg.params) == {"eta": 0.001, "max_depth": 4}
    settings = tune_cli.parse_args(["--job", "xgboost", "--features", "f", "--output", "o",
                                    "--set", "params.eta=1e-3", "--set", "num_actors=2"])
    assert settings.base_config == {"params": {"eta": 0.001}, "num_actors": 2}
    assert xgb_cli.main(["--features", "f", "--output", "o", "--set", "eta=0.1"]) == 2


def test_console_scripts_are_installed_beside_python_m():
    bin_dir = Path(sys.executable).parent
    for name in ("features", "cooccurrence", "xgboost", "jax", "tune"):
        assert shutil.which(f"mlbatch-{name}", path=str(bin_dir)), name
