from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.kit.crypto import Keyring
from app.models import Pod
from app.pods.service import decrypt_secrets
from tests.conftest import Tenant, auth

SFTP_PASSWORD = "sftp-Pa55word-xyzzy"
DB_PASSWORD = "db-Pa55word-plugh"
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot-a-real-key-but-secret\n-----END"


def pod_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "wiki",
        "app": "wikijs",
        "files": {
            "kind": "sftp",
            "host": "127.0.0.1",
            "port": 2222,
            "username": "pod",
            "password": SFTP_PASSWORD,
            "private_key": PRIVATE_KEY,
            "path": "/data",
        },
        "database": {
            "kind": "postgres",
            # Not 127.0.0.1: its port 5432 is the control database, which pods never reach.
            "host": "127.0.0.2",
            "name": "wiki",
            "username": "wiki",
            "password": DB_PASSWORD,
        },
        "hooks": {"stop_url": "http://127.0.0.1:9/stop", "start_url": "http://127.0.0.1:9/start"},
    }
    body.update(over)
    return body


def public_body(**over: Any) -> dict[str, Any]:
    """Hosts on a public address (never connected to on save)."""
    body = pod_body(hooks=None)
    body["files"]["host"] = "93.184.216.34"
    body["database"]["host"] = "93.184.216.35"
    body.update(over)
    return body


async def create_pod(client: httpx.AsyncClient, tenant: Tenant, **over: Any) -> dict[str, Any]:
    r = await client.post("/v1/pods", json=pod_body(**over), headers=tenant.headers)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_create_pod_hides_secrets_and_encrypts_them(
    client: httpx.AsyncClient, tenant: Tenant, database_url: str, app: FastAPI
) -> None:
    pod = await create_pod(client, tenant)
    assert pod["account_id"] == str(tenant.account_id)
    assert pod["files"]["password_set"] is True
    assert pod["files"]["private_key_set"] is True
    assert pod["database"] == {
        "kind": "postgres",
        "host": "127.0.0.2",
        "port": 5432,
        "name": "wiki",
        "username": "wiki",
        "password_set": True,
    }
    for text in (
        str(pod),
        (await client.get(f"/v1/pods/{pod['id']}", headers=tenant.headers)).text,
    ):
        for secret in (SFTP_PASSWORD, DB_PASSWORD, "not-a-real-key-but-secret"):
            assert secret not in text

    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        row = await conn.fetchrow("SELECT * FROM pods WHERE id = $1", uuid.UUID(pod["id"]))
    finally:
        await conn.close()
    raw = " ".join(str(v) for v in row.values())
    for secret in (SFTP_PASSWORD, DB_PASSWORD, "not-a-real-key-but-secret"):
        assert secret not in raw
    assert row["files_secret"].startswith("v1:test1:")
    assert row["database_secret"].startswith("v1:test1:")

    keyring: Keyring = app.state.keyring
    async with app.state.sessionmaker() as session:
        stored = await session.get(Pod, uuid.UUID(pod["id"]))
        assert stored is not None
        secrets_ = decrypt_secrets(keyring, stored)
    assert secrets_.sftp_password == SFTP_PASSWORD
    assert secrets_.db_password == DB_PASSWORD


async def test_patch_keeps_omitted_secrets_and_clears_empty(
    client: httpx.AsyncClient, tenant: Tenant, app: FastAPI
) -> None:
    pod = await create_pod(client, tenant)
    # The same server and login (a new folder): the stored secrets stay. Another host, port
    # or login needs them again (tests/security/test_secret_rebinding.py).
    files = {"kind": "sftp", "host": "127.0.0.1", "port": 2222, "username": "pod", "path": "/srv"}
    r = await client.patch(
        f"/v1/pods/{pod['id']}",
        json={
            "name": "renamed",
            "files": files,
            "database": {**pod_body()["database"], "password": ""},
        },
        headers=tenant.headers,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["name"] == "renamed"
    assert body["files"]["path"] == "/srv"
    assert body["files"]["password_set"] is True
    assert body["database"]["password_set"] is False
    async with app.state.sessionmaker() as session:
        stored = await session.get(Pod, uuid.UUID(pod["id"]))
        assert stored is not None
        assert decrypt_secrets(app.state.keyring, stored).sftp_password == SFTP_PASSWORD


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (pod_body(colour="red"), "colour"),
        (pod_body(files={**pod_body()["files"], "hostname": "x"}), "hostname"),
        (pod_body(files={**pod_body()["files"], "port": 70000}), "port"),
        (pod_body(files={**pod_body()["files"], "host": "sftp://h/x"}), "host"),
        (pod_body(files={**pod_body()["files"], "path": "relative/dir"}), "path"),
        (pod_body(database={**pod_body()["database"], "kind": "oracle"}), "kind"),
        (pod_body(hooks={"stop_url": "ftp://x/y"}), "stop_url"),
        (pod_body(name=""), "name"),
        (pod_body(app="bad app!"), "app"),
    ],
)
async def test_bad_fields_are_422_naming_the_field(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any], field: str
) -> None:
    r = await client.post("/v1/pods", json=body, headers=tenant.headers)
    assert r.status_code == 422, r.text
    data = r.json()
    assert data["error"] == "ValidationFailed"
    assert any(field in [str(p) for p in err["loc"]] for err in data["detail"]), data
    assert data["hint"]
    assert SFTP_PASSWORD not in r.text


async def test_malformed_json_is_422(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.post(
        "/v1/pods",
        content=b"{not json",
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 422
    assert r.json()["error"] == "ValidationFailed"


@pytest.mark.parametrize(
    ("where", "host"),
    [
        ("files", "169.254.169.254"),
        ("files", "10.0.0.1"),
        ("files", "192.168.1.5"),
        ("files", "::1"),
        ("database", "172.16.0.3"),
        ("database", "fe80::1"),
    ],
)
async def test_refused_addresses_without_allow_list(
    client: httpx.AsyncClient, admin_token: str, app: FastAPI, where: str, host: str
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"allow_networks": []})
    r = await client.post("/v1/accounts", json={"name": "x"}, headers=auth(admin_token))
    account_id = r.json()["id"]
    body = public_body(account_id=account_id)
    body[where] = {**body[where], "host": host}
    r = await client.post("/v1/pods", json=body, headers=auth(admin_token))
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "OutboundAddressRefused"
    assert host in r.json()["detail"][0]["msg"]
    assert "PODBACKUP_ALLOW_NETWORKS" in r.json()["hint"]


async def test_localhost_name_is_refused_without_allow_list(
    client: httpx.AsyncClient, tenant: Tenant, app: FastAPI
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"allow_networks": []})
    r = await client.post(
        "/v1/pods",
        json=public_body(hooks={"stop_url": "http://localhost:8080/stop"}),
        headers=tenant.headers,
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "hooks", "stop_url"]


async def test_unresolvable_name_is_accepted_on_save(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    files = {**pod_body()["files"], "host": "sftp.not-yet-live.invalid"}
    await create_pod(client, tenant, files=files)


async def test_local_source_rules(
    client: httpx.AsyncClient, tenant: Tenant, admin_token: str, app: FastAPI, tmp_path: Path
) -> None:
    local = {"kind": "local", "path": str(tmp_path / "pod")}
    r = await client.post("/v1/pods", json=pod_body(files=local), headers=tenant.headers)
    assert r.status_code == 403
    admin_body = pod_body(files=local, account_id=str(tenant.account_id))
    r = await client.post("/v1/pods", json=admin_body, headers=auth(admin_token))
    assert r.status_code == 422
    assert "PODBACKUP_LOCAL_ROOTS" in r.json()["hint"]
    app.state.settings = app.state.settings.model_copy(update={"local_roots": [tmp_path]})
    r = await client.post("/v1/pods", json=admin_body, headers=auth(admin_token))
    assert r.status_code == 201, r.text
    outside = pod_body(files={"kind": "local", "path": "/etc"}, account_id=str(tenant.account_id))
    r = await client.post("/v1/pods", json=outside, headers=auth(admin_token))
    assert r.status_code == 422


async def test_admin_must_name_the_account(client: httpx.AsyncClient, admin_token: str) -> None:
    r = await client.post("/v1/pods", json=pod_body(), headers=auth(admin_token))
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "account_id"]


async def test_tenant_isolation(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, admin_token: str
) -> None:
    mine = await create_pod(client, tenant)
    theirs = await create_pod(client, other_tenant, name="theirs")
    path = f"/v1/pods/{theirs['id']}"
    assert (await client.get(path, headers=tenant.headers)).status_code == 404
    r = await client.patch(path, json={"name": "stolen"}, headers=tenant.headers)
    assert r.status_code == 404
    assert (await client.delete(path, headers=tenant.headers)).status_code == 404
    missing = await client.get(f"/v1/pods/{uuid.uuid4()}", headers=tenant.headers)
    hidden = await client.get(path, headers=tenant.headers)
    assert missing.json() == hidden.json()

    listed = (await client.get("/v1/pods", headers=tenant.headers)).json()
    assert [p["id"] for p in listed["items"]] == [mine["id"]]
    r = await client.get(path, headers=auth(admin_token))
    assert r.json()["name"] == "theirs"
    all_pods = (await client.get("/v1/pods", headers=auth(admin_token))).json()
    assert all_pods["pagination"]["total_count"] == 2
    r = await client.post(
        "/v1/pods", json=pod_body(account_id=str(other_tenant.account_id)), headers=tenant.headers
    )
    assert r.status_code == 422


async def test_delete_destroys_secrets(
    client: httpx.AsyncClient, tenant: Tenant, database_url: str
) -> None:
    pod = await create_pod(client, tenant)
    r = await client.delete(f"/v1/pods/{pod['id']}", headers=tenant.headers)
    assert r.status_code == 204
    assert (await client.get(f"/v1/pods/{pod['id']}", headers=tenant.headers)).status_code == 404
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        left = await conn.fetchval("SELECT count(*) FROM pods WHERE id = $1", uuid.UUID(pod["id"]))
        audit = await conn.fetchval(
            "SELECT count(*) FROM audit_events WHERE action = 'pod.delete' AND pod_id = $1",
            uuid.UUID(pod["id"]),
        )
    finally:
        await conn.close()
    assert left == 0
    assert audit == 1


async def test_bad_ids_and_pagination_are_4xx(client: httpx.AsyncClient, tenant: Tenant) -> None:
    assert (await client.get("/v1/pods/not-a-uuid", headers=tenant.headers)).status_code == 422
    assert (await client.get("/v1/pods?page=0", headers=tenant.headers)).status_code == 422
    r = await client.get("/v1/pods?limit=100000", headers=tenant.headers)
    assert r.status_code == 200
