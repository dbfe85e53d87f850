"""Beam's own judgement of pipeline flags, shared by the Beam jobs (`beam_jobs.common.options`)
and the launchers that pass flags through to them (`pipelines.remote`)."""
from __future__ import annotations

from collections.abc import Sequence

from apache_beam.options.pipeline_options import PipelineOptions


def _flag_name(token: str) -> str | None:
    """The flag a token names ("--num_shards=4" -> "--num_shards"); None for values."""
    if token.startswith("--") and len(token) > 2:
        return token.split("=", 1)[0]
    if token.startswith("-") and len(token) > 1 and not token[1].isdigit():
        return token.split("=", 1)[0]  # Beam drops single-dash flags
    return None


def unknown_beam_flags(args: Sequence[str]) -> list[str]:
    """The flags in ``args`` that no Beam PipelineOptions class declares, as written."""
    known = set(PipelineOptions([]).get_all_options())
    retained = PipelineOptions(list(args)).get_all_options(retain_unknown_options=True)
    unknown = {d.split("=", 1)[0].replace("-", "_") for d in set(retained) - known}
    out = []
    for token in args:
        name = _flag_name(token)
        if name and name not in out and (
                not name.startswith("--") or name[2:].replace("-", "_") in unknown):
            out.append(name)
    return out
