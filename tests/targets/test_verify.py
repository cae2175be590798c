"""Verification against a real S3 server (moto, with IAM enforcement where keys matter)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
from typing import Any

import httpx
import pytest

from tests.conftest import Tenant
from tests.fixtures.s3 import S3ServerHandle
from tests.targets.conftest import make_pod, put_settings, s3_target

ALL_CHECKS = [
    "address_policy",
    "connect",
    "credentials",
    "bucket",
    "write",
    "read",
    "list",
    "delete",
    "key_scope",
    "contents",
    "versioning",
    "object_lock",
]


def by_name(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in result["checks"]}


async def verify(
    client: httpx.AsyncClient, headers: dict[str, str], pod_id: str, body: Any = None
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    r = await client.post(f"/v1/pods/{pod_id}/backup-settings/verify", **kwargs)
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    assert [c["name"] for c in data["checks"]] == ALL_CHECKS or data["checks"][0]["name"] == "path"
    return data


async def test_valid_settings_verify_green_and_are_marked(
    client: httpx.AsyncClient,
    tenant: Tenant,
    s3_iam_server: S3ServerHandle,
    s3_iam_bucket: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key, secret = s3_iam_server.create_key(s3_iam_bucket)
    caplog.clear()  # the fixture's own IAM call logs the new key's secret (botocore DEBUG)
    caplog.set_level(logging.DEBUG)
    pod_id = await make_pod(client, tenant)
    target = s3_target(s3_iam_server, s3_iam_bucket, key, secret)
    await put_settings(client, tenant.headers, pod_id, target=target)

    result = await verify(client, tenant.headers, pod_id)
    assert result["ok"] is True, result
    assert result["saved"] is True
    for check in result["checks"]:
        assert (check["ok"], check["level"]) == (True, "ok"), check
    checks = by_name(result)
    assert "empty" in checks["contents"]["detail"]
    assert "cannot list" in checks["key_scope"]["detail"]
    assert result["repository"] == f"s3:{s3_iam_server.url}/{s3_iam_bucket}"
    assert secret not in json.dumps(result)
    assert s3_iam_server.keys(s3_iam_bucket) == []  # the probe was removed

    settings = (
        await client.get(f"/v1/pods/{pod_id}/backup-settings", headers=tenant.headers)
    ).json()
    assert settings["verified_ok"] is True
    assert settings["verified_at"] is not None
    audit = (await client.get(f"/v1/pods/{pod_id}/audit", headers=tenant.headers)).json()
    event = audit["items"][0]
    assert event["action"] == "backup_settings.verify"
    assert event["detail"]["ok"] is True
    assert secret not in str(audit)
    assert secret not in caplog.text
    assert caplog.records  # botocore and the service did log: the check is not vacuous


async def test_wrong_secret_and_unknown_key_fail_the_credentials_check(
    client: httpx.AsyncClient,
    tenant: Tenant,
    s3_iam_server: S3ServerHandle,
    s3_iam_bucket: str,
) -> None:
    key, _ = s3_iam_server.create_key(s3_iam_bucket)
    pod_id = await make_pod(client, tenant)
    wrong = "not-the-right-secret-0123456789"
    result = await verify(
        client, tenant.headers, pod_id, s3_target(s3_iam_server, s3_iam_bucket, key, wrong)
    )
    checks = by_name(result)
    assert wrong not in json.dumps(result)
    assert result["ok"] is False
    assert result["saved"] is False
    assert checks["connect"]["ok"] is True
    assert checks["credentials"]["level"] == "error"
    assert "secret access key does not match" in checks["credentials"]["detail"]
    assert checks["credentials"]["hint"]
    assert all(checks[n]["level"] == "skipped" for n in ALL_CHECKS[3:])

    result = await verify(
        client,
        tenant.headers,
        pod_id,
        s3_target(s3_iam_server, s3_iam_bucket, "AKIANOSUCHKEY0000000", wrong),
    )
    assert (
        "does not know access key id 'AKIANOSUCHKEY0000000'"
        in (by_name(result)["credentials"]["detail"])
    )


async def test_missing_bucket_fails_the_bucket_check(
    client: httpx.AsyncClient, tenant: Tenant, s3_iam_server: S3ServerHandle
) -> None:
    missing = s3_iam_server.unique_bucket("missing")
    key, secret = s3_iam_server.create_key(missing)
    pod_id = await make_pod(client, tenant)
    result = await verify(
        client, tenant.headers, pod_id, s3_target(s3_iam_server, missing, key, secret)
    )
    checks = by_name(result)
    assert checks["credentials"]["level"] == "ok"
    assert checks["bucket"]["level"] == "error"
    assert f"bucket '{missing}' does not exist" in checks["bucket"]["detail"]
    assert "create the bucket" in checks["bucket"]["hint"]
    assert checks["write"]["level"] == "skipped"


async def test_key_without_delete_permission_fails_the_delete_check(
    client: httpx.AsyncClient,
    tenant: Tenant,
    s3_iam_server: S3ServerHandle,
    s3_iam_bucket: str,
) -> None:
    key, secret = s3_iam_server.create_key(s3_iam_bucket, deny=("s3:DeleteObject",))
    pod_id = await make_pod(client, tenant)
    result = await verify(
        client, tenant.headers, pod_id, s3_target(s3_iam_server, s3_iam_bucket, key, secret)
    )
    checks = by_name(result)
    assert result["ok"] is False
    assert [n for n in ALL_CHECKS if checks[n]["level"] != "ok"] == ["delete"]
    assert "could not delete the probe" in checks["delete"]["detail"]
    assert "s3:DeleteObject" in checks["delete"]["hint"]
    left = s3_iam_server.keys(s3_iam_bucket)
    assert len(left) == 1
    assert left[0] in checks["delete"]["detail"]


@pytest.mark.parametrize(
    ("versioning", "object_lock", "said"),
    [(True, False, "versioning is enabled"), (False, True, "Object Lock is enabled")],
)
async def test_versioned_or_locked_bucket_warns(
    client: httpx.AsyncClient,
    tenant: Tenant,
    s3_iam_server: S3ServerHandle,
    versioning: bool,
    object_lock: bool,
    said: str,
) -> None:
    bucket = s3_iam_server.create_bucket(versioning=versioning, object_lock=object_lock)
    key, secret = s3_iam_server.create_key(bucket)
    pod_id = await make_pod(client, tenant)
    result = await verify(
        client, tenant.headers, pod_id, s3_target(s3_iam_server, bucket, key, secret)
    )
    checks = by_name(result)
    assert result["ok"] is True  # a warning does not fail the verification
    # An Object Lock bucket is versioned too: both say pruning will not free space.
    assert checks["versioning"]["level"] == "warning"
    assert checks["versioning"]["ok"] is False
    assert "versioning is enabled" in checks["versioning"]["detail"]
    assert "pruning old snapshots will not free space" in checks["versioning"]["detail"]
    shown = checks["object_lock"] if object_lock else checks["versioning"]
    assert said in shown["detail"]
    assert checks["object_lock"]["level"] == ("warning" if object_lock else "ok")
    assert checks["delete"]["level"] == "ok"


async def test_key_that_sees_other_buckets_warns_with_the_guides_advice(
    client: httpx.AsyncClient,
    tenant: Tenant,
    s3_iam_server: S3ServerHandle,
    s3_iam_bucket: str,
) -> None:
    s3_iam_server.create_bucket()  # at least one other bucket the admin key can see
    pod_id = await make_pod(client, tenant)
    result = await verify(client, tenant.headers, pod_id, s3_target(s3_iam_server, s3_iam_bucket))
    check = by_name(result)["key_scope"]
    assert result["ok"] is True
    assert check["level"] == "warning"
    assert "other bucket(s) and read bucket" in check["detail"]
    assert "limit the key to this one bucket only" in check["hint"]


def _restic_env(server: S3ServerHandle, bucket: str, password: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "RESTIC_REPOSITORY": f"s3:{server.url}/{bucket}",
        "RESTIC_PASSWORD": password,
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "RESTIC_CACHE_DIR": "/tmp/podbackup-test-restic-cache",
    }


async def test_bucket_with_another_pods_repository_is_an_error(
    client: httpx.AsyncClient, tenant: Tenant, s3_server: S3ServerHandle, s3_bucket: str
) -> None:
    done = await asyncio.to_thread(
        subprocess.run,
        ["restic", "init"],
        env=_restic_env(s3_server, s3_bucket, "another-pods-password"),
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    pod_id = await make_pod(client, tenant)
    await put_settings(client, tenant.headers, pod_id, target=s3_target(s3_server, s3_bucket))
    result = await verify(client, tenant.headers, pod_id)
    check = by_name(result)["contents"]
    assert result["ok"] is False
    assert check["level"] == "error"
    assert "another pod or an unknown owner" in check["detail"]
    assert "one bucket can only keep the backups of one pod" in check["hint"]


async def test_bucket_with_other_files_warns(
    client: httpx.AsyncClient, tenant: Tenant, s3_server: S3ServerHandle, s3_bucket: str
) -> None:
    s3_server.client().put_object(Bucket=s3_bucket, Key="photos/cat.jpg", Body=b"meow")
    pod_id = await make_pod(client, tenant)
    result = await verify(client, tenant.headers, pod_id, s3_target(s3_server, s3_bucket))
    check = by_name(result)["contents"]
    assert check["level"] == "warning"
    assert "'photos/cat.jpg'" in check["detail"]


async def test_unsaved_values_are_verified_without_saving(
    client: httpx.AsyncClient, tenant: Tenant, s3_server: S3ServerHandle, s3_bucket: str
) -> None:
    pod_id = await make_pod(client, tenant)
    saved = await put_settings(
        client, tenant.headers, pod_id, target=s3_target(s3_server, "saved-bucket-name")
    )
    typed = s3_target(s3_server, s3_bucket)
    del typed["secret_access_key"]  # the stored one is used
    result = await verify(client, tenant.headers, pod_id, typed)
    assert result["saved"] is False
    assert by_name(result)["write"]["level"] == "ok"
    assert result["repository"] == f"s3:{s3_server.url}/{s3_bucket}"
    after = (await client.get(f"/v1/pods/{pod_id}/backup-settings", headers=tenant.headers)).json()
    assert after == saved  # nothing saved, not even verified_at

    # A pod without settings can verify typed values too (a secret is then required).
    fresh = await make_pod(client, tenant, "fresh")
    result = await verify(client, tenant.headers, fresh, s3_target(s3_server, s3_bucket))
    assert result["ok"] is True
    r = await client.post(f"/v1/pods/{fresh}/backup-settings/verify", headers=tenant.headers)
    assert r.status_code == 404
    r = await client.post(
        f"/v1/pods/{fresh}/backup-settings/verify",
        json={**s3_target(s3_server, s3_bucket), "endpoint": "b.s3.amazonaws.com"},
        headers=tenant.headers,
    )
    assert r.status_code == 422
