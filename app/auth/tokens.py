"""API tokens: random, shown once, stored as SHA-256."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

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


async def find_active(session: AsyncSession, token: str) -> ApiToken | None:
    digest = hash_token(token)
    row = await session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if row is None or row.revoked_at is not None:
        return None
    # The lookup is by digest; compare again in constant time for good measure.
    if not secrets.compare_digest(row.token_hash, digest):
        return None
    return row


async def revoke(session: AsyncSession, token_id: uuid.UUID) -> bool:
    result = await session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
