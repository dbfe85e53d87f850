"""DoFns, CombineFns and composite PTransforms of the co-occurrence job (no IO, no flags).

Pass 1 (``CountVocabulary``): TextBatch -> per-bundle token Counter -> CombinePerKey(sum)
-> one ``Vocabulary`` (ids by descending count, ties by token).
Pass 2 (``CountCooccurrences``): TextBatch + Vocabulary side input -> ``CountPairsFn``
(vectorized ``PairCounter``; partial CSR matrices flushed per bundle or every
``shard_nnz`` entries, cut into row shards) -> CombinePerKey(sum of sparse blocks) keyed
by row shard -> one summed CSR block per shard.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from collections import Counter

import apache_beam as beam
import numpy as np
import scipy.sparse as sp
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from beam_jobs.cooccurrence.counting import (OOV_ID, PairCounter, Tokenizer, id_lookup,
                                             order_vocabulary)
from beam_jobs.cooccurrence.matrix import Marginals, block_marginals, ppmi_block, svd_vectors
from beam_jobs.cooccurrence.reading import TextBatch

LOGGER = logging.getLogger(__name__)


class EmptyVocabularyError(ValueError):
    """No token reaches --min-count: there is nothing to count."""


@dataclasses.dataclass
class Vocabulary:
    tokens: list[str]  # index = id
    counts: np.ndarray  # int64, same order
    total_tokens: int  # every token read, kept or not
    distinct_tokens: int
    most_frequent: tuple[str, int]  # over all distinct tokens, for error messages

    @property
    def size(self) -> int:
        return len(self.tokens)

    def stats(self) -> dict:
        kept = int(self.counts.sum())
        return {"tokens": self.total_tokens, "distinct_tokens": self.distinct_tokens,
                "kept_tokens": kept, "dropped_tokens": self.total_tokens - kept,
                "vocab_size": self.size}


def _global(value) -> WindowedValue:
    return WindowedValue(value, MIN_TIMESTAMP, [GlobalWindow()])


class CountTokensFn(beam.DoFn):
    """TextBatch -> (token, count) per bundle (a Counter per bundle, not per token)."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self._counts: Counter | None = None

    def start_bundle(self) -> None:
        self._counts = Counter()

    def process(self, batch: TextBatch):
        self._counts.update(self._tokenizer.tokens(batch.text))
        return ()

    def finish_bundle(self):
        for item in self._counts.items():
            yield _global(item)
        self._counts = None


class BuildVocabularyFn(beam.CombineFn):
    """(token, total count) -> Vocabulary; keeps only tokens with count >= min_count."""

    def __init__(self, min_count: int) -> None:
        self._min_count = min_count

    def create_accumulator(self):
        return [[], 0, 0, ("", 0)]  # kept items, tokens, distinct, most frequent

    def add_input(self, acc, item):
        token, count = item
        if count >= self._min_count:
            acc[0].append(item)
        acc[1] += count
        acc[2] += 1
        if (count, token) > (acc[3][1], acc[3][0]):
            acc[3] = (token, count)
        return acc

    def merge_accumulators(self, accumulators):
        merged = self.create_accumulator()
        for kept, tokens, distinct, top in accumulators:
            merged[0].extend(kept)
            merged[1] += tokens
            merged[2] += distinct
            if (top[1], top[0]) > (merged[3][1], merged[3][0]):
                merged[3] = top
        return merged

    def extract_output(self, acc):
        ordered = order_vocabulary(acc[0], self._min_count)
        return Vocabulary([t for t, _ in ordered],
                          np.array([c for _, c in ordered], dtype=np.int64),
                          acc[1], acc[2], tuple(acc[3]))


def check_vocabulary(vocab: Vocabulary, min_count: int) -> Vocabulary:
    if vocab.size:
        return vocab
    if vocab.total_tokens == 0:
        raise EmptyVocabularyError(
            "vocabulary is empty: no token was read from --input (see the skipped files "
            "and lines in the dead-letter output; check --token-pattern)")
    token, count = vocab.most_frequent
    raise EmptyVocabularyError(
        f"vocabulary is empty after --min-count {min_count}: {vocab.total_tokens} tokens "
        f"({vocab.distinct_tokens} distinct) were read and the most frequent, {token!r}, "
        f"occurs {count} times; lower --min-count or add text")


class CountVocabulary(beam.PTransform):
    """TextBatches -> a single Vocabulary (raises EmptyVocabularyError when empty)."""

    def __init__(self, tokenizer: Tokenizer, min_count: int) -> None:
        super().__init__()
        self._tokenizer, self._min_count = tokenizer, min_count

    def expand(self, batches):
        return (batches
                | "CountTokens" >> beam.ParDo(CountTokensFn(self._tokenizer))
                | "SumTokenCounts" >> beam.CombinePerKey(sum)
                | "OrderVocabulary" >> beam.CombineGlobally(BuildVocabularyFn(self._min_count))
                | "CheckVocabulary" >> beam.Map(check_vocabulary, self._min_count))


class CountPairsFn(beam.DoFn):
    """TextBatch (+ Vocabulary) -> ((shard, num_shards), partial CSR row block).

    Small batches (one short file each) are joined up to ``batch_bytes`` first, so the
    per-call numpy overhead is paid per megabyte rather than per file.
    """

    def __init__(self, tokenizer: Tokenizer, window: int, weighting: str, direction: str,
                 rows_per_shard: int, shard_nnz: int, batch_bytes: int = 1 << 22) -> None:
        self._tokenizer, self._window = tokenizer, window
        self._weighting, self._direction = weighting, direction
        self._rows_per_shard, self._shard_nnz = rows_per_shard, shard_nnz
        self._batch_bytes = batch_bytes
        self._vocab = self._lookup = self._counter = None
        self._texts: list[str] = []
        self._text_size = 0
        self._kept = Metrics.counter("cooccurrence", "kept_tokens_windowed")
        self._pairs = Metrics.counter("cooccurrence", "pair_occurrences")
        self._flushes = Metrics.counter("cooccurrence", "partial_flushes")

    def start_bundle(self) -> None:
        self._texts, self._text_size, self._counted = [], 0, False

    def process(self, batch: TextBatch, vocab: Vocabulary):
        if self._vocab is not vocab:  # the counter (and its key buffer) outlives bundles
            self._vocab, self._lookup = vocab, id_lookup(vocab.tokens)
            self._counter = PairCounter(vocab.size, self._window, self._weighting,
                                        self._direction)
        self._counted = True
        self._texts.append(batch.text)
        self._text_size += len(batch.text)
        if self._text_size >= self._batch_bytes:
            self._count_texts()
            if self._counter.nnz >= self._shard_nnz:
                yield from self._flush()

    def finish_bundle(self):
        for element in self._flush():
            yield _global(element)

    def _count_texts(self) -> None:
        # Batches hold whole lines: joining them with "\n" keeps every line boundary.
        ids = self._tokenizer.ids("\n".join(self._texts), self._lookup)
        self._texts, self._text_size = [], 0
        self._kept.inc(int(np.count_nonzero(ids > OOV_ID)))
        self._counter.add(ids)

    def _flush(self):
        if not self._counted:
            return
        self._counted = False
        if self._texts:
            self._count_texts()
        self._pairs.inc(self._counter.pair_occurrences)
        self._counter.pair_occurrences = 0
        self._flushes.inc()
        yield from split_rows(self._counter.flush(), self._rows_per_shard)


def split_rows(matrix: sp.csr_matrix, rows_per_shard: int):
    """CSR matrix -> ((shard, num_shards), row block) for every shard, empty ones too."""
    num_shards = max(1, math.ceil(matrix.shape[0] / rows_per_shard))
    for shard in range(num_shards):
        yield (shard, num_shards), matrix[shard * rows_per_shard:(shard + 1) * rows_per_shard]


class SumSparseFn(beam.CombineFn):
    """Sums sparse blocks of one shard; the result is canonical (sorted, no duplicates)."""

    def create_accumulator(self):
        return None

    def add_input(self, acc, block):
        return block if acc is None else acc + block

    def merge_accumulators(self, accumulators):
        return _sum_non_none(accumulators)

    def extract_output(self, acc):
        acc = acc.tocsr()
        acc.sum_duplicates()
        acc.sort_indices()
        return acc


class CountCooccurrences(beam.PTransform):
    """TextBatches + Vocabulary -> ((shard, num_shards), summed CSR block)."""

    def __init__(self, vocab, tokenizer: Tokenizer, window: int, weighting: str,
                 direction: str, rows_per_shard: int, shard_nnz: int,
                 batch_bytes: int = 1 << 22) -> None:
        super().__init__()
        self._vocab = vocab
        self._fn = CountPairsFn(tokenizer, window, weighting, direction, rows_per_shard,
                                shard_nnz, batch_bytes)

    def expand(self, batches):
        return (batches
                | "CountPairs" >> beam.ParDo(self._fn, beam.pvalue.AsSingleton(self._vocab))
                | "SumPartials" >> beam.CombinePerKey(SumSparseFn()))


class SumMarginalsFn(beam.CombineFn):
    """Adds the Marginals of every row block."""

    def create_accumulator(self):
        return None

    def add_input(self, acc, marginals):
        return marginals if acc is None else acc + marginals

    def merge_accumulators(self, accumulators):
        return _sum_non_none(accumulators)

    def extract_output(self, acc):
        return acc


def _sum_non_none(values):
    total = None
    for value in values:
        if value is not None:
            total = value if total is None else total + value
    return total


def _block_marginals(element, rows_per_shard: int):
    (shard, _), block = element
    return block_marginals(block, shard * rows_per_shard, block.shape[1])


def _ppmi_shard(element, marginals: Marginals, rows_per_shard: int, alpha: float,
                shift: float):
    (shard, num_shards), block = element
    return (shard, num_shards), ppmi_block(block, shard * rows_per_shard, marginals, alpha,
                                           shift)


class ComputePPMI(beam.PTransform):
    """Count shards -> PPMI shards (same keys), using the whole matrix's marginals."""

    def __init__(self, rows_per_shard: int, alpha: float, shift: float) -> None:
        super().__init__()
        self._rows, self._alpha, self._shift = rows_per_shard, alpha, shift

    def expand(self, shards):
        marginals = (shards
                     | "ComputeMarginals" >> beam.Map(_block_marginals, self._rows)
                     | "SumMarginals" >> beam.CombineGlobally(SumMarginalsFn()))
        return shards | "ComputePPMIShards" >> beam.Map(
            _ppmi_shard, beam.pvalue.AsSingleton(marginals), self._rows, self._alpha,
            self._shift)


@dataclasses.dataclass
class Embedding:
    tokens: list[str]
    vectors: np.ndarray
    singular_values: np.ndarray


def _factorize(blocks, vocab: Vocabulary, dim: int, power: float, seed: int) -> Embedding:
    ordered = [block for _, block in sorted(blocks, key=lambda kv: kv[0][0])]
    matrix = sp.vstack(ordered, format="csr")
    if dim >= vocab.size:
        raise ValueError(f"--svd-dim {dim} must be smaller than the vocabulary size "
                         f"({vocab.size} tokens)")
    vectors, singular = svd_vectors(matrix, dim, power, seed)
    return Embedding(vocab.tokens, vectors, singular)


class FactorizePPMI(beam.PTransform):
    """PPMI shards -> Embedding (truncated SVD of the assembled V x V PPMI matrix)."""

    def __init__(self, vocab, dim: int, power: float, seed: int) -> None:
        super().__init__()
        self._vocab, self._dim, self._power, self._seed = vocab, dim, power, seed

    def expand(self, ppmi_shards):
        return (ppmi_shards
                | "GatherPPMI" >> beam.combiners.ToList()
                | "RunTruncatedSVD" >> beam.Map(_factorize, beam.pvalue.AsSingleton(self._vocab),
                                             self._dim, self._power, self._seed))


class SumCountersFn(beam.CombineFn):
    """Sums dicts of numbers key by key."""

    def create_accumulator(self):
        return Counter()

    def add_input(self, acc, stats):
        acc.update(stats)
        return acc

    def merge_accumulators(self, accumulators):
        merged = Counter()
        for acc in accumulators:
            merged.update(acc)
        return merged

    def extract_output(self, acc):
        return dict(acc)


class MergeDictsFn(beam.CombineFn):
    """Unions dicts with disjoint keys (the sections of summary.json)."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, part):
        acc.update(part)
        return acc

    def merge_accumulators(self, accumulators):
        merged = {}
        for acc in accumulators:
            merged.update(acc)
        return merged

    def extract_output(self, acc):
        return acc
