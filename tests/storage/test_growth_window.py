"""Growth is a daily rate only once the size samples span a day: minutes of history are
not extrapolated (9 minutes between a first backup and the next once read as 157 GB/day)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.models.base import utcnow
from app.storage.service import growth, record_size
from tests.conftest import Tenant

GB = 10**9


async def _views(client: httpx.AsyncClient, tenant: Tenant, pod_id: uuid.UUID) -> list[object]:
    stats = (await client.get(f"/v1/pods/{pod_id}/stats", headers=tenant.headers)).json()
    status = (await client.get(f"/v1/pods/{pod_id}/status", headers=tenant.headers)).json()
    return [stats["growth_30d"], status["repository_growth_30d"]]


async def test_growth_is_null_until_a_day_of_samples(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    r = await client.post("/v1/pods", json={"name": "p", "app": "a"}, headers=tenant.headers)
    pod_id = uuid.UUID(r.json()["id"])
    now = utcnow()
    async with app.state.sessionmaker() as session:
        await record_size(session, pod_id, "owner", GB, settings, at=now - timedelta(minutes=9))
        await record_size(session, pod_id, "owner", 2 * GB, settings, at=now)
        await session.commit()
        assert await growth(session, pod_id, "owner", now=now) is None
    assert await _views(client, tenant, pod_id) == [None, None]

    async with app.state.sessionmaker() as session:  # 23 hours back: still short of a day
        await record_size(session, pod_id, "owner", GB // 2, settings, at=now - timedelta(hours=23))
        await session.commit()
    assert await _views(client, tenant, pod_id) == [None, None]

    async with app.state.sessionmaker() as session:  # 2 days back: a rate over 2 days
        await record_size(session, pod_id, "owner", GB // 4, settings, at=now - timedelta(days=2))
        await session.commit()
        found = await growth(session, pod_id, "owner", now=now)
    assert found is not None
    assert found.bytes == 2 * GB - GB // 4
    assert found.bytes_per_day == pytest.approx((2 * GB - GB // 4) / 2, rel=1e-3)
    stats_growth, status_growth = await _views(client, tenant, pod_id)
    assert stats_growth == status_growth
    assert isinstance(stats_growth, dict)
    assert stats_growth["days"] == pytest.approx(2, abs=0.01)
    assert stats_growth["bytes_per_day"] == pytest.approx((2 * GB - GB // 4) / 2, rel=1e-3)
