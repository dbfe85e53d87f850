"""DoFns, CombineFns and composite PTransforms of the co-occurrence job (no IO, no flags).

Pass 1 (``TokenizeText``): TextBatch -> first-seen token ids (``counting.TokenIds``)
written to a ``spill`` file per bundle, plus the bundle's token counts, as a
{token: count} dict per token shard; ``CountVocabulary``: CombinePerKey (sum per token)
-> one ``Vocabulary`` (ids by descending count, ties by token). The text is tokenized
once.
Pass 2 (``CountCooccurrences``): Spill + Vocabulary side input -> ``CountPairsFn`` (ids
remapped to the vocabulary, vectorized ``PairCounter``; partial CSR matrices flushed per
bundle or every ``shard_nnz`` entries, cut into row shards) -> CombinePerKey(sum of
sparse blocks) keyed by row shard -> one summed CSR block per shard.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import zlib
from collections import Counter

import apache_beam as beam
import numpy as np
import scipy.sparse as sp
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from beam_jobs.cooccurrence.counting import (TokenIds, Tokenizer, id_lookup, order_vocabulary,
                                             remap_ids)
from beam_jobs.cooccurrence.matrix import Marginals, block_marginals, ppmi_block, svd_vectors
from beam_jobs.cooccurrence.reading import TextBatch
from beam_jobs.cooccurrence.spill import Spill, SpillWriter
from beam_jobs.cooccurrence.workers import (CountWorkers, TokenizeWorkers, count_spill,
                                            tokenize_batches)
from mlbatch.errors import JobError

LOGGER = logging.getLogger(__name__)
SPILLS = "spills"


class EmptyVocabularyError(ValueError, JobError):
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


class TokenizeFn(beam.DoFn):
    """TextBatch -> (shard, {token: count}) per bundle, plus the ``Spill``s of its token ids
    (tagged ``SPILLS``): the text is tokenized here once, pass 2 reads the ids back. With
    ``processes`` > 1 the batches go round robin to forked tokenizers (``workers``), one
    spill each."""

    def __init__(self, tokenizer: Tokenizer, spill_directory: str, processes: int = 1) -> None:
        self._tokenizer, self._directory = tokenizer, spill_directory
        self._processes = processes
        self._workers: TokenizeWorkers | None = None
        self._ids: TokenIds | None = None
        self._writer: SpillWriter | None = None

    def setup(self) -> None:
        if self._processes > 1:
            self._workers = TokenizeWorkers(self._tokenizer, self._directory, self._processes)
            LOGGER.debug("phase: %d tokenizing helpers started", self._processes)

    def start_bundle(self) -> None:
        self._ids, self._writer = TokenIds(self._tokenizer), None

    def process(self, batch: TextBatch):
        if self._workers is not None:
            self._workers.submit(batch.text)
            return ()
        if self._writer is None:
            self._writer = SpillWriter(self._directory)
        tokenize_batches(self._ids, self._writer, batch.text)
        return ()

    def finish_bundle(self):
        if self._workers is not None:
            done = self._workers.finish()
            LOGGER.debug("phase: tokenizing helpers done")
        else:
            done = [(self._ids.token_counts(),
                     None if self._writer is None else self._writer.close(self._ids.tokens))]
        self._ids = self._writer = None
        for token_counts, spill in done:
            if spill is None:
                continue
            for item in shard_token_counts(token_counts):
                yield _global(item)
            yield beam.pvalue.TaggedOutput(SPILLS, _global(spill))

    def teardown(self) -> None:
        if self._workers is not None:
            self._workers.close()


TOKEN_SHARDS = 16


def shard_token_counts(token_counts: list[tuple[str, int]]):
    """(token, count) pairs -> (shard, {token: count}) for each non-empty shard: a few
    elements per bundle instead of one per distinct token, while the sums stay spread
    over ``TOKEN_SHARDS`` keys. The shard is a CRC-32 of the token's UTF-8 bytes, the same
    in every process (Python's ``hash`` of a str is not)."""
    shards: dict[int, dict[str, int]] = {}
    for token, count in token_counts:
        shard = zlib.crc32(token.encode("utf-8", "surrogatepass")) % TOKEN_SHARDS
        shards.setdefault(shard, {})[token] = count
    return list(shards.items())


class TokenizeText(beam.PTransform):
    """TextBatches -> (token counts, ``Spill``s): ``result.counts``, ``result[SPILLS]``."""

    def __init__(self, tokenizer: Tokenizer, spill_directory: str, processes: int = 1) -> None:
        super().__init__()
        self._fn = TokenizeFn(tokenizer, spill_directory, processes)

    def expand(self, batches):
        return batches | "TokenizeBatches" >> beam.ParDo(self._fn).with_outputs(
            SPILLS, main="counts")


class SumTokenCountsFn(beam.CombineFn):
    """{token: count} dicts of one shard -> their sum, token by token."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, counts):
        get = acc.get
        for token, count in counts.items():
            acc[token] = get(token, 0) + count
        return acc

    def merge_accumulators(self, accumulators):
        accumulators = iter(accumulators)
        merged = next(accumulators, {})  # Beam lets a merge modify its first accumulator
        for acc in accumulators:
            self.add_input(merged, acc)
        return merged

    def extract_output(self, acc):
        return acc


class BuildVocabularyFn(beam.CombineFn):
    """(shard, {token: total count}) -> Vocabulary; keeps only tokens with count >=
    min_count."""

    def __init__(self, min_count: int) -> None:
        self._min_count = min_count

    def create_accumulator(self):
        return [[], 0, 0, ("", 0)]  # kept items, tokens, distinct, most frequent

    def add_input(self, acc, shard_counts):
        _, counts = shard_counts
        acc[0].extend(item for item in counts.items() if item[1] >= self._min_count)
        acc[1] += sum(counts.values())
        acc[2] += len(counts)
        if counts:
            count, token = max((c, t) for t, c in counts.items())
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
    """(shard, {token: count}) per bundle -> a single Vocabulary (raises
    EmptyVocabularyError when empty)."""

    def __init__(self, min_count: int) -> None:
        super().__init__()
        self._min_count = min_count

    def expand(self, token_counts):
        return (token_counts
                | "SumTokenCounts" >> beam.CombinePerKey(SumTokenCountsFn())
                | "OrderVocabulary" >> beam.CombineGlobally(BuildVocabularyFn(self._min_count))
                | "CheckVocabulary" >> beam.Map(check_vocabulary, self._min_count))


class CountPairsFn(beam.DoFn):
    """Spill (+ Vocabulary) -> ((shard, num_shards), partial CSR row block).

    Reads the spill's ids in chunks of about ``chunk_ids`` (whole lines), maps them to
    vocabulary ids and counts them (``workers.count_spill``); a partial matrix is flushed
    every ``shard_nnz`` entries and at the spill's end. The spill file is deleted once
    counted. With ``processes`` > 1 the spills of a bundle are counted in a forked pool
    and their partials yielded at the bundle's end.
    """

    def __init__(self, window: int, weighting: str, direction: str, rows_per_shard: int,
                 shard_nnz: int, chunk_ids: int = 1 << 22, processes: int = 1) -> None:
        self._params = {"window": window, "weighting": weighting, "direction": direction}
        self._rows_per_shard, self._shard_nnz = rows_per_shard, shard_nnz
        self._chunk_ids, self._processes = chunk_ids, processes
        self._vocab = self._lookup = None
        self._workers: CountWorkers | None = None
        self._kept = Metrics.counter("cooccurrence", "kept_tokens_windowed")
        self._pairs = Metrics.counter("cooccurrence", "pair_occurrences")
        self._flushes = Metrics.counter("cooccurrence", "partial_flushes")

    def setup(self) -> None:
        if self._processes > 1:
            self._workers = CountWorkers(self._processes)

    def process(self, spill: Spill, vocab: Vocabulary):
        if self._vocab is not vocab:
            LOGGER.debug("phase: counting pairs of %d tokens' vocabulary", vocab.size)
            self._vocab, self._lookup = vocab, id_lookup(vocab.tokens)
        args = (spill, remap_ids(spill.tokens, self._lookup),
                {**self._params, "vocab_size": vocab.size}, self._chunk_ids, self._shard_nnz)
        if self._workers is not None:
            self._workers.submit(*args)
            return
        yield from self._partials(count_spill(*args))

    def finish_bundle(self):
        if self._workers is None:
            return
        for result in self._workers.results():
            for element in self._partials(result):
                yield _global(element)
        LOGGER.debug("phase: counting helpers done")

    def teardown(self) -> None:
        if self._workers is not None:
            self._workers.close()

    def _partials(self, result):
        partials, kept, pairs = result
        self._kept.inc(kept)
        self._pairs.inc(pairs)
        for matrix in partials:
            self._flushes.inc()
            yield from split_rows(matrix, self._rows_per_shard)


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
    """Spills + Vocabulary -> ((shard, num_shards), summed CSR block)."""

    def __init__(self, vocab, window: int, weighting: str, direction: str,
                 rows_per_shard: int, shard_nnz: int, chunk_ids: int = 1 << 22,
                 processes: int = 1) -> None:
        super().__init__()
        self._vocab = vocab
        self._fn = CountPairsFn(window, weighting, direction, rows_per_shard, shard_nnz,
                                chunk_ids, processes)

    def expand(self, spills):
        return (spills
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
