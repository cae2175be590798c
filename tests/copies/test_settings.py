"""Copy settings: validation with hints, the write-only secret sealed under the copy's own
contexts, a password of its own, restore kit, delete, and another account's pod."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
from fastapi import FastAPI

from app.kit.crypto import Keyring
from app.models.encrypted import COPY_REPO_PASSWORD, COPY_TARGET_SECRET, REPO_PASSWORD
from tests.conftest import Tenant, auth
from tests.targets.conftest import SECRET, b2_target, make_pod, put_settings

COPY = b2_target(bucket="my-pod-second-copy")


async def _raw(database_url: str, table: str, pod_id: str) -> asyncpg.Record | None:
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        return await conn.fetchrow(f"SELECT * FROM {table} WHERE pod_id = $1", uuid.UUID(pod_id))
    finally:
        await conn.close()


async def test_copy_settings_rules_and_secrets(
    client: httpx.AsyncClient, tenant: Tenant, database_url: str, app: FastAPI
) -> None:
    headers = tenant.headers
    pod_id = await make_pod(client, tenant)
    url = f"/v1/pods/{pod_id}/copy-settings"
    assert (await client.get(url, headers=headers)).status_code == 404

    r = await client.put(url, json={"target": COPY}, headers=headers)
    assert r.status_code == 422, r.text
    assert "PUT /v1/pods/{pod_id}/backup-settings" in r.text  # the hint: settings first

    await put_settings(client, headers, pod_id, target=b2_target())
    r = await client.put(url, json={}, headers=headers)
    assert r.status_code == 422, r.text
    assert "add 'target'" in r.text
    r = await client.put(url, json={"target": b2_target()}, headers=headers)
    assert r.status_code == 422, r.text
    assert "use another bucket" in r.text
    other_key = b2_target(bucket="my-pod-second-copy", access_key_id="0015a1b2c3d4e5f0000000009")
    # Another key than the primary's is accepted: the copy job reads the primary through
    # the re-signing gateway (tests/copies/test_copy_other_key.py).
    r = await client.put(url, json={"target": other_key}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["target"]["access_key_id"] == other_key["access_key_id"]
    r = await client.put(url, json={"target": {"kind": "local", "path": "/tmp/x"}}, headers=headers)
    assert r.status_code == 403, r.text

    r = await client.put(
        url, json={"target": COPY, "retention": {"keep_daily": 3}}, headers=headers
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["target"]["bucket"] == "my-pod-second-copy"
    assert body["target"]["secret_access_key_set"] is True
    assert body["retention"]["keep_daily"] == 3
    assert body["verification"]["enabled"] is True
    assert SECRET not in r.text
    assert (await client.get(url, headers=headers)).json() == body

    row = await _raw(database_url, "copy_settings", pod_id)
    owner_row = await _raw(database_url, "backup_settings", pod_id)
    assert row is not None
    assert owner_row is not None
    assert SECRET not in " ".join(str(v) for v in row.values())
    keyring: Keyring = app.state.keyring
    pid = uuid.UUID(pod_id)
    assert keyring.decrypt(row["target_secret"], COPY_TARGET_SECRET.context(pid)) == SECRET
    password = keyring.decrypt(row["repo_password"], COPY_REPO_PASSWORD.context(pid))
    assert password != keyring.decrypt(owner_row["repo_password"], REPO_PASSWORD.context(pid))

    # An omitted secret keeps the stored one; the password never changes.
    kept = {k: v for k, v in COPY.items() if k != "secret_access_key"}
    r = await client.put(url, json={"target": kept}, headers=headers)
    assert r.status_code == 200, r.text
    kit = (await client.get(f"{url}/restore-kit", headers=headers)).json()
    assert kit["password"] == password
    assert kit["repository"] == "s3:https://s3.us-west-001.backblazeb2.com/my-pod-second-copy"
    assert SECRET not in str(kit)

    r = await client.post(f"/v1/pods/{pod_id}/copies", headers=headers)
    assert r.status_code == 202, r.text
    assert r.json()["kind"] == "copy"
    assert r.json()["plan"] == "copy"

    assert (await client.delete(url, headers=headers)).status_code == 204
    assert await _raw(database_url, "copy_settings", pod_id) is None
    assert (await client.get(url, headers=headers)).status_code == 404


async def test_another_accounts_pod_is_404(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    pod_id = await make_pod(client, tenant)
    await put_settings(client, tenant.headers, pod_id, target=b2_target())
    headers = auth(other_tenant.token)
    for method, path in (
        ("GET", "copy-settings"),
        ("PUT", "copy-settings"),
        ("DELETE", "copy-settings"),
        ("POST", "copies"),
        ("GET", "copy-lag"),
        ("GET", "copy-settings/restore-kit"),
    ):
        body = {"target": COPY} if method == "PUT" else None
        r = await client.request(method, f"/v1/pods/{pod_id}/{path}", json=body, headers=headers)
        assert r.status_code == 404, (method, path, r.text)
