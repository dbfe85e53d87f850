"""Exact fast path of pass 1's tokenizer: white-space chunks, each distinct one matched once.

For a token pattern whose matches can never contain white space and whose matching looks
at nothing outside the match (no anchors, lookaround, backreferences, inline flags),
``findall`` over a line equals the concatenation of ``findall`` over the line's
white-space-separated chunks: a match attempt that reaches white space fails whether the
string goes on or ends there. So ``ChunkIds`` splits the text with ``str.split()`` (C),
maps each chunk to a chunk id through a ``defaultdict`` (C, as ``TokenIds`` does with
tokens), runs the regex once per *distinct* chunk, and expands chunk ids to token ids
with numpy. Line breaks (``\\n`` only, as the old path and the reader cut lines) become a
``SENTINEL`` chunk before the split, so they stay context boundaries (token id 0).

``splits_on_white_space`` decides from the parsed pattern, conservatively: whatever it
cannot prove safe returns False and the caller keeps the regex over the whole text.
"""
from __future__ import annotations

import functools
import re
import sys
from collections import defaultdict
from itertools import islice

import numpy as np

try:  # Python 3.11+
    from re import _constants as _sre
    from re import _parser as _parse
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_constants as _sre  # type: ignore[no-redef]
    import sre_parse as _parse  # type: ignore[no-redef]

# A line break becomes " SENTINEL " before the split; text holding it takes the old path.
SENTINEL = "\x00"
_CATEGORIES = {_sre.CATEGORY_DIGIT: r"\d", _sre.CATEGORY_NOT_DIGIT: r"\D",
               _sre.CATEGORY_SPACE: r"\s", _sre.CATEGORY_NOT_SPACE: r"\S",
               _sre.CATEGORY_WORD: r"\w", _sre.CATEGORY_NOT_WORD: r"\W"}


@functools.cache
def white_space() -> tuple[str, ...]:
    """Every character ``str.split()`` splits on (``str.isspace``), ``\\n`` included."""
    return tuple(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())


@functools.cache
def splits_on_white_space(pattern: str) -> bool:
    """True when no match of ``pattern`` can hold white space and matching depends on
    nothing outside the match, so matching chunk by chunk is exact."""
    try:
        parsed = _parse.parse(pattern)
    except re.error:
        return False
    flags = parsed.state.flags
    if flags & (re.IGNORECASE | re.LOCALE):
        return False
    return _items_safe(list(parsed), flags)


def _items_safe(items: list, flags: int) -> bool:
    return all(_item_safe(op, av, flags) for op, av in items)


def _item_safe(op, av, flags: int) -> bool:
    if op is _sre.LITERAL:
        return not chr(av).isspace()
    if op is _sre.NOT_LITERAL:
        return _set_safe([(_sre.NEGATE, None), (_sre.LITERAL, av)], flags)
    if op is _sre.IN:
        return _set_safe(av, flags)
    if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT):
        return _items_safe(list(av[2]), flags)
    if op is _sre.SUBPATTERN:
        _group, add_flags, del_flags, sub = av
        return not add_flags and not del_flags and _items_safe(list(sub), flags)
    if op is _sre.BRANCH:
        return all(_items_safe(list(branch), flags) for branch in av[1])
    return False  # ANY, anchors, lookaround, backreferences, atomic groups...


def _set_safe(items: list, flags: int) -> bool:
    """True when the character set ``items`` matches no white-space character."""
    negate = bool(items) and items[0][0] is _sre.NEGATE
    members = items[1:] if negate else items
    for char in white_space():
        hits = [_member_matches(op, av, char, flags) for op, av in members]
        if None in hits:
            return False
        if any(hits) != negate:
            return False
    return True


def _member_matches(op, av, char: str, flags: int) -> bool | None:
    """Whether one member of a set matches ``char``; None: not understood."""
    if op is _sre.LITERAL:
        return char == chr(av)
    if op is _sre.RANGE:
        return av[0] <= ord(char) <= av[1]
    if op is _sre.CATEGORY and av in _CATEGORIES:
        return re.fullmatch(_CATEGORIES[av], char, flags & re.ASCII) is not None
    return None


class ChunkIds:
    """Text -> first-seen token ids through a cache of distinct white-space chunks.

    ``tokens`` is the caller's token lookup (a ``defaultdict`` whose factory is its own
    ``__len__``, ``"\\n"`` -> ``line_break``), ``regex_with_newlines`` the pattern or
    ``\\n``; new tokens get their ids in the order the regex finds
    them in the chunks' first-seen order, which is their first-seen order in the text,
    so the ids equal those of ``findall`` over the whole text.
    """

    def __init__(self, tokens: defaultdict, regex_with_newlines: re.Pattern,
                 line_break: int) -> None:
        self._tokens, self._regex = tokens, regex_with_newlines
        self._chunks: defaultdict[str, int] = defaultdict()
        self._chunks.default_factory = self._chunks.__len__
        self._chunks[SENTINEL] = 0
        self._start = np.zeros(1, np.int64)  # chunk id -> its first token in _flat
        self._count = np.ones(1, np.int64)  # chunk id -> its number of tokens
        self._flat = np.array([line_break], np.int32)
        self._one_each = True  # every chunk so far is exactly one token

    def ids(self, text: str) -> np.ndarray:
        """Token ids of ``text`` (already lowercased if the tokenizer lowercases)."""
        chunks = text.replace("\n", f" {SENTINEL} ").split()
        known = len(self._chunks)
        chunk_ids = np.fromiter(map(self._chunks.__getitem__, chunks), dtype=np.int64,
                                count=len(chunks))
        if len(self._chunks) > known:
            self._add(list(islice(self._chunks, known, None)))
        if self._one_each:  # chunk i's token is _flat[i]
            return self._flat[chunk_ids]
        counts = self._count[chunk_ids]
        ends = np.cumsum(counts)
        offsets = np.repeat(self._start[chunk_ids] - (ends - counts), counts)
        return self._flat[offsets + np.arange(int(ends[-1]) if ends.size else 0)]

    def _add(self, chunks: list[str]) -> None:
        """Tokenizes the new chunks with one regex pass over them, ``\n``-joined: the
        line-break ids (0) cut the pass's ids back into chunks (a per-chunk ``findall``
        cost more than the whole-text regex when a bundle is small)."""
        found = self._regex.findall("\n".join(chunks) + "\n")
        ids = np.fromiter(map(self._tokens.__getitem__, found), dtype=np.int32,
                          count=len(found))
        breaks = np.flatnonzero(ids == self._flat[0])
        counts = np.diff(breaks, prepend=-1) - 1
        starts = self._flat.size + np.cumsum(counts) - counts
        self._one_each = self._one_each and bool((counts == 1).all())
        self._start = np.concatenate([self._start, starts])
        self._count = np.concatenate([self._count, counts])
        self._flat = np.concatenate([self._flat, np.delete(ids, breaks)])
