"""Scheduler at scale: plan N pods' nightly windows, then one tick claiming 10,000 due pods.

    .venv/bin/python -m bench.scheduler_plan [--pods 100000] [--due 10000]

Creates its own throwaway database (migrated with Alembic), fills it with COPY, times
``plan_all`` over every pod and one ``tick`` (claim, job rows, cursor updates, commit and
the arq enqueue in the real Redis), then drops the database and the Redis keys it made.
Targets (issue 6): planning 100,000 pods < 30 s; a tick of 10,000 due pods < 5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from arq.constants import job_key_prefix
from sqlalchemy import text

from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.jobs import service as jobs
from app.main import make_redis
from app.scheduler import service
from bench.common import timed

SERVER = "postgresql://postgres@127.0.0.1:5432"
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney"]
WINDOWS = [("01:00", "05:00"), ("23:00", "03:00"), ("02:00", "04:00"), ("22:00", "06:00")]
PODS_PER_ACCOUNT = 10


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(f"{SERVER}/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _migrate(url: str) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config("alembic.ini")
    cfg.attributes["database_url"] = url
    command.upgrade(cfg, "head")


async def _fill(dsn: str, pods: int) -> None:
    """Accounts, pods and enabled, verified settings, with COPY."""
    conn = await asyncpg.connect(dsn)
    try:
        accounts = [uuid.uuid4() for _ in range(max(1, pods // PODS_PER_ACCOUNT))]
        await conn.copy_records_to_table(
            "accounts",
            records=[(a, f"acct-{i}") for i, a in enumerate(accounts)],
            columns=["id", "name"],
        )
        pod_ids = [uuid.uuid4() for _ in range(pods)]
        await conn.copy_records_to_table(
            "pods",
            records=[
                (p, accounts[i % len(accounts)], f"pod-{i}", "wikijs")
                for i, p in enumerate(pod_ids)
            ],
            columns=["id", "account_id", "name", "app"],
        )
        retention = json.dumps({"keep_daily": 7, "prune_interval_days": 7})
        verification = json.dumps({"enabled": True, "interval_days": 7, "read_data_subsets": 12})
        target = json.dumps({"path": "/nonexistent"})
        records = []
        for i, p in enumerate(pod_ids):
            start, end = WINDOWS[i % len(WINDOWS)]
            schedule = {
                "enabled": True,
                "window_start": start,
                "window_end": end,
                "timezone": ZONES[i % len(ZONES)],
            }
            records.append(
                (p, "local", target, "v1:x:y", json.dumps(schedule), retention, verification, True)
            )
        await conn.copy_records_to_table(
            "backup_settings",
            records=records,
            columns=[
                "pod_id",
                "target_kind",
                "target",
                "repo_password",
                "schedule",
                "retention",
                "verification",
                "verified_ok",
            ],
        )
    finally:
        await conn.close()


def _line(label: str, seconds: float, count: int) -> None:
    per = seconds / count * 1e6 if count else 0.0
    print(f"  {label:<46} {seconds:8.2f} s  {count:>7} pods  {per:8.1f} µs/pod")


async def _run(url: str, pods: int, due: int, compare: int) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        queue_name=f"podbackup-bench:{secrets.token_hex(4)}",
    )
    engine = make_engine(settings)
    sessionmaker = make_sessionmaker(engine)
    redis = make_redis(settings)
    now = datetime.now(UTC).replace(microsecond=0)
    job_ids: list[uuid.UUID] = []
    try:
        with timed() as t:
            await _fill(url.replace("+asyncpg", ""), pods)
        _line("fill (COPY accounts, pods, settings)", t[0], pods)

        with timed() as t:
            async with sessionmaker() as session:
                planned = await service.plan_all(session, now)
                await session.commit()
        _line("plan_all (compute + store 3 cursors each)", t[0], planned)
        assert planned == pods, (planned, pods)

        with timed() as t:
            async with sessionmaker() as session:
                again = await service.plan_all(session, now)
                await session.commit()
        _line("plan_all again (nothing to plan)", t[0], again)

        async with sessionmaker() as session:
            await session.execute(
                text(
                    "UPDATE plan_states SET next_run_at = :at WHERE pod_id IN "
                    "(SELECT pod_id FROM plan_states ORDER BY random() LIMIT :n)"
                ),
                {"at": now - timedelta(minutes=1), "n": due},
            )
            await session.commit()

        if compare:
            # One by one through jobs.service.create, rolled back: why the tick inserts in bulk.
            async with sessionmaker() as session:
                sample = (
                    await session.execute(
                        text("SELECT id, account_id FROM pods ORDER BY id LIMIT :n"),
                        {"n": compare},
                    )
                ).all()
                # create()'s ON CONFLICT names its partial index predicate with bind
                # parameters; after 5 runs PostgreSQL may pick a generic plan that cannot
                # infer the index (reported to the lead). Custom plans keep this run going.
                await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
                with timed() as t:
                    for pod_id, account_id in sample:
                        await jobs.create(
                            session,
                            redis,
                            settings,
                            kind="backup",
                            pod_id=pod_id,
                            account_id=account_id,
                            trigger="schedule",
                        )
                await session.rollback()
            _line("(for comparison) jobs.create one by one", t[0], len(sample))

        with timed() as t:
            result = await service.tick(sessionmaker, redis, settings, now)
        job_ids = result.job_ids
        _line("tick: claim, create jobs, advance, enqueue", t[0], result.claimed)
        assert result.created["backup"] == due, result

        with timed() as t:
            idle = await service.run_tick(sessionmaker, redis, settings, now)
        _line("idle cron tick (plan_all + claim, none due)", t[0], pods)
        assert idle.claimed == 0
    finally:
        for i in range(0, len(job_ids), 1000):
            chunk = job_ids[i : i + 1000]
            await redis.delete(*(job_key_prefix + str(j) for j in chunk))
        await redis.delete(settings.queue_name)
        await redis.aclose()
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--compare", type=int, default=500, help="pods for the one-by-one run")
    args = parser.parse_args()
    due = min(args.due, args.pods)
    name = f"podbackup_bench_{secrets.token_hex(4)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    url = f"{SERVER.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    try:
        _migrate(url)
        print(f"scheduler bench: {args.pods} pods, {due} due (database {name})")
        asyncio.run(_run(url, args.pods, due, min(args.compare, args.pods)))
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
