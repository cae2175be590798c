"""Fault scenarios run against real worker processes, with quick retries and quick
failure detection so every bad night plays out in seconds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from tests.fixtures.databases import pg_cluster, pg_pod  # noqa: F401
from tests.fixtures.s3 import s3_bucket, s3_server  # noqa: F401
from tests.fixtures.sftp import sftp_server  # noqa: F401
from tests.fixtures.worker import WorkerProcess


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={
            "local_roots": [tmp_path],
            "job_max_attempts": 2,
            "job_stale_seconds": 4.0,
            "storage_stall_seconds": 8.0,
            "job_cancel_grace_seconds": 3.0,
            "http_timeout_seconds": 60.0,  # hooks held open by a test gate must not time out
            "argv_log": tmp_path / "argv.jsonl",
        }
    )


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(settings, tmp_path / "worker").start()
    yield proc
    proc.stop()
