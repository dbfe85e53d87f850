"""The artifact contract (see ``base``): one module per artifact type, each the only
reader (and, through ``ArtifactWriter``, the only writer) of its directories."""
from mlbatch.artifacts.base import (FORMAT_VERSIONS, MANIFEST, PENDING, ArtifactError,
                                    ArtifactWriter, FormatVersionError, Manifest,
                                    OutputExistsError, UncommittedError, claim_output,
                                    digest_of, mark_failed, read_json, read_manifest, verify,
                                    write_json)

__all__ = ["FORMAT_VERSIONS", "MANIFEST", "PENDING", "ArtifactError", "ArtifactWriter",
           "FormatVersionError", "Manifest", "OutputExistsError", "UncommittedError",
           "claim_output", "digest_of", "mark_failed", "read_json", "read_manifest", "verify",
           "write_json"]
