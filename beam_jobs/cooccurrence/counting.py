"""Pure numpy/scipy core of the job: tokenizer, vocabulary order, windowed pair counting.

No Beam here; the DoFns in ``transforms.py`` and the single-process benchmark contender
call these functions, and the tests check them against a plain-Python counter.

Semantics (GloVe's ``cooccur``):
  * every line is a context boundary: windows never cross a ``\\n``;
  * tokens outside the vocabulary are dropped *before* windowing, so a window of size W
    spans W in-vocabulary tokens and reaches past removed ones;
  * a pair at distance d (1 <= d <= W) weighs 1/d (``harmonic``) or 1 (``uniform``);
  * the matrix layout is GloVe's: for an earlier token a and a later token b at distance
    d, ``left`` adds X[a, b] (row = the left context, column = the word it precedes), and
    ``symmetric`` adds both X[a, b] and X[b, a] (so X is symmetric and a token paired
    with itself counts twice on the diagonal, as in GloVe).
"""
from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from itertools import repeat

import numpy as np
import scipy.sparse as sp

from beam_jobs.cooccurrence.chunking import SENTINEL, ChunkIds, splits_on_white_space
from mlbatch.errors import UsageError

DEFAULT_TOKEN_PATTERN = r"[a-z0-9]+(?:'[a-z]+)?"
WEIGHTINGS = ("harmonic", "uniform")
DIRECTIONS = ("symmetric", "left")
# Ids the tokenizer gives to line breaks and to tokens outside the vocabulary.
NEWLINE_ID = -2
OOV_ID = -1


class TokenPatternError(ValueError, UsageError):
    """The --token-pattern cannot be used (bad regex, capturing groups, empty matches...)."""


@dataclasses.dataclass(frozen=True)
class Tokenizer:
    """Lowercases (optionally) and takes every match of ``pattern``, as in the issue."""

    pattern: str = DEFAULT_TOKEN_PATTERN
    lowercase: bool = True

    def __post_init__(self) -> None:
        try:
            compiled = re.compile(self.pattern)
        except re.error as err:
            raise TokenPatternError(f"--token-pattern {self.pattern!r} is not a valid "
                                    f"regular expression: {err}") from err
        try:  # the tokenizers wrap the pattern: global flags must stay at its start
            _compiled(f"(?:{self.pattern})|\n")
        except re.error as err:
            raise TokenPatternError(
                f"--token-pattern {self.pattern!r} cannot be used inside (?:...): {err} "
                "(write flags as a scoped group, e.g. (?i:...))") from err
        if compiled.groups:
            raise TokenPatternError(
                f"--token-pattern {self.pattern!r} has capturing groups; use (?:...)")
        if compiled.fullmatch(""):
            raise TokenPatternError(
                f"--token-pattern {self.pattern!r} matches the empty string")
        if compiled.search("a\nb") and "\n" in "".join(compiled.findall("a\nb")):
            raise TokenPatternError(
                f"--token-pattern {self.pattern!r} matches a line break; lines are "
                "context boundaries, so tokens cannot span them")

    @property
    def _regex(self) -> re.Pattern:
        return _compiled(self.pattern)

    @property
    def _regex_with_newlines(self) -> re.Pattern:
        return _compiled(f"(?:{self.pattern})|\n")

    def tokens(self, text: str) -> list[str]:
        """Every token of ``text`` (line breaks ignored)."""
        return self._regex.findall(text.lower() if self.lowercase else text)

    def token_lines(self, text: str) -> list[list[str]]:
        """Tokens of each ``\\n``-separated line of ``text``."""
        return [self.tokens(line) for line in text.split("\n")]

    def ids(self, text: str, lookup: Mapping[str, int]) -> np.ndarray:
        """Token ids of ``text`` with ``NEWLINE_ID`` at line breaks, ``OOV_ID`` elsewhere.

        ``lookup`` must map ``"\\n"`` to ``NEWLINE_ID`` (see ``id_lookup``).
        """
        found = self._regex_with_newlines.findall(text.lower() if self.lowercase else text)
        return np.fromiter(map(lookup.get, found, repeat(OOV_ID)), dtype=np.int32,
                           count=len(found))


class TokenIds:
    """Tokenizes text once into first-seen ids, before the vocabulary is known.

    Id 0 is the line break (``LINE_BREAK``); each new token gets the next id, so
    ``tokens[i]`` is the token of id ``i`` (``tokens[0]`` is ``"\\n"``) and ``counts``
    how often each id was seen. The lookup is a ``defaultdict`` whose factory is its own
    ``__len__``: mapping a batch of matches to ids runs in C, with no Python per token.
    ``remap`` turns these ids into vocabulary ids once the vocabulary is known.
    """

    LINE_BREAK = 0

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._lookup: defaultdict[str, int] = defaultdict()
        self._lookup.default_factory = self._lookup.__len__
        self._lookup["\n"] = self.LINE_BREAK
        self._counts = np.zeros(1, np.int64)
        self._chunks = (ChunkIds(self._lookup, tokenizer._regex_with_newlines,
                                 self.LINE_BREAK)
                        if splits_on_white_space(tokenizer.pattern) else None)

    def ids(self, text: str) -> np.ndarray:
        """First-seen ids (int32) of the tokens of ``text``, 0 at each line break.

        Through ``chunking.ChunkIds`` when the pattern allows it (the same ids), else the
        regex over the whole text.
        """
        tokenizer = self._tokenizer
        text = text.lower() if tokenizer.lowercase else text
        if self._chunks is not None and SENTINEL not in text:
            ids = self._chunks.ids(text)
        else:
            found = tokenizer._regex_with_newlines.findall(text)
            ids = np.fromiter(map(self._lookup.__getitem__, found), dtype=np.int32,
                              count=len(found))
        seen = np.bincount(ids, minlength=len(self._lookup))
        seen[: self._counts.size] += self._counts
        self._counts = seen
        return ids

    @property
    def tokens(self) -> list[str]:
        return list(self._lookup)

    @property
    def counts(self) -> np.ndarray:
        """Occurrences per id (the line-break entry too), int64."""
        return self._counts

    def token_counts(self) -> list[tuple[str, int]]:
        """(token, count) of every token seen (line breaks left out)."""
        return list(zip(self.tokens[1:], self._counts[1:].tolist()))


def remap_ids(tokens: list[str], lookup: Mapping[str, int]) -> np.ndarray:
    """First-seen id -> vocabulary id: ``NEWLINE_ID`` for the line break (id 0),
    ``OOV_ID`` for tokens outside ``lookup``."""
    table = np.fromiter((lookup.get(t, OOV_ID) for t in tokens), dtype=np.int32,
                        count=len(tokens))
    table[TokenIds.LINE_BREAK] = NEWLINE_ID
    return table


_PATTERNS: dict[str, re.Pattern] = {}


def _compiled(pattern: str) -> re.Pattern:
    if pattern not in _PATTERNS:
        _PATTERNS[pattern] = re.compile(pattern)
    return _PATTERNS[pattern]


def order_vocabulary(counts: Iterable[tuple[str, int]], min_count: int
                     ) -> list[tuple[str, int]]:
    """Tokens with count >= min_count, by descending count then token: list index = id."""
    return sorted(((t, c) for t, c in counts if c >= min_count), key=lambda tc: (-tc[1], tc[0]))


def id_lookup(tokens: Iterable[str]) -> dict[str, int]:
    """token -> id for ``Tokenizer.ids``: ids are list positions; ``"\\n"`` is a line break."""
    lookup = {token: i for i, token in enumerate(tokens)}
    lookup["\n"] = NEWLINE_ID
    return lookup


def _bits(n: int) -> int:
    return max(1, int(n - 1).bit_length())


class PairCounter:
    """Accumulates windowed co-occurrences of id streams into a sparse V x V matrix.

    Vectorized per batch: for each distance d the pairs are two shifted views of the id
    array; pairs that straddle a line break are overwritten with a sentinel key. Each key
    packs (left id, right id) into one unsigned integer (32 bits up to a 65,535-token
    vocabulary), so ``np.sort`` groups equal pairs and a run-length pass counts them (no
    Python per pair). ``harmonic`` keeps one key buffer ("lane") per distance, so a
    pair's weight is its count at distance d times 1/d, added over d = 1..W in that
    order; ``uniform`` needs one lane. Keys are buffered until ``buffer_pairs`` of them
    wait (so many small batches cost one sort per lane), then folded into a CSR matrix of
    left-context counts; ``flush`` returns it (plus its transpose for ``symmetric``) and
    starts afresh.
    """

    def __init__(self, vocab_size: int, window: int, weighting: str = "harmonic",
                 direction: str = "symmetric", buffer_pairs: int = 1 << 24) -> None:
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {vocab_size}")
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        self.vocab_size, self.window = vocab_size, window
        self.weighting, self.direction = weighting, direction
        self._cbits = _bits(vocab_size)
        if 2 * self._cbits > 63:
            raise ValueError(f"vocabulary of {vocab_size} does not fit a 64-bit pair key")
        largest = ((vocab_size - 1) << self._cbits) | (vocab_size - 1)
        # 32-bit keys while the largest pair stays below the all-ones line-break sentinel.
        self._dtype = np.uint32 if largest < np.iinfo(np.uint32).max else np.uint64
        self._sentinel = np.iinfo(self._dtype).max
        self._lanes = window if weighting == "harmonic" else 1
        self._buffer_pairs = buffer_pairs
        self._keys = np.empty((self._lanes, 0), self._dtype)  # lane x capacity, reused
        self._fill = np.zeros(self._lanes, np.int64)  # keys in use per lane
        self._acc: sp.csr_matrix | None = None
        self.pair_occurrences = 0  # left-context pairs seen (each counts once)

    @property
    def nnz(self) -> int:
        """Entries of the left-context matrix folded so far (buffered keys not included:
        the buffer is bounded by ``buffer_pairs`` on its own)."""
        return 0 if self._acc is None else self._acc.nnz

    def add(self, ids: np.ndarray) -> None:
        """Counts one batch: ids with ``NEWLINE_ID`` at line breaks and ``OOV_ID`` gaps."""
        ids = np.asarray(ids)
        in_vocab = ids >= 0
        kept = ids[in_vocab]
        n = kept.size
        steps = min(self.window, n - 1)
        if steps < 1:
            return
        need = self._need(n, steps)
        if np.any(self._fill + need > self._keys.shape[1]):
            self._fold_pending()
            if need.max() > self._keys.shape[1]:
                capacity = max(int(need.max()), self._buffer_pairs // self._lanes)
                self._keys = np.empty((self._lanes, capacity), self._dtype)
        # Line starts in kept-token positions: the number of kept tokens before each line
        # break (sorted; repeated for empty lines, which `_write_keys` ignores).
        starts = np.cumsum(in_vocab)[ids == NEWLINE_ID]
        self._write_keys(kept, starts[starts < n])
        if self._fill.sum() >= self._buffer_pairs:
            self._fold_pending()

    def flush(self) -> sp.csr_matrix:
        """The counts so far (canonical CSR, V x V, float64); resets the counter."""
        self._fold_pending()
        shape = (self.vocab_size, self.vocab_size)
        left = self._acc if self._acc is not None else sp.csr_matrix(shape, dtype=np.float64)
        self._acc = None
        if self.direction == "symmetric":
            left = (left + left.T).tocsr()
        left.sum_duplicates()
        left.sort_indices()
        return left

    def _need(self, n: int, steps: int) -> np.ndarray:
        """Keys a batch of ``n`` kept tokens adds to each lane."""
        per_distance = n - np.arange(1, steps + 1)
        if self._lanes == 1:
            return np.array([per_distance.sum()])
        return np.pad(per_distance, (0, self._lanes - steps))

    def _write_keys(self, kept: np.ndarray, starts: np.ndarray) -> None:
        n = kept.size
        ends = np.append(starts[1:], n)
        k = kept.astype(self._dtype)
        left = k << self._dtype(self._cbits)
        straddling = np.empty(0, np.int64)
        for d in range(1, min(self.window, n - 1) + 1):
            lane = d - 1 if self._lanes > 1 else 0
            fill = self._fill[lane]
            chunk = self._keys[lane, fill:fill + n - d]
            np.add(left[:n - d], k[d:], out=chunk)
            # The right element sits at position j = s + (d - 1) of a line starting at s:
            # for that j and every larger d the left element is on an earlier line.
            new = starts + (d - 1)
            straddling = np.concatenate([straddling, new[new < ends]])
            chunk[straddling[straddling >= d] - d] = self._sentinel
            self._fill[lane] += n - d

    def _fold_pending(self) -> None:
        """Sorts and counts each lane, adds lane d's counts times its weight (1/d for
        ``harmonic``) in lane order, and folds the sum into the accumulated matrix."""
        total = None
        for lane in range(self._lanes):
            keys = self._keys[lane, :self._fill[lane]]
            self._fill[lane] = 0
            keys.sort()
            end = int(np.searchsorted(keys, self._sentinel))
            if end == 0:
                continue
            self.pair_occurrences += end
            pairs, counts = _count_runs(keys[:end])
            if self._lanes > 1:
                counts *= 1.0 / (lane + 1)
            block = self._csr(pairs, counts)
            total = block if total is None else total + block
        if total is not None:
            self._acc = total if self._acc is None else self._acc + total

    def _csr(self, pairs: np.ndarray, values: np.ndarray) -> sp.csr_matrix:
        v = self.vocab_size
        row_starts = np.arange(v + 1, dtype=self._dtype) << self._dtype(self._cbits)
        indptr = np.searchsorted(pairs, row_starts).astype(np.int64)
        cols = (pairs & self._dtype((1 << self._cbits) - 1)).astype(np.int32)
        batch = sp.csr_matrix((values, cols, indptr), shape=(v, v))
        batch.has_sorted_indices = True
        batch.has_canonical_format = True
        return batch


def _count_runs(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted keys -> (unique keys, how often each occurs, as float64)."""
    first = _run_starts(sorted_keys)
    counts = np.empty(first.size, np.float64)
    np.subtract(first[1:], first[:-1], out=counts[:-1], casting="unsafe")
    counts[-1] = sorted_keys.size - first[-1]
    return sorted_keys[first], counts


def _run_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """Indices where a new value starts in a sorted array."""
    flags = np.empty(sorted_keys.size, bool)
    flags[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=flags[1:])
    return np.flatnonzero(flags)

