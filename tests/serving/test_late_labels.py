"""Late labels: the scored slice's labels arrive in another file (rows in reversed order,
so `<file>:<line>` names other rows) and are joined to the stored predictions by the
schema's identity; the out-of-time metrics are recorded beside the eval-split figures."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from beam_jobs.evaluate.__main__ import main
from mlbatch.artifacts import read_manifest
from mlbatch.artifacts.evaluation import load_evaluation
from mlbatch.artifacts.models import load_model
from tests.conftest import FLIGHTS_SLICE_ROWS

LABELLED = 2960  # flights of the slice with an arrival delay (tests/score)


def labelled_copy(raw: Path, dst: Path, *, reverse: bool = True, twice: int | None = None,
                  drop: str | None = None) -> Path:
    """The raw slice with flights.csv's rows reversed, row `twice` repeated, or the
    column `drop` left out."""
    shutil.copytree(raw, dst)
    with open(raw / "flights.csv", newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = [c for c in reader.fieldnames if c != drop], list(reader)
    rows = rows[::-1] if reverse else rows
    if twice is not None:
        rows.append(rows[twice])
    with open(dst / "flights.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return dst


def _args(predictions, labels, out, *extra) -> list[str]:
    return ["--predictions", str(predictions), "--labels", str(labels), "--output", str(out),
            *extra]


@pytest.fixture(scope="module")
def evaluated(flights_scored, flights_slice, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("late_labels")
    labels = labelled_copy(flights_slice, tmp / "labels")
    code = main(_args(flights_scored[0], labels, tmp / "out", "--period", "2013-01"))
    return code, tmp / "out"


def test_late_labels_join_by_identity_and_give_the_same_auc(evaluated, flights_scored,
                                                            flights_xgboost):
    code, out = evaluated
    assert code == 0
    m = load_evaluation(str(out))
    got = m.metrics
    assert (got["rows_scored"], got["rows_labels"], got["rows_joined"],
            got["rows_scored_unlabelled"], got["rows_labels_unscored"]) == (
        FLIGHTS_SLICE_ROWS, LABELLED, LABELLED, FLIGHTS_SLICE_ROWS - LABELLED, 0)
    scored = flights_scored[1]["metrics"]  # labels that came with the scored rows
    assert got["auc"] == pytest.approx(scored["auc"], abs=1e-12)
    assert got["logloss"] == pytest.approx(scored["logloss"], abs=1e-12)
    model = load_model(str(flights_xgboost))
    assert (got["eval_split_auc"], got["eval_split_logloss"]) == (
        model.metrics["auc"], model.metrics["logloss"])
    body = m.body
    assert body["period"] == "2013-01" and body["out_of_time"] is True
    assert body["identity"] == ["year", "month", "day", "carrier", "flight", "origin",
                                "sched_dep_time"]
    assert {e["role"] for e in m.inputs} >= {"predictions", "labels:flights"}
    assert read_manifest(str(flights_scored[0])).digest == m.input("predictions")["digest"]


def test_the_runners_figures_count_the_joined_rows_not_the_sum_of_both_sides(evaluated):
    """The pipeline's final table said '57,507 rows' for a month of 28,889 scored flights
    and 28,618 labels: the evaluation's row counts overlap, so its figure is the join."""
    from pipelines.figures import key_figures, summary
    code, out = evaluated
    figures = key_figures(str(out))
    assert figures["rows"] == LABELLED
    assert summary(figures).startswith(f"{LABELLED:,} rows joined to their labels, auc=")


def test_a_duplicated_identity_is_an_error_naming_it(flights_scored, flights_slice, tmp_path,
                                                     capsys):
    labels = labelled_copy(flights_slice, tmp_path / "labels", twice=5)
    code = main(_args(flights_scored[0], labels, tmp_path / "out"))
    err = capsys.readouterr().err
    assert code == 2
    assert "1 identity value(s) (year, month, day, carrier, flight, origin, sched_dep_time) " \
           "name more than one labelled row" in err
    assert not (tmp_path / "out" / "artifact.json").exists()


def test_labels_without_the_label_column_are_refused_first(flights_scored, flights_slice,
                                                           tmp_path, capsys):
    labels = labelled_copy(flights_slice, tmp_path / "labels", drop="arr_delay")
    code = main(_args(flights_scored[0], labels, tmp_path / "out"))
    err = capsys.readouterr().err
    assert code == 2
    assert "table 'flights' needs column(s) ['arr_delay']" in err
    assert not (tmp_path / "out").exists()


def test_a_pipeline_step_runs_the_evaluate_job_with_its_flags():
    """The registry's flags for beam_jobs.evaluate are the job's own (its parser takes
    the argv a pipeline step builds)."""
    from beam_jobs.evaluate.__main__ import parse_args
    from pipelines.spec import parse_pipeline

    p = parse_pipeline("""
pipeline: t
steps:
  late_labels:
    job: beam_jobs.evaluate
    args: {predictions: out/p, labels: data/labelled/2013-10, period: "2013-10",
           chunk_rows: 1000}
    raw: [labels]
""")
    argv = p.steps["late_labels"].argv("R")
    assert argv == ["--predictions", "out/p", "--labels", "data/labelled/2013-10",
                    "--period", "2013-10", "--chunk-rows", "1000", "--output", "R/late_labels"]
    args, beam_args = parse_args(argv)
    assert (args.period, args.chunk_rows, args.output, beam_args) == (
        "2013-10", 1000, "R/late_labels", [])
