"""`podbackup worker-health`: the worker container's health check, against a real worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from app.config import Settings
from app.kit import heartbeat
from tests.fixtures.worker import WorkerProcess, settings_env


def _health(settings: Settings, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **settings_env(settings)}
    return subprocess.run(
        [sys.executable, "-m", "app.cli.__main__", "worker-health", *args],
        cwd=cwd,  # no .env here
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _wait_for(predicate: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_worker_health_follows_a_real_worker(settings: Settings, tmp_path: Path) -> None:
    path = settings.heartbeat_path
    assert path == settings.cache_dir / "worker.heartbeat"
    # A beat left by a killed predecessor (same volume) must not count for the next worker.
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"pid": os.getpid(), "worker_id": "old", "at": time.time()}))

    worker = WorkerProcess(settings, tmp_path / "worker").start()
    try:
        assert worker.proc is not None
        pid = worker.proc.pid
        _wait_for(lambda: path.exists() and heartbeat.read(path).pid == pid, 15)
        ok = _health(settings, tmp_path)
        assert ok.returncode == 0, ok.stderr
        assert f":{pid}: heartbeat" in ok.stdout

        # Hung (alive, not polling): the beat ages past --max-age.
        os.kill(pid, signal.SIGSTOP)
        stopped_at = heartbeat.read(path).at
        time.sleep(2.5)
        hung = _health(settings, tmp_path, "--max-age", "2")
        os.kill(pid, signal.SIGCONT)
        assert hung.returncode == 1
        assert "last heartbeat" in hung.stderr
        # Polling again: it beats again.
        _wait_for(lambda: heartbeat.read(path).at > stopped_at, 10)
    finally:
        worker.stop()  # SIGTERM: a clean shutdown takes its heartbeat with it
    assert not path.exists()
    gone = _health(settings, tmp_path)
    assert gone.returncode == 1
    assert "no heartbeat" in gone.stderr


def test_a_killed_workers_beat_does_not_count(tmp_path: Path) -> None:
    # SIGKILL leaves the file behind, fresh for a while: its process is checked too.
    path = tmp_path / "hb"
    child = subprocess.Popen([sys.executable, "-c", ""])
    child.wait()
    path.write_text(json.dumps({"pid": child.pid, "worker_id": "w", "at": time.time()}))
    assert heartbeat.check(path, 60) == (False, f"worker w: process {child.pid} is gone")


def test_check_refuses_what_is_not_a_fresh_beat(tmp_path: Path) -> None:
    path = tmp_path / "hb"
    assert heartbeat.check(path, 60)[0] is False  # absent
    bad = ("", "[]", '{"pid": "1", "worker_id": "w", "at": 1}', '{"pid": 1, "worker_id": "w"}')
    for text in bad:
        path.write_text(text)
        healthy, message = heartbeat.check(path, 60)
        assert not healthy
        assert "unreadable" in message
    heartbeat.write(path, "here:1", now=time.time() - 61)
    assert heartbeat.check(path, 60)[0] is False  # stale
    heartbeat.write(path, "here:1")
    assert heartbeat.check(path, 60) == (True, "worker here:1: heartbeat 0s ago")
