"""Verify tells the truth about the whole pod: a recorded repository gone from the bucket
is an error (what every backup would fail with), and the pod's own side is checked as a
backup reaches it — the SFTP login and folder, the database login and dump client —
against real servers (asyncssh SFTP, PostgreSQL, MariaDB, moto S3, a worker)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncssh
import httpx
import pytest

from app.config import Settings
from app.integrations.dumps import DbEndpoint
from app.targets.repository import REPOSITORY_GONE_HINT
from tests.backups.helpers import backup, create_pod, database_spec, s3_target, sftp_files
from tests.conftest import Tenant
from tests.faults.helpers import local_pod
from tests.fixtures.s3 import S3ServerHandle
from tests.fixtures.sftp import SftpServerHandle
from tests.fixtures.worker import WorkerProcess

BUDGET = 6.0
TARGET_CHECKS = [
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


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"verify_budget_seconds": BUDGET, "local_roots": [tmp_path]})


async def verify(client: httpx.AsyncClient, tenant: Tenant, pod_id: str) -> dict[str, Any]:
    r = await client.post(f"/v1/pods/{pod_id}/backup-settings/verify", headers=tenant.headers)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    assert set(result) >= {"ok", "checks"}
    for check in result["checks"]:
        assert set(check) >= {"name", "ok", "detail", "hint"}
    return result


def by_name(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in result["checks"]}


async def verified_ok(client: httpx.AsyncClient, tenant: Tenant, pod_id: str) -> bool | None:
    r = await client.get(f"/v1/pods/{pod_id}/backup-settings", headers=tenant.headers)
    value: bool | None = r.json()["verified_ok"]
    return value


def fill(root: Path) -> None:
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "config.yml").write_text("name: wiki\n")
    (root / "data" / "page.md").write_text("# hello\n")


@pytest.mark.timeout(240)
async def test_a_recorded_repository_gone_from_the_bucket_is_an_error(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    worker: WorkerProcess,
) -> None:
    fill(sftp_server.root)
    pod = await create_pod(
        client,
        tenant.headers,
        files=sftp_files(sftp_server),
        target=s3_target(s3_server, s3_bucket),
    )
    for _ in range(2):
        job = await backup(client, tenant.headers, pod["id"])
        assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    before = await verify(client, tenant, pod["id"])
    assert before["ok"] is True, before
    assert "this pod's repository" in by_name(before)["contents"]["detail"]

    s3_server.empty_bucket(s3_bucket)  # the repository's objects are gone, the records stay

    result = await verify(client, tenant, pod["id"])
    contents = by_name(result)["contents"]
    assert result["ok"] is False, result
    assert (contents["ok"], contents["level"]) == (False, "error"), contents
    assert "gone" in contents["detail"]
    assert "2 snapshots on record" in contents["detail"]
    assert "ready" not in contents["detail"]
    assert await verified_ok(client, tenant, pod["id"]) is False

    # It is what the next backup fails with, hint for hint.
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "repository_mismatch", job["error"]
    assert job["error"]["hint"] == contents["hint"] == REPOSITORY_GONE_HINT


async def test_the_pods_side_is_checked_and_passes_with_the_right_logins(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    pg_pod: DbEndpoint,
) -> None:
    fill(sftp_server.root)
    pod = await create_pod(
        client,
        tenant.headers,
        files=sftp_files(sftp_server),
        database=database_spec(pg_pod),
        target=s3_target(s3_server, s3_bucket),
    )
    result = await verify(client, tenant, pod["id"])
    assert result["ok"] is True, result
    names = [c["name"] for c in result["checks"]]
    assert names == [*TARGET_CHECKS, "pod_files", "pod_database"]
    files, db = by_name(result)["pod_files"], by_name(result)["pod_database"]
    assert (files["ok"], files["level"]) == (True, "ok"), files
    assert f"'{sftp_server.username}'" in files["detail"]
    assert "2 entries" in files["detail"]
    assert "SHA256:" in files["detail"]
    assert "not pinned yet" in files["detail"]
    assert (db["ok"], db["level"]) == (True, "ok"), db
    assert f"database '{pg_pod.name}'" in db["detail"]
    assert "pg_dump" in db["detail"]
    assert await verified_ok(client, tenant, pod["id"]) is True
    text = json.dumps(result)
    assert str(sftp_server.password) not in text
    assert str(pg_pod.password) not in text


async def test_a_wrong_sftp_password_fails_verify_with_a_hint(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3_server: S3ServerHandle,
    s3_bucket: str,
) -> None:
    fill(sftp_server.root)
    wrong = "not-the-pods-password-81f3"
    pod = await create_pod(
        client,
        tenant.headers,
        files={**sftp_files(sftp_server), "password": wrong},
        target=s3_target(s3_server, s3_bucket),
    )
    result = await verify(client, tenant, pod["id"])
    files = by_name(result)["pod_files"]
    assert result["ok"] is False, result
    assert (files["ok"], files["level"]) == (False, "error"), files
    assert "refused the login" in files["detail"]
    assert "password" in files["hint"]
    assert by_name(result)["contents"]["level"] == "ok"  # the target itself is fine
    assert "pod_database" not in by_name(result)  # no database: nothing to check there
    assert await verified_ok(client, tenant, pod["id"]) is False
    assert wrong not in json.dumps(result)


async def test_a_missing_sftp_folder_fails_verify(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3_server: S3ServerHandle,
    s3_bucket: str,
) -> None:
    fill(sftp_server.root)
    pod = await create_pod(
        client,
        tenant.headers,
        files={**sftp_files(sftp_server), "path": "/no-such-folder"},
        target=s3_target(s3_server, s3_bucket),
    )
    result = await verify(client, tenant, pod["id"])
    files = by_name(result)["pod_files"]
    assert result["ok"] is False
    assert files["level"] == "error", files
    assert "'/no-such-folder' does not exist" in files["detail"]
    assert files["hint"]


async def test_a_postgres_login_failure_fails_verify(
    client: httpx.AsyncClient,
    tenant: Tenant,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    pg_pod: DbEndpoint,
) -> None:
    await database_login_failure(client, tenant, s3_server, s3_bucket, pg_pod)


async def test_a_mariadb_login_failure_fails_verify(
    client: httpx.AsyncClient,
    tenant: Tenant,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    mysql_pod: DbEndpoint,
) -> None:
    await database_login_failure(client, tenant, s3_server, s3_bucket, mysql_pod)


async def database_login_failure(
    client: httpx.AsyncClient,
    tenant: Tenant,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    db: DbEndpoint,
) -> None:
    wrong = "wrong-db-password-5c2e"
    pod = await create_pod(
        client,
        tenant.headers,
        database={**database_spec(db), "password": wrong},
        target=s3_target(s3_server, s3_bucket),
    )
    result = await verify(client, tenant, pod["id"])
    check = by_name(result)["pod_database"]
    assert result["ok"] is False, result
    assert (check["ok"], check["level"]) == (False, "error"), check
    assert "username or password" in check["hint"]
    assert "pod_files" not in by_name(result)
    assert wrong not in json.dumps(result)

    # The right password: the login works and the dump client fits.
    r = await client.patch(
        f"/v1/pods/{pod['id']}",
        json={"database": database_spec(db)},
        headers=tenant.headers,
    )
    assert r.status_code == 200, r.text
    result = await verify(client, tenant, pod["id"])
    check = by_name(result)["pod_database"]
    assert check["level"] == "ok", check
    assert "fits" in check["detail"]


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP port that accepts connections and never says a word (no SSH banner)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_silent_sftp_server_fails_within_the_budget(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    silent_server: int,
) -> None:
    pod = await create_pod(
        client,
        tenant.headers,
        files={**sftp_files(sftp_server), "port": silent_server},
        target=s3_target(s3_server, s3_bucket),
    )
    started = time.monotonic()
    result = await verify(client, tenant, pod["id"])
    took = time.monotonic() - started
    files = by_name(result)["pod_files"]
    assert files["level"] == "error", files
    assert f"{BUDGET:.0f} s" in files["detail"]
    assert result["ok"] is False
    assert took < BUDGET + 4, took  # the SSH connect timeout alone is 20 s


async def test_the_sftp_host_key_is_checked_against_the_pinned_one(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3_server: S3ServerHandle,
    s3_bucket: str,
) -> None:
    fill(sftp_server.root)
    pinned = await create_pod(
        client,
        tenant.headers,
        name="pinned",
        files={**sftp_files(sftp_server), "host_key": sftp_server.host_key_line},
        target=s3_target(s3_server, s3_bucket),
    )
    files = by_name(await verify(client, tenant, pinned["id"]))["pod_files"]
    assert files["level"] == "ok", files
    assert "(the pinned key)" in files["detail"]

    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    impostor = await create_pod(
        client,
        tenant.headers,
        name="impostor",
        files={**sftp_files(sftp_server), "host_key": other},
        target=s3_target(s3_server, s3_bucket),
    )
    result = await verify(client, tenant, impostor["id"])
    files = by_name(result)["pod_files"]
    assert result["ok"] is False
    assert files["level"] == "error", files
    assert "does not match the pinned key" in files["detail"]
    assert "attack" in files["hint"]


async def test_a_local_pods_folder_is_checked(
    client: httpx.AsyncClient, admin_token: str, tenant: Tenant, tmp_path: Path
) -> None:
    folder = tmp_path / "pod"
    pod = await local_pod(client, admin_token, tenant, folder, tmp_path / "repo")
    result = await verify(client, tenant, pod["id"])
    files = by_name(result)["pod_files"]
    assert result["ok"] is False
    assert files["level"] == "error", files
    assert f"the folder '{folder}' does not exist" in files["detail"]

    fill(folder)
    result = await verify(client, tenant, pod["id"])
    files = by_name(result)["pod_files"]
    assert result["ok"] is True, result
    assert files["detail"] == f"'{folder}' is a folder that could be listed (2 entries)"
