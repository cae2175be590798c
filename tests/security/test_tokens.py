"""Tokens and the audit trail.

Review of app/auth: tokens are 256-bit random, stored only as SHA-256; a presented
token is hashed and looked up by that digest (a unique index), so no comparison runs
over a secret byte by byte, and the digest is compared once more with
``secrets.compare_digest``. The tests below pin that down: the plaintext never reaches
the database (not as a stored column, not as a query parameter), revocation takes effect
at once, failed authentications are rate limited per client address, and every
sensitive action leaves an audit entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event, select

from app.auth import tokens
from app.config import Settings
from app.models import ApiToken
from tests.conftest import Tenant, auth
from tests.security.world import World, build_world


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"auth_fail_limit": 5})


@pytest.fixture
async def world(app: FastAPI, client: httpx.AsyncClient) -> World:
    return await build_world(client, app.state.sessionmaker)


@pytest.fixture
def statements(app: FastAPI) -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement the app sends, with its parameters."""
    seen: list[tuple[str, Any]] = []

    def record(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


async def test_tokens_are_looked_up_by_their_hash_only(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, statements: list[tuple[str, Any]]
) -> None:
    statements.clear()
    r = await client.get("/v1/me", headers=tenant.headers)
    assert r.status_code == 200
    digest = hashlib.sha256(tenant.token.encode()).hexdigest()
    sent = " ".join(f"{s} {p!r}" for s, p in statements)
    assert digest in sent  # looked up by its digest ...
    assert "token_hash" in sent
    assert tenant.token not in sent  # ... never by its value
    async with app.state.sessionmaker() as session:
        rows = (await session.scalars(select(ApiToken))).all()
    stored = " ".join(repr(vars(row)) for row in rows)
    assert tenant.token not in stored
    assert digest in stored
    assert tokens.hash_token(tenant.token) == digest
    # A token differing in one character is simply another digest: no partial match.
    wrong = tenant.token[:-1] + ("A" if tenant.token[-1] != "A" else "B")
    async with app.state.sessionmaker() as session:
        assert await tokens.find_active(session, wrong) is None
        assert await tokens.find_active(session, tenant.token) is not None


async def test_revoked_tokens_stop_working_at_once(client: httpx.AsyncClient, world: World) -> None:
    a = world.a
    spare = {"Authorization": f"Bearer {a.secrets['spare_token']}"}
    assert (await client.get("/v1/me", headers=spare)).status_code == 200
    # An account revokes its own token; the admin revokes any.
    r = await client.delete(f"/v1/tokens/{a.ids['token_id']}", headers=a.headers)
    assert r.status_code == 204, r.text
    r = await client.get("/v1/pods", headers=spare)
    assert r.status_code == 401
    assert r.json()["error"] == "Unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"
    me = (await client.get("/v1/me", headers=a.headers)).json()
    r = await client.delete(f"/v1/tokens/{me['token_id']}", headers=auth(world.admin_token))
    assert r.status_code == 204
    assert (await client.get("/v1/me", headers=a.headers)).status_code == 401
    # Revoked stays revoked, and the other account is untouched.
    r = await client.delete(f"/v1/tokens/{a.ids['token_id']}", headers=auth(world.admin_token))
    assert r.status_code in (204, 404)
    assert (await client.get("/v1/me", headers=world.b.headers)).status_code == 200


async def test_failed_authentications_are_rate_limited_per_client(
    app: FastAPI, tenant: Tenant
) -> None:
    def client_from(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://podbackup.test")

    async with client_from("203.0.113.7") as attacker, client_from("203.0.113.8") as other:
        for i in range(5):
            r = await attacker.get("/v1/pods", headers=auth(f"pbk_deadbeef_guess{i}"))
            assert r.status_code == 401, r.text
        r = await attacker.get("/v1/pods", headers=auth("pbk_deadbeef_guess-last"))
        assert r.status_code == 429
        assert r.json()["error"] == "TooManyRequests"
        assert r.json()["hint"]
        assert r.headers["retry-after"]
        # Guessing stays blocked while the window lasts; a valid token still works
        # (tests/security/test_api_edges.py has the details).
        assert (
            await attacker.get("/v1/pods", headers=auth("pbk_deadbeef_more"))
        ).status_code == 429
        assert (await attacker.get("/v1/pods", headers=tenant.headers)).status_code == 200
        # Another client is not affected.
        assert (await other.get("/v1/pods", headers=tenant.headers)).status_code == 200


async def test_sensitive_actions_are_audited(client: httpx.AsyncClient, world: World) -> None:
    a = world.a
    pod, h = a.ids["pod_id"], a.headers
    assert (await client.get(f"/v1/pods/{pod}/restore-kit", headers=h)).status_code == 200
    r = await client.post(
        f"/v1/pods/{pod}/restores", json={"snapshot_id": a.ids["snapshot_id"]}, headers=h
    )
    assert r.status_code == 202, r.text
    restore_job = r.json()["id"]
    r = await client.put(
        f"/v1/pods/{pod}/backup-settings", json={"schedule": {"enabled": False}}, headers=h
    )
    assert r.status_code == 200, r.text
    assert (
        await client.patch(f"/v1/pods/{pod}", json={"name": "n2"}, headers=h)
    ).status_code == 200
    assert (
        await client.delete(f"/v1/webhooks/{a.ids['webhook_id']}", headers=h)
    ).status_code == 204
    assert (await client.delete(f"/v1/tokens/{a.ids['token_id']}", headers=h)).status_code == 204
    assert (await client.delete(f"/v1/pods/{pod}/backup-settings", headers=h)).status_code == 204
    assert (await client.delete(f"/v1/pods/{pod}", headers=h)).status_code == 204

    r = await client.get("/v1/audit?limit=200", headers=auth(world.admin_token))
    assert r.status_code == 200
    mine = [e for e in r.json()["items"] if e["account_id"] == a.ids["account_id"]]
    actions = {e["action"] for e in mine}
    assert {
        "restore_kit.read",
        "restore.create",
        "backup_settings.create",
        "backup_settings.update",
        "backup_settings.delete",
        "pod.update",
        "pod.delete",
        "webhook.delete",
        "token.revoke",
    } <= actions, actions
    by_action = {e["action"]: e for e in mine}
    assert by_action["restore.create"]["detail"]["job_id"] == restore_job
    assert by_action["restore_kit.read"]["token_id"]  # who read the password
    assert by_action["pod.delete"]["pod_id"] == pod  # kept after the pod is gone
    # The trail never holds a secret, and account B sees none of A's entries.
    text = r.text
    for value in a.secrets.values():
        assert value not in text
    r = await client.get(f"/v1/pods/{world.b.ids['pod_id']}/audit", headers=world.b.headers)
    assert a.ids["account_id"] not in r.text
