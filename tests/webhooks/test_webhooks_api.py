"""Webhook endpoints: tenancy, the write-only secret, validation and the address policy."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.kit.crypto import Keyring
from app.models.encrypted import WEBHOOK_SECRET
from tests.conftest import Tenant, auth
from tests.webhooks.conftest import create_webhook

URL = "https://hooks.example.com/podbackup"  # never connected to by these tests
GIVEN_SECRET = "my-own-signing-secret-0123456789"


async def _raw_row(database_url: str, webhook_id: str) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        row = await conn.fetchrow("SELECT * FROM webhooks WHERE id = $1", uuid.UUID(webhook_id))
    finally:
        await conn.close()
    assert row is not None
    return dict(row)


async def test_generated_secret_is_shown_once_and_stored_encrypted(
    client: httpx.AsyncClient, tenant: Tenant, app: FastAPI, database_url: str
) -> None:
    created = await create_webhook(client, tenant, URL, events=["job.failed", "backup.stale"])
    secret = created["secret"]
    assert secret
    assert secret.startswith("whsec_")
    assert len(secret) > 30
    assert created["secret_set"] is True
    assert created["account_id"] == str(tenant.account_id)
    assert created["events"] == ["job.failed", "backup.stale"]

    one = await client.get(f"/v1/webhooks/{created['id']}", headers=tenant.headers)
    listed = await client.get("/v1/webhooks", headers=tenant.headers)
    assert one.status_code == 200
    assert listed.status_code == 200
    assert "secret" not in one.json()
    assert one.json()["secret_set"] is True
    assert listed.json()["pagination"] == {"total_count": 1, "max_page": 1}
    for text in (one.text, listed.text):
        assert secret not in text

    row = await _raw_row(database_url, created["id"])
    assert secret not in " ".join(str(v) for v in row.values())
    assert row["secret"].startswith("v1:test1:")
    keyring: Keyring = app.state.keyring
    assert (
        keyring.decrypt(row["secret"], WEBHOOK_SECRET.context(uuid.UUID(created["id"]))) == secret
    )


async def test_given_secret_is_never_echoed(
    client: httpx.AsyncClient, tenant: Tenant, app: FastAPI, database_url: str
) -> None:
    created = await create_webhook(client, tenant, URL, secret=GIVEN_SECRET)
    assert created["secret"] is None
    assert GIVEN_SECRET not in str(created)
    row = await _raw_row(database_url, created["id"])
    assert GIVEN_SECRET not in " ".join(str(v) for v in row.values())
    assert app.state.keyring.decrypt(row["secret"], f"webhook:{created['id']}") == GIVEN_SECRET


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": URL, "events": ["job.exploded"]}, "events"),
        ({"url": "ftp://hooks.example.com/x"}, "url"),
        ({"url": "https://user:pw@hooks.example.com/x"}, "url"),
        ({"url": URL, "secret": "short"}, "secret"),
        ({"url": URL, "colour": "red"}, "colour"),
        ({"url": "http://93.184.216.34/hook"}, "url"),  # plain http outside the allow-list
    ],
)
async def test_bad_bodies_are_422_naming_the_field(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    r = await client.post("/v1/webhooks", json=body, headers=tenant.headers)
    assert r.status_code == 422, r.text
    data = r.json()
    assert data["error"] in ("ValidationFailed", "OutboundAddressRefused")
    assert any(field in [str(p) for p in err["loc"]] for err in data["detail"]), data
    assert data["hint"]
    assert "pw@" not in r.text


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:8443/hook",
        "https://localhost/hook",
        "https://169.254.169.254/latest",
        "https://10.1.2.3/hook",
        "https://[::1]/hook",
        "https://metadata.google.internal/x",
    ],
)
async def test_refused_addresses_without_allow_list(
    client: httpx.AsyncClient, tenant: Tenant, app: FastAPI, url: str
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"allow_networks": []})
    r = await client.post("/v1/webhooks", json={"url": url}, headers=tenant.headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "OutboundAddressRefused"
    assert r.json()["detail"][0]["loc"] == ["body", "url"]
    assert "this service does not connect to it" in r.json()["detail"][0]["msg"]


async def test_plain_http_inside_allow_list_is_accepted(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await create_webhook(client, tenant, "http://127.0.0.1:9/hook")
    assert created["url"] == "http://127.0.0.1:9/hook"


async def test_tenant_isolation(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, admin_token: str
) -> None:
    mine = await create_webhook(client, tenant, URL)
    theirs = await create_webhook(client, other_tenant, URL + "/b")
    base = f"/v1/webhooks/{mine['id']}"
    for method, path in [
        ("GET", base),
        ("GET", f"{base}/deliveries"),
        ("POST", f"{base}/test"),
        ("DELETE", base),
    ]:
        r = await client.request(method, path, headers=other_tenant.headers)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"] == "NotFound"
    r = await client.get(f"/v1/webhooks/{uuid.uuid4()}", headers=tenant.headers)
    assert r.status_code == 404

    listed = (await client.get("/v1/webhooks", headers=other_tenant.headers)).json()
    assert [h["id"] for h in listed["items"]] == [theirs["id"]]
    # an account token cannot widen its list with account_id
    r = await client.get(
        "/v1/webhooks", params={"account_id": str(tenant.account_id)}, headers=other_tenant.headers
    )
    assert [h["id"] for h in r.json()["items"]] == [theirs["id"]]
    # nor create in another account
    r = await client.post(
        "/v1/webhooks",
        json={"url": URL, "account_id": str(tenant.account_id)},
        headers=other_tenant.headers,
    )
    assert r.status_code == 422

    admin = auth(admin_token)
    everything = (await client.get("/v1/webhooks", headers=admin)).json()
    assert {h["id"] for h in everything["items"]} == {mine["id"], theirs["id"]}
    only_a = await client.get(
        "/v1/webhooks", params={"account_id": str(tenant.account_id)}, headers=admin
    )
    assert [h["id"] for h in only_a.json()["items"]] == [mine["id"]]
    assert (await client.get(base, headers=admin)).status_code == 200


async def test_admin_must_name_the_account(
    client: httpx.AsyncClient, tenant: Tenant, admin_token: str
) -> None:
    r = await client.post("/v1/webhooks", json={"url": URL}, headers=auth(admin_token))
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "account_id"]
    r = await client.post(
        "/v1/webhooks",
        json={"url": URL, "account_id": str(tenant.account_id)},
        headers=auth(admin_token),
    )
    assert r.status_code == 201
    assert r.json()["account_id"] == str(tenant.account_id)


async def test_delete_is_audited_and_final(
    client: httpx.AsyncClient, tenant: Tenant, database_url: str
) -> None:
    created = await create_webhook(client, tenant, URL)
    r = await client.post(f"/v1/webhooks/{created['id']}/test", headers=tenant.headers)
    assert r.status_code == 202
    r = await client.delete(f"/v1/webhooks/{created['id']}", headers=tenant.headers)
    assert r.status_code == 204
    assert (
        await client.get(f"/v1/webhooks/{created['id']}", headers=tenant.headers)
    ).status_code == 404
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        actions = [
            r["action"]
            for r in await conn.fetch(
                "SELECT action FROM audit_events WHERE account_id = $1 ORDER BY id",
                tenant.account_id,
            )
        ]
        left = await conn.fetchval("SELECT count(*) FROM webhook_deliveries")
    finally:
        await conn.close()
    assert actions[-2:] == ["webhook.create", "webhook.delete"]
    assert left == 0  # its pending deliveries went with it


async def test_per_account_limit_is_409(
    client: httpx.AsyncClient, tenant: Tenant, app: FastAPI
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"webhook_max_per_account": 2})
    for i in range(2):
        await create_webhook(client, tenant, f"{URL}/{i}")
    r = await client.post("/v1/webhooks", json={"url": URL}, headers=tenant.headers)
    assert r.status_code == 409
    assert r.json()["hint"]


async def test_test_event_is_queued_and_listed(client: httpx.AsyncClient, tenant: Tenant) -> None:
    created = await create_webhook(client, tenant, URL, events=["job.failed"])
    r = await client.post(f"/v1/webhooks/{created['id']}/test", headers=tenant.headers)
    assert r.status_code == 202, r.text
    queued = r.json()
    assert queued["event"] == "webhook.test"
    assert queued["status"] == "pending"
    assert queued["payload"]["id"] == queued["id"]
    r = await client.get(f"/v1/webhooks/{created['id']}/deliveries", headers=tenant.headers)
    assert r.status_code == 200
    page = r.json()
    assert [d["id"] for d in page["items"]] == [queued["id"]]
    assert page["items"][0]["attempt_log"] == []
    r = await client.get(
        f"/v1/webhooks/{created['id']}/deliveries",
        params={"status": "delivered"},
        headers=tenant.headers,
    )
    assert r.json()["items"] == []
