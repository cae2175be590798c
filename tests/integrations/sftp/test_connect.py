"""Connecting: outbound policy, pinned host keys, authentication, clear errors."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import asyncssh
import pytest

from app.integrations.sftp import (
    SftpEndpoint,
    SftpError,
    fingerprint,
    mirror,
    normalize_host_key,
)
from app.kit.netpolicy import OutboundAddressRefused, Policy
from tests.fixtures.sftp import SftpServerHandle, sftp_server  # noqa: F401
from tests.integrations.sftp.helpers import LOOPBACK, write


async def _fails(handle: SftpServerHandle, dest: Path, **overrides: object) -> SftpError:
    with pytest.raises(SftpError) as info:
        await mirror(handle.endpoint(**overrides), LOOPBACK, dest)
    return info.value


async def test_trust_on_first_use_then_pinned_key(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    write(sftp_server.root / "a.txt", "a")
    first = await mirror(sftp_server.endpoint(), LOOPBACK, tmp_path / "d")
    assert first.host_key == sftp_server.host_key_line

    pinned = await mirror(
        sftp_server.endpoint(known_host_key=first.host_key + " comment@host"),
        LOOPBACK,
        tmp_path / "d",
    )
    assert pinned.host_key == first.host_key


async def test_host_key_mismatch_names_both_fingerprints(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    err = await _fails(sftp_server, tmp_path / "d", known_host_key=other)
    assert err.code == "host_key_mismatch"
    assert fingerprint(other) in err.message
    assert fingerprint(sftp_server.host_key_line) in err.message
    assert "clear the pinned host key" in (err.hint or "")
    assert not (tmp_path / "d").exists() or not any((tmp_path / "d").iterdir())


async def test_pinned_key_of_a_type_the_server_lacks(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    other = asyncssh.generate_private_key("ecdsa-sha2-nistp256").export_public_key().decode()
    err = await _fails(sftp_server, tmp_path / "d", known_host_key=other)
    assert err.code == "host_key_mismatch"
    assert "ecdsa-sha2-nistp256" in err.message


async def test_wrong_password_is_auth_failed_and_not_echoed(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    err = await _fails(sftp_server, tmp_path / "d", password="not-the-password-123")
    assert err.code == "auth_failed"
    assert "not-the-password-123" not in f"{err} {err!r} {err.hint}"
    await mirror(sftp_server.endpoint(), LOOPBACK, tmp_path / "d")
    assert caplog.text  # asyncssh did log at debug level...
    for secret in ("not-the-password-123", sftp_server.password):
        assert secret not in caplog.text  # ...but never a password
        assert secret not in repr(sftp_server.endpoint(password=secret))
    err = await _fails(sftp_server, tmp_path / "d", username="someone-else")
    assert err.code == "auth_failed"


async def test_key_auth(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    write(sftp_server.root / "a.txt", "a")
    stats = await mirror(
        sftp_server.endpoint(password=None, private_key=sftp_server.client_key_private),
        LOOPBACK,
        tmp_path / "d",
    )
    assert stats.files_downloaded == 1
    stranger = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    err = await _fails(sftp_server, tmp_path / "d", password=None, private_key=stranger)
    assert err.code == "auth_failed"
    err = await _fails(sftp_server, tmp_path / "d", password=None, private_key="garbage")
    assert err.code == "auth_failed"


async def test_closed_port_and_unknown_name_are_unreachable(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that was free a moment ago and nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for host in ("127.0.0.1", "does-not-exist.invalid"):
        endpoint = SftpEndpoint(host=host, port=port, username="pod", password="x" * 8)
        with pytest.raises(SftpError) as info:
            await mirror(endpoint, LOOPBACK, tmp_path / "d")
        assert info.value.code == "unreachable"
        assert info.value.retryable


async def test_refused_address_is_not_contacted(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    with pytest.raises(OutboundAddressRefused) as info:
        await mirror(sftp_server.endpoint(), Policy(), tmp_path / "d")
    assert "loopback" in info.value.message
    assert info.value.body()["detail"][0]["loc"] == ["body", "files", "host"]
    assert sftp_server.bytes_sent == 0


async def test_missing_remote_root_is_not_found(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    err = await _fails(sftp_server, tmp_path / "d", path="/no/such/folder")
    assert err.code == "not_found"
    assert "/no/such/folder" in err.message
    write(sftp_server.root / "file", "x")
    err = await _fails(sftp_server, tmp_path / "d", path="/file")
    assert err.code == "not_found"


def test_host_key_helpers() -> None:
    key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    alg, b64 = key.split()[:2]
    assert normalize_host_key(f"{key} user@host\n") == f"{alg} {b64}"
    assert normalize_host_key(f"[pod.example]:2222 {alg} {b64}") == f"{alg} {b64}"
    assert fingerprint(key).startswith("SHA256:")
    with pytest.raises(ValueError, match="public key"):
        normalize_host_key("not a key")


async def test_a_server_that_is_not_ssh_is_unreachable(tmp_path: Path) -> None:
    async def not_ssh(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 smtp.example ESMTP\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(not_ssh, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        endpoint = SftpEndpoint(host="127.0.0.1", port=port, username="pod", password="x" * 8)
        with pytest.raises(SftpError) as info:
            await mirror(endpoint, LOOPBACK, tmp_path / "d")
    finally:
        server.close()
        await server.wait_closed()
    assert info.value.code == "unreachable"
    assert f"127.0.0.1:{port}" in info.value.message


class _ShellOnly(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return True


async def test_ssh_without_sftp_names_the_setting(tmp_path: Path) -> None:
    server = await asyncssh.create_server(
        _ShellOnly, "127.0.0.1", 0, server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")]
    )
    port = server.sockets[0].getsockname()[1]
    try:
        endpoint = SftpEndpoint(host="127.0.0.1", port=port, username="pod", password="x" * 8)
        with pytest.raises(SftpError) as info:
            await mirror(endpoint, LOOPBACK, tmp_path / "d")
    finally:
        server.close()
        await server.wait_closed()
    assert "refused to start SFTP" in info.value.message
    assert "enable SFTP" in (info.value.hint or "")
