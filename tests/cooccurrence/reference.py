"""An independent, deliberately plain Python co-occurrence counter (GloVe's semantics).

One loop per token and per distance, a dict of floats: slow, and obviously right. It
shares no code with the job (not even the token pattern) so that the tests compare two
implementations.
"""
from __future__ import annotations

import re
from collections import Counter, defaultdict

TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize_lines(text: str) -> list[list[str]]:
    return [TOKEN.findall(line.lower()) for line in text.split("\n")]


def vocabulary(lines: list[list[str]], min_count: int) -> list[str]:
    counts = Counter(token for line in lines for token in line)
    kept = [token for token, count in counts.items() if count >= min_count]
    return sorted(kept, key=lambda token: (-counts[token], token))


def cooccurrences(lines: list[list[str]], vocab: list[str], window: int, weighting: str,
                  direction: str) -> dict[tuple[int, int], float]:
    """{(row, col): value}: row = the earlier token of a pair, as GloVe stores it."""
    ids = {token: i for i, token in enumerate(vocab)}
    matrix: dict[tuple[int, int], float] = defaultdict(float)
    for line in lines:
        kept = [ids[token] for token in line if token in ids]
        for j in range(len(kept)):
            for d in range(1, window + 1):
                if j - d < 0:
                    break
                weight = 1.0 / d if weighting == "harmonic" else 1.0
                matrix[(kept[j - d], kept[j])] += weight
                if direction == "symmetric":
                    matrix[(kept[j], kept[j - d])] += weight
    return dict(matrix)


def count_text(text: str, min_count: int, window: int, weighting: str = "harmonic",
               direction: str = "symmetric"):
    lines = tokenize_lines(text)
    vocab = vocabulary(lines, min_count)
    return vocab, cooccurrences(lines, vocab, window, weighting, direction)
