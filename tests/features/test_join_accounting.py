"""Issue #20 through the real feature job on a small input (400 flights, lookup tables cut
to what they need): per-join accounting in summary.json, checked against an independent
pandas merge of the same files; columns that become useless fail the run (exit 2,
nothing committed); an input rewritten or deleted between the two passes fails it too."""
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from beam_jobs.features import pipeline
from pipelines.report.data import join_rows
from tests.conftest import REPO_ROOT, feature_job_main

N_FLIGHTS = 400


def write_schema(tmp_path, mutate):
    raw = yaml.safe_load((REPO_ROOT / "schemas" / "flights.yaml").read_text())
    mutate(raw)
    path = tmp_path / "schema.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _small_input(flights_slice, d, shift_weather_year=False):
    lines = (flights_slice / "flights.csv").read_text().splitlines(keepends=True)
    (d / "flights.csv").write_text("".join(lines[:N_FLIGHTS + 1]))
    flights = pd.read_csv(d / "flights.csv")
    weather = pd.read_csv(flights_slice / "weather.csv", keep_default_na=False, dtype=str)
    wanted = set(zip(flights.origin, flights.time_hour))
    keys = list(zip(weather.origin, weather.time_hour))
    need = weather[[k in wanted for k in keys]]
    extra = weather[[k not in wanted for k in keys]].head(25)  # 25 rows nobody uses
    need = need.iloc[[i for i in range(len(need)) if i % 7 != 3]]  # some keys missing
    weather = pd.concat([need, need.head(2), extra])  # two duplicate keys
    if shift_weather_year:  # a lookup table that misses entirely
        weather["time_hour"] = weather.time_hour.str.replace("2013-", "2012-")
    weather.to_csv(d / "weather.csv", index=False)
    planes = pd.read_csv(flights_slice / "planes.csv", keep_default_na=False, dtype=str)
    used = planes[planes.tailnum.isin(set(flights.tailnum))]
    planes = pd.concat([used.iloc[10:], used.head(1), planes.head(40)])
    planes.to_csv(d / "planes.csv", index=False)
    return d


@pytest.fixture(scope="module")
def small_input(flights_slice, tmp_path_factory):
    return _small_input(flights_slice, tmp_path_factory.mktemp("small_input"))


def _expected_join(d, table, keys):
    """The accounting an independent pandas merge of the files gives."""
    main = pd.read_csv(d / "flights.csv")
    look = pd.read_csv(d / f"{table}.csv")
    dupes = int(look.duplicated(keys).sum())
    look = look.drop_duplicates(keys).reset_index(drop=True)
    look["_row"] = np.arange(len(look))
    merged = main.merge(look[keys + ["_row"]], on=keys, how="left")
    assert len(merged) == len(main)
    used = merged._row.dropna().nunique()
    return {"keys": keys, "matched": int(merged._row.notna().sum()),
            "unmatched": int(merged._row.isna().sum()), "lookup_rows": len(look),
            "duplicate_keys_dropped": dupes, "lookup_rows_used": used,
            "lookup_rows_unused": len(look) - used}


def test_each_join_is_accounted_for_and_reconciles(small_input, tmp_path, capsys):
    # also: a derived column constant over varied sources, allowed (allow_constant: true)
    schema = write_schema(tmp_path, lambda r: r["derived"].append(
        {"name": "dep_day_part", "expr": "sched_dep_time // 10000", "allow_constant": True}))
    out = tmp_path / "out"
    code, stderr = feature_job_main(capsys, small_input, out, schema=schema)
    assert code == 0, stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    joins = summary["joins"]
    for table, keys in (("weather", ["origin", "time_hour"]), ("planes", ["tailnum"])):
        got = {k: v for k, v in joins[table].items() if k != "unmatched_filled_with"}
        assert got == _expected_join(small_input, table, keys), table
        assert joins[table]["matched"] + joins[table]["unmatched"] == N_FLIGHTS
    assert joins["weather"]["unmatched"] > 0 and joins["weather"]["lookup_rows_unused"] >= 25
    assert joins["weather"]["duplicate_keys_dropped"] == 2
    assert joins["weather"]["unmatched_filled_with"]["wx_precip_z"] == "0"
    assert joins["weather"]["unmatched_filled_with"]["wx_temp_z"] == "the train mean"
    assert joins["planes"]["unmatched_filled_with"] == {
        "plane_age_z": "the train mean", "plane_seats_z": "the train mean",
        "plane_manufacturer_id": "missing: a category of its own"}
    assert summary["checks"]["join weather: matched + unmatched == flights valid"] is True
    # null share of a joined column before the fill: over train and eval rows
    rows = summary["stages"]["train"] + summary["stages"]["eval"]
    wx = summary["columns"]["wx_temp"]
    assert wx["rows"] == rows and wx["null_share"] == wx["nulls"] / rows > 0
    assert summary["fill"]["wx_temp_z"] == {
        "column": "wx_temp", "fill": "mean", "null_share_before_fill": wx["null_share"],
        "null_share_after_fill": 0.0}
    rows = summary["stages"]["train"] + summary["stages"]["eval"]
    assert summary["column_warnings"] == [
        f"derived column 'day_of_week' ('day_of_week(year, month, day)') is constant over "
        f"all {rows} rows",  # one day of flights: its sources are constant too
        f"derived column 'dep_day_part' ('sched_dep_time // 10000') is constant over all "
        f"{rows} rows (allow_constant)",
        f"feature source column 'month' is constant over all {rows} rows",
        f"feature source column 'wx_precip' is constant over all {rows} rows"]
    w = _expected_join(small_input, "weather", ["origin", "time_hour"])
    rows = {r[0]: r for r in join_rows(summary)}  # the report's join table
    assert rows["weather"] == ["weather", w["matched"], w["unmatched"], w["lookup_rows"], 2,
                               w["lookup_rows_used"], w["lookup_rows_unused"]]
    manifest = json.loads((out / "artifact.json").read_text())
    assert manifest["metrics"]["joins"]["weather"] == _expected_join(
        small_input, "weather", ["origin", "time_hour"])


def test_useless_columns_fail_the_run_uncommitted(flights_slice, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    raw = _small_input(flights_slice, tmp_path / "in", shift_weather_year=True)
    schema = write_schema(tmp_path, lambda r: r["derived"].extend([
        {"name": "dep_day_part", "expr": "sched_dep_time // 10000"},  # 0 on every row
        {"name": "pm_root", "expr": "sqrt(dep_hour - 12)"}]))  # null before noon
    out = tmp_path / "out"
    code, stderr = feature_job_main(capsys, raw, out, "--passes", "1", schema=schema)
    assert code == 2 and "Traceback" not in stderr
    flights = pd.read_csv(raw / "flights.csv")
    usable = flights[flights.arr_delay.notna()]  # excluded: no arrival delay
    am = (usable.sched_dep_time // 100 < 12).mean()
    assert ("derived column 'dep_day_part' ('sched_dep_time // 10000') is constant over all "
            f"{len(usable)} rows") in stderr
    assert (f"derived column 'pm_root' ('sqrt(dep_hour - 12)') is null on {100 * am:.1f}% of "
            "rows, its sources on at most 0.0%") in stderr
    for col in ("wx_temp", "wx_dewp", "wx_precip"):  # the weather join missed every row
        assert f"feature source column {col!r} is null on all {len(usable)} rows" in stderr
    assert not (out / "artifact.json").exists()
    assert "unusable columns" in json.loads((out / "_PENDING.json").read_text())["failure"]


@pytest.mark.parametrize("change, when, named", [
    ("append", "between pass 1 and pass 2", "size "),  # appended while pass 1 reads
    ("delete", "during pass 2", "deleted"),  # deleted under pass 2 (was: a traceback)
])
def test_an_input_changed_between_passes_fails_the_run(small_input, tmp_path, capsys,
                                                       monkeypatch, change, when, named):
    raw = tmp_path / "in"
    shutil.copytree(small_input, raw)
    target = raw / "flights.csv"
    step = "build_analyze" if change == "append" else "build_transform"
    build = getattr(pipeline, step)

    def change_then_build(*args, **kwargs):
        if change == "append":
            with open(target, "a") as f:
                f.write(target.read_text().splitlines()[1] + "\n")
        else:
            target.unlink()
        return build(*args, **kwargs)

    monkeypatch.setattr(pipeline, step, change_then_build)
    out = tmp_path / "out"
    code, stderr = feature_job_main(capsys, raw, out, "--passes", "2")
    assert code == 2 and "Traceback" not in stderr
    assert (f"input files changed while the job read them ({when}); nothing is committed"
            in stderr)
    assert f"{target}: {named}" in stderr
    assert not (out / "artifact.json").exists()
    assert "InputChangedError" in json.loads((out / "_PENDING.json").read_text())["failure"]


def test_pins_name_a_rewritten_or_deleted_file(tmp_path):
    from beam_jobs.common.inputs import InputChangedError, check_pins, pin_files

    a, b, c = (tmp_path / n for n in ("a.csv", "b.csv", "c.csv"))
    for f in (a, b, c):
        f.write_text("x\n1\n")
    pins = pin_files([str(a), str(b), str(c)])
    check_pins(pins, "now")  # unchanged: passes
    size, mtime = pins[str(a)]
    a.write_text("x\n2\n")  # same size, new content: the modification time tells
    os.utime(a, (mtime + 5, mtime + 5))
    c.unlink()
    with pytest.raises(InputChangedError) as e:
        check_pins(pins, "before the commit")
    assert str(e.value) == (
        "input files changed while the job read them (before the commit); nothing is "
        f"committed, rerun on a stable copy:\n  {a}: size 4 -> 4 bytes, modified "
        f"{mtime:.6f} -> {mtime + 5:.6f}\n  {c}: deleted")
