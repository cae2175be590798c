from __future__ import annotations

import asyncpg
import httpx

from app.auth.tokens import hash_token
from tests.conftest import Tenant, auth


async def test_admin_creates_accounts_and_tokens(
    client: httpx.AsyncClient, admin_token: str, database_url: str
) -> None:
    r = await client.post("/v1/accounts", json={"name": "acme"}, headers=auth(admin_token))
    assert r.status_code == 201
    account_id = r.json()["id"]
    r = await client.post(
        f"/v1/accounts/{account_id}/tokens", json={"name": "panel"}, headers=auth(admin_token)
    )
    assert r.status_code == 201
    token = r.json()["token"]
    me = await client.get("/v1/me", headers=auth(token))
    assert me.json() == {"token_id": r.json()["id"], "scope": "account", "account_id": account_id}

    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        rows = await conn.fetch("SELECT token_hash FROM api_tokens")
    finally:
        await conn.close()
    stored = {row["token_hash"] for row in rows}
    assert hash_token(token) in stored
    assert token not in stored

    listing = await client.get(f"/v1/accounts/{account_id}/tokens", headers=auth(admin_token))
    assert listing.json()["pagination"]["total_count"] == 1
    assert token not in listing.text

    accounts = await client.get("/v1/accounts?limit=1", headers=auth(admin_token))
    assert accounts.json()["pagination"] == {"total_count": 1, "max_page": 1}


async def test_auth_errors(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.get("/v1/pods")
    assert r.status_code == 401
    assert r.json()["error"] == "Unauthorized"
    assert "hint" in r.json()
    r = await client.get("/v1/pods", headers=auth("pbk_00000000_not-a-real-token"))
    assert r.status_code == 401
    r = await client.get("/v1/accounts", headers=tenant.headers)
    assert r.status_code == 403
    assert r.json()["error"] == "Forbidden"


async def test_revoked_token_is_refused(client: httpx.AsyncClient, tenant: Tenant) -> None:
    me = (await client.get("/v1/me", headers=tenant.headers)).json()
    r = await client.delete(f"/v1/tokens/{me['token_id']}", headers=tenant.headers)
    assert r.status_code == 204
    assert (await client.get("/v1/me", headers=tenant.headers)).status_code == 401


async def test_account_cannot_revoke_other_accounts_token(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    other = (await client.get("/v1/me", headers=other_tenant.headers)).json()
    r = await client.delete(f"/v1/tokens/{other['token_id']}", headers=tenant.headers)
    assert r.status_code == 404
    assert (await client.get("/v1/me", headers=other_tenant.headers)).status_code == 200


async def test_failed_auth_is_rate_limited(client: httpx.AsyncClient, app: object) -> None:
    limit = app.state.settings.auth_fail_limit  # type: ignore[attr-defined]
    for _ in range(limit):
        assert (await client.get("/v1/me", headers=auth("wrong"))).status_code == 401
    r = await client.get("/v1/me", headers=auth("wrong"))
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "60"
