"""The scheduler against real PostgreSQL and Redis, with a controlled clock."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import httpx
from arq.jobs import Job as ArqJob
from arq.jobs import JobStatus
from sqlalchemy import func, select

from app.db import make_engine, make_sessionmaker
from app.engine.context import Services
from app.jobs import queue
from app.models import BackupSettings, Job, Pod
from app.scheduler import planning, repository, service
from tests.conftest import Tenant
from tests.scheduler.conftest import (
    Env,
    cursors,
    finish_jobs,
    jobs_of,
    make_pods,
    schedule,
    set_cursors,
)
from workers.tasks.scheduler import schedule_tick

NOON = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


async def test_plan_all_schedules_only_enabled_verified_pods(env: Env) -> None:
    good = await make_pods(env.app, 3, sched=schedule("23:00", "03:00", "Europe/Berlin"))
    no_check = await make_pods(env.app, verification={"enabled": False})
    skipped = [
        *await make_pods(env.app, sched=schedule(enabled=False)),
        *await make_pods(env.app, verified_ok=None),
        *await make_pods(env.app, verified_ok=False),
        *await make_pods(env.app, with_settings=False),
    ]
    assert await env.plan_all(NOON) == 4
    w = planning.Window.parse(schedule("23:00", "03:00", "Europe/Berlin"))
    assert w is not None
    opens, closes = w.bounds(date(2025, 6, 1))
    for pod_id in good:
        c = await cursors(env.app, pod_id)
        assert c is not None
        assert c.next_run_at is not None
        assert opens <= c.next_run_at <= closes  # tonight, across midnight in Berlin
        assert c.next_prune_at is not None
        assert c.next_check_at is not None
        assert c.next_run_at < c.next_prune_at
        assert c.next_run_at < c.next_check_at
    c = await cursors(env.app, no_check[0])
    assert c is not None
    assert c.next_run_at is not None
    assert c.next_check_at is None
    for pod_id in skipped:
        assert await cursors(env.app, pod_id) is None
    assert await env.plan_all(NOON) == 0  # nothing left to plan


async def test_tick_creates_a_job_and_advances_the_cursor_shown_in_status(
    env: Env, client: httpx.AsyncClient, tenant: Tenant
) -> None:
    (pod_id,) = await make_pods(env.app, account_id=tenant.account_id)
    url = f"/v1/pods/{pod_id}/status"
    assert (await client.get(url, headers=tenant.headers)).json()["next_run_at"] is None
    await env.plan_all(NOON)
    first = await cursors(env.app, pod_id)
    assert first is not None
    assert first.next_run_at is not None
    shown = (await client.get(url, headers=tenant.headers)).json()["next_run_at"]
    assert datetime.fromisoformat(shown) == first.next_run_at

    assert (await env.tick(first.next_run_at - timedelta(seconds=1))).claimed == 0
    result = await env.tick(first.next_run_at)
    assert (result.claimed, result.created["backup"]) == (1, 1)
    (job,) = await jobs_of(env.app, pod_id)
    assert (job.kind, job.status, job.trigger, job.plan) == (
        "backup",
        "queued",
        "schedule",
        "owner",
    )
    assert job.account_id == tenant.account_id
    assert await queue.held(env.app.state.redis, job.id)
    # What arq itself reads back: run_job(<id>), queued in this deployment's queue.
    arq_job = ArqJob(str(job.id), env.app.state.redis, _queue_name=env.settings.queue_name)
    assert await arq_job.status() == JobStatus.queued
    info = await arq_job.info()
    assert info is not None
    assert (info.function, info.args) == (queue.TASK_NAME, (str(job.id),))
    r = await client.get(f"/v1/jobs/{job.id}", headers=tenant.headers)
    assert r.status_code == 200
    assert r.json()["trigger"] == "schedule"

    after = await cursors(env.app, pod_id)
    assert after is not None
    assert after.next_run_at == first.next_run_at + timedelta(days=1)
    assert (after.next_prune_at, after.next_check_at) == (first.next_prune_at, first.next_check_at)
    shown = (await client.get(url, headers=tenant.headers)).json()["next_run_at"]
    assert datetime.fromisoformat(shown) == after.next_run_at
    assert (await env.tick(first.next_run_at + timedelta(minutes=1))).claimed == 0


async def test_two_schedulers_racing_create_each_job_once(env: Env) -> None:
    pods = await make_pods(env.app, 400, sched=schedule("00:00", "04:00"))
    assert await env.plan_all(NOON) == 400
    now = datetime(2025, 6, 2, 4, 30, tzinfo=UTC)  # every pod's backup is due
    later = now + timedelta(days=5)  # and only its backup
    await set_cursors(env.app, None, next_prune_at=later, next_check_at=later)
    small = env.settings.model_copy(update={"scheduler_batch_size": 25})
    a, b = await asyncio.gather(env.tick(now, small), env.tick(now, small))
    assert a.created["backup"] + b.created["backup"] == 400
    assert a.claimed + b.claimed == 400  # no row served twice
    async with env.app.state.sessionmaker() as session:
        per_pod = (
            await session.execute(select(Job.pod_id, func.count()).group_by(Job.pod_id))
        ).all()
    assert sorted(p for p, _ in per_pod) == sorted(pods)
    assert {n for _, n in per_pod} == {1}
    again = await env.tick(now + timedelta(minutes=1))
    assert again.claimed == 0


async def test_six_hour_outage_gives_one_run(env: Env) -> None:
    (pod_id,) = await make_pods(env.app, sched=schedule("00:00", "06:00"))
    await env.plan_all(NOON)
    planned = await cursors(env.app, pod_id)
    assert planned is not None
    assert planned.next_run_at is not None
    back = planned.next_run_at + timedelta(hours=6)  # no tick ran while we were down
    for minute in range(3):
        await env.tick(back + timedelta(minutes=minute))
    assert [j.kind for j in await jobs_of(env.app, pod_id)] == ["backup"]
    after = await cursors(env.app, pod_id)
    assert after is not None
    assert after.next_run_at == planned.next_run_at + timedelta(days=1)


async def test_busy_pod_is_skipped_not_doubled(env: Env) -> None:
    restoring, backing_up = await make_pods(env.app, 2)
    await env.plan_all(NOON)
    async with env.app.state.sessionmaker() as session:
        for pod_id, kind in ((restoring, "restore"), (backing_up, "backup")):
            pod = await session.get(Pod, pod_id)
            assert pod is not None
            session.add(Job(pod_id=pod_id, account_id=pod.account_id, kind=kind, status="running"))
        await session.commit()
    now = datetime(2025, 6, 2, 5, 30, tzinfo=UTC)
    later = now + timedelta(days=5)
    await set_cursors(env.app, None, next_prune_at=later, next_check_at=later)
    before = await cursors(env.app, restoring)
    result = await env.tick(now)
    assert (result.busy, result.already_running, result.created["backup"]) == (1, 1, 0)
    assert [j.kind for j in await jobs_of(env.app, backing_up)] == ["backup"]  # not doubled
    advanced = await cursors(env.app, backing_up)
    assert advanced is not None
    assert advanced.next_run_at is not None
    assert advanced.next_run_at > now  # tonight's backup is the running one
    assert await cursors(env.app, restoring) == before  # still due: retried next tick

    await finish_jobs(env.app, restoring)
    result = await env.tick(now + timedelta(minutes=1))
    assert (result.claimed, result.created["backup"]) == (1, 1)
    assert [j.kind for j in await jobs_of(env.app, restoring)] == ["restore", "backup"]


async def test_prune_and_check_follow_the_backup_on_their_own_cadence(env: Env) -> None:
    (pod_id,) = await make_pods(
        env.app,
        retention={"keep_daily": 7, "prune_interval_days": 3},
        verification={"enabled": True, "interval_days": 14},
    )
    await env.plan_all(NOON)
    now = datetime(2025, 6, 2, 1, 0, tzinfo=UTC)
    await set_cursors(env.app, pod_id, next_run_at=now, next_prune_at=now, next_check_at=now)

    kinds = []
    for minute in range(6):
        t = now + timedelta(minutes=minute)
        result = await env.tick(t)
        if minute % 2:  # the job created a tick ago has finished
            await finish_jobs(env.app, pod_id)
        kinds.append([k for k, n in result.created.items() if n])
    # One job at a time, in order; while one runs the others wait (busy), none is doubled.
    assert kinds == [["backup"], [], ["prune"], [], ["check"], []]
    c = await cursors(env.app, pod_id)
    assert c is not None
    assert c.next_run_at is not None
    assert c.next_prune_at is not None
    assert c.next_check_at is not None
    assert now < c.next_run_at < now + timedelta(days=1, hours=5)
    assert timedelta(days=2, hours=12) < c.next_prune_at - now < timedelta(days=3, hours=5)
    assert timedelta(days=13, hours=12) < c.next_check_at - now < timedelta(days=14, hours=5)


async def test_disabled_or_unverified_settings_stop_the_schedule(env: Env) -> None:
    first, second = await make_pods(env.app, 2)
    await env.plan_all(NOON)
    async with env.app.state.sessionmaker() as session:
        row = await session.get(BackupSettings, first)
        assert row is not None
        row.schedule = schedule(enabled=False)  # changed behind replan's back
        row2 = await session.get(BackupSettings, second)
        assert row2 is not None
        row2.verified_ok = False
        await service.replan(session, second, now=NOON)
        await session.commit()
    assert await cursors(env.app, second) == planning.NOT_SCHEDULED
    result = await env.tick(datetime(2025, 6, 2, 5, 30, tzinfo=UTC))
    assert (result.claimed, result.cleared, sum(result.created.values())) == (1, 1, 0)
    assert await cursors(env.app, first) == planning.NOT_SCHEDULED
    assert await jobs_of(env.app) == []

    async with env.app.state.sessionmaker() as session:
        row2 = await session.get(BackupSettings, second)
        assert row2 is not None
        row2.verified_ok = True
        await service.replan(session, second, now=NOON)
        await session.commit()
    c = await cursors(env.app, second)
    assert c is not None
    assert c.next_run_at is not None
    assert c.next_run_at > NOON
    # A pod never planned and without settings gets no row from replan.
    (bare,) = await make_pods(env.app, with_settings=False)
    async with env.app.state.sessionmaker() as session:
        await service.replan(session, bare, now=NOON)
        await session.commit()
    assert await cursors(env.app, bare) is None


async def test_a_job_committed_after_the_claim_wins_the_unique_index(env: Env) -> None:
    """The insert path: a manual backup and a restore appear between claim and insert."""
    manual, restoring = await make_pods(env.app, 2)
    await env.plan_all(NOON)
    now = datetime(2025, 6, 2, 5, 30, tzinfo=UTC)
    later = now + timedelta(days=5)
    await set_cursors(env.app, None, next_prune_at=later, next_check_at=later)
    before = await cursors(env.app, restoring)
    maker = env.app.state.sessionmaker
    async with maker() as claiming:
        rows = await repository.claim_due(claiming, "owner", now, repository.FIRST_ID, 10)
        assert [r.active for r in rows] == [None, None]
        async with maker() as other:
            for pod_id, kind in ((manual, "backup"), (restoring, "restore")):
                pod = await other.get(Pod, pod_id)
                assert pod is not None
                other.add(Job(pod_id=pod_id, account_id=pod.account_id, kind=kind))
            await other.commit()
        result = await service._serve(
            claiming, env.app.state.redis, env.settings, rows, now, "owner"
        )
        await claiming.commit()
    assert (result.created["backup"], result.already_running, result.busy) == (0, 1, 1)
    assert [j.trigger for j in await jobs_of(env.app, manual)] == ["manual"]
    assert await cursors(env.app, restoring) == before
    advanced = await cursors(env.app, manual)
    assert advanced is not None
    assert advanced.next_run_at is not None
    assert advanced.next_run_at > now


async def test_job_insert_survives_postgres_generic_plans(env: Env) -> None:
    """PostgreSQL may switch a prepared statement to a generic plan after 5 runs; the
    insert's ON CONFLICT must still find the partial unique index then."""
    pods = await make_pods(env.app, 8)
    await env.plan_all(NOON)
    later = NOON + timedelta(days=5)
    await set_cursors(env.app, None, next_run_at=later, next_prune_at=later, next_check_at=later)
    engine = make_engine(env.settings, pool_size=1)
    one_connection = make_sessionmaker(engine)
    try:
        for pod_id in pods:
            await set_cursors(env.app, pod_id, next_run_at=NOON)
            result = await service.tick(one_connection, env.app.state.redis, env.settings, NOON)
            assert result.created["backup"] == 1
    finally:
        await engine.dispose()
    assert len(await jobs_of(env.app)) == 8


async def test_cron_task_ticks_with_the_real_clock(env: Env, services: Services) -> None:
    (pod_id,) = await make_pods(env.app)
    far = datetime.now(UTC) + timedelta(days=5)
    await env.plan_all(datetime.now(UTC))
    await set_cursors(
        env.app, pod_id, next_run_at=far - timedelta(days=6), next_prune_at=far, next_check_at=far
    )
    off = replace(services, settings=env.settings.model_copy(update={"scheduler_enabled": False}))
    assert await schedule_tick({"services": off}) == {}
    assert await jobs_of(env.app) == []
    on = replace(services, settings=env.settings.model_copy(update={"scheduler_enabled": True}))
    counts = await schedule_tick({"services": on})
    assert (counts["claimed"], counts["backup"], counts["busy"]) == (1, 1, 0)
    assert [j.trigger for j in await jobs_of(env.app, pod_id)] == ["schedule"]
