"""What read-side verification costs: ``read_manifest`` of a committed artifact with its
files re-hashed, repeated (stat-memoized), and ``artifact.json`` alone; locally and on a
local Cloud Storage emulator (prints milliseconds, min of repeats; no asserts).

    python -m benchmarks.verify_bench out/run/features
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import timeit

from mlbatch import storage
from mlbatch.artifacts import manifest

_EMULATOR = """
import sys
from gcp_storage_emulator.server import create_server
server = create_server("127.0.0.1", int(sys.argv[1]), in_memory=True, default_bucket="bench")
server.start()
print("ready", flush=True)
sys.stdin.read()
server.stop()
"""


def _manifest_only(root: str) -> dict:
    return json.loads(storage.read_text(storage.join(root, manifest.MANIFEST)))


def _best_ms(fn, repeat: int) -> float:
    return 1000 * min(timeit.repeat(fn, number=1, repeat=repeat))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("artifact", help="a committed local artifact directory")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    root = os.path.abspath(args.artifact)
    files = manifest.read_manifest(root).files
    out = {"files": len(files), "bytes": sum(f["size"] for f in files), "local_verified_ms":
           _best_ms(lambda: (manifest._VERIFIED.clear(), manifest.read_manifest(root)),
                    args.repeat),
           "local_repeated_ms": _best_ms(lambda: manifest.read_manifest(root), args.repeat),
           "local_manifest_only_ms": _best_ms(lambda: _manifest_only(root), args.repeat)}
    port = _free_port()
    emulator = subprocess.Popen([sys.executable, "-c", _EMULATOR, str(port)], text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        if emulator.stdout.readline().strip() != "ready":
            raise SystemExit("the storage emulator did not start")
        os.environ[storage.EMULATOR_ENV] = f"http://127.0.0.1:{port}"
        storage.copy_tree(root, "gs://bench/artifact")
        out["gs_verified_ms"] = _best_ms(lambda: manifest.read_manifest("gs://bench/artifact"),
                                         args.repeat)
        out["gs_manifest_only_ms"] = _best_ms(lambda: _manifest_only("gs://bench/artifact"),
                                              args.repeat)
    finally:
        emulator.stdin.close()
        emulator.wait()
    sys.stdout.write(json.dumps({k: round(v, 2) if isinstance(v, float) else v
                                 for k, v in out.items()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
