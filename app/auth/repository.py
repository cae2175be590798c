"""Every SQL query on API tokens."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.models import ApiToken


async def find_unrevoked(session: AsyncSession, token_hash: str) -> Row[Any] | None:
    """(id, scope, account_id, last_used_at, token_hash) of the unrevoked token with this
    digest (a plain row: every request runs this, so no ORM object is built)."""
    return (
        await session.execute(
            select(
                ApiToken.id,
                ApiToken.scope,
                ApiToken.account_id,
                ApiToken.last_used_at,
                ApiToken.token_hash,
            ).where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None))
        )
    ).first()


async def is_unrevoked(session: AsyncSession, token_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(ApiToken.id).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
    )
    return found is not None


async def revoke(session: AsyncSession, token_id: uuid.UUID, at: datetime) -> bool:
    """Mark the token revoked at ``at``; False when it is missing or revoked already."""
    result = await session.execute(
        update(ApiToken)
        .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def mark_used(session: AsyncSession, token_id: uuid.UUID, at: datetime) -> None:
    await session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=at))


def account_tokens_query(account_id: uuid.UUID) -> Select[tuple[ApiToken]]:
    return (
        select(ApiToken)
        .where(ApiToken.account_id == account_id)
        .order_by(ApiToken.created_at, ApiToken.id)
    )
