"""PostgreSQL going away under a job: recognise it, and retry the writes that record a
job's end, so a dropped connection neither fails a job as "internal" nor leaves it
`running` until the reconciler calls it lost."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError

from app.engine.errors import JobFailure

log = logging.getLogger(__name__)

T = TypeVar("T")

# Short: the heartbeat has stopped by the time the end is written, and the reconciler
# takes a silent job after PODBACKUP_JOB_STALE_SECONDS.
DELAYS = (0.2, 0.5, 1.0, 2.0)


def is_transient_db_error(exc: BaseException) -> bool:
    """The service's own database failed under us: a lost or broken connection, a server
    shutting down — not a bad statement or a constraint. (Only SQLAlchemy talks to the
    service's database; a pod's database errors arrive as coded DumpErrors.)"""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, DBAPIError):
            return not isinstance(cur, IntegrityError | ProgrammingError | DataError)
        cur = cur.__cause__ or cur.__context__
    return False


def lost_database(job_id: uuid.UUID) -> JobFailure:
    """The failure of a job whose own database writes failed: retryable, never "internal"."""
    log.warning("job %s: lost its database connection", job_id)
    return JobFailure(
        "database_unavailable",
        "the connection to the service's database was lost during the job",
        hint="the job is retried; check PostgreSQL if this keeps happening",
        retryable=True,
    )


async def retrying(what: str, write: Callable[[], Awaitable[T]]) -> T:
    """Run ``write`` (a whole transaction), again on a fresh connection after a transient
    database error. A retried write must be safe to repeat: the job-state updates are
    guarded by ``status = 'running' AND worker_id = me``."""
    for delay in DELAYS:
        try:
            return await write()
        except Exception as exc:
            if not is_transient_db_error(exc):
                raise
            log.warning("%s: database error (%s); retrying", what, type(exc).__name__)
            await asyncio.sleep(delay)
    return await write()
