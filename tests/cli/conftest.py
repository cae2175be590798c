"""A live service for the CLI tests: `podbackup api` and a real worker as processes, an
account with a token, and a local-source pod backed up into a local repository.

Module-scoped (one service for the whole module): the CLI is a separate process that
talks HTTP, so the API must be a real server, not the in-process ASGI app.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from tests.conftest import REDIS_URL, SECRET_KEY
from tests.fixtures.database import truncate_all
from tests.fixtures.s3 import free_port
from tests.fixtures.worker import WorkerProcess, settings_env

PY = [sys.executable, "-m", "app.cli.__main__"]


@dataclass
class Live:
    url: str
    admin: str  # admin token
    token: str  # the account's token
    account_id: str
    root: Path  # the local root: pod folders and repositories live here
    home: Path  # the CLI's working directory and HOME
    settings: Settings
    pod: dict[str, Any]

    def cli(
        self, *args: str, token: str | None = "", url: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run `podbackup ARGS` as a user would (token "" = the account's, None = none)."""
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "COLUMNS": "200",
            "PODBACKUP_URL": url or self.url,
            "PODBACKUP_CONFIG": str(self.home / "config.toml"),
        }
        if token is not None:
            env["PODBACKUP_TOKEN"] = token or self.token
        return subprocess.run(
            [*PY, *args],
            env=env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.admin}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def local_pod(self, name: str, files: Path, repo: Path) -> dict[str, Any]:
        """An account pod with a local folder as its files and a local repository."""
        with self.http() as admin:
            r = admin.post(
                "/v1/pods",
                json={
                    "name": name,
                    "app": "demo",
                    "account_id": self.account_id,
                    "files": {"kind": "local", "path": str(files)},
                },
            )
            assert r.status_code == 201, r.text
            pod: dict[str, Any] = r.json()
            r = admin.put(
                f"/v1/pods/{pod['id']}/backup-settings",
                json={"target": {"kind": "local", "path": str(repo)}},
            )
            assert r.status_code == 200, r.text
        return pod


def make_tree(root: Path) -> None:
    (root / "uploads" / "2024").mkdir(parents=True)
    (root / "config.ini").write_text("[app]\nname = wiki\n")
    (root / "uploads" / "2024" / "photo.bin").write_bytes(os.urandom(300_000))
    (root / "uploads" / "Zürich notes.txt").write_text("grüezi\n")


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the API did not start:\n{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture(scope="module")
def live(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("cli")
    asyncio.run(truncate_all(database_url))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=database_url,
        redis_url=REDIS_URL,
        queue_name=f"podbackup-test:{secrets.token_hex(4)}",
        secret_keys=[SECRET_KEY],  # type: ignore[list-item]
        allow_networks=["127.0.0.0/8", "::1/128"],
        # The demo keeps its pod's database on the control database's server.
        allow_operator_services=True,
        local_roots=[root],
        data_dir=root / "data",
        cache_dir=root / "cache",
        public_url=url,
        job_max_attempts=1,  # a failure is final at once: the exit-code test needs no wait
        job_heartbeat_seconds=0.5,
        reconcile_seconds=1,
        scheduler_enabled=False,
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        **settings_env(settings),
    }
    api_dir = root / "api"
    api_dir.mkdir()
    log = api_dir / "api.log"
    with log.open("ab") as out:
        api = subprocess.Popen(
            [*PY, "api", "--port", str(port)],
            cwd=api_dir,  # no .env here: only the settings above apply
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker: WorkerProcess | None = None
    try:
        _wait_healthy(url, api, log)
        worker = WorkerProcess(settings, root / "worker").start()
        made = subprocess.run(
            [*PY, "token", "create", "--admin", "--name", "cli-test"],
            env=env,
            cwd=api_dir,
            capture_output=True,
            text=True,
            check=True,
        )
        admin = made.stdout.strip().splitlines()[-1]
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}) as c:
            account = c.post("/v1/accounts", json={"name": "cli"}).json()
            token = c.post(f"/v1/accounts/{account['id']}/tokens").json()["token"]
        home = root / "home"
        home.mkdir()
        make_tree(root / "pod")
        state = Live(url, admin, token, account["id"], root, home, settings, {})
        state.pod = state.local_pod("wiki", root / "pod", root / "repo")
        yield state
    finally:
        if worker is not None:
            worker.stop()
        if api.poll() is None:
            os.killpg(api.pid, signal.SIGTERM)
            api.wait(timeout=20)
