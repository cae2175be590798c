"""Fixtures of the retention, checks, storage and stale tests (imported by their conftests):
real S3 (moto), SFTP, PostgreSQL pods, drill servers on the local machine, a worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from tests.fixtures.databases import MYSQL_URL, PG_SERVER
from tests.fixtures.worker import WorkerProcess


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """Local kinds under tmp_path, quick retries, and the machine's servers as drill
    servers for trial restores."""
    return settings.model_copy(
        update={
            "local_roots": [tmp_path],
            "job_max_attempts": 2,
            "job_stale_seconds": 4.0,
            "storage_stall_seconds": 8.0,
            "job_cancel_grace_seconds": 3.0,
            "drill_postgres_url": PG_SERVER,
            "drill_mysql_url": MYSQL_URL,
        }
    )


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(settings, tmp_path / "worker").start()
    yield proc
    proc.stop()
