"""PODBACKUP_ACCESS_LOG: one line per request by route template, or none at all."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.fixtures.database import truncate_all

POD = uuid.uuid4()


async def _requests(settings: Settings, database_url: str) -> None:
    await truncate_all(database_url)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            assert (await c.get("/healthz")).status_code == 200
            r = await c.get(
                f"/v1/pods/{POD}?token=query-secret-value",
                headers={"Authorization": "Bearer not-a-real-token-value"},
            )
            assert r.status_code == 401


async def test_access_log_on(
    settings: Settings, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    on = settings.model_copy(update={"access_log": True})
    with caplog.at_level(logging.INFO, logger="podbackup.access"):
        await _requests(on, database_url)
    lines = [r for r in caplog.records if r.name == "podbackup.access"]
    assert [r.levelno for r in lines] == [logging.INFO, logging.INFO]
    assert lines[0].getMessage().startswith("GET /healthz 200 ")
    assert lines[1].getMessage().startswith("GET /v1/pods/{pod_id} 401 ")
    assert lines[1].getMessage().endswith("ms")
    text = caplog.text
    for secret in (str(POD), "query-secret-value", "not-a-real-token-value", "token="):
        assert secret not in text


async def test_access_log_off_by_default(
    settings: Settings, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert settings.access_log is False
    with caplog.at_level(logging.DEBUG, logger="podbackup.access"):
        await _requests(settings, database_url)
    assert [r for r in caplog.records if r.name == "podbackup.access"] == []
