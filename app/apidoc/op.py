"""The shape of an operation's documentation, and the text and errors several share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.apidoc.causes import Cause
from app.apidoc.examples import JOB_ID

Json = dict[str, Any]

ADMIN = "**Who**: admin tokens."
ANY = "**Who**: admin tokens, and account tokens for their own account's resources "
ANY += "(another account's answers 404, like a missing one)."
JOB_NEXT = (
    "**Next**: follow the job with `GET /v1/jobs/{job_id}/events` (Server-Sent Events) or "
    "poll `GET /v1/jobs/{job_id}` (the `Location` header) until `status` is final "
    "(`succeeded`, `partial`, `failed`, `canceled`); a failed job's `error.code` is one of "
    "the `JobErrorCode` values."
)


@dataclass(frozen=True)
class Op:
    text: str
    request: Json | None = None
    response: Json | str | None = None
    causes: tuple[Cause, ...] = ()


def error_cause(status: int, name: str, when: str, error: str, detail: str, hint: str) -> Cause:
    return Cause(status, name, when, when, {"error": error, "detail": detail, "hint": hint})


POD_GONE = error_cause(
    404,
    "not_found",
    "No such pod, or it belongs to another account.",
    "NotFound",
    "Pod not found",
    "check the pod id",
)
SLOTS_FULL = Cause(
    429,
    "slots_full",
    "Every download slot is taken",
    "Every download slot of this API process is taken (PODBACKUP_DOWNLOAD_CONCURRENCY).",
    {
        "error": "TooManyRequests",
        "detail": "too many downloads are running",
        "hint": "retry in a few seconds",
    },
    retry_after=5,
)
ACCOUNT_SHARE = Cause(
    429,
    "account_share",
    "The account's share of download slots is taken",
    "This account already holds its share of the download slots (PODBACKUP_DOWNLOAD_PER_ACCOUNT).",
    {
        "error": "TooManyRequests",
        "detail": "this account already runs 2 download(s) at once",
        "hint": "let a running download finish, then retry",
    },
    retry_after=5,
)
NOT_READY = Cause(
    503,
    "not_ready",
    "PostgreSQL or Redis does not answer",
    "PostgreSQL or Redis does not answer; `checks` says which.",
    {
        "status": "unavailable",
        "checks": {"postgres": "ok", "redis": "unreachable: ConnectionError"},
        "error": "ServiceUnavailable",
        "detail": "unreachable: redis",
        "hint": "start the service, or fix PODBACKUP_DATABASE_URL / PODBACKUP_REDIS_URL",
    },
    retry_after=5,
)
POD_BUSY = Cause(
    409,
    "pod_busy",
    "Another job changes the pod",
    "Another backup, restore, prune or check of the pod is queued or running (one at a "
    "time per pod); `detail` names it.",
    {
        "error": "PodBusy",
        "detail": {"job_id": JOB_ID, "kind": "restore"},
        "hint": f"wait for job {JOB_ID} to finish, or cancel it",
    },
)


def no_settings(then: str) -> Cause:
    """409 NotConfigured as ``jobs.starting.require_settings`` words it."""
    return error_cause(
        409,
        "not_configured",
        "The pod has no backup settings yet.",
        "NotConfigured",
        "the pod has no backup settings yet",
        f"set a target with PUT /v1/pods/{{pod_id}}/backup-settings, then {then}",
    )
