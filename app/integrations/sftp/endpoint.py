"""Where a pod's files are served over SFTP, and the host-key helpers used to pin it."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncssh


@dataclass(frozen=True)
class SftpEndpoint:
    host: str
    port: int
    username: str
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)  # OpenSSH/PEM text
    path: str = "/"  # remote root folder
    known_host_key: str | None = None  # OpenSSH public key line; None = trust on first use

    def remote_root(self) -> bytes:
        """The root folder as the bytes sent to the server, without a trailing slash."""
        raw = (self.path or "/").encode("utf-8", "surrogateescape")
        stripped = raw.rstrip(b"/")
        return stripped or b"/"


def key_line(key: asyncssh.SSHKey) -> str:
    """``"<algorithm> <base64>"`` of a public key, without a comment."""
    return " ".join(key.export_public_key("openssh").decode("ascii").split()[:2])


def parse_host_key(line: str) -> asyncssh.SSHKey:
    """Read an OpenSSH public key line (``alg base64 [comment]``, or a known_hosts line
    with a leading host pattern). Raises ValueError when there is no key in it."""
    tokens = line.split()
    for i in range(len(tokens) - 1):
        try:
            return asyncssh.import_public_key(f"{tokens[i]} {tokens[i + 1]}")
        except (asyncssh.KeyImportError, ValueError, TypeError):
            continue
    raise ValueError("not an OpenSSH public key line (expected 'ssh-ed25519 AAAA...')")


def normalize_host_key(line: str) -> str:
    """The canonical ``"<algorithm> <base64>"`` form of a key line, for storing a pin."""
    return key_line(parse_host_key(line))


def fingerprint(line_or_key: str | asyncssh.SSHKey) -> str:
    """The ``SHA256:...`` fingerprint OpenSSH prints for a key."""
    key = parse_host_key(line_or_key) if isinstance(line_or_key, str) else line_or_key
    return str(key.get_fingerprint("sha256"))


def is_host_key_line(line: str) -> bool:
    """Whether ``line`` is an OpenSSH public key line (what ssh-keyscan prints)."""
    try:
        asyncssh.import_public_key(line.strip())
    except (asyncssh.KeyImportError, ValueError):
        return False
    return True
