"""A worker's heartbeat file: proof, readable on its own host, that its poll loop is alive.

The API's health check is an HTTP endpoint; a worker serves none. arq's own health key in
Redis is one per queue, written by whichever worker polled last, so it says nothing about
the worker in this container. Instead each worker rewrites a small file every few seconds
while its poll loop goes round without a Redis error (``workers/transport.py``), and
``podbackup worker-health`` reads it: fresh, and written by a process that still runs.

A worker removes the file when it starts (a file left by a killed predecessor in a kept
volume proves nothing) and when it stops.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

# How often a live worker rewrites the file; readers allow several missed beats.
BEAT_SECONDS = 5.0


@dataclass(frozen=True)
class Beat:
    pid: int
    worker_id: str
    at: float  # time.time() of the write


def write(path: Path, worker_id: str, now: float | None = None) -> None:
    """Replace the file atomically (a reader never sees half of it)."""
    beat = {"pid": os.getpid(), "worker_id": worker_id, "at": time.time() if now is None else now}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        tmp.write_text(json.dumps(beat))
        os.replace(tmp, path)
    except OSError:
        remove(tmp)  # a full disk leaves no half-written file behind
        raise


def remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def read(path: Path) -> Beat:
    """The last beat; ValueError when the file is not one (OSError when it cannot be read)."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError("not a heartbeat")
    pid, worker_id, at = data.get("pid"), data.get("worker_id"), data.get("at")
    if not isinstance(pid, int) or not isinstance(worker_id, str):
        raise ValueError("not a heartbeat")
    if not isinstance(at, int | float) or isinstance(at, bool):
        raise ValueError("not a heartbeat")
    return Beat(pid=pid, worker_id=worker_id, at=float(at))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


def check(path: Path, max_age: float, now: float | None = None) -> tuple[bool, str]:
    """(healthy, what a person reads): the file's beat is at most ``max_age`` seconds old
    and its process runs."""
    try:
        beat = read(path)
    except FileNotFoundError:
        return False, f"no heartbeat at {path}: the worker is not running or not started yet"
    except (OSError, ValueError) as exc:
        return False, f"unreadable heartbeat at {path} ({type(exc).__name__})"
    age = (time.time() if now is None else now) - beat.at
    if age > max_age:
        return False, f"worker {beat.worker_id}: last heartbeat {age:.0f}s ago (limit {max_age:g}s)"
    if not _running(beat.pid):
        return False, f"worker {beat.worker_id}: process {beat.pid} is gone"
    return True, f"worker {beat.worker_id}: heartbeat {max(age, 0):.0f}s ago"
