"""SFTP failures mapped to stable codes a job can store and a person can act on."""

from __future__ import annotations

import errno

import asyncssh

from app.integrations.errors import IntegrationError

RETRYABLE = {"unreachable", "connection_lost"}

_HINTS = {
    "unreachable": (
        "check the pod's SFTP host and port, and that SFTP is enabled in the pod's settings"
    ),
    "auth_failed": (
        "check the SFTP username and password (or key) in the pod settings; the pod's "
        "SFTP password may have been changed"
    ),
    "host_key_mismatch": (
        "the server presented a different host key than the one pinned on the first "
        "backup; if the pod's host key legitimately changed (pod moved or re-created), "
        "clear the pinned host key in the pod settings, otherwise treat it as an attack"
    ),
    "not_found": "check the remote folder in the pod settings; it must exist on the server",
    "disk_full": "the worker's cache disk is full; free space in PODBACKUP_CACHE_DIR",
    "connection_lost": "the SFTP connection dropped during the transfer; the job retries",
    "canceled": "the transfer was canceled on request",
    "hostile_listing": (
        "the pod's SFTP server sent a listing no honest server sends (a name listed twice, "
        "or a name that is not a single path component); the backup stopped before writing "
        "anything; check the software serving SFTP on the pod"
    ),
    "unsafe_entry": (
        "an entry in the worker's cache would have been reached through a symlink; nothing "
        "was written through it; clear the pod's folder in PODBACKUP_CACHE_DIR and retry, "
        "and report it if it happens again"
    ),
    "failed": "see the message; retry, and contact support if it persists",
}

# Conditions that mean "the SSH session is gone", whatever layer noticed first.
_LOST = (
    asyncssh.SFTPConnectionLost,
    asyncssh.ConnectionLost,
    asyncssh.SFTPNoConnection,
    ConnectionResetError,
    BrokenPipeError,
    ConnectionAbortedError,
)


class SftpError(IntegrationError):
    """An SFTP transfer failed. ``code`` is one of the keys of ``_HINTS``.

    Messages never contain a password or key: they are built from fixed text, paths
    and the server's own status text.
    """

    RETRYABLE = frozenset(RETRYABLE)
    HINTS = _HINTS

    def __repr__(self) -> str:
        return f"SftpError({self.code!r}, {self.message!r})"


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def classify(exc: BaseException, doing: str) -> SftpError:
    """Map an exception raised while ``doing`` something (e.g. "reading /a/b") to SftpError."""
    if isinstance(exc, SftpError):
        return exc
    if is_disk_full(exc):
        return SftpError("disk_full", f"no space left on the worker's disk while {doing}")
    if isinstance(exc, _LOST) or (
        isinstance(exc, asyncssh.DisconnectError)
        and not isinstance(exc, asyncssh.PermissionDenied | asyncssh.HostKeyNotVerifiable)
    ):
        return SftpError("connection_lost", f"the SFTP connection was lost while {doing}")
    if isinstance(exc, asyncssh.SFTPError):
        reason = exc.reason or type(exc).__name__
        return SftpError("failed", f"the SFTP server refused {doing}: {reason}")
    if isinstance(exc, OSError):
        return SftpError("failed", f"local file error while {doing}: {exc.strerror or exc}")
    if isinstance(exc, asyncssh.Error):
        return SftpError("failed", f"the SSH server refused {doing}: {exc.reason or 'no reason'}")
    return SftpError("failed", f"unexpected error while {doing}: {type(exc).__name__}")
