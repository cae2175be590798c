"""What a job handler gets: the job, its dependencies, progress/log reporting, cancel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from arq.connections import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import transaction
from app.engine.errors import JobCanceled
from app.engine.transient import is_transient_db_error
from app.integrations.restic import Restic
from app.jobs import repository as jobs
from app.kit.crypto import Keyring
from app.kit.logging import redact, register_secret
from app.models import Job
from app.models.kinds import JobKind, JobStatus
from app.models.shapes import JobError, JobProgress

log = logging.getLogger("app.jobs")

Finalize = Callable[[AsyncSession], Awaitable[None]]


@dataclass
class Services:
    """Process-wide objects of a worker."""

    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    keyring: Keyring
    restic: Restic
    redis: ArqRedis
    worker_id: str
    handlers: Mapping[JobKind, Handler]  # app.handlers.HANDLERS


@dataclass
class JobOutcome:
    status: JobStatus = JobStatus.SUCCEEDED  # or PARTIAL
    result: dict[str, Any] = field(default_factory=dict)
    # Runs in the transaction that finishes the job (snapshots, pod status…).
    finalize: Finalize | None = None


class Handler(Protocol):
    async def run(self, ctx: JobContext) -> JobOutcome: ...

    async def failed(self, session: AsyncSession, job: Job, error: JobError) -> None: ...


class JobContext:
    def __init__(self, services: Services, job: Job, cancel: asyncio.Event) -> None:
        self.services = services
        self.job = job
        self.cancel = cancel
        self._progress: JobProgress = job.progress
        self._last_write = 0.0
        self._pending = False

    @property
    def settings(self) -> Settings:
        return self.services.settings

    @property
    def job_id(self) -> uuid.UUID:
        return self.job.id

    def session(self) -> AsyncSession:
        """A session for reads (it never commits); writes go through ``transaction``."""
        return self.services.sessionmaker()

    def transaction(self) -> AbstractAsyncContextManager[AsyncSession]:
        """A unit of work: commits when the block ends, then enqueues the jobs it created."""
        return transaction(self.services.sessionmaker)

    def secret(self, *values: str | None) -> None:
        """Mask these values in every log line and job event from now on."""
        register_secret(*values)

    def check_cancel(self) -> None:
        if self.cancel.is_set():
            raise JobCanceled()

    async def phase(self, name: str, **fields: Any) -> None:
        """The progress (with the phase) and its log line, in one transaction."""
        self._merge(phase=name, **fields)
        text = redact(f"phase: {name}")
        log.info("job %s: %s", self.job.id, text)
        await self.flush_progress(log_line=text)

    def _merge(self, **fields: Any) -> None:
        given = {k: v for k, v in fields.items() if v is not None}
        if given:
            self._progress = JobProgress.model_validate(
                {**self._progress.model_dump(exclude_unset=True), **given}
            )

    async def progress(self, *, force: bool = False, **fields: Any) -> None:
        """Merge ``fields`` into the job's progress; written at most about once a second."""
        self._merge(**fields)
        now = time.monotonic()
        if not force and now - self._last_write < 1.0:
            self._pending = True
            return
        await self.flush_progress()

    async def flush_progress(self, log_line: str | None = None) -> None:
        """Write the progress (and ``log_line`` as an info event with it). Best effort: a
        dropped database connection skips this write (the next one catches up) instead of
        failing the work it reports on; a database that stays away is noticed by the
        heartbeat."""
        self._last_write = time.monotonic()
        self._pending = False
        snapshot = self._progress
        try:
            async with self.transaction() as session:
                await jobs.set_progress(session, self.job.id, snapshot)
                if log_line is not None:
                    await jobs.add_event(
                        session, self.job.id, "log", {"level": "info", "message": log_line}
                    )
        except Exception as exc:
            if not is_transient_db_error(exc):
                raise
            self._pending = True
            log.warning("job %s: progress not written (%s)", self.job.id, type(exc).__name__)

    @property
    def current_progress(self) -> JobProgress:
        return self._progress

    async def log(self, message: str, level: str = "info", **data: Any) -> None:
        text = redact(message)
        log.log(logging.getLevelName(level.upper()), "job %s: %s", self.job.id, text)
        try:
            async with self.transaction() as session:
                await jobs.add_event(
                    session, self.job.id, "log", {"level": level, "message": text, **data}
                )
        except Exception as exc:  # the line is in the worker's log; the job goes on
            if not is_transient_db_error(exc):
                raise


class ProgressPump:
    """Bridge a synchronous progress callback (integrations) to the job's throttled writes.

    Use: ``async with ProgressPump(ctx, convert) as pump: await work(on_progress=pump)``.
    """

    def __init__(self, ctx: JobContext, convert: Callable[[Any], dict[str, Any]]) -> None:
        self.ctx = ctx
        self.convert = convert
        self.latest: Any = None
        self._seen: Any = None
        self._task: asyncio.Task[None] | None = None

    def __call__(self, value: Any) -> None:
        self.latest = value

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self._push()

    async def _push(self) -> None:
        value = self.latest
        if value is not None and value is not self._seen:
            self._seen = value
            await self.ctx.progress(**self.convert(value))

    async def __aenter__(self) -> ProgressPump:
        self._task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if exc[0] is None:
            await self._push()
