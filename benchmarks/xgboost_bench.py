"""The job's Ray Train XGBoost vs plain XGBoost on the same features, params and rounds
(prints ratios; no asserts; timing belongs here, not in tests).

    python -m benchmarks.xgboost_bench                         # flights + 2M x 30 synthetic
    python -m benchmarks.xgboost_bench --rows 200000 --rounds 30   # quick look
    python -m benchmarks.xgboost_bench --report-cost --rows 200000 # what reports cost

Per dataset, each run in a fresh process (so peak memory is its own), one after another:
  plain      xgboost.train(nthread=2) on a DMatrix built from the Parquet in-process
  ray_2x1    this job's training (Ray Train V2 XGBoostTrainer), 2 workers x 1 CPU (the
             default layout on 2 CPUs)
  ray_1x2    the same, 1 worker x 2 CPUs
All runs use OMP_WAIT_POLICY=PASSIVE (see BENCH_ENV).
Wall time counts reading the Parquet, building the matrices and training (for Ray Train
also starting the controller and workers and the job's reports and checkpoints every 5
rounds; Ray itself is started before the clock, as a cluster would be up already). The
job's pre-training data scan is timed separately (scan_s). Eval AUC is computed exactly
from each model's predictions on the whole eval split. Peak memory: the process's max RSS,
plus for Ray Train the sampled peak of the training workers' summed RSS. timed_cpu_s: the
CPU seconds of the timed region (plain: its process; Ray Train: the driver plus every
process of the run's local Ray, from /proc). timeline: seconds after the clock started of
the steps (Ray Train: the controller's log marks and each worker's ``worker.Timeline``;
docs/xgboost.md, "Where the time goes").
Ray runs locally on 127.0.0.1. Datasets: out/run/features (the demo feature job's flights output)
when present, and a synthetic table of --rows x 30 features (cached under bench_out/).

--report-cost: 2 workers x 1 CPU, --rounds rounds on the synthetic table, in one process
and one Ray: reports only at the end vs every round (at Ray Train's default 2 s
controller poll and at the job's 0.2 s) vs every 5 rounds; then Tune with ASHA end to end
(4 trials, checkpoint_every 1 vs 5). Written to bench_out/xgboost_report_cost.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from xgboost.callback import TrainingCallback

REPO = Path(__file__).resolve().parents[1]
MODES = ("plain", "ray_2x1", "ray_1x2")
LAYOUTS = {"ray_2x1": (2, 1), "ray_1x2": (1, 2)}
BENCH_PARAMS = {"eta": 0.1, "max_depth": 6, "max_bin": 256}
# OpenMP threads sleep instead of spinning while they wait: on a shared (loaded) machine
# the default spin makes 2-thread XGBoost several times slower than 1 thread. Applies to
# every mode alike (Ray's actors inherit it from the local Ray started by the run).
BENCH_ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
TARGET_WALL_RATIO = 1.10  # issue 14: the default layout within 1.1x of plain xgboost.train


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _stat(pid: str) -> tuple[int, float] | None:
    """(parent pid, user + sys CPU seconds) of a process, from /proc (None once gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _process_name(pid: str) -> str:
    """A Ray process's name: its title (``ray::RayTrainWorker``,
    ``ray-dashboard-StateHead-0``) or its program's file (``raylet``, ``dashboard.py``)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    first = argv[0].decode(errors="replace")
    if " " in first or first.startswith("ray::"):  # a title the process set itself
        return first.split(" ")[0] or "?"
    scripts = [a.decode(errors="replace") for a in argv[1:] if a.endswith(b".py")]
    return Path(scripts[0] if scripts else first).name or "?"


class ActorMemorySampler(threading.Thread):
    """Peak of the summed RSS of the Ray Train worker processes, and the CPU seconds
    this process's descendants (the local Ray: GCS, raylet, dashboard, the Train
    controller and workers) spent between start and stop (sampled every ``period_s``;
    a process that ends between two samples loses its last moments). Sampling reads every
    process's /proc entry, which costs CPU on a busy host: once a second, and ``own_cpu_s``
    is what this thread spent, for the caller to subtract from its process's CPU."""

    def __init__(self, period_s: float = 1.0):
        super().__init__(daemon=True)
        self.period_s, self.peak_mb, self._halt = period_s, 0.0, threading.Event()
        self.own_cpu_s = 0.0
        self._cpu_first: dict[str, float] = {}
        self._cpu_last: dict[str, float] = {}
        self._names: dict[str, str] = {}
        self._sample_cpu(first=True)

    def _sample_cpu(self, first: bool = False) -> None:
        stats = {d.name: _stat(d.name) for d in Path("/proc").iterdir() if d.name.isdigit()}
        tree, grew = {str(os.getpid())}, True
        while grew:
            kids = {p for p, st in stats.items() if st and str(st[0]) in tree} - tree
            tree, grew = tree | kids, bool(kids)
        for pid in tree - {str(os.getpid())}:
            if first:
                self._cpu_first[pid] = stats[pid][1]
            self._cpu_last[pid] = stats[pid][1]
            name = _process_name(pid)  # the latest title: ray::IDLE becomes the actor's
            if name != "?":
                self._names[pid] = name

    @property
    def cpu_s(self) -> float:
        return sum(v - self._cpu_first.get(p, 0.0) for p, v in self._cpu_last.items())

    def cpu_by_process(self) -> dict[str, float]:
        """CPU seconds per process name (the Ray processes, e.g. ray::TrainController)."""
        out: dict[str, float] = {}
        for pid, v in self._cpu_last.items():
            name = self._names.get(pid, "?")
            out[name] = round(out.get(name, 0.0) + v - self._cpu_first.get(pid, 0.0), 2)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def run(self):
        while not self._halt.is_set():
            total = 0.0
            for d in Path("/proc").iterdir():
                if d.name.isdigit():
                    try:
                        cmd = (d / "cmdline").read_bytes()
                    except OSError:
                        continue
                    if b"RayTrainWorker" in cmd:
                        total += _rss_mb(int(d.name))
            self.peak_mb = max(self.peak_mb, total)
            self._sample_cpu()
            self.own_cpu_s = time.thread_time()
            self._halt.wait(self.period_s)

    def stop(self) -> float:
        self._halt.set()
        self.join()
        self._sample_cpu()
        return self.peak_mb


def run_one(mode: str, features: str, rounds: int) -> dict:
    """One measured run in this process; returns its record."""
    import numpy as np
    import xgboost as xgb

    from ray_jobs.xgboost import data
    from ray_jobs.xgboost.config import Layout, XGBoostConfig
    from mlbatch.metrics import task_metrics

    t = time.perf_counter()
    fs = data.load_and_validate(features)
    scan_s = time.perf_counter() - t
    cfg = XGBoostConfig(features=features, output="-", num_boost_round=rounds,
                        early_stopping_rounds=None, max_actor_restarts=0,
                        params=BENCH_PARAMS)
    params = cfg.booster_params(fs.task)
    record: dict = {"mode": mode, "scan_s": round(scan_s, 2)}
    sampler = None
    if mode == "plain":
        t, cpu = time.perf_counter(), time.process_time()
        mats = {}
        for split in ("train", "eval"):
            parts = [data.read_split(fs, p) for p in fs.files(split)]
            x = np.concatenate([p[0] for p in parts])
            y = np.concatenate([p[1] for p in parts])
            mats[split] = xgb.DMatrix(x, label=y, feature_names=fs.names, nthread=2)
            del x, parts
        load_s = time.perf_counter() - t
        marks = RoundMarks()
        booster = xgb.train({**params, "nthread": 2}, mats["train"], rounds,
                            evals=[(mats["train"], "train"), (mats["eval"], "eval")],
                            verbose_eval=False, callbacks=[marks])
        wall = time.perf_counter() - t
        record.update(load_s=round(load_s, 2), train_s=round(wall - load_s, 2),
                      timed_cpu_s=round(time.process_time() - cpu, 2),
                      timeline={"matrices": round(load_s, 2),
                                **{k: round(v - t, 2) for k, v in marks.marks.items()}})
    else:
        from ray_jobs.common.cluster import connect
        from ray_jobs.xgboost import cluster
        connect(None)  # local Ray on 127.0.0.1, before the clock
        layout = Layout(*LAYOUTS[mode])
        cluster.check_layout(layout)
        sampler = ActorMemorySampler()
        sampler.start()
        marks_dir = tempfile.mkdtemp(prefix="xgb_timeline_")
        t, t_epoch, cpu = time.perf_counter(), time.time(), time.process_time()
        booster, _ = train_ray(fs, params, layout, cfg, timeline=marks_dir)
        wall = time.perf_counter() - t
        record.update(train_s=round(wall, 2), actor_peak_rss_mb=round(sampler.stop(), 1),
                      timed_cpu_s=round(sampler.cpu_s + time.process_time() - cpu
                                          - sampler.own_cpu_s, 2),
                      cpu_s_by_process=sampler.cpu_by_process(),
                      timeline={"controller": controller_timeline(t_epoch),
                                **worker_timeline(marks_dir, t_epoch)})
    p, y = [], []
    for path in fs.files("eval"):
        x_e, y_e = data.read_split(fs, path)
        p.append(booster.inplace_predict(x_e))
        y.append(y_e)
    quality = task_metrics(fs.task, np.concatenate(y), np.concatenate(p))
    record.update(wall_s=round(wall, 2), eval=quality,
                  process_peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                            / 1024, 1))
    return record


class RoundMarks(TrainingCallback):
    """XGBoost callback (plain runs): perf_counter at the first and the last round's end."""

    def __init__(self):
        self.marks: dict[str, float] = {}

    def after_iteration(self, model, epoch, evals_log):
        self.marks.setdefault("first_round_end", time.perf_counter())
        self.marks["last_round_end"] = time.perf_counter()
        return False


def worker_timeline(directory: str, t0: float) -> dict:
    """The training workers' ``worker.Timeline`` marks as seconds after ``t0`` (the fit
    call), rank by rank; ``reports_s`` is the seconds spent in ``ray.train.report``."""
    out = {}
    for path in sorted(Path(directory).glob("rank*.json")):
        marks = json.loads(path.read_text())
        out[path.stem] = {k: v if k == "cpu_s_at" else round(v if k.endswith("_s") else v - t0, 2)
                          for k, v in marks.items()}
    return out


# Ray Train V2's controller log lines (its sys log under the Ray session's logs/train/)
# that mark the start-up and the end of a run, by the first words of their message.
CONTROLLER_MARKS = {
    "controller_up": "No checkpoint manager snapshot", "controller_up_resumed": "Restoring",
    "pg_cleaner_launched": "PlacementGroupCleaner launched",
    "placement_group_ready": "[Worker Group Initialization] Placement group ready",
    "worker_actors_created": "[Worker Group Initialization] 2 worker actors created",
    "train_context_ready": "[Worker Group Initialization] Train context initialized",
    "tracker_started": "RabitTracker coordinator started",
    "train_fn_launched": "[Worker Group Initialization] Train function launched",
    "workers_shutdown": "Worker group shutdown successful"}


def controller_timeline(t0: float) -> dict:
    """Seconds after ``t0`` (the fit call) of the newest Train controller's marks
    (CONTROLLER_MARKS), from its structured log in this driver's Ray session."""
    import ray
    try:  # the session of the Ray this process started (private API: benchmark only)
        logs = Path(ray._private.worker._global_node.get_session_dir_path(), "logs", "train")
        path = max(logs.glob("ray-train-sys-controller-*.log"), key=lambda p: p.stat().st_mtime)
    except (AttributeError, ValueError, OSError):
        return {}
    out: dict[str, float] = {}
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        stamp = time.mktime(time.strptime(rec["asctime"][:19], "%Y-%m-%d %H:%M:%S"))
        stamp += int(rec["asctime"][20:23]) / 1000
        for name, prefix in CONTROLLER_MARKS.items():
            if rec.get("message", "").startswith(prefix):
                out.setdefault(name, round(stamp - t0, 2))
    return out


def train_ray(fs, params: dict, layout, cfg, timeline: str | None = None, **spec_kw):
    """The job's training (driver.train_spec/make_trainer/fit), checkpoints in a temp dir;
    with ``timeline`` the workers write their step marks there (``worker.Timeline``)."""
    import dataclasses

    from ray_jobs.xgboost import driver
    with tempfile.TemporaryDirectory(prefix="xgb_bench_") as d:
        spec = dataclasses.replace(driver.train_spec(cfg, fs, params, layout, **spec_kw),
                                   timeline=timeline)
        return driver.fit(driver.make_trainer(spec, layout, name="bench", storage_uri=d,
                                              max_failures=0))


class LoopTimer(TrainingCallback):
    """XGBoost callback (in the training workers): rank 0 writes the seconds from the
    first round's start to the last round's end (reports included) to ``path``."""

    def __init__(self, path: str):
        self.path, self.t0 = path, 0.0

    def before_training(self, model):
        self.t0 = time.perf_counter()
        return model

    def after_training(self, model):
        from xgboost import collective
        if collective.get_rank() == 0:
            Path(self.path).write_text(str(time.perf_counter() - self.t0))
        return model


def report_cost(features: Path, rounds: int, repeats: int) -> dict:
    """Seconds of one 2 x 1 training per report setting (medians), in this process:
    the whole fit (worker start included) and the boosting loop alone (reports included)."""
    from ray_jobs.common.cluster import connect
    from ray_jobs.xgboost import data, driver
    from ray_jobs.xgboost.config import Layout, XGBoostConfig

    connect(None)
    fs = data.load_and_validate(str(features), scan=False)
    cfg = XGBoostConfig(features=str(features), output="-", num_boost_round=rounds,
                        early_stopping_rounds=None, params=BENCH_PARAMS)
    params, layout = cfg.booster_params(fs.task), Layout(2, 1)
    cases = {"end_only": (rounds, "0.2"), "every_1_poll_2s": (1, "2.0"),
             "every_1_poll_0.2s": (1, "0.2"), "every_5_poll_0.2s": (5, "0.2")}
    times: dict[str, list[float]] = {c: [] for c in cases}
    loops: dict[str, list[float]] = {c: [] for c in cases}
    timer = Path(tempfile.mkdtemp(prefix="xgb_loop_")) / "loop_s"
    for _ in range(repeats):
        for case, (every, poll) in cases.items():
            os.environ[driver.REPORT_POLL_ENV] = poll  # read when the trainer starts
            t = time.perf_counter()
            train_ray(fs, params, layout, cfg, report_every=every,
                      callbacks=[LoopTimer(str(timer))])
            times[case].append(round(time.perf_counter() - t, 2))
            loops[case].append(round(float(timer.read_text()), 2))
            print(f"  report cost {case}: fit {times[case][-1]} s, loop {loops[case][-1]} s",
                  file=sys.stderr)
    med = {c: sorted(v)[len(v) // 2] for c, v in times.items()}
    loop = {c: sorted(v)[len(v) // 2] for c, v in loops.items()}
    per_report = {c: round((loop[c] - loop["end_only"]) / max(1, rounds // cases[c][0] - 1), 3)
                  for c in cases if c != "end_only"}
    return {"rounds": rounds, "layout": "2 workers x 1 CPU", "cases": {
                c: {"report_every": e, "poll_s": float(p)} for c, (e, p) in cases.items()},
            "fit_s": times, "loop_s": loops, "median_fit_s": med, "median_loop_s": loop,
            "extra_loop_s_per_report": per_report}


def tune_cost(features: Path, rounds: int) -> dict:
    """Tune with ASHA end to end (4 trials, 1 worker x 1 CPU each): report every round vs
    every 5 rounds."""
    from ray_jobs.tune import driver as tune_driver
    out = {}
    for every in (1, 5):
        with tempfile.TemporaryDirectory(prefix="xgb_tune_bench_") as d:
            settings = tune_driver.TuneSettings(
                job="xgboost", features=str(features), output=d, num_samples=4, seed=0,
                scheduler="asha", grace_period=5, reduction_factor=3,
                base_config={"num_boost_round": rounds, "early_stopping_rounds": 0,
                             "checkpoint_every": every})
            t = time.perf_counter()
            summary = tune_driver.run(settings)
            out[f"checkpoint_every_{every}"] = {
                "wall_s": round(time.perf_counter() - t, 2),
                "scheduler_stopped": summary["scheduler_stopped"],
                "best_eval_loss": summary["best"]["eval_loss"]}
            print(f"  tune every {every}: {out[f'checkpoint_every_{every}']}", file=sys.stderr)
    return out


def synthetic(root: Path, rows: int) -> Path:
    from mlbatch.artifacts.features import load_feature_set
    from ray_jobs.common.synthetic import write_synthetic_features
    try:
        if load_feature_set(root).num_rows("train") == rows:
            return root
    except Exception:  # noqa: BLE001 -- absent or partial: (re)write it
        pass
    print(f"writing synthetic features: {rows} rows x 30 -> {root}", file=sys.stderr)
    return write_synthetic_features(root, n_train=rows, n_eval=max(rows // 10, 1000),
                                    n_numeric=27, cardinalities=(8, 32, 256),
                                    shards=8, seed=0)


def measure(features: Path, rounds: int, repeats: int, modes: tuple[str, ...] = MODES) -> dict:
    runs: dict[str, list[dict]] = {m: [] for m in modes}
    for _ in range(repeats):
        for mode in modes:  # interleaved, so drift hits every mode alike
            load_before = os.getloadavg()[0]
            out = subprocess.run([sys.executable, "-m", "benchmarks.xgboost_bench", "--one", mode,
                                  "--features", str(features), "--rounds", str(rounds)],
                                 cwd=REPO, capture_output=True, text=True, timeout=3600,
                                 env=BENCH_ENV)
            if out.returncode != 0:
                raise RuntimeError(f"{mode} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
            runs[mode].append(json.loads(out.stdout.strip().splitlines()[-1]))
            runs[mode][-1]["loadavg_1m_before"] = round(load_before, 2)
            print(f"  {features.name} {mode}: {runs[mode][-1]}", file=sys.stderr)
    med = {m: min(runs[m], key=lambda r: r["wall_s"]) if repeats == 1 else
           sorted(runs[m], key=lambda r: r["wall_s"])[len(runs[m]) // 2] for m in modes}
    plain = med["plain"]
    key = "auc" if "auc" in plain["eval"] else "rmse"
    result = {"runs": med, "wall_s_all": {m: [r["wall_s"] for r in runs[m]] for m in modes},
              "timed_cpu_s_all": {m: [r["timed_cpu_s"] for r in runs[m]] for m in modes}}
    for m in [m for m in modes if m != "plain"]:
        result[f"{m}_vs_plain_wall"] = round(med[m]["wall_s"] / plain["wall_s"], 3)
        result[f"{m}_vs_plain_train"] = round(med[m]["train_s"] / plain["train_s"], 3)
        result[f"{m}_eval_{key}_diff"] = round(med[m]["eval"][key] - plain["eval"][key], 5)
        result[f"{m}_meets_target"] = bool(
            result[f"{m}_vs_plain_wall"] <= TARGET_WALL_RATIO
            and abs(result[f"{m}_eval_{key}_diff"]) <= 0.002)
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--flights", default=str(REPO / "out" / "run" / "features"))
    ap.add_argument("--cache", default=str(REPO / "bench_out" / "xgb_synthetic"))
    ap.add_argument("--output", default=str(REPO / "bench_out" / "xgboost_bench.json"))
    ap.add_argument("--modes", default=",".join(MODES),
                    help="comma-separated subset of " + ",".join(MODES) + " (plain always runs)")
    ap.add_argument("--report-cost", action="store_true",
                    help="measure what ray.train.report costs (module docstring)")
    ap.add_argument("--tune-only", action="store_true",
                    help="with --report-cost: only its Tune part (xgboost_tune_cost.json)")
    ap.add_argument("--one", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--features", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    modes = tuple(m for m in MODES if m == "plain" or m in a.modes.split(","))
    from ray_jobs.common.cluster import prefer_loopback
    prefer_loopback()  # before anything imports Ray
    if a.one:
        print(json.dumps(run_one(a.one, a.features, a.rounds)))
        return
    import ray
    import xgboost
    doc: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                             "xgboost": xgboost.__version__, "ray": ray.__version__,
                             "uptime_before": _uptime()},
                 "rounds": a.rounds, "params": BENCH_PARAMS, "datasets": {}}
    name = f"synthetic_{a.rows}x30"
    if a.report_cost:
        features, out = (synthetic(Path(a.cache) / str(a.rows), a.rows),
                         Path(a.output).with_name("xgboost_report_cost.json"))
        if a.tune_only:
            from ray_jobs.common.cluster import connect
            connect(None)
            doc["tune"] = tune_cost(features, a.rounds)
            doc["machine"]["uptime_after"] = _uptime()
            _write(out.with_name("xgboost_tune_cost.json"), doc)
            return
        doc["report_cost"] = report_cost(features, a.rounds, a.repeats)
        doc["machine"]["uptime_after_train"] = _uptime()
        _write(out, doc)  # before the (long) Tune part
        doc["report_cost"]["tune"] = tune_cost(features, a.rounds)
        doc["machine"]["uptime_after"] = _uptime()
        _write(out, doc)
        return
    flights = Path(a.flights)
    if (flights / "artifact.json").is_file():  # a committed feature artifact
        doc["datasets"]["flights"] = measure(flights, a.rounds, a.repeats, modes)
    else:
        doc["datasets"]["flights"] = {"skipped": f"no feature job output at {flights} "
                                                 "(run `make demo`)"}
    doc["datasets"][name] = measure(synthetic(Path(a.cache) / str(a.rows), a.rows),
                                    a.rounds, a.repeats, modes)
    doc["machine"]["uptime_after"] = _uptime()
    _write(Path(a.output), doc)


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _write(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
