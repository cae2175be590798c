"""Builders for scheduler tests: accounts, pods and settings inserted with the ORM."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from app.config import Settings
from app.jobs import queue
from app.models import Account, BackupSettings, Job, PlanState, Pod
from app.scheduler import service
from app.scheduler.planning import Cursors
from app.scheduler.service import TickResult
from tests.jobs.conftest import handlers, services  # noqa: F401  (the worker's Services, in process)


def schedule(
    start: str = "01:00", end: str = "05:00", tz: str = "UTC", **over: Any
) -> dict[str, Any]:
    return {"enabled": True, "window_start": start, "window_end": end, "timezone": tz, **over}


async def make_pods(
    app: FastAPI,
    n: int = 1,
    *,
    account_id: uuid.UUID | None = None,
    sched: dict[str, Any] | None = None,
    verified_ok: bool | None = True,
    verification: dict[str, Any] | None = None,
    retention: dict[str, Any] | None = None,
    with_settings: bool = True,
) -> list[uuid.UUID]:
    async with app.state.sessionmaker() as session:
        if account_id is None:
            account = Account(name="acme")
            session.add(account)
            await session.flush()
            account_id = account.id
        pods = [Pod(account_id=account_id, name=f"pod-{i}", app="wikijs") for i in range(n)]
        session.add_all(pods)
        await session.flush()
        if with_settings:
            session.add_all(
                BackupSettings(
                    pod_id=pod.id,
                    target_kind="local",
                    target={"path": "/nonexistent"},
                    repo_password="v1:x:y",
                    schedule=sched if sched is not None else schedule(),
                    retention=retention or {"keep_daily": 7, "prune_interval_days": 7},
                    verification=verification or {"enabled": True, "interval_days": 7},
                    verified_ok=verified_ok,
                )
                for pod in pods
            )
        await session.commit()
        return [pod.id for pod in pods]


async def cursors(app: FastAPI, pod_id: uuid.UUID) -> Cursors | None:
    async with app.state.sessionmaker() as session:
        state = await session.get(PlanState, (pod_id, "owner"))
        if state is None:
            return None
        return Cursors(state.next_run_at, state.next_prune_at, state.next_check_at)


async def set_cursors(app: FastAPI, pod_id: uuid.UUID | None, **values: datetime | None) -> None:
    """Set cursors of one pod (or of all pods: ``None``)."""
    stmt = update(PlanState).values(**values)
    if pod_id is not None:
        stmt = stmt.where(PlanState.pod_id == pod_id)
    async with app.state.sessionmaker() as session:
        await session.execute(stmt)
        await session.commit()


async def jobs_of(app: FastAPI, pod_id: uuid.UUID | None = None) -> list[Job]:
    async with app.state.sessionmaker() as session:
        stmt = select(Job).order_by(Job.created_at)
        if pod_id is not None:
            stmt = stmt.where(Job.pod_id == pod_id)
        return list((await session.scalars(stmt)).all())


async def finish_jobs(app: FastAPI, pod_id: uuid.UUID, status: str = "succeeded") -> None:
    async with app.state.sessionmaker() as session:
        await session.execute(
            update(Job)
            .where(Job.pod_id == pod_id, Job.status.in_(("queued", "running")))
            .values(status=status)
        )
        await session.commit()


@dataclass
class Env:
    app: FastAPI
    settings: Settings

    async def tick(self, now: datetime, settings: Settings | None = None) -> TickResult:
        state = self.app.state
        return await service.tick(state.sessionmaker, state.redis, settings or self.settings, now)

    async def plan_all(self, now: datetime) -> int:
        async with self.app.state.sessionmaker() as session:
            planned = await service.plan_all(session, now)
            await session.commit()
            return planned


@pytest.fixture
async def env(app: FastAPI, settings: Settings) -> AsyncIterator[Env]:
    yield Env(app, settings)
    # Leave no arq job of this test behind in the shared Redis.
    for job in await jobs_of(app):
        await queue.forget(app.state.redis, settings.queue_name, job.id)
