"""The whole service for a benchmark: a throwaway PostgreSQL database migrated with Alembic,
the API served by uvicorn in this process, a real worker process, an admin client.

    with throwaway_database() as url:          # sync: Alembic runs its own event loop
        asyncio.run(main(url))

    async with running_service(url, workdir) as svc:
        pod = await svc.local_pod(files_dir, repo_dir)
        job = await svc.run_job("POST", f"/v1/pods/{pod}/backups")

Job figures come from the job rows themselves (``created_at``/``started_at``/
``finished_at``, and phase events), not from polling granularity.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn

from app.config import Settings
from app.kit.crypto import generate_key
from app.main import create_app
from tests.fixtures.worker import WorkerProcess

PG_SERVER = os.environ.get("PODBACKUP_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("PODBACKUP_BENCH_REDIS", "redis://127.0.0.1:6379/0")
REPO_ROOT = Path(__file__).resolve().parents[1]
FINAL = ("succeeded", "partial", "failed", "canceled")


async def _admin_sql(sql: str) -> None:
    conn = await asyncpg.connect(f"{PG_SERVER}/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def throwaway_database() -> Iterator[str]:
    """A new database migrated to head (like tests/fixtures/database.py); dropped after."""
    from alembic import command
    from alembic.config import Config

    name = f"podbackup_bench_{secrets.token_hex(4)}"
    asyncio.run(_admin_sql(f'CREATE DATABASE "{name}"'))
    url = f"{PG_SERVER.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    try:
        cfg = Config(str(REPO_ROOT / "alembic.ini"))
        cfg.attributes["database_url"] = url
        command.upgrade(cfg, "head")
        yield url
    finally:
        asyncio.run(_admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def bench_settings(database_url: str, workdir: Path, **extra: Any) -> Settings:
    run = secrets.token_hex(4)
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": REDIS_URL,
        "queue_name": f"podbackup-bench:{run}",
        "secret_keys": [generate_key("bench")],
        "allow_networks": ["127.0.0.0/8"],
        "local_roots": [workdir],
        "data_dir": workdir / "data",
        "cache_dir": workdir / "cache",
        "scheduler_enabled": False,
        "argv_log": workdir / "argv.jsonl",  # when each child process started
        **extra,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class Service:
    settings: Settings
    app: Any
    http: httpx.AsyncClient  # admin token, base URL of the uvicorn server
    worker: WorkerProcess | None

    async def local_pod(self, files: Path | None, repo: Path, name: str = "bench") -> str:
        r = await self.http.post("/v1/accounts", json={"name": f"acct-{secrets.token_hex(3)}"})
        r.raise_for_status()
        body = {
            "name": name,
            "app": "bench",
            "account_id": r.json()["id"],
            "files": {"kind": "local", "path": str(files)} if files else None,
        }
        r = await self.http.post("/v1/pods", json=body)
        r.raise_for_status()
        pod_id = str(r.json()["id"])
        r = await self.http.put(
            f"/v1/pods/{pod_id}/backup-settings",
            json={"target": {"kind": "local", "path": str(repo)}, "retention": {"keep_last": 5}},
        )
        r.raise_for_status()
        return pod_id

    async def wait_job(self, job_id: str, timeout: float = 3600) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job: dict[str, Any] = (await self.http.get(f"/v1/jobs/{job_id}")).json()
            if job.get("status") in FINAL:
                return job
            # Slow polling on purpose: times come from the job row, and a busy poller
            # would take CPU from the worker on a small machine.
            await asyncio.sleep(0.5)
        raise TimeoutError(f"job {job_id} did not finish")

    async def run_job(self, method: str, url: str, **kw: Any) -> dict[str, Any]:
        r = await self.http.request(method, url, **kw)
        if r.status_code != 202:
            raise RuntimeError(f"{method} {url}: {r.status_code} {r.text}")
        job = await self.wait_job(str(r.json()["id"]))
        if job["status"] != "succeeded":
            logs = self.worker.logs()[-3000:] if self.worker else ""
            raise RuntimeError(f"job {job['kind']} {job['status']}: {job['error']}\n{logs}")
        return job

    async def idle(self, pod_id: str) -> None:
        """Wait until no job of the pod is queued or running (e.g. the index job after a
        backup), so the next measurement has the machine to itself."""
        while True:
            page = (await self.http.get(f"/v1/pods/{pod_id}/jobs", params={"limit": 50})).json()
            if not any(j["status"] in ("queued", "running") for j in page["items"]):
                return
            await asyncio.sleep(0.5)

    async def phases(self, job_id: str) -> list[tuple[float, str]]:
        """(seconds since the job started, phase) from the job's events."""
        async with self.app.state.sessionmaker() as session:
            from sqlalchemy import text

            rows = (
                await session.execute(
                    text("SELECT at, type, data FROM job_events WHERE job_id = :id ORDER BY id"),
                    {"id": job_id},
                )
            ).all()
        out: list[tuple[float, str]] = []
        start: datetime | None = None
        for at, kind, data in rows:
            if kind == "state" and data.get("status") == "running":
                start = at
            label = data.get("message") or data.get("status") or ""
            if start is not None and (kind == "state" or str(label).startswith("phase")):
                out.append(((at - start).total_seconds(), str(label)))
        return out


def children(settings: Settings, job: dict[str, Any]) -> list[tuple[float, str]]:
    """(seconds since the job started, "restic <command>") of the children it spawned."""
    if settings.argv_log is None or not settings.argv_log.exists():
        return []
    start = parse_ts(job["started_at"]).timestamp()
    end = parse_ts(job["finished_at"]).timestamp()
    out = []
    for line in settings.argv_log.read_text().splitlines():
        entry = json.loads(line)
        if start <= entry["at"] <= end:
            argv = [a for a in entry["argv"] if not a.startswith("--")]
            out.append((entry["at"] - start, " ".join(Path(argv[0]).name.split() + argv[1:2])))
    return out


def durations(job: dict[str, Any]) -> tuple[float, float]:
    """(created→finished, started→finished) seconds, from the job record."""
    created, started, finished = (
        parse_ts(job[k]) for k in ("created_at", "started_at", "finished_at")
    )
    return (finished - created).total_seconds(), (finished - started).total_seconds()


@contextlib.asynccontextmanager
async def running_service(
    database_url: str, workdir: Path, *, worker: bool = True, **settings_extra: Any
) -> AsyncIterator[Service]:
    from app.auth.tokens import create_token

    settings = bench_settings(database_url, workdir, **settings_extra)
    app = create_app(settings)
    # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets whose `proto` says
    # TCP, and a plain socket.socket() says 0: keep-alive responses then stall ~40 ms
    # (Nagle against delayed ACKs).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    proc: WorkerProcess | None = None
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        async with app.state.sessionmaker() as session:
            token = (await create_token(session, scope="admin", account_id=None)).token
            await session.commit()
        if worker:
            proc = WorkerProcess(settings, workdir / "worker").start()
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=120
        ) as http:
            yield Service(settings, app, http, proc)
    finally:
        if proc is not None:
            proc.stop()
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=15)
        sock.close()


# -- plain restic ------------------------------------------------------------------------


@dataclass
class PlainRestic:
    """restic as an owner runs it: its own repository, password and cache."""

    repo: Path
    cache: Path
    password: str = ""

    def __post_init__(self) -> None:
        self.password = self.password or secrets.token_urlsafe(24)

    def env(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.cache.parent),
            "RESTIC_REPOSITORY": str(self.repo),
            "RESTIC_PASSWORD": self.password,
            "RESTIC_CACHE_DIR": str(self.cache),
        }

    def run(self, *args: str, cwd: Path | None = None) -> tuple[float, str]:
        """(seconds, stdout) of one restic command; raises on a non-zero exit."""
        started = time.perf_counter()
        done = subprocess.run(
            ["restic", *args], env=self.env(), cwd=cwd, capture_output=True, text=True
        )
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"restic {args[0]} failed: {done.stderr.strip()[-2000:]}")
        return elapsed, done.stdout

    def fresh(self) -> None:
        shutil.rmtree(self.repo, ignore_errors=True)
        shutil.rmtree(self.cache, ignore_errors=True)


def drop_caches() -> bool:
    """Best effort: the kernel page cache out of the way (needs root)."""
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False
