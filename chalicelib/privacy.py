"""Email addresses at rest and in logs: a keyed pseudonym and AES-GCM encryption.

Both keys derive from the deployment secret with HKDF, so one secret serves both
and neither key can be recovered from the other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from chalicelib.errors import ConfigurationError

PSEUDONYM_LENGTH = 32  # hex characters: 128 bits of HMAC-SHA256


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(secret)


def canonical(address: str) -> str:
    """Return the form of an address that identifies its owner (case-insensitive)."""
    return address.strip().lower()


class AddressVault:
    """Pseudonymise, seal and open email addresses with keys from the deployment secret."""

    def __init__(self, secret: bytes):
        if not secret:
            raise ConfigurationError("the deployment secret is empty")
        self._pseudonym_key = _derive(secret, b"sslnotify pseudonym v1")
        self._cipher = AESGCM(_derive(secret, b"sslnotify address encryption v1"))

    def pseudonym(self, address: str) -> str:
        """Return the keyed hash that stands for an address in tables and logs."""
        digest = hmac.new(self._pseudonym_key, canonical(address).encode(), hashlib.sha256)
        return digest.hexdigest()[:PSEUDONYM_LENGTH]

    def seal(self, address: str) -> str:
        """Encrypt an address, bound to its pseudonym; return base64 text."""
        nonce = os.urandom(12)
        sealed = self._cipher.encrypt(nonce, address.encode(), self.pseudonym(address).encode())
        return base64.b64encode(nonce + sealed).decode()

    def open(self, sealed: str, pseudonym: str) -> str:
        """Decrypt an address sealed for this pseudonym; fail on any tampering."""
        try:
            raw = base64.b64decode(sealed, validate=True)
            address = self._cipher.decrypt(raw[:12], raw[12:], pseudonym.encode()).decode()
        except (ValueError, InvalidTag) as error:
            raise ConfigurationError("a sealed address could not be opened") from error
        return address
