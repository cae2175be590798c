"""Hot read paths (status, job, snapshot list — what a control panel polls) as one plain
SQL statement each on the driver connection: no ORM objects, no transaction round trips.

Measured with `bench.load`: the ORM path cost ~3 ms of CPU per request, most of it
SQLAlchemy building and loading objects; these reads cost a fraction of that.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import Response
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from app.errors import ServiceUnavailable

Source = AsyncSession | AsyncEngine


@asynccontextmanager
async def connection(source: Source) -> AsyncIterator[asyncpg.Connection]:
    """A session's own connection when it already holds one (never a second one from the
    pool: requests waiting for a second connection while holding a first could exhaust
    it), else a pooled one in autocommit — no BEGIN/COMMIT round trips."""
    if isinstance(source, AsyncSession) and source.in_transaction():
        conn = await source.connection()
        async with _guarded(conn) as driver:
            yield driver
        return
    engine = source if isinstance(source, AsyncEngine) else source.bind
    async with engine.connect() as pooled, _guarded(pooled) as driver:  # type: ignore[union-attr]
        yield driver


# The driver's own errors for a connection that is gone (terminated backend, server
# restart, a half-finished protocol exchange): SQLAlchemy never saw them, so the
# connection must be invalidated here or the pool would hand it out again.
_BROKEN = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InternalClientError,
    ConnectionError,
    OSError,
)


@asynccontextmanager
async def _guarded(conn: AsyncConnection) -> AsyncIterator[asyncpg.Connection]:
    raw = await conn.get_raw_connection()
    try:
        yield raw.driver_connection
    except _BROKEN as exc:
        await conn.invalidate(exc)
        raise ServiceUnavailable(
            "the database is unavailable",
            hint="retry in a few seconds",
            headers={"Retry-After": "5"},
        ) from None


async def fetchrow(source: Source, sql: str, *args: Any) -> asyncpg.Record | None:
    async with connection(source) as db:
        row: asyncpg.Record | None = await db.fetchrow(sql, *args)
        return row


async def fetch(source: Source, sql: str, *args: Any) -> list[asyncpg.Record]:
    async with connection(source) as db:
        rows: list[asyncpg.Record] = await db.fetch(sql, *args)
        return rows


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    """Serialize once, in pydantic's core (FastAPI would validate the model again)."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")
