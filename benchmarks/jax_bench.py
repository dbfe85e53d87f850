"""Throughput and quality benchmark of the JAX wide-and-deep job (prints ratios; no asserts).

    python -m benchmarks.jax_bench                      # CPU: everything below
    python -m benchmarks.jax_bench --quick              # < 3 minutes
    python -m benchmarks.jax_bench --platform gpu --quick   # on a GPU machine (no Ray needed)
    python -m benchmarks.jax_bench --sections processes --quick   # 1 vs 2 vs 4 processes

Sections (each in a fresh process, since JAX's device count is fixed per process):
  compare   this job's Trainer on 1 device vs a plain jax.jit + optax loop of the same
            model, loss and batch size written directly; rounds alternate, medians count
  devices   Trainer examples/s with 1, 2, 4 (fake) CPU devices in one process
  processes Trainer examples/s with 1, 2 and 4 processes x 1 device each (jax.distributed
            over gloo on CPU; on GPU one GPU per process, counts above the GPUs skipped),
            the same global batch, all counts run one after another in each of --repeats
            passes; medians over passes and their ratios to 1 process (--weak: the batch
            per process fixed instead, global batch = --batch-size x processes), the CPU
            time per example of all processes, and with --breakdown each rank's
            synchronous step in parts: host input, dispatch, compute, all-reduce
  quality   eval AUC / logloss after training with early stopping, beside the XGBoost
            job's metrics.json on the same features when one is found
Features: --features, else out/features (the feature job's flights output) when present,
else synthetic data of the flights shape (said so in the output).
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FLIGHTS_LIKE = dict(n_numeric=10, cardinalities=(10, 24, 8, 17, 4, 105, 35, 13, 8, 1000, 1024,
                                                 512, 1024, 4096))


def bench_config(args, **changes):
    from ray_jobs.jax.config import from_dict
    raw = dict(batch_size=args.batch_size, eval_batch_size=8192, patience=2,
               epochs=args.quality_epochs, platform=args.platform,
               inflight_steps=args.inflight, xla_cpu_threads=args.threads,
               fuse_gradients=not args.no_fuse)  # the rest: JaxConfig's defaults
    if args.steps_per_dispatch is not None:
        raw["steps_per_dispatch"] = args.steps_per_dispatch
    return from_dict({**raw, **changes})


# --- children ------------------------------------------------------------------------------
def _time_trainer(trainer, steps: int) -> float:
    done, t0 = 0, time.perf_counter()
    while done < steps:
        done += len(trainer.train_steps(steps - done)["metrics"]["loss"])
    return steps * trainer.config.batch_size / (time.perf_counter() - t0)


def _warm_up(trainer, steps: int) -> None:
    """Compiles and warms caches: at least ``steps`` steps and past an epoch's end, so
    the one-step program of an epoch's remainder (steps_per_dispatch) is compiled too."""
    _time_trainer(trainer, max(steps, trainer.train.steps_per_epoch + 1))


def _plain_loop(cfg, fs, rows):
    """The same model and loss, trained the way one writes it by hand on one device."""
    import jax
    import numpy as np
    import optax
    from ray_jobs.jax import model

    opt = optax.adam(cfg.learning_rate)
    params = model.init_params(cfg, fs, jax.random.key(cfg.seed))
    state = {"params": params, "opt": opt.init(params)}

    def step(state, batch):
        (loss, _), grads = jax.value_and_grad(model.loss, has_aux=True)(
            state["params"], batch, task=fs.task, l2_wide=cfg.l2_wide, l2_deep=cfg.l2_deep)
        updates, opt_state = opt.update(grads, state["opt"], state["params"])
        return {"params": optax.apply_updates(state["params"], updates), "opt": opt_state}, loss
    step = jax.jit(step, donate_argnums=0)
    b, n_steps = cfg.batch_size, len(rows) // cfg.batch_size
    names = [f.name for f in fs.categorical]

    def take(idx):  # per-feature arrays, the model's own batch layout
        return {"numeric": rows.numeric[idx], "label": rows.label[idx],
                "categorical": {n: np.ascontiguousarray(rows.ids[idx, i])
                                for i, n in enumerate(names)}}
    epoch = {"i": 0, "pos": n_steps, "arrays": None}

    def run(steps: int) -> float:
        nonlocal state
        t0, losses = time.perf_counter(), []
        for _ in range(steps):
            if epoch["pos"] == n_steps:  # reshuffle each epoch, as the trainer does
                perm = np.random.default_rng(epoch["i"]).permutation(len(rows))[: n_steps * b]
                epoch.update(arrays=take(perm.reshape(n_steps, b)), pos=0,
                             i=epoch["i"] + 1)
            host = jax.tree.map(lambda a: a[epoch["pos"]], epoch["arrays"])
            state, loss = step(state, jax.device_put(host))
            losses.append(loss)
            epoch["pos"] += 1
        jax.block_until_ready(losses)
        return steps * b / (time.perf_counter() - t0)
    return run


def child_compare(args) -> dict:
    from ray_jobs.jax import data
    from ray_jobs.jax.worker import Trainer

    cfg = bench_config(args, devices_per_worker=1 if args.platform in (None, "cpu") else None)
    trainer = Trainer(cfg, args.features)
    rows = data.read_rows(trainer.fs, "train", 0, trainer.fs.num_rows("train"))
    plain = _plain_loop(cfg, trainer.fs, rows)
    _warm_up(trainer, args.warmup)  # compile + warm caches
    plain(args.warmup)
    rounds = {"trainer": [], "plain": []}
    for _ in range(args.rounds):
        rounds["trainer"].append(_time_trainer(trainer, args.steps))
        rounds["plain"].append(plain(args.steps))
    import jax
    return {"backend": jax.default_backend(), "device": str(jax.devices()[0].device_kind),
            "rounds": rounds}


def child_devices(args) -> dict:
    from ray_jobs.jax.worker import Trainer
    trainer = Trainer(bench_config(args, devices_per_worker=args.devices), args.features)
    _warm_up(trainer, args.warmup)
    return {"devices": args.devices,
            "examples_per_s": [_time_trainer(trainer, args.steps) for _ in range(args.rounds)]}


def child_process(args) -> dict:
    if args.pin:  # before JAX starts: its threads inherit this thread's CPU set
        pin_to_core(args.rank)
    from ray_jobs.jax.worker import Trainer
    n = args.nproc
    cfg = bench_config(args, devices_per_worker=1, num_workers=n, data_shards=n,
                       batch_size=args.batch_size * (n if args.weak else 1))
    trainer = Trainer(cfg, args.features, process_id=args.rank, num_processes=n,
                      coordinator=args.coordinator)
    _warm_up(trainer, args.warmup)
    cpu0 = _cpu_seconds()
    out = {"examples_per_s": [_time_trainer(trainer, args.steps) for _ in range(args.rounds)]}
    # CPU time (all threads, user + system) per example this process spent: unlike wall
    # time, barely moved by other jobs on the machine; what spinning threads cost shows
    examples = args.rounds * args.steps * cfg.batch_size
    out["cpu_us_per_example"] = (_cpu_seconds() - cpu0) / examples * 1e6
    if args.breakdown:
        out["breakdown_ms"] = _step_breakdown(trainer, args.steps)
    trainer.close()
    return out


def pin_to_core(rank: int) -> None:
    cores = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cores[rank % len(cores)]})


def _allreduce_seconds(trainer, steps: int) -> float:
    """Seconds per all-reduce of one vector the size of the step's fused one (gradients +
    loss terms), alone: a shard_map pmean over the trainer's mesh, synchronous."""
    import jax
    from jax.flatten_util import ravel_pytree
    from jax.sharding import NamedSharding, PartitionSpec as P
    mesh = trainer.mesh
    size = ravel_pytree(trainer.state.params)[0].size + 8
    reduce = jax.jit(jax.shard_map(lambda v: jax.lax.pmean(v, "data"), mesh=mesh,
                                   in_specs=P("data"), out_specs=P()))
    vec = jax.make_array_from_callback((size * mesh.size,), NamedSharding(mesh, P("data")),
                                       lambda idx: np.ones((size,), np.float32))
    jax.block_until_ready(reduce(vec))
    t0 = time.perf_counter()
    for _ in range(steps):
        jax.block_until_ready(reduce(vec))
    return (time.perf_counter() - t0) / steps


def _step_breakdown(trainer, steps: int) -> dict:
    """Median milliseconds per synchronous step: host input (slice this process's rows and
    make the global batch, transfer done), dispatch (train_step returns), and the wait
    for its result (compute + all-reduce); all-reduce alone measured apart."""
    import jax
    from ray_jobs.jax import data
    t = trainer
    arrays = t.train.epoch(t.epoch)
    parts = {"host_input": [], "dispatch": [], "wait": []}
    for i in range(steps):
        t0 = time.perf_counter()
        row = i % t.train.steps_per_epoch
        batch = data.to_global({k: a[row] for k, a in arrays.items()}, t.train_sh,
                               t.config.batch_size)
        jax.block_until_ready(batch)
        t1 = time.perf_counter()
        t.state, m = t.train_step(t.state, batch)
        t2 = time.perf_counter()
        jax.block_until_ready((t.state, m))
        t3 = time.perf_counter()
        for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2)):
            parts[k].append(v * 1e3)
    out = {k: median(v) for k, v in parts.items()}
    out["all_reduce"] = _allreduce_seconds(trainer, steps) * 1e3
    out["compute"] = max(out["wait"] - out["all_reduce"], 0.0)
    out["sync_step"] = out["host_input"] + out["dispatch"] + out["wait"]
    return out


def _cpu_seconds() -> float:
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child_quality(args) -> dict:
    from ray_jobs.jax import loop
    from ray_jobs.jax.config import JaxConfig
    from ray_jobs.jax.worker import LocalGroup, Trainer

    class Quiet:  # no files: the benchmark only wants the summary
        def __getattr__(self, name):
            return lambda *a, **k: None
    cfg = bench_config(args, devices_per_worker=1 if args.platform in (None, "cpu") else None,
                       learning_rate=args.learning_rate or JaxConfig().learning_rate)
    t0 = time.perf_counter()
    summary = loop.fit(LocalGroup(Trainer(cfg, args.features)), cfg, Quiet())
    return {"best_epoch": summary["best_epoch"], "epochs_run": summary["epochs_run"],
            "seconds": time.perf_counter() - t0,
            **{k: v for k, v in summary["best"].items() if k.startswith("eval_")}}


CHILDREN = {"compare": child_compare, "devices": child_devices, "process": child_process,
            "quality": child_quality}


# --- parent --------------------------------------------------------------------------------
def spawn(args, child: str, *extra: str, env: dict | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "benchmarks.jax_bench", "--child", child, "--features",
           args.features, "--batch-size", str(args.batch_size), "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--rounds", str(args.rounds),
           "--quality-epochs", str(args.quality_epochs), "--inflight", str(args.inflight),
           *extra]
    if args.learning_rate:
        cmd += ["--learning-rate", str(args.learning_rate)]
    if args.platform:
        cmd += ["--platform", args.platform]
    cmd += ["--weak"] * args.weak + ["--no-fuse"] * args.no_fuse
    cmd += ["--breakdown"] * args.breakdown
    if args.steps_per_dispatch is not None:
        cmd += ["--steps-per-dispatch", str(args.steps_per_dispatch)]
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)


def result(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    if proc.returncode:
        raise RuntimeError(f"benchmark child failed ({proc.returncode}): {proc.args}")
    return json.loads(out.strip().splitlines()[-1])


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def resolve_features(args) -> str:
    if args.features:
        return args.features
    if (REPO / "out/features/artifact.json").is_file():  # make demo-features output
        print("features: out/features (flights, feature job output)")
        return str(REPO / "out/features")
    from ray_jobs.common.synthetic import write_synthetic_features
    root = Path("/tmp/jax_bench_synthetic_flights_shape")
    n = 60_000 if args.quick else 262_000
    if not (root / "feature_manifest.json").is_file():
        write_synthetic_features(root, n_train=n, n_eval=n // 4, shards=1, **FLIGHTS_LIKE)
    print(f"features: SYNTHETIC, flights-shaped ({n} train rows): out/features not found")
    return str(root)


def gpu_count() -> int:
    """GPUs on this machine, without starting JAX here (it would claim their memory)."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30,
                             check=False)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


def run_processes(args, n: int) -> dict:
    """One n-process run: examples/s (median of its rounds, rank 0's clock) and, with
    --breakdown, every rank's per-step breakdown."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        coord = f"127.0.0.1:{s.getsockname()[1]}"
    gpu = args.platform == "gpu"
    from ray_jobs.jax.driver import worker_env  # what the job's driver gives Ray workers
    cores = len(os.sched_getaffinity(0))
    pin = args.pin and n >= cores  # one core and one XLA thread per process
    cfg = bench_config(args, num_workers=n, data_shards=n, **({"xla_cpu_threads": 1} if pin else {}))
    env = worker_env(cfg) if n > 1 else {}
    pin_flag = ["--pin"] if pin else []
    procs = [spawn(args, "process", "--rank", str(i), "--nproc", str(n), "--coordinator", coord,
                   *pin_flag,
                   env={**env, **({"CUDA_VISIBLE_DEVICES": str(i)} if gpu else {})})
             for i in range(n)]
    results = [result(x) for x in procs]  # every rank must finish
    return {"examples_per_s": median(results[0]["examples_per_s"]),
            "cpu_us_per_example": sum(r["cpu_us_per_example"] for r in results),
            "breakdown_ms": [r.get("breakdown_ms") for r in results]}


def section_processes(args) -> dict:
    counts = [int(c) for c in args.counts.split(",")]
    if args.platform == "gpu":
        gpus = gpu_count()
        skipped = [n for n in counts if n > max(gpus, 1)]
        counts = [n for n in counts if n not in skipped]
        if skipped:
            print(f"[processes] {gpus} GPU(s): skipping {skipped} processes (one GPU each)")
    runs, load_start = {n: [] for n in counts}, os.getloadavg()
    breakdowns: dict[int, list] = {n: [] for n in counts}
    cpu: dict[int, list] = {n: [] for n in counts}
    for _ in range(args.repeats):
        for n in counts:
            r = run_processes(args, n)
            runs[n].append(r["examples_per_s"])
            breakdowns[n].append(r["breakdown_ms"])
            cpu[n].append(r["cpu_us_per_example"])
    med = {n: median(v) for n, v in runs.items()}
    cpu_med = {n: median(v) for n, v in cpu.items()}
    out = {"weak_scaling": args.weak, "fuse_gradients": not args.no_fuse, "counts": counts,
           "batch_size": args.batch_size, "xla_cpu_threads": args.threads,
           "steps_per_dispatch": args.steps_per_dispatch,
           "runs": {str(n): v for n, v in runs.items()},
           "cpu_us_per_example": {str(n): v for n, v in cpu_med.items()},
           "cpu_us_per_example_runs": {str(n): v for n, v in cpu.items()},
           "cpu_over_1_process": {str(n): cpu_med[n] / cpu_med[1] for n in counts},
           "examples_per_s": {str(n): v for n, v in med.items()},
           "over_1_process": {str(n): med[n] / med[1] for n in counts},
           "loadavg_start": load_start, "loadavg_end": os.getloadavg()}
    if args.breakdown:
        out["breakdown_ms"] = {str(n): rank0_medians(v) for n, v in breakdowns.items()}
        out["breakdown_ms_all_ranks"] = {str(n): v for n, v in breakdowns.items()}
    for n in counts:
        print(f"[processes] {n} process(es) x 1 device, global batch "
              f"{args.batch_size * (n if args.weak else 1)}: {med[n]:,.0f} ex/s "
              f"(x{med[n] / med[1]:.2f} of 1 process; passes {[round(x) for x in runs[n]]}); "
              f"CPU {cpu_med[n]:.2f} us/example, all processes (x{cpu_med[n] / cpu_med[1]:.2f})")
        if args.breakdown:
            b = out["breakdown_ms"][str(n)]
            print("[processes]   per step, ms (rank 0, synchronous, medians): "
                  + ", ".join(f"{k} {b[k]:.2f}" for k in BREAKDOWN_KEYS))
    return out


BREAKDOWN_KEYS = ("host_input", "dispatch", "compute", "all_reduce", "sync_step")


def rank0_medians(passes: list[list[dict]]) -> dict:
    """Per breakdown part, the median over passes of rank 0's value."""
    return {k: median([p[0][k] for p in passes]) for k in BREAKDOWN_KEYS}


def find_xgboost_metrics(args) -> Path | None:
    cands = [Path(args.xgboost_metrics)] if args.xgboost_metrics else sorted(
        (REPO / "out").glob("*xgb*/metrics.json")) + sorted((REPO / "out").glob("xgboost*/*.json"))
    return next((p for p in cands if p.is_file()), None)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--features")
    p.add_argument("--platform", choices=("cpu", "gpu", "tpu"))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--batch-size", type=int, default=None,
                   help="global batch (default: the job's, JaxConfig.batch_size)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per round")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--quality-epochs", type=int, default=None)
    p.add_argument("--sections", default=None, help="comma list of compare,devices,"
                                                    "processes,quality")
    p.add_argument("--xgboost-metrics", default=None)
    p.add_argument("--inflight", type=int, default=2, help="trainer's inflight_steps")
    p.add_argument("--repeats", type=int, default=3, help="passes of the processes section")
    p.add_argument("--weak", action="store_true",
                   help="processes: --batch-size per process instead of global")
    p.add_argument("--counts", default="1,2,4", help="processes: process counts (1 first)")
    p.add_argument("--no-fuse", action="store_true",
                   help="fuse_gradients false: XLA's per-leaf gradient all-reduce")
    p.add_argument("--breakdown", action="store_true",
                   help="processes: also time synchronous steps part by part (host input, "
                        "dispatch, compute, all-reduce)")
    p.add_argument("--threads", type=int, default=None,
                   help="processes: the job's xla_cpu_threads for runs of several processes "
                        "(default: XLA's own pool in every process)")
    p.add_argument("--steps-per-dispatch", type=int, default=None,
                   help="the job's steps_per_dispatch (default: the job's)")
    p.add_argument("--learning-rate", type=float, default=None,
                   help="quality: the learning rate (default: the job's)")
    p.add_argument("--pin", action="store_true",
                   help="processes: with as many processes as cores or more, pin rank r to "
                        "core r mod cores (sched_setaffinity) and give it one XLA thread")
    p.add_argument("--json", default=str(REPO / "bench_out" / "jax_bench.json"),
                   help="the results as JSON")
    p.add_argument("--child", choices=tuple(CHILDREN), help=argparse.SUPPRESS)
    p.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--rank", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--coordinator", default=None, help=argparse.SUPPRESS)
    p.add_argument("--nproc", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.batch_size is None:
        from ray_jobs.jax.config import JaxConfig
        args.batch_size = JaxConfig().batch_size
    if args.steps_per_dispatch is None:
        from ray_jobs.jax.config import JaxConfig
        args.steps_per_dispatch = JaxConfig().steps_per_dispatch
    args.steps = args.steps or (150 if args.quick else 400)
    args.warmup = args.warmup or (20 if args.quick else 50)
    args.rounds = args.rounds or 3
    args.quality_epochs = args.quality_epochs or (3 if args.quick else 10)
    if args.child:
        import logging
        logging.disable(logging.WARNING)
        print(json.dumps(CHILDREN[args.child](args)))
        return
    args.features = resolve_features(args)
    gpu = args.platform in ("gpu", "tpu")
    sections = (args.sections.split(",") if args.sections else
                ["compare", "processes", "quality"] if gpu else
                ["compare", "devices", "processes", "quality"])
    report = {"features": args.features, "batch_size": args.batch_size, "steps": args.steps,
              "rounds": args.rounds}
    if "compare" in sections:
        r = result(spawn(args, "compare"))
        t, pl = median(r["rounds"]["trainer"]), median(r["rounds"]["plain"])
        report["compare"] = {**r, "trainer_median": t, "plain_median": pl,
                             "plain_over_trainer": pl / t}
        print(f"[compare] {r['backend']} ({r['device']}), batch {args.batch_size}: trainer "
              f"{t:,.0f} ex/s, plain jit+optax loop {pl:,.0f} ex/s -> plain/trainer "
              f"{pl / t:.3f} (target <= 1.1); rounds {r['rounds']}")
    if "devices" in sections:
        report["devices"] = {}
        for d in (1, 2, 4):
            r = result(spawn(args, "devices", "--devices", str(d)))
            report["devices"][d] = median(r["examples_per_s"])
            print(f"[devices] {d} CPU device(s), 1 process: {report['devices'][d]:,.0f} ex/s")
    if "processes" in sections:
        report["processes"] = section_processes(args)
    if "quality" in sections:
        r = result(spawn(args, "quality"))
        report["quality"] = r
        line = (f"[quality] JAX wide&deep: eval AUC {r.get('eval_auc', float('nan')):.4f} "
                f"logloss {r.get('eval_logloss', float('nan')):.4f} (best epoch "
                f"{r['best_epoch']} of {r['epochs_run']}, {r['seconds']:.0f}s)")
        xgb = find_xgboost_metrics(args)
        if xgb is not None:
            m = json.loads(xgb.read_text())
            flat = {**m, **{f"eval_{k}": v for k, v in (m.get("eval") or {}).items()}}
            report["xgboost"] = {"path": str(xgb), **{k: v for k, v in flat.items()
                                                      if isinstance(v, (int, float))}}
            shown = {k: v for k, v in report["xgboost"].items() if "auc" in k or "logloss" in k}
            line += f"; XGBoost ({xgb}): {shown}"
        else:
            line += "; XGBoost metrics not found (pass --xgboost-metrics)"
        print(line)
    report["loadavg_end"] = os.getloadavg()
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
        print(f"results: {args.json}")


if __name__ == "__main__":
    main()
