"""Platform plan: storage of one shared repository vs one repository per pod, and the
nightly capacity of worker processes on a synthetic fleet.

    .venv/bin/python -m bench.platform_fleet storage [--pods 30]
    .venv/bin/python -m bench.platform_fleet capacity [--pods 200] [--workers 1 2]
        [--layout per_pod|shared]

`storage` backs every pod up with plain restic (the engine and flags the service uses:
repository version 2, compression auto) into both layouts and prints their sizes.
`capacity` runs the real service: a throwaway database, platform jobs created by the
scheduler's tick, and N `podbackup worker` processes, for a first round (init + backup)
and an unchanged round; beside each, the limit: plain `restic` (`init` + `backup`, then
`backup`) over the same pods with as many at a time as the workers have job slots.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

MB = 1024 * 1024


def make_fleet(root: Path, pods: int, common_mb: float, unique_mb: float) -> list[Path]:
    """Pods running the same app: identical app files, their own uploads and config."""
    rng = __import__("random").Random(7)
    common = [rng.randbytes(int(common_mb * MB / 20)) for _ in range(20)]
    out = []
    for i in range(pods):
        pod = root / f"pod-{i:04d}"
        (pod / "app").mkdir(parents=True)
        for n, blob in enumerate(common):
            (pod / "app" / f"module-{n:02d}.bin").write_bytes(blob)
        (pod / "uploads").mkdir()
        (pod / "uploads" / "own.bin").write_bytes(os.urandom(int(unique_mb * MB)))
        (pod / "config.yml").write_text(f"pod: {i}\n")
        out.append(pod)
    return out


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def restic(env: dict[str, str], *args: str, cwd: Path | None = None) -> None:
    subprocess.run(["restic", *args], env=env, cwd=cwd, check=True, capture_output=True)


def storage(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="pb-fleet-") as tmp:
        root = Path(tmp)
        pods = make_fleet(root / "pods", args.pods, args.common_mb, args.unique_mb)
        source = sum(du(p) for p in pods)
        base = {
            "PATH": os.environ["PATH"],
            "RESTIC_PASSWORD": "bench",
            "RESTIC_CACHE_DIR": str(root / "cache"),
        }
        shared = {**base, "RESTIC_REPOSITORY": str(root / "shared")}
        restic(shared, "init", "--repository-version", "2")
        started = time.perf_counter()
        for pod in pods:
            restic(shared, "backup", "--host", pod.name, ".", cwd=pod)
        shared_s = time.perf_counter() - started
        started = time.perf_counter()
        for pod in pods:
            env = {**base, "RESTIC_REPOSITORY": str(root / "per-pod" / pod.name)}
            restic(env, "init", "--repository-version", "2")
            restic(env, "backup", "--host", pod.name, ".", cwd=pod)
        per_pod_s = time.perf_counter() - started
        shared_b, per_pod_b = du(root / "shared"), du(root / "per-pod")
        print(
            f"fleet: {args.pods} pods x ({args.common_mb} MB same app + {args.unique_mb} MB "
            f"own) = {source / MB:.1f} MB of pod files"
        )
        print(f"  shared repository   {shared_b / MB:8.1f} MB   first backups {shared_s:6.1f} s")
        print(f"  one per pod         {per_pod_b / MB:8.1f} MB   first backups {per_pod_s:6.1f} s")
        print(f"  per-pod / shared    {per_pod_b / shared_b:8.2f} x storage")


def plain_round(pods: list[Path], repos: Path, cache: Path, parallel: int, *, first: bool) -> float:
    """Plain restic over the same pods, ``parallel`` at a time (the workers' job slots):
    `init` + `backup` per pod (first) or `backup` alone (unchanged). Wall seconds."""
    from concurrent.futures import ThreadPoolExecutor

    def one(pod: Path) -> None:
        env = {
            "PATH": os.environ["PATH"],
            "RESTIC_PASSWORD": "bench",
            "RESTIC_CACHE_DIR": str(cache),
            "RESTIC_REPOSITORY": str(repos / pod.name),
        }
        if first:
            restic(env, "init", "--repository-version", "2")
        restic(env, "backup", "--json", "--host", pod.name, ".", cwd=pod)

    started = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, pods))
    return time.perf_counter() - started


async def _capacity(args: argparse.Namespace) -> None:
    import asyncpg
    from alembic import command
    from alembic.config import Config

    from app.config import Settings
    from app.db import make_engine, make_sessionmaker
    from app.kit.crypto import generate_key
    from app.main import make_redis
    from app.models import Account, Job, Pod
    from app.scheduler.service import run_tick
    from tests.fixtures.worker import WorkerProcess

    server = "postgresql://postgres@127.0.0.1:5432"
    name = f"podbackup_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(f"{server}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    tmp = Path(tempfile.mkdtemp(prefix="pb-capacity-"))
    try:
        cfg = Config("alembic.ini")
        cfg.attributes["database_url"] = url
        await asyncio.to_thread(command.upgrade, cfg, "head")
        pods = make_fleet(tmp / "pods", args.pods, args.common_mb, args.unique_mb)
        source = sum(du(p) for p in pods)
        print(
            f"fleet: {args.pods} pods x ({args.common_mb} MB same app + {args.unique_mb} MB own)"
            f" = {source / MB:.0f} MB; load average {_loadavg()}"
        )
        for layout in args.layouts:
            for workers in args.workers:
                slots = workers * args.concurrency
                repo = tmp / f"repo-{layout}-{workers}"
                settings = Settings(
                    _env_file=None,  # type: ignore[call-arg]
                    database_url=url,
                    queue_name=f"podbackup-bench:{uuid.uuid4().hex[:8]}",
                    secret_keys=[generate_key("bench")],  # type: ignore[list-item]
                    local_roots=[tmp],
                    cache_dir=tmp / f"cache-{layout}-{workers}",
                    platform_repository=str(repo),
                    platform_layout=layout,
                    platform_password="bench-password",  # type: ignore[arg-type]
                    worker_concurrency=args.concurrency,
                    scheduler_enabled=False,
                    reconcile_seconds=5,
                )
                engine = make_engine(settings)
                maker = make_sessionmaker(engine)
                async with maker() as session:
                    await session.execute(Pod.__table__.delete())
                    account = Account(name="fleet")
                    session.add(account)
                    await session.flush()
                    for pod in pods:
                        session.add(
                            Pod(
                                account_id=account.id,
                                name=pod.name,
                                app="same-app",
                                files={"kind": "local", "path": str(pod)},
                            )
                        )
                    await session.commit()
                procs = [
                    WorkerProcess(settings, tmp / f"w{layout}{workers}-{i}", f"w{i}").start()
                    for i in range(workers)
                ]
                redis = make_redis(settings)
                now = datetime.now(UTC)
                await run_tick(maker, redis, settings, now, plan="platform")
                rounds: dict[str, tuple[float, float, int]] = {}
                for n, label in enumerate(("first", "unchanged"), start=1):
                    started = time.perf_counter()
                    result = await run_tick(
                        maker, redis, settings, now + timedelta(days=n, hours=7), plan="platform"
                    )
                    assert len(result.job_ids) == len(pods), result
                    backups_s, failed = await _wait_jobs(maker, Job, result.job_ids, started)
                    # The follow-up jobs (browse index, repository size) are the worker
                    # host's work too: the round ends when the queue is empty.
                    all_s = await _wait_idle(maker, Job, started)
                    rounds[label] = (backups_s, all_s, failed)
                    print(f"    {label}: {await _breakdown(maker, result.job_ids)}")
                for proc in procs:
                    proc.stop()
                await redis.aclose()
                await engine.dispose()
                plain_dir = tmp / f"plain-{layout}-{workers}"
                plain_first = plain_round(
                    pods, plain_dir, tmp / f"plain-cache-{layout}-{workers}", slots, first=True
                )
                plain_same = plain_round(
                    pods, plain_dir, tmp / f"plain-cache-{layout}-{workers}", slots, first=False
                )
                load = _loadavg()
                for label, plain_s in (("first", plain_first), ("unchanged", plain_same)):
                    backups_s, all_s, failed = rounds[label]
                    ours = len(pods) / all_s * 60
                    limit = len(pods) / plain_s * 60
                    print(
                        f"layout={layout:<8} {workers} worker(s) x {args.concurrency} jobs, "
                        f"{label:<9}: {len(pods)} pods in {all_s:6.1f} s (backups done at "
                        f"{backups_s:.1f} s) = {ours:6.1f} pods/min, {failed} failed | plain "
                        f"restic, {slots} at a time: {plain_s:6.1f} s = {limit:6.1f} pods/min"
                        f" | ratio {ours / limit:.2f} | load {load}"
                    )
                shutil.rmtree(plain_dir, ignore_errors=True)
                print(f"    repository {du(repo) / MB:.1f} MB")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        shutil.rmtree(tmp, ignore_errors=True)


async def _breakdown(maker: Any, ids: list[Any]) -> str:
    """Medians over the backup jobs: queue wait, start to restic, restic to the end."""
    import statistics

    from sqlalchemy import text

    async with maker() as session:
        rows = (
            await session.execute(
                text(
                    """SELECT j.started_at - j.created_at, e.at - j.started_at,
                              j.finished_at - e.at
                       FROM jobs j JOIN job_events e ON e.job_id = j.id
                       WHERE j.id = ANY(:ids) AND e.type = 'log'
                         AND e.data->>'message' = 'phase: uploading'"""
                ),
                {"ids": list(ids)},
            )
        ).all()
    if not rows:
        return "no phases recorded"
    wait, before, after = (statistics.median(r[i].total_seconds() for r in rows) for i in range(3))
    return (
        f"medians per backup job: queued {wait:.2f} s, started to restic {before:.2f} s, "
        f"restic + evidence + finishing {after:.2f} s"
    )


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def _wait_jobs(maker: Any, job: Any, ids: list[Any], started: float) -> tuple[float, int]:
    """Seconds until every job in ``ids`` ended, and how many did not succeed."""
    while True:
        async with maker() as session:
            rows = (
                await session.execute(
                    job.__table__.select()
                    .with_only_columns(job.status, job.error)
                    .where(job.id.in_(ids))
                )
            ).all()
        done = [r for r in rows if r[0] in ("succeeded", "partial", "failed", "canceled")]
        if len(done) == len(ids):
            for code, message in {r[1]["code"]: r[1]["message"] for r in rows if r[1]}.items():
                print(f"    error {code}: {message[:300]}")
            return time.perf_counter() - started, sum(1 for r in done if r[0] != "succeeded")
        await asyncio.sleep(0.1)


async def _wait_idle(maker: Any, job: Any, started: float) -> float:
    """Seconds until no job is queued or running."""
    from sqlalchemy import func, select

    while True:
        async with maker() as session:
            active = await session.scalar(
                select(func.count()).select_from(job).where(job.status.in_(("queued", "running")))
            )
        if not active:
            return time.perf_counter() - started
        await asyncio.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["storage", "capacity"])
    parser.add_argument("--pods", type=int, default=None)
    parser.add_argument("--common-mb", type=float, default=None)
    parser.add_argument("--unique-mb", type=float, default=None)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--layouts", nargs="+", default=["per_pod", "shared"])
    args = parser.parse_args()
    if args.what == "storage":
        args.pods = args.pods or 30
        args.common_mb = args.common_mb or 20
        args.unique_mb = args.unique_mb or 2
        storage(args)
    else:
        args.pods = args.pods or 200
        args.common_mb = args.common_mb or 0.5
        args.unique_mb = args.unique_mb or 0.5
        asyncio.run(_capacity(args))


if __name__ == "__main__":
    main()
