"""The outbound-address policy with nothing allow-listed: every user-supplied host — a
pod's SFTP host, database host and stop/start hooks, a backup target's S3 endpoint, a
webhook URL — is refused when it is loopback, private (RFC 1918, CGNAT, IPv6 ULA),
link-local or a metadata address, written any way (IPv6, IPv4-mapped, short and numeric
IPv4 forms) or as a name that resolves there; refused again when connecting (a job whose
saved host is no longer allowed never connects); and a redirect from an allowed webhook
or hook URL towards a refused address is never followed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.integrations import hooks
from app.kit import netpolicy
from app.main import create_app
from app.models.base import utcnow
from app.webhooks.delivery import deliver_due
from tests.backups.helpers import backup, sftp_files
from tests.conftest import Tenant, auth
from tests.faults.helpers import fill, local_pod
from tests.fixtures.s3 import S3ServerHandle
from tests.fixtures.sftp import SftpServerHandle
from tests.fixtures.worker import WorkerProcess

REFUSED_HOSTS = [
    "127.0.0.1",
    "127.1",  # inet_aton short form of 127.0.0.1
    "2130706433",  # ... and its decimal form
    "localhost",  # a name that resolves to loopback
    "10.0.0.5",
    "172.16.3.4",
    "192.168.1.1",
    "100.64.0.1",
    "169.254.169.254",
    "metadata.google.internal",
    "0.0.0.0",
    "::1",
    "fe80::1",
    "fc00::1",
    "::ffff:127.0.0.1",
    "fd00:ec2::254",
]


def in_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"allow_networks": []})


async def test_every_user_supplied_host_is_refused_on_save(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    r = await client.post("/v1/pods", json={"name": "p", "app": "a"}, headers=h)
    assert r.status_code == 201, r.text
    pod = r.json()["id"]
    sftp = {"kind": "sftp", "port": 22, "username": "u", "password": "pw-123456", "path": "/"}
    db = {"kind": "postgres", "port": 5432, "name": "d", "username": "u", "password": "pw-1234"}
    s3 = {"kind": "s3", "bucket": "my-bucket-1", "access_key_id": "AK1",
          "secret_access_key": "sk-123456789"}  # fmt: skip
    problems: list[str] = []
    for host in REFUSED_HOSTS:
        u = in_url(host)
        attempts: list[tuple[str, str, dict[str, Any]]] = [
            ("POST", "/v1/pods", {"name": "x", "app": "y", "files": {**sftp, "host": host}}),
            ("POST", "/v1/pods", {"name": "x", "app": "y", "database": {**db, "host": host}}),
            ("POST", "/v1/pods",
             {"name": "x", "app": "y", "hooks": {"stop_url": f"https://{u}/stop"}}),
            ("PATCH", f"/v1/pods/{pod}",
             {"hooks": {"start_url": f"https://{u}:8443/start"}}),
            ("PATCH", f"/v1/pods/{pod}", {"files": {**sftp, "host": host}}),
            ("PUT", f"/v1/pods/{pod}/backup-settings",
             {"target": {**s3, "endpoint": f"https://{u}:9000"}}),
            ("POST", "/v1/webhooks", {"url": f"https://{u}/hook"}),
        ]  # fmt: skip
        for method, path, body in attempts:
            r = await client.request(method, path, json=body, headers=h)
            if r.status_code != 422 or not r.json().get("hint"):
                problems.append(f"{host}: {method} {path} {body} -> {r.status_code} {r.text}")
        # Verifying unsaved values must not connect either.
        r = await client.post(
            f"/v1/pods/{pod}/backup-settings/verify",
            json={**s3, "endpoint": f"https://{u}:9000"},
            headers=h,
        )
        if r.status_code == 200 and r.json()["ok"]:
            problems.append(f"{host}: verify passed: {r.text}")
    assert not problems, "\n".join(problems)
    # Nothing was stored on the way.
    r = await client.get("/v1/pods", headers=h)
    assert [p["id"] for p in r.json()["items"]] == [pod]
    assert (await client.get("/v1/webhooks", headers=h)).json()["items"] == []


class Listener:
    """An HTTP server that answers every request with ``status`` (and ``location``)."""

    def __init__(self, host: str, status: int = 200, location: str | None = None) -> None:
        self.host, self.status, self.location = host, status, location
        self.hits = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Listener:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (int(line.split(b":")[1]) for line in head.split(b"\r\n")
                 if line.lower().startswith(b"content-length:")),
                0,
            )  # fmt: skip
            await reader.readexactly(length)
            self.hits += 1
            extra = f"Location: {self.location}\r\n" if self.location else ""
            writer.write(
                f"HTTP/1.1 {self.status} X\r\n{extra}Content-Length: 0\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            await writer.drain()
        writer.close()


@pytest.fixture
async def inner() -> AsyncIterator[Listener]:
    """A service on 127.0.0.1 — not allow-listed — that must never be reached."""
    async with Listener("127.0.0.1") as listener:
        yield listener


async def test_redirects_towards_refused_addresses_are_not_followed(
    settings: Settings, database_url: str, inner: Listener
) -> None:
    # 127.0.0.2 (allow-listed) redirects to 127.0.0.1 and to the metadata address.
    allowed = settings.model_copy(update={"allow_networks": ["127.0.0.2/32"]})
    policy = netpolicy.Policy.from_settings(allowed.allow_networks)
    for target in (inner.url, "http://169.254.169.254/latest/meta-data/"):
        async with Listener("127.0.0.2", 302, target) as outer:
            # A pod's stop hook.
            with pytest.raises(hooks.HookError) as err:
                await hooks.call(outer.url, "stop", {}, secret=b"k", policy=policy, timeout=5)
            assert "302" in err.value.message
            assert outer.hits == 1
            # A webhook delivery, through the worker's delivery code.
            app = create_app(allowed)
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                    admin = await _admin(app)
                    r = await c.post("/v1/accounts", json={"name": "w"}, headers=auth(admin))
                    account = r.json()["id"]
                    r = await c.post(
                        "/v1/webhooks",
                        json={"url": outer.url, "account_id": account},
                        headers=auth(admin),
                    )
                    assert r.status_code == 201, r.text
                    hook = r.json()["id"]
                    assert (
                        await c.post(f"/v1/webhooks/{hook}/test", headers=auth(admin))
                    ).status_code == 202
                    counts = await deliver_due(_Services(allowed, app), utcnow())
                    assert counts.get("delivered", 0) == 0, counts
                    r = await c.get(f"/v1/webhooks/{hook}/deliveries", headers=auth(admin))
                    delivery = r.json()["items"][0]
                    assert delivery["status"] != "delivered", delivery
                    assert delivery["last_status_code"] == 302, delivery
            assert outer.hits == 2
    assert inner.hits == 0


class _Services:
    def __init__(self, settings: Settings, app: FastAPI) -> None:
        self.settings = settings
        self.sessionmaker = app.state.sessionmaker
        self.keyring = app.state.keyring


async def _admin(app: FastAPI) -> str:
    from app.auth.tokens import create_token

    async with app.state.sessionmaker() as session:
        new = await create_token(session, scope="admin", account_id=None, name="outbound")
        await session.commit()
        return new.token


async def test_a_saved_host_no_longer_allowed_is_refused_when_connecting(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    settings: Settings,
    tmp_path: Path,
) -> None:
    """Saved while the operator allowed loopback; the worker runs after the allow-list
    was narrowed: each job fails with `address_refused` before connecting — to the SFTP
    host, and to the S3 endpoint restic would have used."""
    fill(sftp_server.root)
    (tmp_path / "local").mkdir()
    allowing = settings.model_copy(
        update={"allow_networks": ["127.0.0.0/8"], "local_roots": [tmp_path]}
    )
    app = create_app(allowing)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            over_sftp = await local_pod(
                c, admin_token, tenant, sftp_files(sftp_server), tmp_path / "r"
            )
            into_s3 = await local_pod(
                c, admin_token, tenant, tmp_path / "local", tmp_path / "r2", name="into-s3"
            )
            r = await c.put(
                f"/v1/pods/{into_s3['id']}/backup-settings",
                json={"target": {"kind": "s3", "endpoint": s3_server.url, "bucket": s3_bucket,
                                 "access_key_id": "AK1", "secret_access_key": "sk-123456789"}},
                headers=auth(admin_token),
            )  # fmt: skip
            assert r.status_code == 200, r.text
    narrowed = settings.model_copy(update={"local_roots": [tmp_path], "job_max_attempts": 1})
    worker = WorkerProcess(narrowed, tmp_path / "worker").start()
    try:
        sftp_server.bytes_sent = 0
        jobs = [await backup(client, tenant.headers, p["id"]) for p in (over_sftp, into_s3)]
    finally:
        worker.stop()
    for job in jobs:  # refused at the SFTP host, then at the S3 endpoint
        assert job["status"] == "failed", job
        assert job["error"]["code"] == "address_refused", job
        assert "loopback" in job["error"]["message"], job
        assert job["error"]["hint"]
    assert sftp_server.bytes_sent == 0
    assert s3_server.keys(s3_bucket) == []  # restic never reached the bucket
