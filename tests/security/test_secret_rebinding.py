"""Issue 12.5: a stored secret goes only where it was given for. A tenant (or anyone with
the account's token) who moves a pod's SFTP access or database to another host, port or
login must give the password again: otherwise the next job sends the stored one, which
they may never have known, to a server they run. The attacker's server here is a real
asyncssh server on loopback that records every password a client offers it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import httpx
import pytest
from fastapi import FastAPI

from app.models import Pod
from app.pods.service import decrypt_secrets
from tests.backups.conftest import settings, worker  # noqa: F401
from tests.backups.helpers import backup, create_pod, sftp_files
from tests.conftest import Tenant, auth
from tests.fixtures.sftp import SftpServerHandle
from tests.fixtures.worker import WorkerProcess


@dataclass
class Harvester:
    port: int
    offered: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture
async def harvester() -> AsyncIterator[Harvester]:
    """An SSH server that accepts no login and keeps every password offered to it."""
    found = Harvester(port=0)

    class Keep(asyncssh.SSHServer):
        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            found.offered.append((username, password))
            return False

    server = await asyncssh.create_server(
        Keep,
        "127.0.0.1",
        0,
        server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")],
    )
    found.port = server.sockets[0].getsockname()[1]
    try:
        yield found
    finally:
        server.close()
        await server.wait_closed()


async def stored(app: FastAPI, pod_id: str) -> Any:
    async with app.state.sessionmaker() as session:
        pod = await session.get(Pod, uuid.UUID(pod_id))
        assert pod is not None
        return decrypt_secrets(app.state.keyring, pod)


async def test_moving_the_sftp_access_needs_the_password_again(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    sftp_server: SftpServerHandle,
    harvester: Harvester,
    worker: WorkerProcess,  # noqa: F811
    app: FastAPI,
) -> None:
    # The pod's SFTP password was set by the platform (the tenant never saw it).
    pod = await create_pod(
        client,
        auth(admin_token),
        account_id=tenant.account_id,
        files=sftp_files(sftp_server),
        target={"kind": "local", "path": str(tmp_path / "repo")},
    )
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "succeeded", job
    pinned = (await client.get(f"/v1/pods/{pod['id']}", headers=tenant.headers)).json()
    assert pinned["files"]["host_key"] == sftp_server.host_key_line

    moved = {"kind": "sftp", "host": "127.0.0.1", "port": harvester.port, "username": "pod"}
    r = await client.patch(f"/v1/pods/{pod['id']}", json={"files": moved}, headers=tenant.headers)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["detail"][0]["loc"] == ["body", "files", "password"]
    assert "enter the password" in body["hint"]
    assert sftp_server.password not in r.text
    # Nothing changed: the next backup still goes to the pod's own server.
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "succeeded", job
    assert harvester.offered == []

    # A login change on the same server is a new destination too.
    r = await client.patch(
        f"/v1/pods/{pod['id']}",
        json={"files": {**sftp_files(sftp_server), "username": "other", "password": None}},
        headers=tenant.headers,
    )
    assert r.status_code == 422, r.text

    # With the secret for the new place it is saved; the stored one never goes there, and
    # the pinned host key of the old server is dropped (the new one is pinned on first use).
    r = await client.patch(
        f"/v1/pods/{pod['id']}",
        json={"files": {**moved, "password": "for-the-new-server"}},
        headers=tenant.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["files"]["host_key"] is None
    assert (await stored(app, pod["id"])).sftp_password == "for-the-new-server"
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "failed"
    assert harvester.offered
    assert {password for _, password in harvester.offered} == {"for-the-new-server"}

    # The same server, port and login again: the stored password is kept as before.
    r = await client.patch(f"/v1/pods/{pod['id']}", json={"files": moved}, headers=tenant.headers)
    assert r.status_code == 200, r.text


async def test_moving_the_database_needs_the_password_again(
    client: httpx.AsyncClient, admin_token: str, tenant: Tenant, app: FastAPI
) -> None:
    database = {
        "kind": "postgres",
        "host": "127.0.0.2",
        "port": 5433,
        "name": "wiki",
        "username": "wiki",
        "password": "the-platform-set-this",
    }
    r = await client.post(
        "/v1/pods",
        json={"name": "wiki", "app": "wikijs", "database": database},
        headers=tenant.headers,
    )
    assert r.status_code == 201, r.text
    pod_id = r.json()["id"]
    kept = {k: v for k, v in database.items() if k != "password"}
    for change in ({"host": "127.0.0.3"}, {"port": 6543}, {"username": "root"}):
        r = await client.patch(
            f"/v1/pods/{pod_id}", json={"database": {**kept, **change}}, headers=tenant.headers
        )
        assert r.status_code == 422, (change, r.text)
        assert r.json()["detail"][0]["loc"] == ["body", "database", "password"]
        assert "the-platform-set-this" not in r.text
    r = await client.patch(
        f"/v1/pods/{pod_id}",
        json={"database": {**kept, "kind": "mariadb", "port": 5433}},
        headers=tenant.headers,
    )
    assert r.status_code == 422, r.text
    assert (await stored(app, pod_id)).db_password == "the-platform-set-this"

    # Another database on the same server with the same login: the password stays.
    r = await client.patch(
        f"/v1/pods/{pod_id}", json={"database": {**kept, "name": "wiki2"}}, headers=tenant.headers
    )
    assert r.status_code == 200, r.text
    assert (await stored(app, pod_id)).db_password == "the-platform-set-this"
    # A new place with its own password, or '' to drop the stored one: accepted.
    r = await client.patch(
        f"/v1/pods/{pod_id}",
        json={"database": {**kept, "host": "127.0.0.3", "password": "new-one"}},
        headers=tenant.headers,
    )
    assert r.status_code == 200, r.text
    assert (await stored(app, pod_id)).db_password == "new-one"
    r = await client.patch(
        f"/v1/pods/{pod_id}",
        json={"database": {**kept, "host": "127.0.0.4", "password": ""}},
        headers=tenant.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["database"]["password_set"] is False
