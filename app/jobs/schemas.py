from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field

from app.models.kinds import JobKind, JobStatus

Trigger = Literal["manual", "schedule", "api"]


def _listed(kind: JobKind) -> JobKind:
    if kind not in tuple(JobKind):  # a stored row may hold a newer kind; a request may not
        raise ValueError(f"unknown job kind {kind.value!r}: use one of {', '.join(JobKind)}")
    return kind


# What a request may name: only the kinds this version lists.
KnownKind = Annotated[JobKind, AfterValidator(_listed)]


class Progress(BaseModel):
    percent: float | None = None
    bytes_done: int | None = None
    bytes_total: int | None = None
    files_done: int | None = None
    files_total: int | None = None
    phase: str | None = None
    seconds_remaining: float | None = None


class JobErrorRead(BaseModel):
    code: str
    message: str
    hint: str | None = None


class JobRead(BaseModel):
    id: uuid.UUID
    pod_id: uuid.UUID | None
    plan: str
    kind: JobKind
    status: JobStatus
    trigger: str
    progress: Progress
    result: dict[str, Any] | None
    error: JobErrorRead | None
    attempt: int
    max_attempts: int
    cancel_requested: bool
    params: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    run_after: datetime | None = Field(None, description="A retry waits until this time.")


class JobEventRead(BaseModel):
    id: int
    at: datetime
    type: str
    data: dict[str, Any]


# -- the event stream (GET /v1/jobs/{job_id}/events): the `data:` of each `event:` -----------


class JobStateChange(BaseModel):
    """`event: state` between the first and the last: a transition, as recorded."""

    status: JobStatus
    attempt: int | None = Field(None, description="On `queued` and `running`.")
    worker: str | None = Field(None, description="On `running`: the worker that claimed it.")
    retry_in: float | None = Field(None, description="On a retry: seconds until it runs.")
    final: bool | None = Field(None, description="True on the job's last state.")
    error: JobErrorRead | None = None
    result: dict[str, Any] | None = None
    at: datetime


class JobProgressEvent(Progress):
    """`event: progress`: the job's progress (throttled, about one a second)."""

    at: datetime


class JobLogEvent(BaseModel):
    """`event: log`: a line of the job's log; handlers may add keys."""

    level: Literal["debug", "info", "warning", "error"]
    message: str
    at: datetime


class JobEndEvent(BaseModel):
    """`event: end`: the last event of a stream; the connection closes after it."""

    status: JobStatus
