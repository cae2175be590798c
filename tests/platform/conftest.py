from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from tests.fixtures.databases import pg_cluster, pg_pod  # noqa: F401
from tests.fixtures.worker import WorkerProcess


@pytest.fixture(params=["per_pod", "shared"])
def layout(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(settings: Settings, tmp_path: Path, layout: str) -> Settings:
    return settings.model_copy(
        update={
            "local_roots": [tmp_path],
            "platform_repository": str(tmp_path / "platform-repo"),
            "platform_password": "platform-repository-password-for-tests",
            "platform_layout": layout,
        }
    )


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(settings, tmp_path / "worker").start()
    yield proc
    proc.stop()
