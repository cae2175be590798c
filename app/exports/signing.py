"""Download links that expire: HMAC-SHA256 over the export id and the expiry time."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import datetime
from urllib.parse import urlencode

from app.kit.crypto import Keyring


def _key(keyring: Keyring) -> bytes:
    return hmac.new(keyring.keys[keyring.current], b"podbackup-exports", hashlib.sha256).digest()


def sign(keyring: Keyring, export_id: uuid.UUID, expires: int) -> str:
    return hmac.new(_key(keyring), f"{export_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def valid(keyring: Keyring, export_id: uuid.UUID, expires: int, signature: str) -> bool:
    # As bytes: compare_digest refuses str with non-ASCII characters (a 500 for a typo).
    return hmac.compare_digest(sign(keyring, export_id, expires).encode(), signature.encode())


def download_url(base: str, keyring: Keyring, export_id: uuid.UUID, expires_at: datetime) -> str:
    expires = int(expires_at.timestamp())
    query = urlencode({"expires": expires, "signature": sign(keyring, export_id, expires)})
    return f"{base.rstrip('/')}/v1/exports/{export_id}/download?{query}"
