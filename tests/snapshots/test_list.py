"""The snapshot list (one statement on the hot path): order, pages, tag filter, tenancy."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI

from app.models import Snapshot
from tests.conftest import Tenant
from tests.pods.test_pods import create_pod


async def test_pages_newest_first_with_tag_filter(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, app: FastAPI
) -> None:
    pod = await create_pod(client, tenant)
    now = datetime.now(UTC)
    async with app.state.sessionmaker() as session:
        for i in range(7):
            session.add(
                Snapshot(
                    pod_id=uuid.UUID(pod["id"]),
                    plan="owner",
                    id=f"{i:02d}" + "a" * 62,
                    short_id=f"{i:02d}aaaaaa",
                    time=now - timedelta(hours=i),
                    hostname=pod["id"],
                    paths=["/stage/files"],
                    tags=["trigger:schedule" if i % 2 else "trigger:manual"],
                )
            )
        await session.commit()
    url = f"/v1/pods/{pod['id']}/snapshots"
    first = (await client.get(f"{url}?limit=3", headers=tenant.headers)).json()
    assert [s["short_id"][:2] for s in first["items"]] == ["00", "01", "02"]
    assert first["pagination"] == {"total_count": 7, "max_page": 3}
    last = (await client.get(f"{url}?limit=3&page=3", headers=tenant.headers)).json()
    assert [s["short_id"][:2] for s in last["items"]] == ["06"]
    beyond = (await client.get(f"{url}?limit=3&page=9", headers=tenant.headers)).json()
    assert beyond["items"] == []
    assert beyond["pagination"]["total_count"] == 7
    manual = (await client.get(f"{url}?tag=trigger:manual", headers=tenant.headers)).json()
    assert [s["short_id"][:2] for s in manual["items"]] == ["00", "02", "04", "06"]
    assert manual["items"][0]["tags"] == ["trigger:manual"]
    assert (await client.get(url, headers=other_tenant.headers)).status_code == 404
    empty = await create_pod(client, tenant, name="empty")
    r = await client.get(f"/v1/pods/{empty['id']}/snapshots", headers=tenant.headers)
    assert r.json() == {"items": [], "pagination": {"total_count": 0, "max_page": 1}}
