"""API tokens: random, shown once, stored as SHA-256."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import repository
from app.models import ApiToken
from app.models.base import utcnow

TOKEN_PREFIX = "pbk"


@dataclass(frozen=True)
class NewToken:
    token: str
    row: ApiToken


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(token: str) -> bool:
    parts = token.split("_", 2)
    return len(parts) == 3 and parts[0] == TOKEN_PREFIX and len(parts[1]) == 8 and len(token) < 200


async def create_token(
    session: AsyncSession, *, scope: str, account_id: uuid.UUID | None, name: str = ""
) -> NewToken:
    if scope not in ("admin", "account"):
        raise ValueError(f"unknown scope {scope!r}")
    if (scope == "account") != (account_id is not None):
        raise ValueError("account tokens need an account id; admin tokens have none")
    prefix = secrets.token_hex(4)
    token = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiToken(
        account_id=account_id,
        scope=scope,
        name=name,
        prefix=prefix,
        token_hash=hash_token(token),
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return NewToken(token=token, row=row)


@dataclass(frozen=True)
class ActiveToken:
    id: uuid.UUID
    scope: str
    account_id: uuid.UUID | None
    last_used_at: datetime | None


async def find_active(session: AsyncSession, token: str) -> ActiveToken | None:
    """The token's row when it exists and is not revoked (a plain row: every request runs
    this, so no ORM object is built)."""
    digest = hash_token(token)
    row = await repository.find_unrevoked(session, digest)
    # The lookup is by digest; compare again in constant time for good measure.
    if row is None or not secrets.compare_digest(row.token_hash, digest):
        return None
    return ActiveToken(row.id, row.scope, row.account_id, row.last_used_at)


async def is_active(session: AsyncSession, token_id: uuid.UUID) -> bool:
    """Whether the token still exists unrevoked (long-lived responses re-check this)."""
    return await repository.is_unrevoked(session, token_id)


async def revoke(session: AsyncSession, token_id: uuid.UUID) -> bool:
    return await repository.revoke(session, token_id, utcnow())


class TokenCache:
    """Recently verified tokens of this process, for ``ttl`` seconds: a client polling
    status or a job does not cost a token lookup per request. A token revoked through this
    process is dropped at once; other API processes stop accepting it within ``ttl``."""

    def __init__(self, ttl: float, max_size: int = 10_000) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self._entries: dict[str, tuple[float, Any]] = {}

    def get(self, token: str) -> Any | None:
        if self.ttl <= 0:
            return None
        entry = self._entries.get(hash_token(token))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, token: str, principal: Any) -> None:
        if self.ttl <= 0:
            return
        if len(self._entries) >= self.max_size:
            self._entries.clear()
        self._entries[hash_token(token)] = (time.monotonic() + self.ttl, principal)

    def drop_token_id(self, token_id: uuid.UUID) -> None:
        for key, (_, principal) in list(self._entries.items()):
            if getattr(principal, "token_id", None) == token_id:
                self._entries.pop(key, None)
