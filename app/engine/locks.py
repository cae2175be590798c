"""Cross-worker repository lock: a PostgreSQL session advisory lock on its own connection.

Held for the job's whole run; if the worker dies, its connection closes and the lock goes
with it, so a dead worker can never block a repository.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.engine.errors import JobCanceled


def lock_id(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


@asynccontextmanager
async def repository_lock(
    engine: AsyncEngine,
    key: str,
    *,
    cancel: asyncio.Event,
    on_wait: Callable[[], Awaitable[None]] | None = None,
    poll: float = 2.0,
    shared: bool = False,
) -> AsyncIterator[None]:
    """Exclusive by default. ``shared``: many holders at once, none while an exclusive holder
    runs — for backups into a repository many pods share (restic itself lets backups run
    side by side; prune, forget and check need the repository alone)."""
    ident = lock_id(key)
    suffix = "_shared" if shared else ""
    async with engine.connect() as conn:
        waited = False
        while True:
            got = await conn.scalar(
                text(f"SELECT pg_try_advisory_lock{suffix}(:id)"), {"id": ident}
            )
            await conn.commit()
            if got:
                break
            if cancel.is_set():
                raise JobCanceled()
            if not waited and on_wait is not None:
                await on_wait()
                waited = True
            with suppress(TimeoutError):
                await asyncio.wait_for(cancel.wait(), timeout=poll)
        try:
            yield
        finally:
            with suppress(Exception):
                await conn.execute(text(f"SELECT pg_advisory_unlock{suffix}(:id)"), {"id": ident})
                await conn.commit()
