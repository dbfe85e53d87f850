"""Co-occurrence benchmark: this Beam job vs a single-process numpy counter vs gensim.

python -m benchmarks.cooccurrence_bench [--corpora sotu,sotu_x10,sotu_x100] [--repeats 3] \
    [--window 10] [--output bench_out/cooccurrence_bench.json]

Side by side in one run, on the sotu speeches (about 2M tokens) and on sotu repeated 10
times (about 20M tokens; any ``sotu_x<N>`` is N copies), each contender in its own fresh
process (whole-process time, Python start and imports included), ``--repeats`` times;
medians are reported:

  job_in_memory   python -m beam_jobs.cooccurrence (in-process FnApiRunner, 1 worker)
  job_multi_2     the same with --direct_num_workers=2 --direct_running_mode=multi_processing
  numpy_single    one process, no Beam: read, tokenize, count the vocabulary, count pairs
                  with the job's vectorized PairCounter, write the triplets to Parquet
  gensim_w2v_1ep  gensim Word2Vec (skip-gram, negative 5, 300 dims, same window and
                  min-count, 2 worker threads, 1 epoch) on the same tokens and lines

Reported: wall seconds, CPU seconds (user + sys of the process tree), tokens/s (corpus
tokens / wall seconds), peak resident memory of the whole process tree (sampled every
50 ms from /proc), ratios to the job, and a check that the job and the numpy counter
found the same nnz and total mass. Timing is machine-dependent: quote the JSON's medians
with its `machine` block.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")
CONTENDERS = ("job_in_memory", "job_multi_2", "numpy_single", "gensim_w2v_1ep")


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            pass
        stack.extend(children.get(pid, []))
    return total


def measure(cmd: list[str]) -> dict:
    """Runs ``cmd``; wall and CPU seconds, peak tree RSS; raises on failure."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak[0] / 2**20, "stdout": out}


def corpus_repeat(name: str) -> int:
    """How many copies of sotu a corpus name means: ``sotu`` 1, ``sotu_x<N>`` N."""
    match = re.fullmatch(r"sotu(?:_x([1-9][0-9]*))?", name)
    if match is None:
        raise ValueError(f"corpus {name!r}: expected sotu or sotu_x<N> (e.g. sotu_x100)")
    return int(match.group(1) or 1)


def ensure_corpus(data_dir: Path, name: str) -> Path:
    repeat = corpus_repeat(name)
    target = data_dir / name
    if not target.exists():
        subprocess.run([sys.executable, "-m", "scripts.export_sotu", "--output", str(target),
                        "--repeat", str(repeat)], cwd=REPO, check=True)
    return target


def contender_cmd(name: str, corpus: Path, out: Path, window: int, min_count: int) -> list[str]:
    glob = str(corpus / "*.txt")
    job = [sys.executable, "-m", "beam_jobs.cooccurrence", "--input", glob, "--output",
           str(out), "--window", str(window), "--min-count", str(min_count), "--overwrite"]
    if name == "job_in_memory":
        return job
    if name == "job_multi_2":
        return job + ["--direct_num_workers=2", "--direct_running_mode=multi_processing",
                      "--allow_open_worker_ports"]
    return [sys.executable, "-m", "benchmarks.cooccurrence_bench", "--child", name,
            "--child-input", glob, "--child-output", str(out), "--window", str(window),
            "--min-count", str(min_count)]


def _corpus_lines(pattern: str):
    import glob
    for path in sorted(glob.glob(pattern)):
        with open(path, encoding="utf-8") as f:
            yield f.read()


def child_numpy(pattern: str, output: Path, window: int, min_count: int) -> dict:
    """The single-process contender: the same semantics, no Beam."""
    from collections import Counter

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from beam_jobs.cooccurrence.counting import PairCounter, Tokenizer, id_lookup, order_vocabulary

    tokenizer = Tokenizer()
    counts: Counter = Counter()
    for text in _corpus_lines(pattern):
        counts.update(tokenizer.tokens(text))
    vocab = [t for t, _ in order_vocabulary(counts.items(), min_count)]
    lookup = id_lookup(vocab)
    counter = PairCounter(len(vocab), window)
    texts, size = [], 0
    for text in _corpus_lines(pattern):
        texts.append(text)
        size += len(text)
        if size >= 1 << 22:
            counter.add(tokenizer.ids("\n".join(texts), lookup))
            texts, size = [], 0
    counter.add(tokenizer.ids("\n".join(texts), lookup))
    matrix = counter.flush()
    output.mkdir(parents=True, exist_ok=True)
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int32), np.diff(matrix.indptr))
    pq.write_table(pa.table({"row": rows, "col": matrix.indices.astype(np.int32),
                             "value": matrix.data}), output / "cooccurrence.parquet")
    return {"tokens": sum(counts.values()), "vocab_size": len(vocab), "nnz": int(matrix.nnz),
            "total_mass": float(matrix.sum())}


def child_gensim(pattern: str, window: int, min_count: int) -> dict:
    from gensim.models import Word2Vec

    from beam_jobs.cooccurrence.counting import Tokenizer

    tokenizer = Tokenizer()
    sentences = [line for text in _corpus_lines(pattern)
                 for line in tokenizer.token_lines(text) if line]
    start = time.perf_counter()
    model = Word2Vec(sentences, vector_size=300, window=window, min_count=min_count, sg=1,
                     negative=5, workers=2, epochs=1, seed=1)
    return {"tokens": sum(map(len, sentences)), "vocab_size": len(model.wv),
            "train_s": time.perf_counter() - start}


def bench(args) -> dict:
    data_dir = Path(args.data_dir)
    results: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                 "python": platform.python_version(),
                                 "loadavg_start": os.getloadavg()},
                     "settings": {"window": args.window, "min_count": args.min_count,
                                  "repeats": args.repeats}, "corpora": {}}
    for corpus_name in args.corpora.split(","):
        corpus = ensure_corpus(data_dir, corpus_name)
        runs: dict[str, list[dict]] = {c: [] for c in args.contenders.split(",")}
        with tempfile.TemporaryDirectory(prefix="cooc_bench_") as tmp:
            for rep in range(args.repeats):
                for name in runs:  # interleaved, so that load drifts hit all alike
                    out = Path(tmp) / name
                    run = measure(contender_cmd(name, corpus, out, args.window,
                                                args.min_count))
                    run["result"] = (_job_result(out) if name.startswith("job")
                                     else json.loads(run["stdout"].strip().splitlines()[-1]))
                    del run["stdout"]
                    runs[name].append(run)
                    print(f"{corpus_name} rep {rep} {name}: {run['wall_s']:.1f}s wall "
                          f"{run['cpu_s']:.1f}s cpu {run['peak_rss_mb']:.0f} MB", flush=True)
                    shutil.rmtree(out, ignore_errors=True)
        results["corpora"][corpus_name] = summarize(runs)
    results["machine"]["loadavg_end"] = os.getloadavg()
    return results


def _job_result(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    return {k: summary[k] for k in ("tokens", "vocab_size", "nnz", "total_mass")}


def summarize(runs: dict[str, list[dict]]) -> dict:
    table = {}
    for name, reps in runs.items():
        tokens = reps[0]["result"]["tokens"]
        wall = statistics.median(r["wall_s"] for r in reps)
        table[name] = {"tokens": tokens, "median_wall_s": round(wall, 2),
                       "median_cpu_s": round(statistics.median(r["cpu_s"] for r in reps), 2),
                       "tokens_per_s": round(tokens / wall),
                       "peak_rss_mb": round(max(r["peak_rss_mb"] for r in reps)),
                       "walls_s": [round(r["wall_s"], 2) for r in reps],
                       "result": reps[0]["result"]}
    base = table.get("job_in_memory")
    for row in table.values():
        if base:
            row["speed_vs_job_in_memory"] = round(row["tokens_per_s"] / base["tokens_per_s"], 2)
    if "job_in_memory" in table and "numpy_single" in table:
        job, ref = table["job_in_memory"]["result"], table["numpy_single"]["result"]
        table["check_job_equals_numpy"] = {
            "nnz_equal": job["nnz"] == ref["nnz"],
            "total_mass_rel_diff": abs(job["total_mass"] - ref["total_mass"])
            / ref["total_mass"]}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", default="sotu,sotu_x10")
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--data-dir", default="bench_out/data")
    parser.add_argument("--output", default="bench_out/cooccurrence_bench.json")
    parser.add_argument("--child", choices=("numpy_single", "gensim_w2v_1ep"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--child-input", help=argparse.SUPPRESS)
    parser.add_argument("--child-output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "numpy_single":
        print(json.dumps(child_numpy(args.child_input, Path(args.child_output), args.window,
                                     args.min_count)))
        return
    if args.child == "gensim_w2v_1ep":
        print(json.dumps(child_gensim(args.child_input, args.window, args.min_count)))
        return
    results = bench(args)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=1))
    print(json.dumps({c: {k: {m: v[m] for m in ("median_wall_s", "tokens_per_s",
                                                  "peak_rss_mb") if m in v}
                          for k, v in t.items() if "median_wall_s" in v}
                      for c, t in results["corpora"].items()}, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
