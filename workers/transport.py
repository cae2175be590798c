"""The worker's hold on Redis: ride out a Redis restart instead of exiting.

Redis is only the transport. With stock arq, the first ConnectionError of a Redis restart
escapes ``Worker.main``'s poll loop and the whole worker exits: its running jobs die with
it, and so does the reconciler that would re-enqueue what the restart lost. Here:

- commands on an open connection are retried with backoff (a short blip passes unseen);
- a poll iteration that cannot reach Redis is logged and tried again a moment later,
  while jobs already running carry on (they only need PostgreSQL);
- each poll iteration that went through beats the worker's heartbeat file (every few
  seconds), which ``podbackup worker-health`` reads: a worker waiting for Redis, hung or
  gone stops beating.

``podbackup worker`` runs this worker; the plain ``arq`` command would run arq's own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from arq.connections import RedisSettings
from arq.typing import WorkerSettingsType
from arq.worker import Worker, get_kwargs
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

from app.kit import heartbeat

log = logging.getLogger("workers")

_UNREACHABLE = (ConnectionError, TimeoutError, OSError)


def resilient(dsn: str) -> RedisSettings:
    settings = RedisSettings.from_dsn(dsn)
    settings.retry_on_timeout = True
    settings.retry_on_error = [ConnectionError, TimeoutError]
    settings.retry = Retry(ExponentialBackoff(cap=2.0, base=0.1), retries=8)
    return settings


class PatientWorker(Worker):
    """An arq Worker whose poll loop waits for Redis instead of dying without it."""

    _away_since: float | None = None
    heartbeat_path: Path | None = None
    _last_beat: float = 0.0
    _beat_failing: bool = False

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
            self._beat()
        except _UNREACHABLE as exc:
            now = time.monotonic()
            if self._away_since is None:
                self._away_since = now
                log.warning("Redis is unreachable (%s); waiting for it", type(exc).__name__)
            elif int(now - self._away_since) % 30 == 0:
                log.warning("Redis still unreachable after %.0fs", now - self._away_since)
            await asyncio.sleep(1.0)
            return
        if self._away_since is not None:
            log.info("Redis is back after %.0fs", time.monotonic() - self._away_since)
            self._away_since = None

    def _beat(self) -> None:
        now = time.monotonic()
        if self.heartbeat_path is None or now - self._last_beat < heartbeat.BEAT_SECONDS:
            return
        self._last_beat = now
        try:
            heartbeat.write(self.heartbeat_path, f"{socket.gethostname()}:{os.getpid()}")
        except OSError as exc:
            # A full disk must not stop the worker; its health check will say it is unwell.
            if not self._beat_failing:
                log.warning("cannot write the heartbeat %s (%s)", self.heartbeat_path, exc)
            self._beat_failing = True
        else:
            self._beat_failing = False

    async def close(self) -> None:
        if self.heartbeat_path is not None:
            heartbeat.remove(self.heartbeat_path)  # stopping: no longer healthy
        await super().close()


def run_worker(
    settings_cls: WorkerSettingsType, heartbeat_path: Path | None = None, **kwargs: Any
) -> Worker:
    """Like ``arq.worker.run_worker``, with the patient worker (beating ``heartbeat_path``)."""
    worker = PatientWorker(**{**get_kwargs(settings_cls), **kwargs})
    if heartbeat_path is not None:
        heartbeat.remove(heartbeat_path)  # a predecessor's beat proves nothing about this one
        worker.heartbeat_path = heartbeat_path
    worker.run()
    return worker
