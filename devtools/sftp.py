"""A real asyncssh SFTP server on 127.0.0.1 serving a folder as a pod would.

Used by the `make run` demo (``python -m devtools.sftp``) and by the tests
(``tests.fixtures.sftp`` re-exports everything here and adds the pytest fixtures).

The server behaves like OpenSSH's sftp-server where it matters to us: chrooted to
``root``, symlink text returned and stored verbatim. Faults for tests:

- ``deny_read``: relative paths (files or folders) the server refuses to open or
  list with "permission denied" (tests run as root, so ``chmod 000`` would not do);
- ``drop_after_bytes``: abort the connection once that many file bytes have been
  served in total. One-shot: the handle's ``drop_after_bytes`` resets to None after
  the drop, so a retry succeeds; set it again to arm another drop.

Both are attributes of the handle and may be changed while the server runs.

Standalone: ``python -m devtools.sftp --root DIR --info FILE [--host-key FILE]
[--port N]`` serves until interrupted and writes the handle as JSON (0600) to FILE;
the password comes from ``SFTP_PASSWORD`` (random when unset). ``--host-key`` keeps
the server's key in that file (created on first use), so a client's pinned key still
matches after a restart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import posixpath
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh

from app.integrations.sftp import SftpEndpoint


@dataclass
class SftpServerHandle:
    host: str
    port: int
    username: str
    password: str = field(repr=False)
    root: Path
    host_key_line: str  # "ssh-ed25519 AAAA..."
    client_key_private: str = field(repr=False)  # an authorized private key, OpenSSH text
    deny_read: set[str] = field(default_factory=set)
    drop_after_bytes: int | None = None
    bytes_sent: int = 0  # file bytes served so far, all connections
    drops: int = 0
    remote_root: str = "/"  # what the server calls `root` ("/" when chrooted)
    _acceptor: Any = field(default=None, repr=False)
    _process: asyncio.subprocess.Process | None = field(default=None, repr=False)

    async def close(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            await self._process.wait()

    def endpoint(self, **overrides: Any) -> SftpEndpoint:
        """An endpoint for this server (password auth, nothing pinned) with overrides."""
        values: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "path": self.remote_root,
        }
        if self.password:
            values["password"] = self.password
        else:
            values["private_key"] = self.client_key_private
        values.update(overrides)
        return SftpEndpoint(**values)

    def _served(self, n: int, conn: asyncssh.SSHServerConnection) -> None:
        self.bytes_sent += n
        if self.drop_after_bytes is not None and self.bytes_sent >= self.drop_after_bytes:
            self.drop_after_bytes = None
            self.drops += 1
            conn.abort()


class _Auth(asyncssh.SSHServer):
    def __init__(self, handle: SftpServerHandle, authorized: asyncssh.SSHAuthorizedKeys) -> None:
        self.handle = handle
        self.authorized = authorized
        self.conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn

    def begin_auth(self, username: str) -> bool:
        if self.conn is not None and username == self.handle.username:
            self.conn.set_authorized_keys(self.authorized)
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return username == self.handle.username and secrets.compare_digest(
            password.encode(), self.handle.password.encode()
        )

    def public_key_auth_supported(self) -> bool:
        return True


class PodSftpServer(asyncssh.SFTPServer):
    """Chrooted SFTP server with the handle's faults; subclass it for odd servers."""

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], handle: SftpServerHandle) -> None:
        super().__init__(chan, chroot=os.fsencode(handle.root))
        self.handle = handle

    def _denied(self, path: bytes) -> bool:
        rel = posixpath.normpath(posixpath.join(b"/", path)).lstrip(b"/")
        return os.fsdecode(rel) in self.handle.deny_read

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        if self._denied(path):
            raise asyncssh.SFTPPermissionDenied("Permission denied")
        return super().open(path, pflags, attrs)

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        if self._denied(path):
            raise asyncssh.SFTPPermissionDenied("Permission denied")
        async for name in super().scandir(path):
            yield name

    def read(self, file_obj: object, offset: int, size: int) -> bytes:
        data = super().read(file_obj, offset, size)
        assert isinstance(data, bytes)
        self.handle._served(len(data), self.connection)
        return data

    def readlink(self, path: bytes) -> bytes:
        # Verbatim, like OpenSSH (asyncssh's chroot would resolve and hide the text).
        return os.readlink(self.map_path(path))

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        os.symlink(oldpath, self.map_path(newpath))

    def format_user(self, uid: int | None) -> str:
        return str(uid or 0)  # skip passwd lookups on every listed name

    def format_group(self, gid: int | None) -> str:
        return str(gid or 0)


def load_host_key(path: Path) -> asyncssh.SSHKey:
    """The ed25519 key kept in ``path`` (0600), created there on first use."""
    if path.exists():
        return asyncssh.read_private_key(str(path))
    key = asyncssh.generate_private_key("ssh-ed25519")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.export_private_key("openssh"))
    return key


def public_key_line(key: asyncssh.SSHKey) -> str:
    """``ssh-ed25519 AAAA…`` without a comment, as a pod's ``host_key`` is given."""
    return " ".join(key.export_public_key().decode().split()[:2])


async def start_sftp_server(
    root: Path,
    *,
    username: str = "pod",
    password: str | None = None,
    deny_read: set[str] | None = None,
    drop_after_bytes: int | None = None,
    server_class: type[PodSftpServer] = PodSftpServer,
    host: str = "127.0.0.1",
    port: int = 0,
    host_key: asyncssh.SSHKey | None = None,
) -> SftpServerHandle:
    """Serve ``root`` over SFTP (a free port by default); close with ``await
    handle.close()``. A new host key each time unless ``host_key`` is given."""
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    host_key = host_key or asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    handle = SftpServerHandle(
        host=host,
        port=0,
        username=username,
        password=password or secrets.token_urlsafe(16),
        root=root,
        host_key_line=public_key_line(host_key),
        client_key_private=client_key.export_private_key("openssh").decode(),
        deny_read={p.strip("/") for p in deny_read or set()},
        drop_after_bytes=drop_after_bytes,
    )
    authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())
    acceptor = await asyncssh.create_server(
        lambda: _Auth(handle, authorized),
        host,
        port,
        server_host_keys=[host_key],
        sftp_factory=lambda chan: server_class(chan, handle),
        allow_scp=False,
        compression_algs=None,
        window=8 * 1024 * 1024,
    )
    handle._acceptor = acceptor
    handle.port = acceptor.sockets[0].getsockname()[1]
    return handle


def write_info(handle: SftpServerHandle, info: Path) -> None:
    """The handle's public fields as JSON in a 0600 file (it holds the password)."""
    data = {k: str(v) for k, v in vars(handle).items() if not k.startswith("_")}
    tmp = info.with_name(info.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    tmp.replace(info)  # readers never see half a file


async def serve(root: Path, info: Path, host_key_file: Path | None = None, port: int = 0) -> None:
    """Serve until cancelled; the password is ``SFTP_PASSWORD`` (random when unset)."""
    key = load_host_key(host_key_file) if host_key_file else None
    handle = await start_sftp_server(
        root, password=os.environ.get("SFTP_PASSWORD"), port=port, host_key=key
    )
    write_info(handle, info)
    try:
        await asyncio.Event().wait()
    finally:
        await handle.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="serve a folder over SFTP (demo, tests)")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--info", type=Path, required=True, help="write the handle here (JSON)")
    parser.add_argument("--host-key", type=Path, help="keep the host key in this file")
    parser.add_argument("--port", type=int, default=0, help="0: a free port")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.root, args.info, args.host_key, args.port))


if __name__ == "__main__":
    main()
