"""Schemas the OpenAPI document gains beyond the routes' own: the job error codes, the API
error names, the data of each event of a job's event stream, and the job result shapes
no route names (a restore preview)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from app.errors import _HTTP_NAMES, AppError
from app.jobs.schemas import (
    JobEndEvent,
    JobLogEvent,
    JobProgressEvent,
    JobRead,
    JobStateChange,
)
from app.models.errorcodes import JOB_ERROR_CODES
from app.restores.schemas import RestorePreview

REF = "#/components/schemas/{model}"

# Names the error handlers give to errors that are not AppError subclasses.
HANDLER_ERRORS = {
    **{name: (status, f"HTTP {status}") for status, name in _HTTP_NAMES.items()},
    "MethodNotAllowed": (405, "The path exists, but not with this method"),
    "NotAcceptable": (406, "The `Accept` header asks for a type this operation cannot send"),
    "PayloadTooLarge": (413, "The body is larger than this operation accepts"),
    "UnsupportedMediaType": (415, "Send `Content-Type: application/json`"),
    "InternalError": (500, "An unexpected error; the event was logged"),
    "HTTPError": (0, "Any other status the framework answers"),
}

# The events of GET /v1/jobs/{job_id}/events: name -> schema of its `data:`.
STREAM_EVENTS: dict[str, tuple[type[BaseModel], ...]] = {
    "state": (JobRead, JobStateChange),
    "progress": (JobProgressEvent,),
    "log": (JobLogEvent,),
    "end": (JobEndEvent,),
}


def _subclasses(cls: type[AppError]) -> list[type[AppError]]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def api_errors() -> dict[str, tuple[int, str]]:
    """Every value the `error` field of an error body can hold: name -> (status, meaning).

    Read from the AppError class tree (every subclass the app has imported, which is every
    one an endpoint or a dependency raises) and the handlers' own names."""
    found: dict[str, tuple[int, str]] = {
        name: (status, text) for name, (status, text) in HANDLER_ERRORS.items()
    }
    for cls in _subclasses(AppError):
        if not cls.__module__.startswith("app."):
            continue  # a test's or a plugin's class is no part of this API
        # Its own message, else the first sentence of its docstring, else its parent's.
        first = " ".join((cls.__doc__ or "").split()).split(". ")[0]
        text = cls.__dict__.get("message") or first or cls.message
        text = text.strip().rstrip(".")
        found[cls.__name__] = (cls.status_code, text[:1].upper() + text[1:])
    return dict(sorted(found.items()))


def api_error_schema() -> dict[str, Any]:
    errors = api_errors()
    rows = "\n".join(
        f"| `{name}` | {status or '—'} | {text} |" for name, (status, text) in errors.items()
    )
    return {
        "title": "ApiError",
        "type": "string",
        "enum": list(errors),
        "x-enum-descriptions": [text for _status, text in errors.values()],
        "x-enum-status": {name: status for name, (status, _text) in errors.items()},
        "description": (
            "The `error` field of every 4xx/5xx body: a stable name a client can branch on. "
            "`detail` says what happened, `hint` what to do.\n\n"
            f"| error | status | meaning |\n|---|---|---|\n{rows}"
        ),
    }


def job_error_code_schema() -> dict[str, Any]:
    rows = "\n".join(
        f"| `{code}` | {'yes' if doc.retryable else 'no'} | {doc.meaning} | {doc.hint} |"
        for code, doc in JOB_ERROR_CODES.items()
    )
    return {
        "title": "JobErrorCode",
        "type": "string",
        "enum": list(JOB_ERROR_CODES),
        "x-enum-descriptions": [doc.meaning for doc in JOB_ERROR_CODES.values()],
        "x-codes": {
            code: {"meaning": doc.meaning, "hint": doc.hint, "retryable": doc.retryable}
            for code, doc in JOB_ERROR_CODES.items()
        },
        "description": (
            "Why a job failed (`error.code` of a job, of its `state` events and of the "
            "`job.failed` webhook). The job's own `message` and `hint` are more precise. A "
            "retryable code is tried again with backoff (`attempt`, `run_after`) until "
            "`max_attempts`; the others fail at once. A newer version may add codes: treat an "
            "unknown one like `failed`.\n\n"
            f"| code | retried | meaning | usual fix |\n|---|---|---|---|\n{rows}"
        ),
    }


# Shapes of job results the routes do not name (a job's `result` is free-form per kind).
RESULT_SHAPES: tuple[type[BaseModel], ...] = (RestorePreview,)


def stream_event_schemas() -> dict[str, Any]:
    """The JSON schemas of the stream's event data and of the job result shapes, as
    components."""
    models = [m for group in STREAM_EVENTS.values() for m in group] + list(RESULT_SHAPES)
    _, defs = models_json_schema([(m, "serialization") for m in models], ref_template=REF)
    schemas: dict[str, Any] = defs.get("$defs", {})
    return schemas
