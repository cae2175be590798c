from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from tests.fixtures.databases import mysql_pod, pg_cluster, pg_pod  # noqa: F401
from tests.fixtures.s3 import s3_bucket, s3_iam_bucket, s3_iam_server, s3_server  # noqa: F401
from tests.fixtures.sftp import sftp_server  # noqa: F401
from tests.fixtures.worker import WorkerProcess


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """Local sources and targets allowed under tmp_path; quick retries and failure
    detection so fault scenarios finish in seconds."""
    return settings.model_copy(
        update={
            "local_roots": [tmp_path],
            "job_max_attempts": 2,
            "job_stale_seconds": 4.0,
            "storage_stall_seconds": 8.0,
            "job_cancel_grace_seconds": 3.0,
        }
    )


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(settings, tmp_path / "worker").start()
    yield proc
    proc.stop()
