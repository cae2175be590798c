"""Open one SFTP session to a pod: outbound policy, pinned host key, password or key auth."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncssh

from app.integrations.sftp.endpoint import SftpEndpoint, fingerprint, key_line, parse_host_key
from app.integrations.sftp.errors import SftpError, classify
from app.integrations.sftp.wire import GatheringTunnel
from app.kit import netpolicy
from app.kit.logging import register_secret

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 20.0
# AES-GCM first: with AES-NI it costs the server (a pod's sshd) and us the least CPU
# per byte; the rest is asyncssh's own default order.
_CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes192-ctr",
    "aes256-ctr",
)
# SSH channel window: 8 MiB keeps ~160 MB/s possible at 50 ms RTT (OpenSSH's own
# client uses 2 MiB). Much larger windows with many requests in flight made OpenSSH's
# sshd buffer so much that it slowed down (loopback: 16 MiB + 128 reads ran at half).
_WINDOW = 8 * 1024 * 1024


@dataclass
class Session:
    conn: asyncssh.SSHClientConnection
    sftp: asyncssh.SFTPClient
    root: bytes  # remote root folder, no trailing slash ("/" for the server's root)
    host_key: str  # the server's key as "<alg> <base64>", for pinning

    def path(self, rel: bytes) -> bytes:
        """Remote path of ``rel`` (b"" is the root itself)."""
        if not rel:
            return self.root
        return (b"" if self.root == b"/" else self.root) + b"/" + rel


class _HostKeyCheck(asyncssh.SSHClient):
    """Accepts the server's key when nothing is pinned, or only the pinned key."""

    def __init__(self, pinned: asyncssh.SSHKey | None) -> None:
        self.pinned = pinned
        self.seen: asyncssh.SSHKey | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.seen = key
        return self.pinned is None or key_line(key) == key_line(self.pinned)


def _client_keys(endpoint: SftpEndpoint) -> list[asyncssh.SSHKey] | None:
    if not endpoint.private_key:
        return None  # None (not []) also stops asyncssh from loading ~/.ssh keys
    try:
        return [asyncssh.import_private_key(endpoint.private_key)]
    except (asyncssh.KeyImportError, ValueError, TypeError):
        raise SftpError(
            "auth_failed",
            "the SFTP private key in the pod settings could not be read",
            hint="use an unencrypted private key in OpenSSH or PEM format",
        ) from None


async def _connect_one(
    endpoint: SftpEndpoint, addr: str, check: _HostKeyCheck, gather: bool
) -> asyncssh.SSHClientConnection:
    host_key_algs: Sequence[str] | str = "default"
    if check.pinned is not None:
        # Ask for the pinned key's type, so a server with several host keys shows that one.
        host_key_algs = [alg.decode("ascii") for alg in check.pinned.sig_algorithms]
    return await asyncssh.connect(
        addr,
        endpoint.port,
        username=endpoint.username,
        password=endpoint.password,
        client_keys=_client_keys(endpoint),
        client_factory=lambda: check,
        known_hosts=([], [], []),  # every key goes through _HostKeyCheck
        server_host_key_algs=host_key_algs,
        encryption_algs=_CIPHERS,
        compression_algs=None,
        config=None,
        agent_path=None,
        gss_auth=False,
        gss_kex=False,
        host_based_auth=False,
        connect_timeout=CONNECT_TIMEOUT,
        keepalive_interval=15,
        keepalive_count_max=4,
        window=_WINDOW,
        # one send per loop turn, not two per request (wire.py); () is asyncssh's default
        tunnel=GatheringTunnel() if gather else (),
    )


def _login_error(exc: BaseException, endpoint: SftpEndpoint, check: _HostKeyCheck) -> SftpError:
    where = f"{endpoint.host}:{endpoint.port}"
    if check.pinned is not None and (
        isinstance(exc, asyncssh.HostKeyNotVerifiable)
        or (isinstance(exc, asyncssh.KeyExchangeFailed) and check.seen is None)
    ):
        expected = fingerprint(check.pinned)
        if check.seen is None:
            seen = f"no {check.pinned.algorithm.decode()} host key"
        else:
            seen = fingerprint(check.seen)
        return SftpError(
            "host_key_mismatch",
            f"the host key of {where} does not match the pinned key: "
            f"expected {expected}, the server presented {seen}",
        )
    if isinstance(exc, asyncssh.PermissionDenied):
        return SftpError("auth_failed", f"{where} refused the login for user '{endpoint.username}'")
    if isinstance(exc, TimeoutError):
        why = f"no SSH answer within {CONNECT_TIMEOUT:.0f} s"
        return SftpError("unreachable", f"could not connect to {where}: {why}")
    if isinstance(exc, OSError):
        why = "connection refused" if isinstance(exc, ConnectionRefusedError) else str(exc)
        return SftpError("unreachable", f"could not connect to {where}: {why}")
    if isinstance(exc, asyncssh.Error):
        return SftpError(
            "unreachable", f"{where} did not complete an SSH login: {exc.reason or 'closed'}"
        )
    return classify(exc, f"connecting to {where}")


async def _connect(
    endpoint: SftpEndpoint, policy: netpolicy.Policy, gather: bool
) -> tuple[asyncssh.SSHClientConnection, str]:
    try:
        addrs = await netpolicy.check_before_connect(
            policy, endpoint.host, endpoint.port, field="files.host"
        )
    except netpolicy.HostUnresolvable as exc:
        raise SftpError("unreachable", str(exc)) from None
    register_secret(endpoint.password)
    pinned: asyncssh.SSHKey | None = None
    if endpoint.known_host_key:
        try:
            pinned = parse_host_key(endpoint.known_host_key)
        except ValueError:
            raise SftpError(
                "host_key_mismatch",
                "the pinned SFTP host key in the pod settings is not a valid public key",
                hint="clear the pinned host key in the pod settings; the next backup pins it",
            ) from None
    error: SftpError | None = None
    for addr in addrs:
        check = _HostKeyCheck(pinned)
        try:
            conn = await _connect_one(endpoint, str(addr), check, gather)
        except (OSError, TimeoutError) as exc:
            error = _login_error(exc, endpoint, check)
            continue  # try the name's next address
        except asyncssh.Error as exc:
            raise _login_error(exc, endpoint, check) from None
        assert check.seen is not None
        return conn, key_line(check.seen)
    assert error is not None
    raise error


@contextlib.asynccontextmanager
async def open_session(
    endpoint: SftpEndpoint, policy: netpolicy.Policy, *, gather_writes: bool = True
) -> AsyncIterator[Session]:
    """Connect, start SFTP and check that the remote root is a folder.

    ``gather_writes``: what is written in one turn of the event loop is sent in one
    system call (wire.py; many small requests). Uploads turn it off: their packets
    carry file data, and ``bench.sftp_restore`` measured them no faster with it.

    Raises OutboundAddressRefused (policy) or SftpError; always closes the connection.
    """
    conn, host_key = await _connect(endpoint, policy, gather_writes)
    try:
        root = endpoint.remote_root()
        shown = root.decode("utf-8", "backslashreplace")
        try:
            sftp = await conn.start_sftp_client()
            attrs = await sftp.stat(root)
        except asyncssh.SFTPNoSuchFile:
            raise SftpError("not_found", f"the remote folder '{shown}' does not exist") from None
        except asyncssh.ChannelOpenError as exc:
            raise SftpError(
                "unreachable",
                f"{endpoint.host}:{endpoint.port} accepted the login but refused to start "
                f"SFTP ({exc.reason or 'session refused'})",
                hint="enable SFTP in the pod's settings, or check the host and port",
            ) from None
        except (asyncssh.Error, OSError) as exc:
            raise classify(exc, f"opening the remote folder '{shown}'") from None
        if attrs.type != asyncssh.FILEXFER_TYPE_DIRECTORY:
            raise SftpError("not_found", f"the remote path '{shown}' is not a folder")
        yield Session(conn, sftp, root, host_key)
    finally:
        conn.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.wait_closed(), timeout=5)
