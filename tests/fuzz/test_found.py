"""What the fuzzer found, pinned as plain regression tests (each was a 500 or an
undocumented answer before its fix)."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI

from tests.conftest import Tenant, auth


def assert_envelope(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body["error"], str)
    assert body["detail"]
    assert body.get("hint")
    return body


async def test_nul_characters_are_bad_input_not_a_server_error(
    client: httpx.AsyncClient, admin_token: str, tenant: Tenant
) -> None:
    r = await client.post("/v1/accounts", json={"name": "a\u0000b"}, headers=auth(admin_token))
    assert assert_envelope(r, 422)["error"] == "ValidationFailed"
    r = await client.post("/v1/pods", json={"name": "p", "app": "a"}, headers=tenant.headers)
    pod = r.json()["id"]
    r = await client.get(
        f"/v1/pods/{pod}/audit", params={"action": "x\x00"}, headers=tenant.headers
    )
    assert_envelope(r, 422)
    r = await client.patch(f"/v1/pods/{pod}", json={"name": "\u0000"}, headers=tenant.headers)
    assert_envelope(r, 422)
    # Nothing half-written: the pod keeps its name.
    assert (await client.get(f"/v1/pods/{pod}", headers=tenant.headers)).json()["name"] == "p"


async def test_a_body_that_is_not_json_is_a_validation_error(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    r = await client.post(
        "/v1/pods",
        content=b"\xff{not json",
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    body = assert_envelope(r, 422)
    assert body["error"] == "ValidationFailed"


async def test_a_garbled_export_signature_is_refused_not_a_crash(
    client: httpx.AsyncClient,
) -> None:
    r = await client.get(
        f"/v1/exports/{uuid.uuid4()}/download",
        params={"expires": 0, "signature": "0" * 63 + "\u0080"},
    )
    assert_envelope(r, 403)


def test_platform_backup_refusal_is_documented(app: FastAPI) -> None:
    op = app.openapi()["paths"]["/v1/pods/{pod_id}/backups"]["post"]
    assert "403" in op["responses"]
