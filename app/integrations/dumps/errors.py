"""Dump/load failures mapped to stable codes, with a hint a person can act on."""

from __future__ import annotations

import re

from app.integrations.errors import IntegrationError

CODES = (
    "unreachable",
    "auth_failed",
    "database_not_found",
    "client_too_old",
    "client_missing",
    "dump_failed",
    "dump_incomplete",
    "load_failed",
    "dump_refused",
    "disk_full",
    "canceled",
    "timeout",
)
# A dump over its time limit is not retried: the next attempt meets the same limit.
RETRYABLE = {"unreachable", "dump_incomplete"}

_HINTS = {
    "unreachable": (
        "the database server did not answer: check the host and port in the pod's database "
        "settings and that the server accepts connections from the backup workers"
    ),
    "auth_failed": (
        "the database refused the username or password: update them in the pod's database settings"
    ),
    "database_not_found": (
        "the database does not exist, or this user may not use it: check the database name "
        "in the pod's settings"
    ),
    "dump_failed": "the dump program failed; the message shows its last error",
    "dump_incomplete": (
        "the dump ended before its completion footer (the connection dropped or the server "
        "stopped); run the backup again"
    ),
    "load_failed": "the dump could not be loaded; the message names the failing statement",
    "disk_full": "the worker's disk is full; free space in PODBACKUP_CACHE_DIR",
    "canceled": "the operation was canceled on request",
    "timeout": "the operation exceeded its time limit; a large database may need a longer limit",
}


class DumpError(IntegrationError):
    """A dump, load or drill failed. ``code`` is one of CODES; ``hint`` says what to do."""

    RETRYABLE = frozenset(RETRYABLE)
    HINTS = _HINTS

    def scrub(self, secret: str | None) -> DumpError:
        """Mask ``secret`` in the message and hint (children echo odd things back)."""
        if secret and len(secret) >= 3:
            self.message = self.message.replace(secret, "***")
            self.hint = self.hint.replace(secret, "***") if self.hint else None
            self.args = (self.message,)
        return self


def _last_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for line in reversed(lines):
        if "error" in line.lower() or "fatal" in line.lower():
            return line
    return lines[-1] if lines else ""


_PG_UNREACHABLE = re.compile(
    r"could not connect|connection refused|timeout expired|could not translate host|"
    r"server closed the connection|no route to host|network is unreachable|"
    r"connection timed out|the database system is (starting up|shutting down)",
    re.IGNORECASE,
)
_PG_AUTH = re.compile(
    r"password authentication failed|no pg_hba\.conf entry|fe_sendauth: no password|"
    r"role \".*\" does not exist|permission denied for database|"
    r"authentication failed",
    re.IGNORECASE,
)


def classify_pg(stderr: str, default: str) -> DumpError:
    """Map pg_dump/psql stderr to a DumpError (``default``: dump_failed or load_failed)."""
    text = stderr.strip()
    last = _last_error(text) or f"exited with an error ({default})"
    low = text.lower()
    if "no space left on device" in low:
        return DumpError("disk_full", last)
    if "server version mismatch" in low:
        return DumpError("client_too_old", last)
    if _PG_AUTH.search(text):
        return DumpError("auth_failed", last)
    if re.search(r"database \".*\" does not exist", text):
        return DumpError("database_not_found", last)
    if _PG_UNREACHABLE.search(text):
        return DumpError("unreachable", last)
    return DumpError(default, last)


_MY_CODE = re.compile(r"(?:ERROR |Got error: |\()(\d{4})\b")
_MY_UNREACHABLE = {2002, 2003, 2005, 2006, 2013, 2026, 2055}


def classify_mysql(stderr: str, default: str) -> DumpError:
    """Map mariadb/mysql client stderr to a DumpError by the server's error number."""
    text = stderr.strip()
    last = _last_error(text) or f"exited with an error ({default})"
    low = text.lower()
    if "errno 28" in low or "no space left on device" in low:
        return DumpError("disk_full", last)
    for match in _MY_CODE.finditer(text):
        number = int(match.group(1))
        if number == 1045:
            return DumpError("auth_failed", last)
        if number in (1044, 1049):
            # 1044: no privilege on that name, which is also what a mistyped name gives
            return DumpError("database_not_found", last)
        if number in _MY_UNREACHABLE:
            return DumpError("unreachable", last)
    if "can't connect" in low or "unknown server host" in low:
        return DumpError("unreachable", last)
    return DumpError(default, last)
