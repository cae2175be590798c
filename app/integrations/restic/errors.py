"""restic failures mapped to stable error codes (restic 0.14 has no exit codes for them)."""

from __future__ import annotations

import re

from app.integrations.errors import IntegrationError

RETRYABLE = {"repository_locked", "storage_unreachable"}

_HINTS = {
    "wrong_password": (
        "the repository password does not open this repository: the bucket may hold "
        "another pod's repository, or the password was changed outside the service"
    ),
    "repository_not_found": "the target holds no restic repository yet; run a backup to create it",
    "repository_locked": (
        "another restic process holds a lock on the repository; the job retries, and a "
        "lock left by a dead process is removed once it is provably stale"
    ),
    "storage_unreachable": (
        "the storage endpoint did not answer; check the endpoint, your provider's status "
        "page and that the key is still valid"
    ),
    "address_refused": (
        "the storage endpoint led to an address this service does not connect to (its "
        "name resolved there when restic connected); use the provider's public endpoint"
    ),
    "interrupted": "the run was interrupted",
    "timeout": "the run exceeded its time limit; a larger pod may need a longer limit",
    "disk_full": "the worker's disk is full; free space in PODBACKUP_CACHE_DIR",
    "access_denied": (
        "the storage refused the key: check the access key, secret and that the key "
        "may read and write this bucket"
    ),
    "target_unusable": (
        "the repository location cannot be used: it is a file, sits under a file, or the "
        "service may not write there; fix the path in the backup settings or its permissions"
    ),
    "repository_damaged": (
        "the repository is damaged (missing or corrupt data); run `restic check` and, "
        "if it fails, `restic repair` with the restore kit"
    ),
}


class ResticError(IntegrationError):
    RETRYABLE = frozenset(RETRYABLE)
    HINTS = _HINTS

    def __init__(self, code: str, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(code, message)
        self.exit_code = exit_code


_UNREACHABLE = re.compile(
    r"connection refused|no such host|i/o timeout|network is unreachable|"
    r"connection reset|TLS handshake|timeout awaiting|\bEOF\b|dial tcp|server misbehaving|"
    r"context deadline exceeded|x509:|certificate",
    re.IGNORECASE,
)
_DENIED = re.compile(
    r"Access ?Denied|InvalidAccessKeyId|SignatureDoesNotMatch|403 Forbidden|status code 403|"
    # S3's messages for those codes, which is all restic prints of them
    r"signature we calculated does not match|Access Key Id you provided does not exist",
    re.IGNORECASE,
)


# A data pack the index lists is missing from the storage (`restic dump` / `restore`).
_PACK_GONE = re.compile(
    r"ReadFull\(<data/[0-9a-f]+>\).*(no such file|does not exist|NoSuchKey)", re.IGNORECASE
)


def classify(exit_code: int, stderr: str) -> ResticError:
    """Map an exit code and stderr text to a ResticError (works for 0.14 and 0.17+)."""
    text = stderr.strip()
    last = _last_fatal(text)
    if exit_code == 10:
        return ResticError("repository_not_found", last, exit_code=exit_code)
    if exit_code == 11:
        return ResticError("repository_locked", last, exit_code=exit_code)
    if exit_code == 12:
        return ResticError("wrong_password", last, exit_code=exit_code)
    if exit_code == 130:
        return ResticError("interrupted", last, exit_code=exit_code)
    if "no space left on device" in text.lower():
        return ResticError("disk_full", last, exit_code=exit_code)
    if "wrong password or no key found" in text:
        return ResticError("wrong_password", last, exit_code=exit_code)
    if "repository is already locked" in text or "unable to create lock" in text:
        return ResticError("repository_locked", last, exit_code=exit_code)
    if _DENIED.search(text):
        return ResticError("access_denied", last, exit_code=exit_code)
    if _UNREACHABLE.search(text):
        return ResticError("storage_unreachable", last, exit_code=exit_code)
    if "not a directory" in text.lower():
        return ResticError("target_unusable", last, exit_code=exit_code)
    if "Is there a repository at the following location?" in text or (
        "unable to open config file" in text
    ):
        return ResticError("repository_not_found", last, exit_code=exit_code)
    if re.search(r"pack .* (not found|does not exist)|ciphertext verification failed", text) or (
        _PACK_GONE.search(text)
    ):
        return ResticError("repository_damaged", last, exit_code=exit_code)
    return ResticError(
        "failed", last or f"restic exited with code {exit_code}", exit_code=exit_code
    )


_PERMANENT_RETRY = re.compile(
    r"not a directory|permission denied|read-only file system", re.IGNORECASE
)


_PACK_GONE_RETRY = re.compile(
    r"Load\(<data/[0-9a-f]+>.*returned error, retrying.*"
    r"(no such file|does not exist|NoSuchKey)",
    re.IGNORECASE,
)


def missing_pack_retry(line: str) -> ResticError | None:
    """A retry line of restic reading a data pack the storage does not have: restic 0.14
    retries that for about 45 s before it gives up; no retry brings the pack back."""
    if not _PACK_GONE_RETRY.search(line):
        return None
    message = line.split("retrying after", 1)[-1]
    message = message.split(": ", 1)[-1].strip() if ": " in message else line.strip()
    return ResticError("repository_damaged", f"a data pack is missing: {message}")


def permanent_retry_error(line: str) -> ResticError | None:
    """A "returned error, retrying" line whose error no retry can heal, as a ResticError.

    restic 0.17+ retries such backend errors for minutes (0.14 gives up at once on them):
    a local target that is a file, a key the storage refuses (a wrong secret, a key
    without access to the bucket). Without this they would look like an unreachable
    storage for ``storage_stall_seconds`` and then be retried as one.
    """
    if _DENIED.search(line):
        code = "access_denied"
    elif _PERMANENT_RETRY.search(line):
        code = "target_unusable"
    else:
        return None
    message = line.split("retrying after", 1)[-1]
    message = message.split(": ", 1)[-1].strip() if ": " in message else line.strip()
    return ResticError(code, message)


def _last_fatal(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("Fatal:"):
            return line[len("Fatal:") :].strip()
    return lines[-1].strip() if lines else ""
