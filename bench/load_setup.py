"""Pieces of bench/load.py: a seeded database, and servers in their own processes (the
API as ``podbackup api``, a bare FastAPI app serving the same payloads from memory)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import insert

from app.auth.tokens import create_token
from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.models import Account, Job, Pod, Snapshot
from app.models.status import PlanState
from tests.fixtures.worker import settings_env

REPO_ROOT = Path(__file__).resolve().parents[1]
PAYLOADS_ENV = "PODBACKUP_BENCH_PAYLOADS"
BARE_DB_ENV = "PODBACKUP_BENCH_DATABASE"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- seeding -------------------------------------------------------------------------------


@dataclass
class Seeded:
    token: str  # an account token: the normal, tenancy-checked path
    admin: str
    paths: list[str] = field(default_factory=list)  # status, job and snapshot-list URLs


async def seed(settings: Settings, pods: int, per_pod: int) -> Seeded:
    """``pods`` pods of one account, each with ``per_pod`` finished backup jobs and
    snapshots and its plan state, inserted in bulk."""
    engine = make_engine(settings, pool_size=2)
    maker = make_sessionmaker(engine)
    now = datetime.now(UTC)
    try:
        async with maker() as session:
            account = Account(name="load")
            session.add(account)
            await session.flush()
            token = await create_token(session, scope="account", account_id=account.id)
            admin = await create_token(session, scope="admin", account_id=None)
            pod_rows, job_rows, snap_rows, states = [], [], [], []
            paths: list[str] = []
            for p in range(pods):
                pod_id = uuid.uuid4()
                pod_rows.append(
                    {
                        "id": pod_id,
                        "account_id": account.id,
                        "name": f"pod-{p}",
                        "app": "wikijs",
                        "created_at": now,
                        "updated_at": now,
                    }
                )
                last_job = last_snap = None
                for i in range(per_pod):
                    at = now - timedelta(days=per_pod - i)
                    job_id, snap = uuid.uuid4(), secrets.token_hex(32)
                    job_rows.append(
                        {
                            "id": job_id,
                            "pod_id": pod_id,
                            "account_id": account.id,
                            "plan": "owner",
                            "kind": "backup",
                            "status": "succeeded",
                            "trigger": "schedule",
                            "params": {},
                            "progress": {"phase": "succeeded", "percent": 100.0},
                            "result": {"snapshot_id": snap, "files": {"files_total": 1200}},
                            "attempt": 1,
                            "max_attempts": 3,
                            "cancel_requested": False,
                            "created_at": at,
                            "started_at": at,
                            "finished_at": at + timedelta(minutes=3),
                        }
                    )
                    snap_rows.append(
                        {
                            "pod_id": pod_id,
                            "plan": "owner",
                            "id": snap,
                            "short_id": snap[:8],
                            "time": at,
                            "hostname": str(pod_id),
                            "paths": ["/stage"],
                            "tags": [f"pod:{pod_id}", "trigger:schedule", f"job:{job_id}"],
                            "summary": {
                                "files_new": 3,
                                "files_changed": 10,
                                "files_unmodified": 1187,
                                "data_added": 123456,
                                "total_files_processed": 1200,
                            },
                            "job_id": job_id,
                            "index_status": "ready",
                            "created_at": at,
                        }
                    )
                    last_job, last_snap = job_id, snap
                states.append(
                    {
                        "pod_id": pod_id,
                        "plan": "owner",
                        "last_attempt_at": now,
                        "last_status": "succeeded",
                        "last_job_id": last_job,
                        "last_success_at": now,
                        "last_snapshot_id": last_snap,
                        "snapshot_count": per_pod,
                        "check_counter": 0,
                    }
                )
                paths += [
                    f"/v1/pods/{pod_id}/status",
                    f"/v1/jobs/{last_job}",
                    f"/v1/pods/{pod_id}/snapshots?limit=20",
                ]
            for model, rows in (
                (Pod, pod_rows),
                (Job, job_rows),
                (Snapshot, snap_rows),
                (PlanState, states),
            ):
                for chunk in range(0, len(rows), 2000):
                    await session.execute(insert(model), rows[chunk : chunk + 2000])
            await session.commit()
            return Seeded(token=token.token, admin=admin.token, paths=paths)
    finally:
        await engine.dispose()


# -- servers -------------------------------------------------------------------------------


class Server:
    """A uvicorn server process on a free port, stopped (its whole group) on exit."""

    def __init__(self, argv: list[str], env: dict[str, str], workdir: Path, name: str) -> None:
        self.port = free_port()
        self.log = workdir / f"{name}.log"
        self.argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.env = env
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"{self.argv[:4]} did not start:\n{self.log.read_text()[-3000:]}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()


def base_env(settings: Settings) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        **settings_env(settings),
    }


def api_server(settings: Settings, workdir: Path, workers: int) -> Server:
    argv = [
        sys.executable,
        "-m",
        "app.cli.__main__",
        "api",
        "--port",
        "{port}",
        "--workers",
        str(workers),
    ]
    return Server(argv, base_env(settings), workdir, "api")


def bare_app() -> Any:
    """The API's own answers served by a bare FastAPI app, no auth: ``/mem/<api path>``
    from memory (the ceiling of this stack), ``/db/<api path>`` with one PostgreSQL query
    each (the floor of any database-backed endpoint)."""
    import asyncpg
    from fastapi import FastAPI, Response

    payloads: dict[str, str] = json.loads(Path(os.environ[PAYLOADS_ENV]).read_text())
    pool: list[asyncpg.Pool] = []

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        pool.append(await asyncpg.create_pool(os.environ[BARE_DB_ENV], min_size=2, max_size=15))
        yield
        await pool[0].close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/mem/{path:path}")
    async def from_memory(path: str) -> Any:
        return json.loads(payloads["/" + path])

    @app.get("/db/{path:path}")
    async def from_database(path: str) -> Response:
        body = await pool[0].fetchval("SELECT body FROM bench_payloads WHERE path = $1", "/" + path)
        return Response(body, media_type="application/json")

    return app


async def store_payloads(database_url: str, payloads: dict[str, str]) -> None:
    """The ``/db/`` side's table: each API path and its answer."""
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        await conn.execute("CREATE TABLE bench_payloads (path text PRIMARY KEY, body text)")
        await conn.executemany("INSERT INTO bench_payloads VALUES ($1, $2)", payloads.items())
    finally:
        await conn.close()


def bare_server(payload_file: Path, database_url: str, workdir: Path, workers: int) -> Server:
    env = {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": str(REPO_ROOT),
        PAYLOADS_ENV: str(payload_file),
        BARE_DB_ENV: database_url.replace("+asyncpg", ""),
    }
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.load_setup:bare_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    return Server(argv, env, workdir, "bare")
