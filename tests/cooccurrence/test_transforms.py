"""Composite transforms on in-memory batches (TestPipeline + beam.Create, no files)."""
from __future__ import annotations

import zlib

import apache_beam as beam
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs.cooccurrence.counting import Tokenizer
from beam_jobs.cooccurrence.reading import TextBatch
from beam_jobs.cooccurrence.transforms import (SPILLS, TOKEN_SHARDS, CountCooccurrences,
                                               CountVocabulary, SumTokenCountsFn,
                                               TokenizeText, shard_token_counts)
from tests.cooccurrence import reference

BATCHES = [TextBatch("a", 0, "b a c\nb a\n", 2), TextBatch("b", 0, "c b\n\nd b a", 3)]
TEXT = "b a c\nb a\nc b\n\nd b a"


def test_count_vocabulary(tmp_path):
    with test_pipeline.TestPipeline() as p:
        vocab = (p | beam.Create(BATCHES) | TokenizeText(Tokenizer(), str(tmp_path))).counts
        vocab = (vocab | CountVocabulary(min_count=2)
                 | beam.Map(lambda v: (v.tokens, v.counts.tolist(), v.stats())))
        assert_that(vocab, equal_to([(["b", "a", "c"], [4, 3, 2], {
            "tokens": 10, "distinct_tokens": 4, "kept_tokens": 9, "dropped_tokens": 1,
            "vocab_size": 3})]))


def test_count_cooccurrences_sums_partials_per_row_shard(tmp_path):
    vocab, expected = reference.count_text(TEXT, 2, 2, "uniform", "symmetric")
    triplets = sorted((r, c, v) for (r, c), v in expected.items())
    with test_pipeline.TestPipeline() as p:
        tokenized = p | "Batches" >> beam.Create(BATCHES) | TokenizeText(Tokenizer(),
                                                                        str(tmp_path))
        vocabulary = tokenized.counts | CountVocabulary(min_count=2)
        # chunk_ids=3: the spill is read back a line or two at a time.
        shards = (tokenized[SPILLS]
                  | CountCooccurrences(vocabulary, 2, "uniform", "symmetric",
                                       rows_per_shard=2, shard_nnz=1, chunk_ids=3))
        cells = shards | beam.FlatMap(lambda kv: [
            (kv[0][0] * 2 + int(r), int(c), float(v))
            for r, c, v in zip(*kv[1].tocoo().coords, kv[1].tocoo().data)])
        keys = shards | "Keys" >> beam.Map(lambda kv: kv[0])
        assert_that(cells, equal_to(triplets))
        assert_that(keys, equal_to([(0, 2), (1, 2)]), label="OneBlockPerShard")
    assert vocab == ["b", "a", "c"]
    assert list(tmp_path.iterdir()) == []  # every spill file deleted once counted


def test_token_counts_travel_in_crc32_shards_and_sum_per_token():
    """A bundle's counts leave as a few {token: count} dicts; a token's shard is the CRC-32
    of its bytes (the same in every helper process), so its counts meet in one sum."""
    first = dict(shard_token_counts([("the", 3), ("cat", 1), ("été", 2)]))
    second = dict(shard_token_counts([("the", 2), ("dog", 5)]))
    the = zlib.crc32(b"the") % TOKEN_SHARDS
    assert first[the]["the"] == 3 and second[the]["the"] == 2
    assert first[zlib.crc32("été".encode()) % TOKEN_SHARDS]["été"] == 2
    assert sum(len(d) for d in first.values()) == 3  # each token in exactly one shard
    fn = SumTokenCountsFn()
    merged = fn.merge_accumulators([fn.add_input(fn.create_accumulator(), first[the]),
                                    fn.add_input(fn.create_accumulator(), second[the])])
    assert merged["the"] == 5
