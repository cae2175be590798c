"""What a job is and where it stands: the kinds, the statuses, and which kinds a pod runs
one at a time. Stored and sent as these plain strings."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


# A stored kind this version does not know (a newer version queued it during a rolling
# deploy) loads as a kind of its own, not an error (`_missing_`): the API lists it, and a
# worker without its handler fails the job as `unknown_kind`. Requests name listed kinds only.
class JobKind(StrEnum):
    BACKUP = "backup"
    RESTORE = "restore"
    EXPORT = "export"
    PRUNE = "prune"
    CHECK = "check"
    REFRESH = "refresh"
    INDEX = "index"
    COPY = "copy"

    @classmethod
    def _missing_(cls, value: object) -> JobKind | None:
        if not isinstance(value, str) or not value:
            return None
        member = str.__new__(cls, value)
        member._name_ = value.upper()
        member._value_ = value
        return member


class Plan(StrEnum):
    """Whose backup: the pod owner's (their storage and settings) or the platform's (the
    operator's storage, for server-wide recovery, visible to admins only)."""

    OWNER = "owner"
    PLATFORM = "platform"
    # The owner's second copy: another bucket or provider, filled with `restic copy` from
    # the owner's repository (app/copies/); visible to the owner like the owner plan.
    COPY = "copy"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELED = "canceled"


# Kinds that change a pod or its repository: at most one queued or running per pod.
EXCLUSIVE_KINDS = (
    JobKind.BACKUP,
    JobKind.RESTORE,
    JobKind.PRUNE,
    JobKind.CHECK,
    JobKind.COPY,
)
ACTIVE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)
FINAL_STATUSES = (JobStatus.SUCCEEDED, JobStatus.PARTIAL, JobStatus.FAILED, JobStatus.CANCELED)


def sql_list(values: Iterable[StrEnum]) -> str:
    """``('a', 'b')``: for predicates spelled as literal SQL (a partial index, and inserts
    that must match it even under a generic plan, which bind parameters would defeat)."""
    return "(" + ", ".join(f"'{v.value}'" for v in values) + ")"


# The predicate of the one-exclusive-job-per-pod unique index.
EXCLUSIVE_ACTIVE_SQL = (
    f"status IN {sql_list(ACTIVE_STATUSES)} AND kind IN {sql_list(EXCLUSIVE_KINDS)}"
)
