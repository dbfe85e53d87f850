"""The report's Registry section lists every version of a blessed name (issue #22
leftover): two real blessings (XGBoost blessed first, JAX refused on a change threshold)
in one run directory, rendered."""
from __future__ import annotations

import shutil

import pytest

from mlbatch.artifacts import read_manifest
from mlbatch.artifacts.model_evaluation import load_model_evaluation
from pipelines.model_registry.bless import main as bless
from pipelines.report.__main__ import main as report
from pipelines.report.blocks import Table
from pipelines.report.registry import registry_section
from pipelines.report.run import load_run
from tests.report.conftest import step, write_run_json
from tests.report.test_report import SCREENSHOT_DIR, WIDTH, _chromium


@pytest.fixture(scope="module")
def blessed_run(tmp_path_factory, flights_features, flights_xgboost, flights_jax):
    run = tmp_path_factory.mktemp("registry_run")
    common = ["--name", "delay", "--features", str(flights_features), "--value", "auc>=0.5"]
    assert bless(["--model", str(flights_xgboost), "--output", str(run / "bless_xgboost"),
                  *common]) == 0
    assert bless(["--model", str(flights_jax), "--output", str(run / "bless_jax"),
                  "--after", str(run / "bless_xgboost"), "--change", "auc>=+0.5",
                  *common]) == 3  # refused, committed
    write_run_json(run, [step("bless_xgboost", "pipelines.model_registry.bless", "local", []),
                         step("bless_jax", "pipelines.model_registry.bless", "local",
                              ["bless_xgboost"])])
    return run


def test_every_version_with_its_blessing_and_both_numbers(blessed_run, flights_xgboost,
                                                          flights_jax):
    section = registry_section(load_run(str(blessed_run)))
    versions = [b for b in section.blocks if isinstance(b, Table)
                and b.caption.startswith("Every version of delay")][0]
    assert versions.caption == (f"Every version of delay in the registry "
                                f"{blessed_run / 'lineage.sqlite'}")
    xgb, jax = read_manifest(flights_xgboost), read_manifest(flights_jax)
    first = load_model_evaluation(blessed_run / "bless_xgboost").checks[0]["candidate"]
    cand, base, change = [(c["candidate"], c["baseline"], c["change"]) for c in
                          load_model_evaluation(blessed_run / "bless_jax").failed][0]
    rows = [r[:5] + r[6:8] for r in versions.rows]
    assert rows == [
        ("delay", "1", xgb.digest[7:19], "xgboost_model", "blessed",
         "blessed (first of its name: value thresholds only)",
         f"overall: candidate auc = {first:.6g} passes value threshold auc>=0.5"),
        ("delay", "2", jax.digest[7:19], "jax_model", "candidate", "refused against version 1",
         f"1 of 2 failed, first: overall: candidate {cand:.6g} vs blessed {base:.6g}, change "
         f"{change:.6g} fails change threshold auc>=+0.5")]
    assert versions.rows[1][7].full == (  # every check, failed first, on hover
        f"overall: candidate {cand:.6g} vs blessed {base:.6g}, change {change:.6g} fails "
        f"change threshold auc>=+0.5; overall: candidate auc = {cand:.6g} passes value "
        "threshold auc>=0.5")
    assert versions.rows[0][2].full == xgb.digest  # the full digest rides along for hover
    assert "auc" in versions.rows[0][5]  # the registered eval metrics


def test_the_page_shows_the_version_list_with_full_digests_on_hover(blessed_run, flights_jax,
                                                                    chromium, tmp_path):
    assert report([str(blessed_run)]) == 0
    page = (blessed_run / "report" / "index.html").read_text()
    only = tmp_path / "registry.html"  # the Registry section alone, for the screenshot
    only.write_text(page.replace("</head>", "<style>section:not(#registry){display:none}"
                                 "</style></head>"))
    shot = tmp_path / "report_registry.png"
    _chromium(chromium, tmp_path / "p", f"--window-size={WIDTH},1000", f"--screenshot={shot}",
              only.as_uri()).wait(timeout=120)
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SCREENSHOT_DIR / shot.name)
    jax = read_manifest(flights_jax).digest
    assert f'<abbr title="{jax}">{jax[7:19]}</abbr>' in page
    assert page.index("Every version of delay") > page.index('<section id="registry"')
