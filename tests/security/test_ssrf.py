"""SSRF past the outbound-address policy, with only 127.0.0.1/32 allow-listed.

A tenant's S3 endpoint on an allowed address answers with redirects towards 127.0.0.2;
an endpoint written as an IP literal names 127.0.0.2; restic is handed a name that
resolves to 127.0.0.2 only when restic itself looks it up (``127.2``, the inet_aton short
form, stands in for a DNS answer changed after the check). 127.0.0.2 runs a listener that
counts requests: it must never get one, and each attempt ends in a clear error. Also: the
operator's own servers are refused even inside an allow-listed network, IPv6 forms
carrying a refused IPv4 address and trailing-dot names are refused on save, and hooks
need https outside the allow-list. All traffic stays on 127.0.0.0/8.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.config import Settings
from app.integrations import s3
from app.integrations.dumps import DbEndpoint
from app.integrations.dumps.runner import resolve as resolve_database
from app.integrations.egress import EgressProxy
from app.integrations.restic import Repository, Restic, ResticError
from app.integrations.restic.evidence import snapshot_in_storage
from app.integrations.s3 import errors as s3e
from app.kit import netpolicy
from tests.conftest import Tenant
from tests.fixtures.s3 import S3ServerHandle


class Listener:
    """An HTTP server on ``host`` that counts requests and answers ``status`` (with a
    ``Location`` when given)."""

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
        return f"http://{self.host}:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.hits += 1
                length = next(
                    (int(line.split(b":")[1]) for line in head.split(b"\r\n")
                     if line.lower().startswith(b"content-length:")),
                    0,
                )  # fmt: skip
                await reader.readexactly(length)
                extra = f"Location: {self.location}\r\n" if self.location else ""
                writer.write(
                    f"HTTP/1.1 {self.status} X\r\n{extra}Content-Length: 0\r\n\r\n".encode()
                )
                await writer.drain()
        writer.close()


ALLOW_ONE = ["127.0.0.1/32"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"allow_networks": ALLOW_ONE})


@pytest.fixture
async def inner() -> AsyncIterator[Listener]:
    """What must never be reached: a listener on 127.0.0.2, outside the allow-list."""
    async with Listener("127.0.0.2") as listener:
        yield listener


def _access(endpoint_url: str, bucket: str = "bucket-1") -> s3.S3Access:
    return s3.S3Access(
        endpoint_url=endpoint_url,
        bucket=bucket,
        region="us-east-1",
        access_key_id="test-access-key",
        secret_access_key="test-secret-key",
    )


# -- S3 clients: no redirect followed, every peer checked ----------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_verify_does_not_follow_an_s3_redirect(
    client: httpx.AsyncClient, tenant: Tenant, inner: Listener, status: int
) -> None:
    async with Listener("127.0.0.1", status, f"{inner.url}/bucket-1?list-type=2") as outer:
        r = await client.post("/v1/pods", json={"name": "p", "app": "a"}, headers=tenant.headers)
        pod = r.json()["id"]
        target = {"kind": "s3", "endpoint": outer.url, "bucket": "bucket-1",
                  "access_key_id": "AK1", "secret_access_key": "sk-123456789"}  # fmt: skip
        r = await client.put(
            f"/v1/pods/{pod}/backup-settings", json={"target": target}, headers=tenant.headers
        )
        assert r.status_code == 200, r.text
        r = await client.post(f"/v1/pods/{pod}/backup-settings/verify", headers=tenant.headers)
        assert r.status_code == 200, r.text
        assert outer.hits >= 1  # the endpoint itself was asked
    assert inner.hits == 0
    result = r.json()
    assert result["ok"] is False
    failed = [c for c in result["checks"] if c["level"] == "error"]
    assert failed, result
    assert failed[0]["name"] == "credentials", result
    assert f"HTTP {status}, a redirect to 'http://127.0.0.2:{inner.port}'" in failed[0]["detail"]
    assert "does not follow redirects" in failed[0]["detail"]
    assert failed[0]["hint"]
    assert inner.hits == 0


async def test_evidence_check_does_not_follow_an_s3_redirect(
    settings: Settings, inner: Listener
) -> None:
    """The worker's post-backup evidence (the snapshot object listed in the bucket)."""
    policy = netpolicy.Policy.from_settings(settings)
    async with Listener("127.0.0.1", 307, f"{inner.url}/bucket-1") as outer:
        repo = Repository(url=f"s3:{outer.url}/bucket-1", password="pw", s3=_access(outer.url))
        with pytest.raises(s3e.S3Failure) as failure:
            await snapshot_in_storage(repo, "0123abcd", policy)
        assert outer.hits >= 1
    assert failure.value.kind == s3e.REDIRECT
    assert "127.0.0.2" in failure.value.message
    assert inner.hits == 0


async def test_a_backup_s_evidence_check_does_not_follow_a_redirect(
    settings: Settings,
    inner: Listener,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    """The worker's path: restic backs up to the real storage, then the snapshot object is
    looked for in the bucket, whose endpoint here redirects: the backup stands on restic's
    own word, and 127.0.0.2 is never asked (before: the listing followed the redirect)."""
    policy = netpolicy.Policy.from_settings(settings)
    restic = await Restic.detect(settings.restic_binary, grace=2, egress=policy)
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "a.txt").write_text("hello")
    async with Listener("127.0.0.1", 307, f"{inner.url}/{s3_bucket}") as outer:
        repo = Repository(
            url=f"s3:{s3_server.url}/{s3_bucket}",
            password="pw-ssrf",
            env={
                "AWS_ACCESS_KEY_ID": s3_server.access_key,
                "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1",
            },
            cache_dir=tmp_path / "cache",
            s3=_access(outer.url, s3_bucket),
        )
        await restic.init(repo, timeout=60)
        outcome = await restic.backup(
            repo, ["files"], cwd=tmp_path, host="h", tags=[], policy=policy, timeout=120
        )
        assert outer.hits >= 1  # the evidence listing went to the (redirecting) endpoint
    assert outcome.snapshot_id
    assert inner.hits == 0


async def test_an_ip_literal_outside_the_allow_list_is_refused_by_the_s3_client(
    settings: Settings, inner: Listener
) -> None:
    """aiohttp skips the resolver for an IP literal: the check sits on the socket."""
    policy = netpolicy.Policy.from_settings(settings)
    for url in (inner.url, f"http://[::ffff:127.0.0.2]:{inner.port}"):
        with pytest.raises(s3e.S3Failure) as failure:
            async with s3.open_bucket(_access(url), policy) as bucket:
                await bucket.list_objects()
        assert failure.value.kind == s3e.ADDRESS_REFUSED, failure.value
        assert "127.0.0.2" in failure.value.message
    assert inner.hits == 0


# -- the egress proxy, and restic through it ------------------------------------------------


async def _ask(proxy: EgressProxy, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(request)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(1 << 16), 10)
    finally:
        writer.close()


async def test_the_egress_proxy_refuses_what_the_policy_refuses(
    settings: Settings, inner: Listener
) -> None:
    policy = netpolicy.Policy.from_settings(settings)
    async with Listener("127.0.0.1") as allowed, EgressProxy(policy) as proxy:
        # CONNECT (https endpoints) and absolute-form requests (plain http), by literal
        # and by a name (127.2 resolves to 127.0.0.2).
        for request in (
            f"CONNECT 127.0.0.2:{inner.port} HTTP/1.1\r\nHost: x\r\n\r\n",
            f"CONNECT 127.2:{inner.port} HTTP/1.1\r\nHost: x\r\n\r\n",
            f"GET http://127.2:{inner.port}/b HTTP/1.1\r\nHost: 127.2\r\n\r\n",
            f"GET http://[::ffff:127.0.0.2]:{inner.port}/ HTTP/1.1\r\nHost: x\r\n\r\n",
        ):
            answer = await _ask(proxy, request.encode())
            assert answer.startswith(b"HTTP/1.1 403 "), answer
            assert b"127.0.0.2" in answer, answer
            assert b"loopback" in answer, answer
        assert len(proxy.refusals) == 4
        # The allowed address is served, once per connection.
        answer = await _ask(proxy, f"GET {allowed.url}/x HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        assert b"Connection: close" in answer
        assert allowed.hits == 1
        assert [(d.address, d.port) for d in proxy.dialled] == [("127.0.0.1", allowed.port)]
    assert inner.hits == 0


async def test_the_egress_proxy_refuses_the_operators_own_servers(settings: Settings) -> None:
    """Even with all of loopback allow-listed, the control database and Redis (their
    addresses and ports from the settings) are refused."""
    wide = settings.model_copy(update={"allow_networks": ["127.0.0.0/8"]})
    policy = netpolicy.Policy.from_settings(wide)
    db = urlsplit(wide.database_url)
    redis = urlsplit(wide.redis_url)
    async with EgressProxy(policy) as proxy:
        for host, port, what in ((db.hostname, db.port, b"control database"),
                                 (redis.hostname, redis.port, b"job queue")):  # fmt: skip
            answer = await _ask(proxy, f"CONNECT {host}:{port} HTTP/1.1\r\n\r\n".encode())
            assert answer.startswith(b"HTTP/1.1 403 "), answer
            assert what in answer, answer
    assert proxy.dialled == []


@pytest.fixture
async def restic(settings: Settings) -> Restic:
    policy = netpolicy.Policy.from_settings(settings)
    return await Restic.detect(settings.restic_binary, stall_seconds=3600, grace=2, egress=policy)


async def test_restic_goes_through_the_egress_proxy(
    settings: Settings,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """restic is handed a name (Go dials "localhost" and loopback literals directly, but
    not "localhost."): the proxy resolves it, checks 127.0.0.1 (allowed) and carries
    restic's requests."""
    policy = netpolicy.Policy.from_settings(
        settings.model_copy(update={"allow_networks": [*ALLOW_ONE, "::1/128"]})
    )
    restic = await Restic.detect(settings.restic_binary, grace=2, egress=policy)
    repo = Repository(
        url=f"s3:http://localhost.:{s3_server.port}/{s3_bucket}",
        password="pw-ssrf",
        env={
            "AWS_ACCESS_KEY_ID": s3_server.access_key,
            "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        },
        cache_dir=tmp_path / "cache",
    )
    caplog.set_level(logging.DEBUG, logger="app.integrations.egress")
    repository_id = await restic.init(repo, timeout=60)
    assert repository_id
    assert f"egress: 'localhost.' port {s3_server.port} via 127.0.0.1" in caplog.text
    assert any(k.endswith("config") for k in s3_server.keys(s3_bucket))


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_restic_cannot_reach_a_refused_address_its_own_lookup_finds(
    restic: Restic,
    inner: Listener,
    tmp_path: Path,
    scheme: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing checked restic's own lookup before: a restore, export or check that runs
    restic on a target whose name now resolves to 127.0.0.2 reached it. A NO_PROXY in the
    worker's environment does not reach restic.

    "127.2" resolves to 127.0.0.2 for the proxy (getaddrinfo) but not for restic's own Go
    resolver, which is why it stands in for a DNS answer that changed after the check: on
    the old code restic failed here as storage_unreachable instead of reaching the
    listener. A real rebinding needs a DNS server this machine's resolver asks."""
    monkeypatch.setenv("NO_PROXY", "*")
    monkeypatch.setenv("no_proxy", "*")
    repo = Repository(
        url=f"s3:{scheme}://127.2:{inner.port}/bucket-1",
        password="pw-ssrf",
        env={"AWS_ACCESS_KEY_ID": "AK1", "AWS_SECRET_ACCESS_KEY": "sk-1"},
        cache_dir=tmp_path / "cache",
    )
    started = asyncio.get_running_loop().time()
    with pytest.raises(ResticError) as err:
        await restic.snapshots(repo, timeout=120)
    assert err.value.code == "address_refused", err.value
    assert "127.0.0.2" in err.value.message
    assert "loopback" in err.value.message
    assert err.value.hint
    assert asyncio.get_running_loop().time() - started < 30  # stopped, not retried for minutes
    assert inner.hits == 0


async def test_a_download_stream_to_a_refused_address_stops_at_once(
    restic: Restic, inner: Listener, tmp_path: Path
) -> None:
    """`restic dump` (downloads) is killed at the first refusal, not left retrying."""
    repo = Repository(
        url=f"s3:http://127.2:{inner.port}/bucket-1",
        password="pw-ssrf",
        env={"AWS_ACCESS_KEY_ID": "AK1", "AWS_SECRET_ACCESS_KEY": "sk-1"},
        cache_dir=tmp_path / "cache",
    )

    async def download() -> None:
        async with asyncio.timeout(30), restic.dump_stream(repo, "latest", "/f") as out:
            while await out.read(1 << 16):
                pass

    with pytest.raises(ResticError) as err:
        await download()
    assert err.value.code == "address_refused"
    assert inner.hits == 0


async def test_restic_to_a_refused_loopback_literal_is_refused_before_it_starts(
    restic: Restic, inner: Listener, tmp_path: Path
) -> None:
    """Go dials loopback literals without the proxy: those are checked up front."""
    repo = Repository(
        url=f"s3:{inner.url}/bucket-1",
        password="pw-ssrf",
        env={"AWS_ACCESS_KEY_ID": "AK1", "AWS_SECRET_ACCESS_KEY": "sk-1"},
        cache_dir=tmp_path / "cache",
    )
    with pytest.raises(ResticError) as err:
        await restic.snapshots(repo, timeout=60)
    assert err.value.code == "address_refused"
    assert inner.hits == 0


async def test_restic_child_gets_the_proxy_and_no_bypass(restic: Restic, tmp_path: Path) -> None:
    s3_repo = Repository(url="s3:https://s3.example.com/b", password="pw")
    async with restic.egress_env(s3_repo) as env:
        assert env["HTTPS_PROXY"] == env["HTTP_PROXY"]
        assert env["HTTPS_PROXY"].startswith("http://127.0.0.1:")
        assert env["NO_PROXY"] == env["no_proxy"] == ""
    async with restic.egress_env(Repository(url=str(tmp_path), password="pw")) as env:
        assert env == {}  # a local repository: no network


# -- the operator's own servers ----------------------------------------------------------


@pytest.fixture
def wide(settings: Settings) -> Settings:
    return settings.model_copy(update={"allow_networks": ["127.0.0.0/8"]})


async def test_the_operators_servers_are_refused_whatever_the_allow_list(
    client: httpx.AsyncClient, tenant: Tenant, wide: Settings, app: Any
) -> None:
    """docker-compose allow-listed 172.16.0.0/12, where its PostgreSQL, Redis and MinIO
    live: a pod pointed at the control database dumped it. Here the control database
    (127.0.0.1:5432) and Redis (127.0.0.1:6379) sit inside the allow-listed 127.0.0.0/8."""
    app.state.settings = wide
    db = urlsplit(wide.database_url)
    redis = urlsplit(wide.redis_url)
    h = tenant.headers
    r = await client.post("/v1/pods", json={"name": "p", "app": "a"}, headers=h)
    pod = r.json()["id"]
    database = {"kind": "postgres", "host": db.hostname, "port": db.port, "name": "podbackup",
                "username": "postgres", "password": "pw-1234"}  # fmt: skip
    sftp = {"kind": "sftp", "host": redis.hostname, "port": redis.port, "username": "u",
            "password": "pw-123456", "path": "/"}  # fmt: skip
    s3_target = {"kind": "s3", "endpoint": f"http://{redis.hostname}:{redis.port}",
                 "bucket": "bucket-1", "access_key_id": "AK1",
                 "secret_access_key": "sk-123456789"}  # fmt: skip
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/pods", {"name": "x", "app": "y", "database": database}),
        ("PATCH", f"/v1/pods/{pod}", {"database": database}),
        ("PATCH", f"/v1/pods/{pod}", {"files": sftp}),
        ("PATCH", f"/v1/pods/{pod}",
         {"hooks": {"stop_url": f"http://{redis.hostname}:{redis.port}/stop"}}),
        ("PUT", f"/v1/pods/{pod}/backup-settings", {"target": s3_target}),
        ("POST", "/v1/webhooks", {"url": f"http://{db.hostname}:{db.port}/hook"}),
    ]  # fmt: skip
    for method, path, body in attempts:
        r = await client.request(method, path, json=body, headers=h)
        assert r.status_code == 422, (path, body, r.text)
        error = r.json()
        assert "this service's own servers" in error["detail"][0]["msg"], error
        assert error["hint"], error
    # The same server on another port is the tenant's business.
    r = await client.patch(
        f"/v1/pods/{pod}", json={"database": {**database, "port": 5499}}, headers=h
    )
    assert r.status_code == 200, r.text
    # And at connect time (a host saved before, or a name re-pointed since).
    policy = netpolicy.Policy.from_settings(wide)
    endpoint = DbEndpoint("postgres", "localhost", db.port or 5432, "podbackup", "postgres", "x")
    with pytest.raises(netpolicy.OutboundAddressRefused) as refused:
        await resolve_database(policy, endpoint)
    assert "control database" in refused.value.message
    # The development escape hatch lifts it.
    lifted = netpolicy.Policy.from_settings(
        wide.model_copy(update={"allow_operator_services": True})
    )
    assert (await resolve_database(lifted, endpoint)).address in ("127.0.0.1", "::1")


# -- save-time forms: IPv6 carrying IPv4, trailing dots, plain http hooks -------------------


async def test_ipv6_forms_and_trailing_dot_names_are_refused_on_save(
    client: httpx.AsyncClient, tenant: Tenant, app: Any, settings: Settings
) -> None:
    app.state.settings = settings.model_copy(update={"allow_networks": []})
    h = tenant.headers
    r = await client.post("/v1/pods", json={"name": "p", "app": "a"}, headers=h)
    pod = r.json()["id"]
    hosts = [
        "2002:7f00:1::1",  # 6to4 carrying 127.0.0.1
        "2002:a00:1::",  # 6to4 carrying 10.0.0.1
        "2002:a9fe:a9fe::",  # 6to4 carrying 169.254.169.254
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "::7f00:1",  # IPv4-compatible 127.0.0.1
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo
        "localhost.",
        "metadata.google.internal.",
    ]
    problems = []
    for host in hosts:
        u = f"[{host}]" if ":" in host else host
        for method, path, body in (
            ("PATCH", f"/v1/pods/{pod}", {"hooks": {"stop_url": f"https://{u}/stop"}}),
            ("POST", "/v1/webhooks", {"url": f"https://{u}/hook"}),
            ("PATCH", f"/v1/pods/{pod}",
             {"files": {"kind": "sftp", "host": host, "username": "u",
                        "password": "pw-123456", "path": "/"}}),
        ):  # fmt: skip
            r = await client.request(method, path, json=body, headers=h)
            if r.status_code != 422 or not r.json().get("hint"):
                problems.append(f"{host}: {method} {path} -> {r.status_code} {r.text}")
    assert not problems, "\n".join(problems)


async def test_hooks_need_https_outside_the_allow_list(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    h = tenant.headers
    r = await client.post(
        "/v1/pods",
        json={"name": "p", "app": "a", "hooks": {"stop_url": "http://93.184.216.34/stop"}},
        headers=h,
    )
    assert r.status_code == 422, r.text
    error = r.json()
    assert error["detail"][0]["loc"] == ["body", "hooks", "stop_url"], error
    assert "plain http://" in error["detail"][0]["msg"], error
    assert "https" in error["hint"], error
    # https to the same public host is fine, and plain http inside the allow-list too.
    for url in ("https://93.184.216.34/stop", "http://127.0.0.1:9/stop"):
        r = await client.post(
            "/v1/pods",
            json={"name": f"p-{uuid.uuid4().hex[:6]}", "app": "a", "hooks": {"stop_url": url}},
            headers=h,
        )
        assert r.status_code == 201, (url, r.text)


def test_docker_compose_allow_lists_the_demo_storage_alone() -> None:
    """The stack's allow-list once was 172.16.0.0/12: every container, PostgreSQL and
    Redis included. Now it is the MinIO's fixed address, which no other service has."""
    import ipaddress
    import re

    import yaml

    compose = yaml.safe_load((Path(__file__).parents[2] / "docker-compose.yml").read_text())
    raw = compose["x-podbackup-env"]["PODBACKUP_ALLOW_NETWORKS"]
    default = re.fullmatch(r"\$\{PODBACKUP_ALLOW_NETWORKS:-(.+)\}", raw)
    assert default, raw
    allowed = [ipaddress.ip_network(n) for n in default[1].split(",")]
    fixed: dict[str, str] = {}
    for name, service in compose["services"].items():
        networks = service.get("networks") or {}
        if isinstance(networks, dict):
            for spec in networks.values():
                if spec and spec.get("ipv4_address"):
                    fixed[name] = spec["ipv4_address"]
    assert fixed == {"s3": "10.231.77.10"}, fixed
    assert all(net.num_addresses == 1 for net in allowed), allowed
    assert [str(net.network_address) for net in allowed] == [fixed["s3"]]
    for name in ("postgres", "redis"):
        assert "networks" not in compose["services"][name]  # default network only


async def test_a_copy_from_a_refused_source_is_refused_before_it_starts(
    restic: Restic, inner: Listener, tmp_path: Path
) -> None:
    """`restic copy` into a local folder still checks its S3 source (the second
    repository of a copy goes through the same address policy as the first)."""
    source = Repository(
        url=f"s3:{inner.url}/bucket-1",
        password="pw-ssrf",
        env={"AWS_ACCESS_KEY_ID": "AK1", "AWS_SECRET_ACCESS_KEY": "sk-1"},
        cache_dir=tmp_path / "cache",
    )
    local = Repository(url=str(tmp_path / "copy"), password="pw-copy")
    for attempt in (restic.init(local, source), restic.copy(local, source)):
        with pytest.raises(ResticError) as err:
            async with asyncio.timeout(60):
                await attempt
        assert err.value.code == "address_refused"
    assert inner.hits == 0
