"""The three engine ratios of issue #25 side by side, in one go (prints them; no asserts).

    python -m benchmarks.engines [--glove-src PATH] [--repeats 3]   # make bench-engines
    python -m benchmarks.engines --small            # a smoke run: every part, tiny sizes

One command for the quiet re-run: each part reuses its own benchmark (the same contenders,
each in a fresh process, alternated, ``--repeats`` times, medians), one after another:

  cooccurrence  the job (``--processes 2``) vs GloVe's ``vocab_count`` + ``cooccur`` built
                from ``--glove-src`` with ``cc -O3``, whole process vs whole process, on
                each ``--corpus`` (default sotu, ~2M tokens, and sotu_x10, ~20M tokens,
                the issue's size and the headline ratio), and the check that both counted
                the same (benchmarks/cooccurrence_bench.py). Without ``--glove-src`` the
                anchor is not run and the JSON says so.
  jax           2 processes x 1 CPU device vs 1 process, the job's defaults (global batch
                2048, 4 steps per dispatch), with CPU time per example
                (benchmarks/jax_bench.py, processes section, counts 1,2; ``--jax-pin``
                adds the pinned contender).
  xgboost       the job's Ray Train default layout (2 workers x 1 CPU) vs plain
                ``xgboost.train(nthread=2)`` on ``--xgb-rows`` x 30 synthetic features,
                ``--xgb-rounds`` rounds (benchmarks/xgboost_bench.py), by default the
                issue's size, 2M x 30 at 100 rounds (``--xgb-rows 1000000`` for a
                shorter run).

Measured as one run on the quiet 2-core VM (2026-12-06 09:37-09:44, load 1.6-2.6, 3
repeats): co-occurrence 77 s (sotu and sotu x10), JAX 85 s, XGBoost at 2M x 30 260 s:
7 min 2 s in all. The smoke run (``--small``) took 9 min at load average 24-49 on 2 cores.

Writes ``--output`` (default bench_out/engines.json): per part its medians and ratio, the
target it is read against, its wall seconds and the 1-minute load average before and
after; the load before and after the whole run.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARTS = ("cooccurrence", "jax", "xgboost")


def cooccurrence_part(args) -> dict:
    from benchmarks import cooccurrence_bench as cb
    if not args.glove_src:
        return {"skipped": cb.NO_ANCHOR}
    ns = argparse.Namespace(
        corpora=args.corpus, contenders="job_in_memory,glove_c", glove_src=args.glove_src,
        glove_memory=4.0, job_processes=2, scratch=None, repeats=args.repeats, window=10,
        min_count=5, data_dir=str(REPO / "bench_out" / "data"))
    result = cb.bench(ns)
    corpora = {name: _cooccurrence_row(result, name) for name in args.corpus.split(",")}
    last = list(corpora)[-1]  # the headline: the last corpus (sotu_x10, the size)
    return {**corpora[last], "corpora": corpora, "glove_build": result["glove"]}


def _cooccurrence_row(result: dict, corpus: str) -> dict:
    table = result["corpora"][corpus]
    return {"corpus": corpus, "tokens": table["job_in_memory"]["tokens"],
            "job_median_wall_s": table["job_in_memory"]["median_wall_s"],
            "glove_median_wall_s": table["glove_c"]["median_wall_s"],
            "job_walls_s": table["job_in_memory"]["walls_s"],
            "glove_walls_s": table["glove_c"]["walls_s"],
            "ratio": table["job_speed_vs_glove"], "ratio_means": "GloVe wall / job wall",
            "target": ">= 1.0", "job_cpu_vs_glove": table["job_cpu_vs_glove"],
            "counts_check": result.get("check_job_equals_glove", {}).get(corpus)}


def jax_part(args) -> dict:
    from benchmarks import jax_bench
    with tempfile.TemporaryDirectory(prefix="engines_jax_") as tmp:
        out = Path(tmp) / "jax.json"
        argv = ["--sections", "processes", "--quick", "--counts", "1,2", "--repeats",
                str(args.repeats), "--json", str(out)]
        if args.small:
            argv += ["--steps", "20", "--warmup", "5", "--rounds", "1"]
        jax_bench.main(argv + (["--pin"] if args.jax_pin else []))
        section = json.loads(out.read_text())["processes"]
    return {"batch_size": section["batch_size"], "pinned": args.jax_pin,
            "steps_per_dispatch": section.get("steps_per_dispatch"),
            "examples_per_s": section["examples_per_s"], "runs": section["runs"],
            "cpu_us_per_example": section["cpu_us_per_example"],
            "ratio": round(section["over_1_process"]["2"], 3),
            "ratio_means": "2 processes' examples/s / 1 process's",
            "cpu_ratio": round(section["cpu_over_1_process"]["2"], 3), "target": ">= 0.8"}


def xgboost_part(args) -> dict:
    from benchmarks import xgboost_bench as xb
    from ray_jobs.common.cluster import prefer_loopback
    prefer_loopback()
    rows = args.xgb_rows
    features = xb.synthetic(REPO / "bench_out" / "xgb_synthetic" / str(rows), rows)
    result = xb.measure(features, args.xgb_rounds, args.repeats, ("plain", "ray_2x1"))
    return {"rows": rows, "features": 30, "rounds": args.xgb_rounds,
            "plain_wall_s": result["wall_s_all"]["plain"],
            "ray_2x1_wall_s": result["wall_s_all"]["ray_2x1"],
            "ratio": result["ray_2x1_vs_plain_wall"],
            "ratio_means": "Ray Train default layout wall / plain xgboost.train wall",
            "train_ratio": result["ray_2x1_vs_plain_train"],
            "eval_auc_diff": result.get("ray_2x1_eval_auc_diff"), "target": "<= 1.1"}


RUNNERS = {"cooccurrence": cooccurrence_part, "jax": jax_part, "xgboost": xgboost_part}


def run_parts(args) -> dict:
    doc: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                 "loadavg_start": os.getloadavg(), "parts": {}}
    for part in args.parts.split(","):
        load, t0 = os.getloadavg(), time.perf_counter()
        result = RUNNERS[part](args)
        result.update(wall_s=round(time.perf_counter() - t0, 1), loadavg_before=load,
                      loadavg_after=os.getloadavg())
        doc["parts"][part] = result
        _write(args.output, doc)  # what is done so far survives a later failure
    doc["loadavg_end"] = os.getloadavg()
    return doc


def _write(path: str, doc: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=1))


def summary_lines(doc: dict) -> list[str]:
    lines = []
    for part, r in doc["parts"].items():
        if "skipped" in r:
            lines.append(f"{part:>12}: {r['skipped']}")
            continue
        lines.append(f"{part:>12}: {r['ratio']} ({r['ratio_means']}; target {r['target']}), "
                     f"{r['wall_s']} s, load {r['loadavg_before'][0]:.1f} -> "
                     f"{r['loadavg_after'][0]:.1f}")
        for corpus, row in r.get("corpora", {}).items():
            lines.append(f"{'':>12}  {corpus}: {row['ratio']} (job {row['job_median_wall_s']} s, "
                         f"GloVe {row['glove_median_wall_s']} s)")
    return lines


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--glove-src", help="a GloVe checkout (github.com/stanfordnlp/GloVe)")
    p.add_argument("--corpus", default="sotu,sotu_x10",
                   help="co-occurrence corpora, comma-separated: sotu or sotu_x<N> (default "
                        "sotu,sotu_x10; the last is the headline ratio)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--xgb-rows", type=int, default=2_000_000)
    p.add_argument("--xgb-rounds", type=int, default=100)
    p.add_argument("--jax-pin", action="store_true",
                   help="JAX: pin each process to its own core with one XLA thread")
    p.add_argument("--parts", default=",".join(PARTS))
    p.add_argument("--small", action="store_true",
                   help="smoke run: 1 repeat, 100k XGBoost rows x 10 rounds, short JAX rounds")
    p.add_argument("--output", default=str(REPO / "bench_out" / "engines.json"))
    args = p.parse_args(argv)
    unknown = set(args.parts.split(",")) - set(PARTS)
    if unknown:
        p.error(f"--parts: unknown {sorted(unknown)}; choose from {', '.join(PARTS)}")
    if args.small:
        args.repeats, args.xgb_rows, args.xgb_rounds = 1, 100_000, 10
    doc = run_parts(args)
    doc["settings"] = {k: v for k, v in vars(args).items() if k != "output"}
    _write(args.output, doc)
    for line in summary_lines(doc):
        print(line)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
