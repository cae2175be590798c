"""Part 2 of bench/load.py: many pods backed up at once across several worker processes,
with the service's PostgreSQL connections sampled all along."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench.harness import bench_settings
from bench.load_setup import Server, api_server, seed
from tests.fixtures.worker import WorkerProcess


async def _connections(database: str, samples: list[int], stop: asyncio.Event) -> None:
    conn = await asyncpg.connect(database.replace("+asyncpg", ""))
    name = database.rsplit("/", 1)[1]
    try:
        while not stop.is_set():
            samples.append(
                int(
                    await conn.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 "
                        "AND pid <> pg_backend_pid()",
                        name,
                    )
                )
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)
    finally:
        await conn.close()


Outcome = tuple[list[dict[str, Any]], dict[str, int], list[int]]


async def _backups(api: Server, admin: str, pods: int, workdir: Path, database: str) -> Outcome:
    samples: list[int] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(_connections(database, samples, stop))
    async with httpx.AsyncClient(
        base_url=api.url, timeout=60, headers={"Authorization": f"Bearer {admin}"}
    ) as http:
        account = (await http.post("/v1/accounts", json={"name": "fleet"})).json()["id"]
        ids = []
        for i in range(pods):
            files = workdir / "pods" / f"p{i}"
            (files / "data").mkdir(parents=True)
            (files / "index.html").write_text(f"pod {i}\n")
            (files / "data" / "blob.bin").write_bytes(os.urandom(64 * 1024))
            body = {
                "name": f"p{i}",
                "app": "bench",
                "account_id": account,
                "files": {"kind": "local", "path": str(files)},
            }
            r = await http.post("/v1/pods", json=body)
            r.raise_for_status()
            pod = r.json()["id"]
            target = {"kind": "local", "path": str(workdir / "repos" / f"p{i}")}
            r = await http.put(f"/v1/pods/{pod}/backup-settings", json={"target": target})
            r.raise_for_status()
            ids.append(pod)
        started = time.monotonic()
        triggered = await asyncio.gather(*(http.post(f"/v1/pods/{p}/backups") for p in ids))
        job_ids = [r.json()["id"] for r in triggered]
        jobs: list[dict[str, Any]] = []
        while time.monotonic() - started < 900:
            jobs = [(await http.get(f"/v1/jobs/{j}")).json() for j in job_ids]
            if all(j["status"] in ("succeeded", "partial", "failed", "canceled") for j in jobs):
                break
            await asyncio.sleep(1)
        elapsed = time.monotonic() - started
        snapshots = {}
        for p in ids:
            page = (await http.get(f"/v1/pods/{p}/snapshots")).json()
            snapshots[p] = page["pagination"]["total_count"]
    stop.set()
    await sampler
    print(f"  {pods} backups finished in {elapsed:.1f} s")
    return jobs, snapshots, samples


def backups_part(args: argparse.Namespace, database_url: str, workdir: Path) -> bool:
    settings = bench_settings(database_url, workdir)  # INFO: WorkerProcess waits for "ready"
    seeded = asyncio.run(seed(settings, 0, 0))
    processes = args.api_workers + args.workers
    limit = processes * (settings.database_pool_size + settings.database_max_overflow)
    print(
        f"Backups: {args.pods} local pods at once, {args.workers} worker processes "
        f"(concurrency {settings.worker_concurrency} each), API with {args.api_workers} "
        f"process(es)"
    )
    workers: list[WorkerProcess] = []
    try:
        for i in range(args.workers):  # each one stopped below, even if a later one fails
            workers.append(WorkerProcess(settings, workdir / f"worker{i}", name=f"worker{i}"))
            workers[-1].start()
        with api_server(
            settings.model_copy(update={"log_level": "WARNING"}), workdir, args.api_workers
        ) as api:
            jobs, snapshots, samples = asyncio.run(
                _backups(api, seeded.admin, args.pods, workdir, database_url)
            )
    finally:
        for w in workers:
            w.stop()
    statuses: dict[str, int] = {}
    for j in jobs:
        statuses[j["status"]] = statuses.get(j["status"], 0) + 1
    ran_on = {int(j.get("attempt") or 0) for j in jobs}
    counts = sorted(set(snapshots.values()))
    peak = max(samples) if samples else 0
    print(f"  jobs: {statuses}; attempts per job: {sorted(ran_on)}; snapshots per pod: {counts}")
    print(
        f"  PostgreSQL connections: peak {peak}, mean {sum(samples) / max(1, len(samples)):.1f} "
        f"({len(samples)} samples); limit {processes} processes x "
        f"({settings.database_pool_size} + {settings.database_max_overflow}) = {limit}"
    )
    ok = statuses == {"succeeded": args.pods} and counts == [1] and peak <= limit
    if not ok:
        for w in workers:
            print(w.logs()[-2000:])
    return ok
