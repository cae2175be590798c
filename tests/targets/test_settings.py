"""Backup settings CRUD: validation, write-only secret, encryption at rest, audit, tenancy."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.kit.crypto import Keyring
from app.models.encrypted import REPO_PASSWORD, TARGET_SECRET
from tests.conftest import Tenant, auth
from tests.targets.conftest import SECRET, b2_target, make_pod, put_settings


async def _raw_row(database_url: str, pod_id: str) -> asyncpg.Record | None:
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        return await conn.fetchrow(
            "SELECT * FROM backup_settings WHERE pod_id = $1", uuid.UUID(pod_id)
        )
    finally:
        await conn.close()


async def test_first_save_applies_defaults_and_reads_without_secret(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    pod_id = await make_pod(client, tenant)
    body = await put_settings(client, tenant.headers, pod_id, target=b2_target())
    assert body["target"] == {
        "kind": "s3",
        "endpoint": "s3.us-west-001.backblazeb2.com",
        "bucket": "my-pod-backup-1",
        "region": "us-west-001",
        "provider": "b2",
        "provider_name": "Backblaze B2",
        "path_style": True,
        "access_key_id": "0015a1b2c3d4e5f0000000001",
        "secret_access_key_set": True,
        "immutable": None,  # lock mode off
    }
    assert body["repository"] == "s3:https://s3.us-west-001.backblazeb2.com/my-pod-backup-1"
    assert body["schedule"] == {
        "enabled": True,
        "window_start": "01:00",
        "window_end": "05:00",
        "timezone": "UTC",
    }
    assert body["retention"] == {
        "keep_last": 0,
        "keep_daily": 7,
        "keep_weekly": 4,
        "keep_monthly": 6,
        "keep_yearly": 0,
        "keep_within_days": 0,
    }
    assert body["verification"] == {"enabled": True, "interval_days": 7, "read_data_subsets": 12}
    assert body["prune"] == {"interval_days": 7}
    assert body["repository_id"] is None
    assert body["verified_ok"] is None
    got = await client.get(f"/v1/pods/{pod_id}/backup-settings", headers=tenant.headers)
    assert got.status_code == 200
    assert got.json() == body
    assert SECRET not in got.text


async def test_secret_and_password_are_ciphertext_at_rest(
    client: httpx.AsyncClient,
    tenant: Tenant,
    database_url: str,
    app: FastAPI,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    pod_id = await make_pod(client, tenant)
    await put_settings(client, tenant.headers, pod_id, target=b2_target())
    assert caplog.records
    assert SECRET not in caplog.text
    row = await _raw_row(database_url, pod_id)
    assert row is not None
    raw = " ".join(str(v) for v in row.values())
    assert SECRET not in raw
    assert row["target_secret"].startswith("v1:test1:")
    assert row["repo_password"].startswith("v1:test1:")
    keyring: Keyring = app.state.keyring
    pid = uuid.UUID(pod_id)
    assert keyring.decrypt(row["target_secret"], TARGET_SECRET.context(pid)) == SECRET
    password = keyring.decrypt(row["repo_password"], REPO_PASSWORD.context(pid))
    assert len(password) >= 40
    assert password not in raw
    assert TARGET_SECRET.context(pid) == f"pod:{pid}:target"
    assert REPO_PASSWORD.context(pid) == f"pod:{pid}:repo_password"


async def test_omitted_secret_is_kept_and_password_never_changes(
    client: httpx.AsyncClient, tenant: Tenant, database_url: str, app: FastAPI
) -> None:
    pod_id = await make_pod(client, tenant)
    await put_settings(client, tenant.headers, pod_id, target=b2_target())
    before = await _raw_row(database_url, pod_id)
    assert before is not None
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        await conn.execute(
            "UPDATE backup_settings SET repository_id = 'abc', "
            "repository_initialized_at = now() WHERE pod_id = $1",
            uuid.UUID(pod_id),
        )
    finally:
        await conn.close()

    no_secret = b2_target()
    del no_secret["secret_access_key"]
    body = await put_settings(
        client, tenant.headers, pod_id, target=no_secret, schedule={"timezone": "Europe/Berlin"}
    )
    assert body["target"]["secret_access_key_set"] is True
    assert body["schedule"]["timezone"] == "Europe/Berlin"
    assert body["repository_id"] == "abc"  # same bucket: same repository
    assert body["retention"]["keep_daily"] == 7  # omitted section kept

    # Another bucket: new repository there, same password, secret kept (same key id).
    body = await put_settings(
        client, tenant.headers, pod_id, target={**no_secret, "bucket": "my-pod-backup-2"}
    )
    assert body["repository_id"] is None
    assert body["initialized_at"] is None
    after = await _raw_row(database_url, pod_id)
    assert after is not None
    keyring: Keyring = app.state.keyring
    pid = uuid.UUID(pod_id)
    assert keyring.decrypt(after["target_secret"], TARGET_SECRET.context(pid)) == SECRET
    assert keyring.decrypt(after["repo_password"], REPO_PASSWORD.context(pid)) == keyring.decrypt(
        before["repo_password"], REPO_PASSWORD.context(pid)
    )

    # A new key id needs its own secret; an empty secret is refused.
    r = await client.put(
        f"/v1/pods/{pod_id}/backup-settings",
        json={"target": {**no_secret, "access_key_id": "other-key"}},
        headers=tenant.headers,
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "target", "secret_access_key"]
    r = await client.put(
        f"/v1/pods/{pod_id}/backup-settings",
        json={"target": {**no_secret, "secret_access_key": "  "}},
        headers=tenant.headers,
    )
    assert r.status_code == 422


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"schedule": {"enabled": True}}, "target"),
        ({"target": b2_target(), "retention": {"keep_last": 0}}, "retention"),
        ({"target": b2_target(), "schedule": {"timezone": "Mars/Olympus"}}, "timezone"),
        ({"target": b2_target(), "schedule": {"window_start": "25:00"}}, "window_start"),
        ({"target": b2_target(), "schedule": {"window_start": "05:00"}}, "schedule"),
        ({"target": b2_target(), "verification": {"interval_days": 0}}, "interval_days"),
        ({"target": b2_target(bucket="Bad_Bucket")}, "bucket"),
        ({"target": b2_target(endpoint="my-pod-backup-1.s3.amazonaws.com")}, "endpoint"),
        ({"target": b2_target(region="us-east-1")}, "region"),
        (
            {"target": {k: v for k, v in b2_target().items() if k != "secret_access_key"}},
            "secret_access_key",
        ),
        ({"target": b2_target(), "colour": "red"}, "colour"),
    ],
)
async def test_bad_settings_are_422_naming_the_field(
    client: httpx.AsyncClient, tenant: Tenant, body: dict[str, Any], where: str
) -> None:
    pod_id = await make_pod(client, tenant)
    r = await client.put(f"/v1/pods/{pod_id}/backup-settings", json=body, headers=tenant.headers)
    assert r.status_code == 422, r.text
    data = r.json()
    assert data["error"] == "ValidationFailed"
    assert any(where in [str(p) for p in e["loc"]] for e in data["detail"]), data
    assert data["hint"]
    assert SECRET not in r.text


async def test_bucket_in_endpoint_names_endpoint_and_bucket(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    pod_id = await make_pod(client, tenant)
    target = b2_target(endpoint="my-pod-backup-1.s3.amazonaws.com", bucket="my-pod-backup-1")
    r = await client.put(
        f"/v1/pods/{pod_id}/backup-settings", json={"target": target}, headers=tenant.headers
    )
    assert r.status_code == 422
    assert r.json()["hint"] == (
        "use 's3.amazonaws.com' as the endpoint and 'my-pod-backup-1' as the bucket"
    )


async def test_plain_http_only_for_allow_listed_hosts(
    client: httpx.AsyncClient, tenant: Tenant, app: FastAPI
) -> None:
    pod_id = await make_pod(client, tenant)
    path = f"/v1/pods/{pod_id}/backup-settings"
    r = await client.put(
        path,
        json={"target": b2_target(endpoint="http://93.184.216.34:9000")},
        headers=tenant.headers,
    )
    assert r.status_code == 422
    assert r.json()["hint"] == "use https://93.184.216.34:9000 (or just 93.184.216.34:9000)"
    body = await put_settings(
        client, tenant.headers, pod_id, target=b2_target(endpoint=" http://127.0.0.1:9000/ ")
    )
    assert body["target"]["endpoint"] == "http://127.0.0.1:9000"
    assert body["target"]["provider"] == "generic"
    assert body["repository"] == "s3:http://127.0.0.1:9000/my-pod-backup-1"

    app.state.settings = app.state.settings.model_copy(update={"allow_networks": []})
    r = await client.put(
        path, json={"target": b2_target(endpoint="127.0.0.1:9000")}, headers=tenant.headers
    )
    assert r.status_code == 422
    assert r.json()["error"] == "OutboundAddressRefused"
    r = await client.put(
        path, json={"target": b2_target(endpoint="http://127.0.0.1:9000")}, headers=tenant.headers
    )
    assert r.status_code == 422


async def test_local_target_rules(
    client: httpx.AsyncClient, tenant: Tenant, admin_token: str, app: FastAPI, tmp_path: Path
) -> None:
    pod_id = await make_pod(client, tenant)
    path = f"/v1/pods/{pod_id}/backup-settings"
    local = {"target": {"kind": "local", "path": str(tmp_path / "repo")}}
    assert (await client.put(path, json=local, headers=tenant.headers)).status_code == 403
    r = await client.put(path, json=local, headers=auth(admin_token))
    assert r.status_code == 422
    assert "PODBACKUP_LOCAL_ROOTS" in r.json()["hint"]
    app.state.settings = app.state.settings.model_copy(update={"local_roots": [tmp_path]})
    body = await put_settings(client, auth(admin_token), pod_id, **local)
    assert body["target"] == {"kind": "local", "path": str(tmp_path / "repo")}
    assert body["repository"] == str(tmp_path / "repo")
    r = await client.put(
        path, json={"target": {"kind": "local", "path": "/etc"}}, headers=auth(admin_token)
    )
    assert r.status_code == 422
    # The owner may still change the schedule of an operator-set target.
    r = await client.put(path, json={"schedule": {"enabled": False}}, headers=tenant.headers)
    assert r.status_code == 200


async def test_delete_destroys_secrets_and_is_audited(
    client: httpx.AsyncClient, tenant: Tenant, database_url: str
) -> None:
    pod_id = await make_pod(client, tenant)
    path = f"/v1/pods/{pod_id}/backup-settings"
    await put_settings(client, tenant.headers, pod_id, target=b2_target())
    assert (await client.delete(path, headers=tenant.headers)).status_code == 204
    assert await _raw_row(database_url, pod_id) is None
    r = await client.get(path, headers=tenant.headers)
    assert r.status_code == 404
    assert r.json()["hint"]
    assert (await client.delete(path, headers=tenant.headers)).status_code == 404

    # Deleting the pod destroys them too.
    await put_settings(client, tenant.headers, pod_id, target=b2_target())
    assert (await client.delete(f"/v1/pods/{pod_id}", headers=tenant.headers)).status_code == 204
    assert await _raw_row(database_url, pod_id) is None


async def test_audit_trail_of_settings(
    client: httpx.AsyncClient, tenant: Tenant, admin_token: str
) -> None:
    pod_id = await make_pod(client, tenant)
    path = f"/v1/pods/{pod_id}/backup-settings"
    await put_settings(client, tenant.headers, pod_id, target=b2_target())
    await put_settings(client, tenant.headers, pod_id, retention={"keep_last": 3})
    assert (await client.get(f"/v1/pods/{pod_id}/restore-kit", headers=tenant.headers)).is_success
    assert (await client.delete(path, headers=tenant.headers)).status_code == 204

    r = await client.get(f"/v1/pods/{pod_id}/audit", headers=tenant.headers)
    assert r.status_code == 200
    page = r.json()
    actions = [e["action"] for e in page["items"]]
    assert actions[:4] == [
        "backup_settings.delete",
        "restore_kit.read",
        "backup_settings.update",
        "backup_settings.create",
    ]
    create = page["items"][3]
    assert create["detail"]["target"]["bucket"] == "my-pod-backup-1"
    assert create["detail"]["secret_changed"] is True
    assert create["actor"] == "account"
    assert SECRET not in r.text
    assert page["pagination"]["total_count"] == len(actions)

    r = await client.get(f"/v1/pods/{pod_id}/audit?limit=1&page=2", headers=tenant.headers)
    assert [e["action"] for e in r.json()["items"]] == ["restore_kit.read"]
    assert (await client.get("/v1/audit", headers=tenant.headers)).status_code == 403
    r = await client.get(
        f"/v1/audit?pod_id={pod_id}&action=restore_kit.read", headers=auth(admin_token)
    )
    assert [e["action"] for e in r.json()["items"]] == ["restore_kit.read"]


async def test_other_accounts_pod_is_404_on_every_endpoint(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
) -> None:
    theirs = await make_pod(client, other_tenant, "theirs")
    await put_settings(client, other_tenant.headers, theirs, target=b2_target())
    base = f"/v1/pods/{theirs}"
    calls = [
        client.get(f"{base}/backup-settings", headers=tenant.headers),
        client.put(f"{base}/backup-settings", json={"target": b2_target()}, headers=tenant.headers),
        client.delete(f"{base}/backup-settings", headers=tenant.headers),
        client.post(f"{base}/backup-settings/verify", headers=tenant.headers),
        client.post(f"{base}/backup-settings/verify", json=b2_target(), headers=tenant.headers),
        client.get(f"{base}/restore-kit", headers=tenant.headers),
        client.get(f"{base}/audit", headers=tenant.headers),
    ]
    missing = await client.get(f"/v1/pods/{uuid.uuid4()}/restore-kit", headers=tenant.headers)
    for call in calls:
        r = await call
        assert r.status_code == 404, (r.request.method, r.request.url, r.text)
        assert r.json() == missing.json()
    # Nothing changed for the owner.
    r = await client.get(f"{base}/backup-settings", headers=other_tenant.headers)
    assert r.status_code == 200


async def test_providers_presets(client: httpx.AsyncClient, tenant: Tenant) -> None:
    r = await client.get("/v1/providers?bucket=my-pod-backup-1", headers=tenant.headers)
    assert r.status_code == 200
    data = r.json()
    by_id = {p["id"]: p for p in data["items"]}
    assert set(by_id) == {"b2", "idrive_e2", "aws", "oci", "generic"}
    assert "s3.us-west-001.backblazeb2.com" in by_id["b2"]["example_endpoints"]
    assert "n6j2.fra1.idrivee2-95.com" in by_id["idrive_e2"]["example_endpoints"]
    assert by_id["oci"]["endpoint_pattern"] == (
        "<namespace>.compat.objectstorage.<region>.oraclecloud.com"
    )
    policy = by_id["aws"]["key_setup"]["iam_policy"]
    actions = {(a, s["Resource"]) for s in policy["Statement"] for a in s["Action"]}
    assert actions == {
        ("s3:ListBucket", "arn:aws:s3:::my-pod-backup-1"),
        ("s3:GetBucketLocation", "arn:aws:s3:::my-pod-backup-1"),
        ("s3:GetObject", "arn:aws:s3:::my-pod-backup-1/*"),
        ("s3:PutObject", "arn:aws:s3:::my-pod-backup-1/*"),
        ("s3:DeleteObject", "arn:aws:s3:::my-pod-backup-1/*"),
    }
    assert "limit the key to this one bucket only" in data["key_advice"]
    for preset in data["items"]:
        assert preset["key_setup"]["steps"]
    assert (await client.get("/v1/providers")).status_code == 401
