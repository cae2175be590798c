"""Secrets at rest: AES-256-GCM with key ids, so keys can rotate.

A stored value reads ``v1:<key id>:<base64url(nonce || ciphertext+tag)>``. The key id
says which key decrypts it; the newest key encrypts. Each value is bound to a context
(e.g. ``pod:<id>:files``) as associated data, so a ciphertext copied to another row or
column does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

_VERSION = "v1"


class CryptoConfigError(RuntimeError):
    """The configured keys are missing or malformed (an operator's mistake)."""


class DecryptError(RuntimeError):
    """A stored value cannot be decrypted with any configured key."""


@dataclass(frozen=True)
class Keyring:
    keys: dict[str, bytes]
    current: str

    @classmethod
    def from_settings(cls, raw: Sequence[SecretStr]) -> Keyring:
        if not raw:
            raise CryptoConfigError(
                "PODBACKUP_SECRET_KEYS is empty: generate a key with `podbackup keys generate` "
                "and set PODBACKUP_SECRET_KEYS=<id>:<key>"
            )
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for item in raw:
            text = item.get_secret_value().strip()
            kid, sep, b64 = text.partition(":")
            if not sep or not kid or ":" in b64:
                raise CryptoConfigError(
                    "each PODBACKUP_SECRET_KEYS entry must look like `<id>:<base64 key>`"
                )
            try:
                key = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
            except (binascii.Error, ValueError) as exc:
                raise CryptoConfigError(f"key {kid!r} is not valid base64") from exc
            if len(key) != 32:
                raise CryptoConfigError(f"key {kid!r} must be 32 bytes, got {len(key)}")
            if kid in keys:
                raise CryptoConfigError(f"key id {kid!r} appears twice")
            keys[kid] = key
            order.append(kid)
        return cls(keys=keys, current=order[0])

    def encrypt(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(12)
        sealed = AESGCM(self.keys[self.current]).encrypt(
            nonce, plaintext.encode(), context.encode()
        )
        token = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{_VERSION}:{self.current}:{token}"

    def decrypt(self, stored: str, context: str) -> str:
        try:
            version, kid, token = stored.split(":", 2)
        except ValueError as exc:
            raise DecryptError("stored secret has an unknown format") from exc
        if version != _VERSION:
            raise DecryptError(f"stored secret has unknown version {version!r}")
        key = self.keys.get(kid)
        if key is None:
            raise DecryptError(
                f"stored secret was encrypted with key {kid!r}, which is not configured; "
                "add it back to PODBACKUP_SECRET_KEYS (after the newest key)"
            )
        try:
            blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            return AESGCM(key).decrypt(blob[:12], blob[12:], context.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise DecryptError("stored secret does not decrypt (wrong key or context)") from exc

    def key_id_of(self, stored: str) -> str:
        return stored.split(":", 2)[1]

    def needs_rotation(self, stored: str) -> bool:
        return self.key_id_of(stored) != self.current

    def rotate(self, stored: str, context: str) -> str:
        """Re-encrypt with the newest key (no-op when already current)."""
        if not self.needs_rotation(stored):
            return stored
        return self.encrypt(self.decrypt(stored, context), context)


def generate_key(key_id: str | None = None) -> str:
    """A new ``id:base64key`` entry for PODBACKUP_SECRET_KEYS."""
    kid = key_id or f"k{secrets.token_hex(3)}"
    return f"{kid}:{base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip('=')}"


def generate_password(nbytes: int = 32) -> str:
    """A strong random password (e.g. for a restic repository), URL-safe characters only."""
    return secrets.token_urlsafe(nbytes)
