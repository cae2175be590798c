from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.kit import subprocess as sp
from app.kit.netpolicy import Policy
from tests.fixtures.databases import mysql_pod, pg_cluster, pg_pod  # noqa: F401


@pytest.fixture
def policy() -> Policy:
    return Policy.from_settings(["127.0.0.0/8"])


@pytest.fixture
def argv_log(tmp_path: Path) -> Iterator[Path]:
    """Every argv spawned during the test, one JSON line each."""
    path = tmp_path / "argv.jsonl"
    sp.set_argv_log(path)
    yield path
    sp.set_argv_log(None)
