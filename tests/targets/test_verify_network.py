"""Verification when the network misbehaves: closed port, stopped or frozen server, no
DNS, refused address, bad TLS certificate; and local targets."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI

from tests.conftest import Tenant, auth
from tests.fixtures.s3 import S3ServerHandle, free_port
from tests.targets.conftest import make_pod, put_settings, s3_target
from tests.targets.test_verify import ALL_CHECKS, by_name, verify


async def test_unreachable_host_fails_the_connect_check(
    client: httpx.AsyncClient, tenant: Tenant, s3_server: S3ServerHandle
) -> None:
    pod_id = await make_pod(client, tenant)
    body = {**s3_target(s3_server, "any-bucket"), "endpoint": f"http://127.0.0.1:{free_port()}"}
    result = await verify(client, tenant.headers, pod_id, body)
    checks = by_name(result)
    assert checks["address_policy"]["level"] == "ok"
    assert checks["connect"]["level"] == "error"
    assert "refused the connection" in checks["connect"]["detail"]
    assert checks["connect"]["hint"]
    assert all(checks[n]["level"] == "skipped" for n in ALL_CHECKS[2:])


async def test_stopped_server_then_back(
    client: httpx.AsyncClient, tenant: Tenant, s3_server: S3ServerHandle, s3_bucket: str
) -> None:
    pod_id = await make_pod(client, tenant)
    await put_settings(client, tenant.headers, pod_id, target=s3_target(s3_server, s3_bucket))
    s3_server.stop()
    try:
        result = await verify(client, tenant.headers, pod_id)
    finally:
        s3_server.start()
    assert by_name(result)["connect"]["level"] == "error"
    got = (await client.get(f"/v1/pods/{pod_id}/backup-settings", headers=tenant.headers)).json()
    assert got["verified_ok"] is False
    assert (await verify(client, tenant.headers, pod_id))["ok"] is True


async def test_frozen_server_fails_within_the_budget(
    client: httpx.AsyncClient,
    tenant: Tenant,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    app: FastAPI,
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"verify_budget_seconds": 2})
    pod_id = await make_pod(client, tenant)
    s3_server.pause()
    try:
        result = await verify(client, tenant.headers, pod_id, s3_target(s3_server, s3_bucket))
    finally:
        s3_server.resume()
    checks = by_name(result)
    assert checks["connect"]["level"] == "ok"  # the relay accepts; the server never answers
    assert checks["credentials"]["level"] == "error"
    assert all(checks[n]["level"] == "skipped" for n in ALL_CHECKS[3:])
    assert result["ok"] is False


async def test_unresolvable_name_and_refused_address(
    client: httpx.AsyncClient, tenant: Tenant, s3_server: S3ServerHandle, app: FastAPI
) -> None:
    pod_id = await make_pod(client, tenant)
    body = {**s3_target(s3_server, "any-bucket"), "endpoint": "s3.no-such-provider.invalid"}
    check = by_name(await verify(client, tenant.headers, pod_id, body))["address_policy"]
    assert check["level"] == "error"
    assert "does not resolve" in check["detail"]
    assert "DNS" in check["hint"]

    await put_settings(client, tenant.headers, pod_id, target=s3_target(s3_server, "any-bucket"))
    app.state.settings = app.state.settings.model_copy(update={"allow_networks": []})
    check = by_name(await verify(client, tenant.headers, pod_id))["address_policy"]
    assert check["level"] == "error"
    assert "loopback" in check["detail"]


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[int]:
    """A TLS server on 127.0.0.1 with a self-signed certificate for another name."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "self-signed.example")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")

    async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(_handle, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()


async def test_tls_failure_fails_the_connect_check(
    client: httpx.AsyncClient, tenant: Tenant, s3_server: S3ServerHandle, tls_server: int
) -> None:
    pod_id = await make_pod(client, tenant)
    body = {**s3_target(s3_server, "any-bucket"), "endpoint": f"127.0.0.1:{tls_server}"}
    check = by_name(await verify(client, tenant.headers, pod_id, body))["connect"]
    assert check["level"] == "error"
    assert "TLS certificate" in check["detail"]
    assert "certificate must be valid" in check["hint"]


async def test_local_target_verify(
    client: httpx.AsyncClient, tenant: Tenant, admin_token: str, app: FastAPI, tmp_path: Path
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"local_roots": [tmp_path]})
    pod_id = await make_pod(client, tenant)
    await put_settings(
        client,
        auth(admin_token),
        pod_id,
        target={"kind": "local", "path": str(tmp_path / "repo")},
    )
    result = await verify(client, auth(admin_token), pod_id)
    assert [(c["name"], c["level"]) for c in result["checks"]] == [
        ("path", "ok"),
        ("contents", "ok"),
    ]
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "notes.txt").write_text("x")
    result = await verify(client, auth(admin_token), pod_id)
    assert by_name(result)["contents"]["level"] == "warning"
    # An account token may not verify a typed local target.
    r = await client.post(
        f"/v1/pods/{pod_id}/backup-settings/verify",
        json={"kind": "local", "path": str(tmp_path)},
        headers=tenant.headers,
    )
    assert r.status_code == 403
