"""A real arq worker under the service's logging: its cron lines at DEBUG, real jobs at INFO."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from arq import cron
from arq.connections import RedisSettings, create_pool
from arq.worker import Worker

from app.kit.logging import setup_logging
from tests.conftest import REDIS_URL


async def tick(ctx: dict[str, Any]) -> dict[str, int]:
    return {"claimed": 0}


async def work(ctx: dict[str, Any]) -> str:
    return "done"


@pytest.fixture
def root_logging(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """setup_logging changes the process's logging: put it back for the other tests."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    names = ("arq.worker", "botocore", "aiobotocore", "asyncssh", "httpx", "httpcore")
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, was in levels.items():
        logging.getLogger(name).setLevel(was)
    logging.getLogger("arq.worker").filters.clear()


async def _run_worker(queue: str, caplog: pytest.LogCaptureFixture) -> int:
    """Run a worker until it finished the job and two ticks; how many jobs it ran."""
    logging.getLogger().addHandler(caplog.handler)  # setup_logging replaced the handlers
    caplog.handler.setLevel(logging.NOTSET)
    settings = RedisSettings.from_dsn(REDIS_URL)
    pool = await create_pool(settings)
    await pool.enqueue_job("work", _queue_name=queue)
    worker = Worker(
        functions=[work],  # type: ignore[list-item]
        cron_jobs=[cron(tick, second=set(range(60)), run_at_startup=True)],  # type: ignore[arg-type]
        redis_settings=settings,
        queue_name=queue,
        poll_delay=0.05,
        handle_signals=False,
        health_check_interval=0.2,
    )
    task = asyncio.create_task(worker.async_run())
    for _ in range(60):
        await asyncio.sleep(0.1)
        if worker.jobs_complete >= 3:  # the job and at least two ticks
            break
    task.cancel()
    await worker.close()
    await pool.delete(queue)
    await pool.aclose()
    return worker.jobs_complete


def _arq(caplog: pytest.LogCaptureFixture, needle: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "arq.worker" and needle in r.getMessage()]


@pytest.mark.usefixtures("root_logging")
async def test_cron_lines_are_debug_and_hidden_at_info(
    run_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    setup_logging("INFO", "text")
    assert await _run_worker(f"podbackup-test:cronlog:{run_id}", caplog) >= 3
    started = _arq(caplog, "→ ")
    assert started, "the worker logged no job starts at all"
    assert all("cron:" not in r.getMessage() for r in started)
    assert [r.levelname for r in _arq(caplog, ":work")] == ["INFO", "INFO"]  # → and ←
    assert _arq(caplog, "→ cron:tick") == []
    assert _arq(caplog, "← cron:tick") == []
    assert _arq(caplog, "recording health") == []


@pytest.mark.usefixtures("root_logging")
async def test_cron_lines_show_at_debug(run_id: str, caplog: pytest.LogCaptureFixture) -> None:
    setup_logging("DEBUG", "json")
    assert await _run_worker(f"podbackup-test:cronlog:{run_id}", caplog) >= 3
    ticks = _arq(caplog, "→ cron:tick") + _arq(caplog, "← cron:tick")
    assert len(ticks) >= 4
    assert {r.levelname for r in ticks} == {"DEBUG"}
    assert {r.levelname for r in _arq(caplog, ":work")} == {"INFO"}
