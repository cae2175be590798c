from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.config import Settings
from tests.fixtures.worker import WorkerProcess


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """Local sources and targets allowed under tmp_path (admin-only kinds)."""
    return settings.model_copy(update={"local_roots": [tmp_path]})


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(settings, tmp_path / "worker").start()
    yield proc
    proc.stop()
