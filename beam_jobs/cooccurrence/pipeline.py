"""Wires the co-occurrence job: read twice (vocabulary, then pairs), combine, write."""
from __future__ import annotations

import dataclasses

import apache_beam as beam

from beam_jobs.cooccurrence.config import CooccurrenceConfig
from beam_jobs.cooccurrence.io import (DEAD_LETTER, STATS, OutputLayout, PlanReads,
                                       ReadTextBatchesFn, WriteTripletShardFn, write_embedding,
                                       write_json, write_vocabulary)
from beam_jobs.cooccurrence.transforms import (ComputePPMI, CountCooccurrences,
                                               CountVocabulary, FactorizePPMI, MergeDictsFn,
                                               SumCountersFn)

READ_STATS = ("files", "files_read", "empty_files", "binary_files", "unreadable_files",
              "bytes", "lines", "lines_skipped_non_utf8", "lines_skipped_too_long")


def build(p: beam.Pipeline, config: CooccurrenceConfig) -> None:
    layout = OutputLayout(config.output)
    ranges, file_stats, file_dead = p | "PlanReads" >> PlanReads(config.input,
                                                                 config.split_bytes)
    first = _read(ranges, "ReadTextForVocabulary", config)
    vocab = first.batches | "CountVocabulary" >> CountVocabulary(config.tokenizer,
                                                                 config.min_count)
    shards = (_read(ranges, "ReadTextForPairs", config).batches
              | "CountCooccurrences" >> CountCooccurrences(
                  vocab, config.tokenizer, config.window, config.weighting, config.direction,
                  config.rows_per_shard, config.shard_nnz, config.batch_bytes))
    sections = [
        (file_stats, first[STATS]) | "FlattenReadStats" >> beam.Flatten()
        | "SumReadStats" >> beam.CombineGlobally(SumCountersFn()),
        vocab | "WriteVocabulary" >> beam.Map(write_vocabulary, layout.vocab),
        _write_triplets(shards, "Cooccurrence", layout.cooccurrence, config),
    ]
    if config.compute_ppmi:
        ppmi = shards | "ComputePPMI" >> ComputePPMI(config.rows_per_shard, config.ppmi_alpha,
                                                     config.ppmi_shift)
        sections.append(_write_triplets(ppmi, "PPMI", layout.ppmi, config)
                        | "NamePPMIStats" >> beam.Map(lambda s: {"ppmi": s}))
        if config.svd_dim:
            sections.append(ppmi
                            | "FactorizePPMI" >> FactorizePPMI(vocab, config.svd_dim,
                                                               config.svd_power, config.seed)
                            | "WriteVectors" >> beam.Map(write_embedding, layout.vectors,
                                                         layout.word2vec))
    _ = ((file_dead, first[DEAD_LETTER])
         | "FlattenDeadLetters" >> beam.Flatten()
         | "WriteDeadLetters" >> beam.io.WriteToText(
             layout.join(DEAD_LETTER, "records"), file_name_suffix=".jsonl"))
    _ = (tuple(sections)
         | "FlattenSummary" >> beam.Flatten()
         | "MergeSummary" >> beam.CombineGlobally(MergeDictsFn())
         | "WriteSummary" >> beam.Map(_write_summary, layout.summary, config))


def _read(ranges, label: str, config: CooccurrenceConfig):
    return ranges | label >> beam.ParDo(ReadTextBatchesFn(
        config.batch_bytes, config.max_line_bytes)).with_outputs(STATS, DEAD_LETTER,
                                                                 main="batches")


def _write_triplets(shards, name: str, directory: str, config: CooccurrenceConfig):
    return (shards
            | f"Write{name}" >> beam.ParDo(WriteTripletShardFn(directory,
                                                               config.rows_per_shard))
            | f"Sum{name}Stats" >> beam.CombineGlobally(SumCountersFn()))


def _write_summary(summary: dict, path: str, config: CooccurrenceConfig) -> dict:
    summary = {**{key: 0 for key in READ_STATS}, **summary}
    summary["dead_letter_records"] = (summary["empty_files"] + summary["binary_files"]
                                      + summary["unreadable_files"]
                                      + summary["lines_skipped_non_utf8"]
                                      + summary["lines_skipped_too_long"])
    if "ppmi" in summary:
        summary["ppmi"].update(alpha=config.ppmi_alpha, shift=config.ppmi_shift)
    if "svd" in summary:
        summary["svd"]["power"] = config.svd_power
    summary["config"] = dataclasses.asdict(config)
    write_json(summary, path)
    return summary
