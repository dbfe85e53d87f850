"""The artifact contract: ``manifest`` (the format, reading and verifying it), ``base``
(the writer), and one module per artifact type, each the only reader (and, through
``ArtifactWriter``, the only writer) of its directories."""
from mlbatch.artifacts.base import (ArtifactWriter, OutputExistsError, claim_output,
                                    mark_failed, read_json, write_json)
from mlbatch.artifacts.manifest import (FORMAT_VERSIONS, MANIFEST, PENDING, ArtifactError,
                                        FormatVersionError, Manifest, UncommittedError,
                                        digest_of, read_manifest, verify)

__all__ = ["FORMAT_VERSIONS", "MANIFEST", "PENDING", "ArtifactError", "ArtifactWriter",
           "FormatVersionError", "Manifest", "OutputExistsError", "UncommittedError",
           "claim_output", "digest_of", "mark_failed", "read_json", "read_manifest", "verify",
           "write_json"]
