"""Database engine, sessions, and the per-request session with one commit at the boundary."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from app.config import Settings

AfterCommit = Callable[[], Awaitable[None]]


def make_engine(settings: Settings, *, pool_size: int | None = None) -> AsyncEngine:
    return create_async_engine(
        settings.database_url,
        pool_size=pool_size or settings.database_pool_size,
        max_overflow=settings.database_max_overflow,
        # A ping before each checkout (one short round trip; polled reads answered from the
        # read cache take no connection at all): a connection that died while idle in the
        # pool (PostgreSQL restarted, backends terminated, a failover) is replaced before a
        # request uses it, so the first requests after an outage do not fail with a 503.
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"server_settings": {"application_name": "podbackup"}, "timeout": 10},
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def after_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run ``callback`` once the session's transaction has committed (e.g. enqueue a job).

    If the commit never happens, the callback never runs; the reconciler then finds any
    queued job Redis does not hold.
    """
    session.info.setdefault("after_commit", []).append(callback)


async def commit(session: AsyncSession) -> None:
    """Commit, then run the after-commit callbacks registered on the session."""
    await session.commit()
    callbacks: list[AfterCommit] = session.info.pop("after_commit", [])
    for callback in callbacks:
        await callback()


@asynccontextmanager
async def transaction(maker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: a session that commits when the block ends without an error, then
    runs its after-commit callbacks (the enqueueing of jobs it created). An error rolls
    back and drops them. Requests, worker tasks and job handlers all commit through this
    (or through ``commit`` for a commit in the middle of a longer session)."""
    async with maker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            session.info.pop("after_commit", None)
            raise
        else:
            await commit(session)


async def _request_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with transaction(request.app.state.sessionmaker) as session:
        yield session


# scope="function": commit before the response is sent, so a client never sees a 2xx
# for a change that then failed to commit.
DbSession = Annotated[AsyncSession, Depends(_request_session, scope="function")]
