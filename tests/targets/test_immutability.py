"""Immutability against the real local S3 server (moto with IAM): verify reports versioning
and Object Lock (mode and default retention) as checks and as facts; lock mode is declared
in the settings with a maintenance key kept like the main secret, and retention must keep
snapshots at least as long as the lock.

What moto cannot show (stated here and in the README): it authorises
GetObjectLockConfiguration as s3:ListBucket, so an "unknown" Object Lock (a provider without
the call, or a key denied it) is not produced here (versioning's is); it ignores IAM
``NotResource`` (the keys here deny deletes by listing the repository's folders instead).
What it does show (tests/retention/test_lock_mode.py): deletes in a locked bucket become
delete markers and a locked version cannot be deleted early.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.kit.crypto import Keyring
from app.models.encrypted import MAINTENANCE_SECRET
from tests.conftest import Tenant
from tests.fixtures.s3 import S3ServerHandle
from tests.targets.conftest import make_pod, put_settings, s3_target
from tests.targets.test_settings import _raw_row
from tests.targets.test_verify import by_name

# The backup key of lock mode: everything on its bucket but deleting restic's data (it may
# still remove its own lock files under locks/).
REPO_FOLDERS = ("data/*", "snapshots/*", "index/*", "keys/*", "config", ".podbackup-verify/*")


def backup_key(server: S3ServerHandle, bucket: str) -> tuple[str, str]:
    return server.create_key(bucket, deny=("s3:DeleteObject",), deny_under=REPO_FOLDERS)


def locked_bucket(server: S3ServerHandle, *, mode: str = "GOVERNANCE", days: int = 3) -> str:
    bucket = server.create_bucket(object_lock=True)
    server.client().put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": mode, "Days": days}},
        },
    )
    return bucket


async def verify_body(
    client: httpx.AsyncClient, tenant: Tenant, pod_id: str, body: Any = None
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"headers": tenant.headers}
    if body is not None:
        kwargs["json"] = body
    r = await client.post(f"/v1/pods/{pod_id}/backup-settings/verify", **kwargs)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_a_plain_bucket_has_versioning_and_object_lock_off(
    client: httpx.AsyncClient, tenant: Tenant, s3_iam_server: S3ServerHandle
) -> None:
    bucket = s3_iam_server.create_bucket()
    key, secret = s3_iam_server.create_key(bucket)
    pod_id = await make_pod(client, tenant)
    result = await verify_body(
        client, tenant, pod_id, s3_target(s3_iam_server, bucket, key, secret)
    )
    assert result["ok"] is True
    checks = by_name(result)
    assert (checks["versioning"]["level"], checks["object_lock"]["level"]) == ("ok", "ok")
    assert "versioning is off" in checks["versioning"]["detail"]
    assert checks["object_lock"]["detail"] == "Object Lock is off"
    assert "maintenance_key" not in checks  # only in lock mode
    assert result["immutability"] == {
        "versioning": "off",
        "object_lock": {"status": "off", "mode": None, "days": None},
        "lock_mode": False,
    }


async def test_a_versioned_bucket_reports_versioning_enabled(
    client: httpx.AsyncClient, tenant: Tenant, s3_iam_server: S3ServerHandle
) -> None:
    bucket = s3_iam_server.create_bucket(versioning=True)
    key, secret = s3_iam_server.create_key(bucket)
    pod_id = await make_pod(client, tenant)
    result = await verify_body(
        client, tenant, pod_id, s3_target(s3_iam_server, bucket, key, secret)
    )
    assert result["ok"] is True  # informational: a warning, not an error
    checks = by_name(result)
    assert checks["versioning"]["level"] == "warning"
    assert "stays recoverable as an old version" in checks["versioning"]["detail"]
    assert "delete markers" in checks["versioning"]["detail"]
    assert result["immutability"]["versioning"] == "enabled"
    assert result["immutability"]["object_lock"]["status"] == "off"


@pytest.mark.parametrize(("mode", "days"), [("GOVERNANCE", 3), ("COMPLIANCE", 7)])
async def test_an_object_lock_bucket_reports_mode_and_days(
    client: httpx.AsyncClient,
    tenant: Tenant,
    s3_iam_server: S3ServerHandle,
    mode: str,
    days: int,
) -> None:
    bucket = locked_bucket(s3_iam_server, mode=mode, days=days)
    key, secret = s3_iam_server.create_key(bucket)
    pod_id = await make_pod(client, tenant)
    result = await verify_body(
        client, tenant, pod_id, s3_target(s3_iam_server, bucket, key, secret)
    )
    assert result["ok"] is True
    assert result["immutability"] == {
        "versioning": "enabled",
        "object_lock": {"status": "enabled", "mode": mode, "days": days},
        "lock_mode": False,
    }
    check = by_name(result)["object_lock"]
    assert check["level"] == "warning"  # not in lock mode: pruning frees space only later
    assert f"locked for {days} day(s) ({mode} mode)" in check["detail"]
    assert "only add delete markers" in check["detail"]
    assert f"target.immutable.lock_days = {days}" in check["hint"]


def key_without_bucket_settings(server: S3ServerHandle, bucket: str) -> tuple[str, str]:
    """A key that may use the bucket's objects but not read its versioning."""
    iam = server._client("iam", direct=True)
    user = f"no-settings-{bucket}"
    arn = f"arn:aws:s3:::{bucket}"
    statements = [
        {"Effect": "Allow", "Action": "s3:*", "Resource": [arn, f"{arn}/*"]},
        {
            "Effect": "Deny",
            "Action": ["s3:GetBucketVersioning"],
            "Resource": arn,
        },
    ]
    iam.create_user(UserName=user)
    iam.put_user_policy(
        UserName=user,
        PolicyName="no-settings",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
    )
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


async def test_a_key_that_may_not_read_the_bucket_settings_gives_unknown_not_a_failure(
    client: httpx.AsyncClient, tenant: Tenant, s3_iam_server: S3ServerHandle
) -> None:
    bucket = locked_bucket(s3_iam_server)
    key, secret = key_without_bucket_settings(s3_iam_server, bucket)
    pod_id = await make_pod(client, tenant)
    result = await verify_body(
        client, tenant, pod_id, s3_target(s3_iam_server, bucket, key, secret)
    )
    checks = by_name(result)
    assert result["ok"] is True, result
    check = checks["versioning"]
    assert check["level"] == "ok"  # informational: never a failure
    assert "versioning is unknown" in check["detail"]
    assert "provider's console" in check["hint"]
    assert result["immutability"]["versioning"] == "unknown"
    # moto authorises GetObjectLockConfiguration as s3:ListBucket, so it cannot be denied
    # alone here: the object_lock check's "unknown" path is the same code, not shown by moto.
    assert result["immutability"]["object_lock"]["status"] == "enabled"


async def test_lock_mode_needs_keep_within_at_least_the_lock_period(
    client: httpx.AsyncClient, tenant: Tenant, s3_iam_server: S3ServerHandle
) -> None:
    bucket = s3_iam_server.create_bucket()
    pod_id = await make_pod(client, tenant)
    target = {**s3_target(s3_iam_server, bucket), "immutable": {"lock_days": 30}}
    r = await client.put(
        f"/v1/pods/{pod_id}/backup-settings", json={"target": target}, headers=tenant.headers
    )
    assert r.status_code == 422, r.text
    body = r.json()
    assert "keep_within_days to at least 30" in body["hint"]
    assert body["detail"][0]["loc"] == ["body", "retention", "keep_within_days"]

    r = await client.put(
        f"/v1/pods/{pod_id}/backup-settings",
        json={"target": target, "retention": {"keep_daily": 7, "keep_within_days": 29}},
        headers=tenant.headers,
    )
    assert r.status_code == 422, r.text

    saved = await put_settings(
        client,
        tenant.headers,
        pod_id,
        target=target,
        retention={"keep_daily": 7, "keep_within_days": 30},
    )
    assert saved["target"]["immutable"] == {"lock_days": 30, "maintenance_key": None}
    assert saved["retention"]["keep_within_days"] == 30

    # Lowering retention below the lock later is refused too; dropping lock mode frees it.
    r = await client.put(
        f"/v1/pods/{pod_id}/backup-settings",
        json={"retention": {"keep_daily": 7}},
        headers=tenant.headers,
    )
    assert r.status_code == 422, r.text
    # A target sent without the field (an older client) keeps lock mode; null turns it off.
    plain = {k: v for k, v in target.items() if k not in ("immutable", "secret_access_key")}
    r = await client.put(
        f"/v1/pods/{pod_id}/backup-settings",
        json={"target": plain, "retention": {"keep_daily": 7}},
        headers=tenant.headers,
    )
    assert r.status_code == 422, r.text
    kept = await put_settings(client, tenant.headers, pod_id, target=plain)
    assert kept["target"]["immutable"] == {"lock_days": 30, "maintenance_key": None}
    saved = await put_settings(
        client,
        tenant.headers,
        pod_id,
        target={**plain, "immutable": None},
        retention={"keep_daily": 7},
    )
    assert saved["target"]["immutable"] is None


async def test_the_maintenance_secret_is_sealed_and_never_returned(
    client: httpx.AsyncClient,
    tenant: Tenant,
    s3_iam_server: S3ServerHandle,
    database_url: str,
    app: FastAPI,
) -> None:
    bucket = s3_iam_server.create_bucket()
    pod_id = await make_pod(client, tenant)
    maintenance = {"access_key_id": "MAINTKEY", "secret_access_key": "maint-secret-1234567890"}
    target = {
        **s3_target(s3_iam_server, bucket),
        "immutable": {"lock_days": 2, "maintenance_key": maintenance},
    }
    saved = await put_settings(
        client, tenant.headers, pod_id, target=target, retention={"keep_within_days": 2}
    )
    assert saved["target"]["immutable"]["maintenance_key"] == {
        "access_key_id": "MAINTKEY",
        "secret_access_key_set": True,
    }
    assert "maint-secret" not in json.dumps(saved)
    row = await _raw_row(database_url, pod_id)
    assert row is not None
    sealed = row["maintenance_secret"]
    assert "maint-secret" not in sealed
    keyring: Keyring = app.state.keyring
    context = MAINTENANCE_SECRET.context(uuid.UUID(pod_id))
    assert keyring.decrypt(sealed, context) == maintenance["secret_access_key"]

    # Omitted on update with the same key id: kept. A new key id needs its secret.
    again = {
        **{k: v for k, v in target.items() if k != "secret_access_key"},
        "immutable": {"lock_days": 2, "maintenance_key": {"access_key_id": "MAINTKEY"}},
    }
    kept = await put_settings(client, tenant.headers, pod_id, target=again)
    assert kept["target"]["immutable"]["maintenance_key"]["secret_access_key_set"] is True
    other = {**again, "immutable": {"lock_days": 2, "maintenance_key": {"access_key_id": "NEW"}}}
    r = await client.put(
        f"/v1/pods/{pod_id}/backup-settings", json={"target": other}, headers=tenant.headers
    )
    assert r.status_code == 422, r.text
    # The maintenance key must be another key than the backup key.
    same = {
        **again,
        "immutable": {
            "lock_days": 2,
            "maintenance_key": {"access_key_id": target["access_key_id"], "secret_access_key": "x"},
        },
    }
    r = await client.put(
        f"/v1/pods/{pod_id}/backup-settings", json={"target": same}, headers=tenant.headers
    )
    assert r.status_code == 422, r.text


async def test_lock_mode_verify_the_backup_key_may_not_delete_the_maintenance_key_may(
    client: httpx.AsyncClient, tenant: Tenant, s3_iam_server: S3ServerHandle
) -> None:
    bucket = locked_bucket(s3_iam_server, days=2)
    key, secret = backup_key(s3_iam_server, bucket)
    m_key, m_secret = s3_iam_server.create_key(bucket)
    pod_id = await make_pod(client, tenant)
    target = {
        **s3_target(s3_iam_server, bucket, key, secret),
        "immutable": {
            "lock_days": 2,
            "maintenance_key": {"access_key_id": m_key, "secret_access_key": m_secret},
        },
    }
    await put_settings(
        client, tenant.headers, pod_id, target=target, retention={"keep_within_days": 2}
    )
    result = await verify_body(client, tenant, pod_id)
    checks = by_name(result)
    assert result["ok"] is True, result
    assert checks["delete"]["level"] == "ok"
    assert "may not delete the probe, as lock mode wants" in checks["delete"]["detail"]
    assert checks["versioning"]["level"] == "ok"  # expected in lock mode
    assert checks["object_lock"]["level"] == "ok"
    assert "pruning never targets locked data" in checks["object_lock"]["detail"]
    assert checks["maintenance_key"]["level"] == "ok", checks["maintenance_key"]
    assert result["immutability"]["lock_mode"] is True
    assert result["immutability"]["object_lock"] == {
        "status": "enabled",
        "mode": "GOVERNANCE",
        "days": 2,
    }
    # The maintenance key deleted the probe (a delete marker: the locked version stays).
    assert s3_iam_server.keys(bucket) == []
    assert secret not in json.dumps(result)
    assert m_secret not in json.dumps(result)

    # A lock period shorter than the bucket's is a warning naming the bucket's.
    short = locked_bucket(s3_iam_server, days=5)
    key2, secret2 = backup_key(s3_iam_server, short)
    body = {**s3_target(s3_iam_server, short, key2, secret2), "immutable": {"lock_days": 2}}
    result = await verify_body(client, tenant, pod_id, body)
    checks = by_name(result)
    assert checks["object_lock"]["level"] == "warning"
    assert "keep_within_days to 5" in checks["object_lock"]["hint"]
    # No maintenance key: the probe stays, and verify says prune jobs will be refused.
    assert checks["maintenance_key"]["level"] == "warning"
    assert "maintenance_key_missing" in checks["maintenance_key"]["detail"]
    assert len(s3_iam_server.keys(short)) == 1


async def test_lock_mode_warns_when_the_backup_key_can_delete_and_fails_a_bad_maintenance_key(
    client: httpx.AsyncClient, tenant: Tenant, s3_iam_server: S3ServerHandle
) -> None:
    bucket = s3_iam_server.create_bucket()
    key, secret = s3_iam_server.create_key(bucket)  # may delete
    weak, weak_secret = backup_key(s3_iam_server, bucket)  # may not: a wrong maintenance key
    pod_id = await make_pod(client, tenant)
    body = {
        **s3_target(s3_iam_server, bucket, key, secret),
        "immutable": {
            "lock_days": 1,
            "maintenance_key": {"access_key_id": weak, "secret_access_key": weak_secret},
        },
    }
    result = await verify_body(client, tenant, pod_id, body)
    checks = by_name(result)
    assert checks["delete"]["level"] == "warning"
    assert "should not be able to delete" in checks["delete"]["detail"]
    assert checks["versioning"]["level"] == "warning"  # lock mode without versioning
    assert checks["object_lock"]["level"] == "warning"
    assert checks["maintenance_key"]["level"] == "error"
    assert "s3:DeleteObject" in checks["maintenance_key"]["hint"]
    assert result["ok"] is False  # the settings demand a maintenance key that deletes


def _user_with(server: S3ServerHandle, name: str, policy: dict[str, Any]) -> dict[str, str]:
    iam = server._client("iam", direct=True)
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="doc", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }


def _restic(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["restic", *args], env=env, capture_output=True, text=True, check=False)


async def test_the_documented_aws_lock_mode_policies_hold_on_the_local_server(
    client: httpx.AsyncClient, tenant: Tenant, s3_iam_server: S3ServerHandle, tmp_path: Path
) -> None:
    """The two IAM policies GET /v1/providers prints, attached as printed: restic backs up
    with the backup key (and removes its lock files), cannot forget with it, and can with
    the maintenance key."""
    bucket = s3_iam_server.create_bucket()
    r = await client.get("/v1/providers", params={"bucket": bucket}, headers=tenant.headers)
    assert r.status_code == 200, r.text
    aws = next(p for p in r.json()["items"] if p["id"] == "aws")
    lock = aws["lock_mode"]
    assert all(p["lock_mode"] for p in r.json()["items"])
    statements = lock["backup_policy"]["Statement"]
    deletes = [s["Resource"] for s in statements if "s3:DeleteObject" in s["Action"]]
    assert deletes == [f"arn:aws:s3:::{bucket}/locks/*"]

    base = {
        "PATH": os.environ["PATH"],
        "RESTIC_REPOSITORY": f"s3:{s3_iam_server.url}/{bucket}",
        "RESTIC_PASSWORD": "pw",
        "RESTIC_CACHE_DIR": str(tmp_path / "cache"),
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    backup = {**base, **_user_with(s3_iam_server, f"b-{bucket}", lock["backup_policy"])}
    maint = {**base, **_user_with(s3_iam_server, f"m-{bucket}", lock["maintenance_policy"])}
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("a\n")
    # restic 0.14's init asks HeadBucket, which moto authorises as "s3:HeadBucket" (AWS: as
    # s3:ListBucket, in the policy): the admin key creates the repository.
    admin = {
        **base,
        "AWS_ACCESS_KEY_ID": s3_iam_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_iam_server.secret_key,
    }
    assert _restic(admin, "init").returncode == 0
    for _ in range(2):
        done = _restic(backup, "backup", str(tmp_path / "data"))
        assert done.returncode == 0, done.stderr
    assert s3_iam_server.keys(bucket, "locks/") == []  # restic removed its own lock files

    def count() -> int:
        return len(json.loads(_restic(maint, "snapshots", "--json").stdout))

    assert count() == 2
    _restic(backup, "forget", "--keep-last", "1")  # exits 0 (restic 0.18) or not (0.14)
    assert count() == 2  # the backup key may not delete
    done = _restic(maint, "forget", "--keep-last", "1", "--prune")
    assert done.returncode == 0, done.stderr
    assert count() == 1
