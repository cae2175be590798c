from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import Tenant
from tests.fixtures.databases import mysql_pod, pg_cluster, pg_pod  # noqa: F401
from tests.fixtures.s3 import (  # noqa: F401
    S3ServerHandle,
    s3_bucket,
    s3_iam_bucket,
    s3_iam_server,
    s3_server,
)
from tests.fixtures.sftp import sftp_server  # noqa: F401
from tests.retention.fixtures import worker  # noqa: F401

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"


async def make_pod(client: httpx.AsyncClient, tenant: Tenant, name: str = "wiki") -> str:
    r = await client.post("/v1/pods", json={"name": name, "app": "wikijs"}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def b2_target(**over: Any) -> dict[str, Any]:
    target: dict[str, Any] = {
        "kind": "s3",
        "endpoint": "s3.us-west-001.backblazeb2.com",
        "bucket": "my-pod-backup-1",
        "access_key_id": "0015a1b2c3d4e5f0000000001",
        "secret_access_key": SECRET,
    }
    target.update(over)
    return target


def s3_target(
    server: S3ServerHandle, bucket: str, key: str | None = None, secret: str | None = None
) -> dict[str, Any]:
    return {
        "kind": "s3",
        "endpoint": server.url,
        "bucket": bucket,
        "access_key_id": key or server.access_key,
        "secret_access_key": secret or server.secret_key,
    }


async def put_settings(
    client: httpx.AsyncClient, headers: dict[str, str], pod_id: str, **body: Any
) -> dict[str, Any]:
    r = await client.put(f"/v1/pods/{pod_id}/backup-settings", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]
