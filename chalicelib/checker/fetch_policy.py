"""What a revocation fetch may do, and how it fails: the part of fetch.py the checker needs
before any fetch happens (fetch.py itself loads requests, so it is imported on the first fetch).
"""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.checker import ssrf

# The largest public CRLs are a few MiB; 10 MiB leaves room for them while bounding what one
# hostile URL can make a 256 MB Lambda hold (the cache keeps several).
MAX_CRL_BYTES = 10 * 1024 * 1024
# An OCSP response is one signed status and perhaps a responder certificate: a few KiB.
MAX_OCSP_BYTES = 64 * 1024


class FetchFailed(Exception):
    """A revocation source could not be fetched; the message says why in plain words."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class FetchPolicy:
    """How a fetch may reach the network: the guard (unless allow_private) and the resolver."""

    allow_private: bool = False
    resolver: ssrf.Resolver | None = None
