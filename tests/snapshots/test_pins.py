"""Pins through the API: pin, re-pin, unpin, the list's `pinned` filter, expiry, the audit
trail, tenancy and the platform plan. (Retention keeping pinned snapshots: tests/retention.)"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import update

from app.models import Snapshot
from tests.conftest import Tenant, auth
from tests.pods.test_pods import create_pod


async def _snapshots(app: FastAPI, pod_id: str, count: int) -> list[str]:
    now = datetime.now(UTC)
    ids = [f"{i:02d}" + "b" * 62 for i in range(count)]
    async with app.state.sessionmaker() as session:
        for i, ident in enumerate(ids):
            session.add(
                Snapshot(
                    pod_id=uuid.UUID(pod_id),
                    plan="owner",
                    id=ident,
                    short_id=ident[:8],
                    time=now - timedelta(hours=i),
                    hostname=pod_id,
                    paths=["/stage/files"],
                    tags=["trigger:manual"],
                )
            )
        await session.commit()
    return ids


async def _list(client: httpx.AsyncClient, tenant: Tenant, pod_id: str, query: str = "") -> Any:
    r = await client.get(f"/v1/pods/{pod_id}/snapshots{query}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_pin_unpin_list_filter_and_audit(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    admin_token: str,
    app: FastAPI,
) -> None:
    pod = await create_pod(client, tenant)
    ids = await _snapshots(app, pod["id"], 3)
    url = f"/v1/pods/{pod['id']}/snapshots"

    listed = await _list(client, tenant, pod["id"])
    assert [(s["pinned"], s["pin"]) for s in listed["items"]] == [(False, None)] * 3

    before = datetime.now(UTC)
    r = await client.put(
        f"{url}/{ids[2][:8]}/pin",
        json={"note": "  keep: before the import  ", "days": 10},
        headers=tenant.headers,
    )
    assert r.status_code == 200, r.text
    snap = r.json()
    assert snap["id"] == ids[2]
    assert snap["pinned"] is True
    assert snap["pin"]["note"] == "keep: before the import"
    assert snap["pin"]["by"] == "account"
    until = datetime.fromisoformat(snap["pin"]["until"])
    assert before + timedelta(days=10) <= until <= datetime.now(UTC) + timedelta(days=10)

    # No body: pinned until unpinned; pinning again replaces the pin (shorter is allowed).
    r = await client.put(f"{url}/{ids[0]}/pin", headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert r.json()["pin"]["until"] is None
    assert r.json()["pin"]["note"] is None
    r = await client.put(f"{url}/{ids[0]}/pin", json={"days": 1}, headers=tenant.headers)
    assert r.json()["pin"]["until"] is not None

    pinned = await _list(client, tenant, pod["id"], "?pinned=true")
    assert [s["id"] for s in pinned["items"]] == [ids[0], ids[2]]
    assert pinned["pagination"]["total_count"] == 2
    assert pinned["items"][1]["pin"]["note"] == "keep: before the import"
    unpinned = await _list(client, tenant, pod["id"], "?pinned=false")
    assert [s["id"] for s in unpinned["items"]] == [ids[1]]
    one = (await client.get(f"{url}/{ids[2]}", headers=tenant.headers)).json()
    assert one["pinned"] is True
    assert one["pin"]["note"] == "keep: before the import"

    r = await client.delete(f"{url}/{ids[2]}/pin", headers=tenant.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["pinned"], r.json()["pin"]) == (False, None)
    pinned = await _list(client, tenant, pod["id"], "?pinned=true")
    assert [s["id"] for s in pinned["items"]] == [ids[0]]

    # An expired pin is no pin: not shown, not listed as pinned.
    async with app.state.sessionmaker() as session:
        await session.execute(
            update(Snapshot)
            .where(Snapshot.id == ids[0])
            .values(pinned_until=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    assert (await _list(client, tenant, pod["id"], "?pinned=true"))["items"] == []
    one = (await client.get(f"{url}/{ids[0]}", headers=tenant.headers)).json()
    assert (one["pinned"], one["pin"]) == (False, None)

    r = await client.get(f"/v1/audit?pod_id={pod['id']}&limit=100", headers=auth(admin_token))
    actions = [(e["action"], e["detail"]["snapshot_id"]) for e in r.json()["items"]
               if e["action"].startswith("snapshot.")]  # fmt: skip
    assert sorted(actions) == sorted(
        [
            ("snapshot.pin", ids[2]),
            ("snapshot.pin", ids[0]),
            ("snapshot.pin", ids[0]),
            ("snapshot.unpin", ids[2]),
        ]
    )
    [unpin] = [e for e in r.json()["items"] if e["action"] == "snapshot.unpin"]
    assert unpin["detail"]["note"] == "keep: before the import"  # the pin it removed

    # Another account's pod answers like a missing one; so does a missing snapshot.
    r = await client.put(f"{url}/{ids[1]}/pin", headers=other_tenant.headers)
    assert r.status_code == 404
    r = await client.delete(f"{url}/{ids[1]}/pin", headers=other_tenant.headers)
    assert r.status_code == 404
    r = await client.put(f"{url}/{'c' * 64}/pin", headers=tenant.headers)
    assert r.status_code == 404
    assert "hint" in r.json()
    # The platform plan is the operator's.
    r = await client.put(f"{url}/{ids[1]}/pin?plan=platform", headers=tenant.headers)
    assert r.status_code == 404
    # Admins pin an account's snapshot like its owner.
    r = await client.put(f"{url}/{ids[1]}/pin", headers=auth(admin_token))
    assert r.status_code == 200
    assert r.json()["pin"]["by"] == "admin"


async def test_pin_body_is_validated(
    client: httpx.AsyncClient, tenant: Tenant, app: FastAPI
) -> None:
    pod = await create_pod(client, tenant)
    (ident,) = await _snapshots(app, pod["id"], 1)
    url = f"/v1/pods/{pod['id']}/snapshots/{ident}/pin"
    for body in (
        {"note": "x" * 501},
        {"note": "bell \x07 rings"},
        {"days": 0},
        {"days": "soon"},
        {"until": "tomorrow"},
    ):
        r = await client.put(url, json=body, headers=tenant.headers)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]
    r = await client.put(url, json={"note": "x" * 500, "days": None}, headers=tenant.headers)
    assert r.status_code == 200
    r = await client.put(f"/v1/pods/{pod['id']}/snapshots/not-hex/pin", headers=tenant.headers)
    assert r.status_code == 422
