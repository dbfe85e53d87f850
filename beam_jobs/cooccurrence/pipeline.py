"""Wires the co-occurrence job: read and tokenize once (token counts and id spills), build
the vocabulary, count pairs from the spilled ids, combine, write."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from beam_jobs.common.deadletter import DEAD_LETTER, WriteDeadLetters
from beam_jobs.cooccurrence.config import CooccurrenceConfig
from beam_jobs.cooccurrence.reading import STATS, PlanReads, ReadTextBatchesFn
from beam_jobs.cooccurrence.spill import ID_BYTES, spill_dir
from beam_jobs.cooccurrence.transforms import (SPILLS, ComputePPMI, CountCooccurrences,
                                               CountVocabulary, FactorizePPMI, MergeDictsFn,
                                               SumCountersFn, TokenizeText)
from beam_jobs.cooccurrence.writing import (WriteTripletShardFn, write_embedding,
                                            write_summary, write_vocabulary)
from mlbatch.artifacts.cooccurrence import Layout


def build(p: beam.Pipeline, config: CooccurrenceConfig) -> None:
    def path(*parts: str) -> str:
        return FileSystems.join(config.output, *parts)

    ranges, file_stats, file_dead = p | "PlanReads" >> PlanReads(config.input,
                                                                 config.split_bytes)
    first = _read(ranges, "ReadText", config)
    tokenized = first.batches | "TokenizeText" >> TokenizeText(
        config.tokenizer, spill_dir(config.output), config.processes)
    vocab = tokenized.counts | "CountVocabulary" >> CountVocabulary(config.min_count)
    shards = (tokenized[SPILLS]
              | "CountCooccurrences" >> CountCooccurrences(
                  vocab, config.window, config.weighting, config.direction,
                  config.rows_per_shard, config.shard_nnz, config.batch_bytes // ID_BYTES,
                  config.processes))
    sections = [
        (file_stats, first[STATS]) | "FlattenReadStats" >> beam.Flatten()
        | "SumReadStats" >> beam.CombineGlobally(SumCountersFn()),
        vocab | "WriteVocabulary" >> beam.Map(write_vocabulary, path(Layout.VOCAB)),
        _write_triplets(shards, "Cooccurrence", path(Layout.COOCCURRENCE), config),
    ]
    if config.compute_ppmi:
        ppmi = shards | "ComputePPMI" >> ComputePPMI(config.rows_per_shard, config.ppmi_alpha,
                                                     config.ppmi_shift)
        sections.append(_write_triplets(ppmi, "PPMI", path(Layout.PPMI), config)
                        | "NamePPMIStats" >> beam.Map(lambda s: {"ppmi": s}))
        if config.svd_dim:
            sections.append(ppmi
                            | "FactorizePPMI" >> FactorizePPMI(vocab, config.svd_dim,
                                                               config.svd_power, config.seed)
                            | "WriteVectors" >> beam.Map(write_embedding, path(Layout.VECTORS),
                                                         path(Layout.WORD2VEC)))
    _ = ((file_dead, first[DEAD_LETTER])
         | "FlattenDeadLetters" >> beam.Flatten()
         | "WriteDeadLetters" >> WriteDeadLetters(path(Layout.DEAD_LETTER, "part")))
    _ = (tuple(sections)
         | "FlattenSummary" >> beam.Flatten()
         | "MergeSummary" >> beam.CombineGlobally(MergeDictsFn())
         | "WriteSummary" >> beam.Map(write_summary, path(Layout.SUMMARY),
                                      {"alpha": config.ppmi_alpha, "shift": config.ppmi_shift},
                                      config.svd_power))


def _read(ranges, label: str, config: CooccurrenceConfig):
    return ranges | label >> beam.ParDo(ReadTextBatchesFn(
        config.batch_bytes, config.max_line_bytes)).with_outputs(STATS, DEAD_LETTER,
                                                                 main="batches")


def _write_triplets(shards, name: str, directory: str, config: CooccurrenceConfig):
    return (shards
            | f"Write{name}" >> beam.ParDo(WriteTripletShardFn(directory,
                                                               config.rows_per_shard))
            | f"Sum{name}Stats" >> beam.CombineGlobally(SumCountersFn()))
