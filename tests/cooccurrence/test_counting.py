"""The numpy core against the plain-Python reference counter, exactly."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from beam_jobs.cooccurrence.counting import (NEWLINE_ID, OOV_ID, PairCounter, TokenIds,
                                             TokenPatternError, Tokenizer, id_lookup,
                                             order_vocabulary, remap_ids)
from tests.cooccurrence import reference

TEXTS = {
    "two_lines": "the cat sat on the mat\nthe dog sat on the log\n",
    "empty_and_one_token_lines": "\n\nthe\n\ncat the cat\nthe\n\n\ndog dog dog\nthe",
    "rare_words_between": "a x1 b x2 a b c a b\nc c a x3 x3\nb x4 x5 x6 a c\n",
    "punctuation_and_case": "It's the CAT's toy, isn't it?\nThe cat's toy: it's 2 toys.\n"
                            "Isn't it THE toy?\n",
    "no_trailing_newline": "one two three one two\nthree one",
    "long_line": " ".join(f"w{i % 7}" for i in range(300)) + "\nw1 w2\n",
}


def job_count(text: str, min_count: int, window: int, weighting: str, direction: str,
              batches: int = 1, buffer_pairs: int = 1 << 24):
    tokenizer = Tokenizer()
    vocab = [t for t, _ in order_vocabulary(Counter(tokenizer.tokens(text)).items(),
                                            min_count)]
    counter = PairCounter(len(vocab), window, weighting, direction, buffer_pairs)
    lines = text.split("\n")
    step = max(1, len(lines) // batches)
    for start in range(0, len(lines), step):  # batches of whole lines, as the reader cuts
        counter.add(tokenizer.ids("\n".join(lines[start:start + step]), id_lookup(vocab)))
    return vocab, counter.flush()


def as_dict(matrix) -> dict[tuple[int, int], float]:
    coo = matrix.tocoo()
    return {(int(r), int(c)): float(v) for r, c, v in zip(coo.row, coo.col, coo.data)}


def assert_same_counts(got: dict, expected: dict, weighting: str) -> None:
    assert got.keys() == expected.keys()
    keys = sorted(expected)
    got_v = np.array([got[k] for k in keys])
    exp_v = np.array([expected[k] for k in keys])
    if weighting == "uniform":  # integer counts: bit-for-bit
        np.testing.assert_array_equal(got_v, exp_v)
    else:  # sums of 1/d in another order: equal up to float64 rounding
        np.testing.assert_allclose(got_v, exp_v, rtol=1e-12, atol=0)


@pytest.mark.parametrize("text_name", sorted(TEXTS))
@pytest.mark.parametrize("weighting", ["harmonic", "uniform"])
@pytest.mark.parametrize("direction", ["symmetric", "left"])
@pytest.mark.parametrize("min_count,window", [(1, 1), (1, 3), (2, 2), (2, 10)])
def test_matches_reference_counter(text_name, weighting, direction, min_count, window):
    text = TEXTS[text_name]
    vocab, matrix = job_count(text, min_count, window, weighting, direction)
    ref_vocab, ref_matrix = reference.count_text(text, min_count, window, weighting,
                                                 direction)
    assert vocab == ref_vocab
    assert_same_counts(as_dict(matrix), ref_matrix, weighting)


@pytest.mark.parametrize("direction", ["symmetric", "left"])
def test_batches_and_small_buffer_give_the_same_matrix(direction):
    text = "\n".join(TEXTS.values())
    _, whole = job_count(text, 1, 4, "harmonic", direction)
    _, pieces = job_count(text, 1, 4, "harmonic", direction, batches=7, buffer_pairs=5)
    _, ref_matrix = reference.count_text(text, 1, 4, "harmonic", direction)
    assert_same_counts(as_dict(pieces), ref_matrix, "harmonic")
    np.testing.assert_allclose(pieces.toarray(), whole.toarray(), rtol=1e-12)


def test_symmetric_is_left_plus_transpose_and_diagonal_counts_twice():
    text = "a a b a\n"
    vocab, left = job_count(text, 1, 2, "uniform", "left")
    _, sym = job_count(text, 1, 2, "uniform", "symmetric")
    a, b = vocab.index("a"), vocab.index("b")
    # pairs (earlier, later): (a,a) d1, (a,b) d1, (b,a) d1, (a,b) d2, (a,a) d2
    assert left[a, a] == 2 and left[a, b] == 2 and left[b, a] == 1 and left[b, b] == 0
    np.testing.assert_array_equal(sym.toarray(), (left + left.T).toarray())
    assert sym[a, a] == 4


def test_window_reaches_past_removed_tokens_but_not_past_line_breaks():
    text = "a rare1 rare2 b\nc\na b c\n"
    vocab, matrix = job_count(text, 2, 1, "uniform", "left")
    a, b, c = (vocab.index(t) for t in "abc")
    assert "rare1" not in vocab
    assert matrix[a, b] == 2  # line 1: a _ _ b are adjacent once rare tokens are gone
    assert matrix[b, c] == 1  # only line 3: "b\nc" does not pair across the break
    assert matrix.nnz == 2


def test_tokenizer_default_pattern():
    assert Tokenizer().tokens("It's NOT the cat's 2nd-best toy; rock'n'roll\tdon't") == [
        "it's", "not", "the", "cat's", "2nd", "best", "toy", "rock'n", "roll", "don't"]


def test_tokenizer_custom_pattern_and_case():
    assert Tokenizer(r"\S+", lowercase=False).tokens("Hello, World") == ["Hello,", "World"]


def test_ids_mark_line_breaks_and_unknown_tokens():
    ids = Tokenizer().ids("b a\n\nzz a", id_lookup(["a", "b"]))
    assert ids.tolist() == [1, 0, NEWLINE_ID, NEWLINE_ID, OOV_ID, 0]


@pytest.mark.parametrize("pattern,message", [
    ("(", "not a valid regular expression"),
    ("([a-z]+)", "capturing groups"),
    ("[a-z]*", "matches the empty string"),
    (r"[^ ]+", "matches a line break"),
    (r"(?i)[a-z]+", "cannot be used inside"),  # it used to fail only in the tokenizer
])
def test_tokenizer_rejects_unusable_patterns(pattern, message):
    with pytest.raises(TokenPatternError, match=message):
        Tokenizer(pattern)


def test_vocabulary_order_is_count_then_token():
    counts = [("b", 2), ("a", 2), ("c", 3), ("d", 1), ("e", 2)]
    assert order_vocabulary(counts, 2) == [("c", 3), ("a", 2), ("b", 2), ("e", 2)]


def test_pair_counter_rejects_window_below_one():
    with pytest.raises(ValueError, match="window must be >= 1"):
        PairCounter(10, 0)


@pytest.mark.parametrize("vocab_size", [65_535, 65_536])
def test_largest_ids_at_the_32_bit_key_boundary(vocab_size):
    """65,535 tokens: the largest pair key is one below the 32-bit sentinel; 65,536 would
    equal it, so those keys are 64-bit. Either way the largest ids count."""
    top = vocab_size - 1
    counter = PairCounter(vocab_size, 3)
    counter.add(np.array([top, top, 0, top, NEWLINE_ID, top, top], np.int32))
    matrix = counter.flush()
    assert counter._dtype == (np.uint32 if vocab_size == 65_535 else np.uint64)
    # (top, top): twice at d=1 (one per line), once at d=2 and d=3; (top, 0) at d=1 and
    # d=2, (0, top) at d=1. Count x 1/d per distance, added d = 1, 2, 3 in that order;
    # symmetric, so the diagonal counts twice.
    assert matrix[top, top] == 2 * ((2 * 1.0 + 1 / 2) + 1 / 3)
    assert matrix[top, 0] == matrix[0, top] == (1.0 + 1 / 2) + 1.0
    assert matrix.nnz == 3


def test_wide_vocabulary_uses_64_bit_keys():
    vocab_size = 70_000  # 2 * 17 bits > 32
    counter = PairCounter(vocab_size, 10)
    counter.add(np.array([69_999, 5, 69_999, NEWLINE_ID, 3], np.int32))
    matrix = counter.flush()
    assert matrix[69_999, 5] == 2 and matrix[5, 69_999] == 2
    assert matrix[69_999, 69_999] == 2 * 0.5 and matrix.nnz == 3


@pytest.mark.parametrize("text_name", sorted(TEXTS))
def test_token_ids_remapped_equal_vocabulary_ids(text_name):
    """Tokenizing once (first-seen ids, remapped after the vocabulary) gives the very ids
    of tokenizing with the vocabulary known, and the same token counts."""
    text, tokenizer = TEXTS[text_name], Tokenizer()
    vocab = [t for t, _ in order_vocabulary(Counter(tokenizer.tokens(text)).items(), 2)]
    lookup = id_lookup(vocab)
    first_seen = TokenIds(tokenizer)
    halves = text[:len(text) // 2], text[len(text) // 2:]
    first_ids = [first_seen.ids(half) for half in halves]
    table = remap_ids(first_seen.tokens, lookup)  # once the whole text is tokenized
    got = [table[ids] for ids in first_ids]
    expected = [tokenizer.ids(half, lookup) for half in halves]
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)
    assert dict(first_seen.token_counts()) == Counter(tokenizer.tokens(text[:len(text) // 2])
                                                      + tokenizer.tokens(text[len(text) // 2:]))
