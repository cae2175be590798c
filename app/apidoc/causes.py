"""Why an operation may answer 429 or 503 (and other documented errors), with an example
body for each cause. The causes every authenticated operation shares are found from the
route's dependencies, so a new endpoint gets them by declaring its auth."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from app.auth.dependencies import authenticate
from app.db import DbSession
from app.deps import EngineDep, ResticDep

Json = dict[str, Any]


@dataclass(frozen=True)
class Cause:
    """One reason for an error answer: when it happens and the body it comes with."""

    status: int
    name: str
    title: str
    when: str
    body: Json
    retry_after: int | None = None


AUTH_LIMIT = Cause(
    429,
    "auth_limit",
    "Too many failed authentications from this address",
    "More than PODBACKUP_AUTH_FAIL_LIMIT failed authentications (missing, invalid or "
    "revoked tokens) came from this client address within a minute. Every failing attempt "
    "from it answers 429 until the minute is over; a valid token still works.",
    {
        "error": "TooManyRequests",
        "detail": "too many failed authentications from this address",
        "hint": "wait a minute, then retry with a valid token",
    },
    retry_after=60,
)
DATABASE_DOWN = Cause(
    503,
    "database_down",
    "PostgreSQL is unreachable",
    "The service's PostgreSQL is unreachable (tokens and every record live there).",
    {
        "error": "ServiceUnavailable",
        "detail": "the database is unavailable",
        "hint": "retry in a few seconds",
    },
    retry_after=5,
)
RESTIC_MISSING = Cause(
    503,
    "restic_missing",
    "restic is not usable on this API host",
    "The restic binary is not usable on this API host (this operation runs restic itself).",
    {
        "error": "ServiceUnavailable",
        "detail": "the restic binary is not usable on this API host",
        "hint": "install restic (apt-get install restic) or set PODBACKUP_RESTIC_BINARY",
    },
)
STORAGE_DOWN = Cause(
    503,
    "storage_down",
    "The storage did not answer",
    "The pod's storage did not answer while this request read the repository.",
    {
        "error": "ServiceUnavailable",
        "detail": "the storage did not answer: dial tcp: i/o timeout",
        "hint": "check the endpoint, your provider's status page and that the key is still valid",
    },
    retry_after=30,
)


HEADS = {
    404: "Not found (or owned by another account)",
    429: "Too many requests",
    503: "A backing service is unavailable",
}


def _dependency(alias: Any) -> Callable[..., Any]:
    """The function behind an ``Annotated[..., Depends(f)]`` alias."""
    call: Callable[..., Any] = alias.__metadata__[0].dependency
    return call


SHARED: list[tuple[Callable[..., Any], tuple[Cause, ...]]] = [
    (authenticate, (AUTH_LIMIT, DATABASE_DOWN)),
    (_dependency(DbSession), (DATABASE_DOWN,)),
    (_dependency(EngineDep), (DATABASE_DOWN,)),
    (_dependency(ResticDep), (RESTIC_MISSING,)),
]


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dep in dependant.dependencies:
        if dep.call is not None:
            yield dep.call
        yield from _calls(dep)


def shared_causes(route: APIRoute) -> list[Cause]:
    """The causes a route has by its dependencies (auth, database, restic)."""
    calls = set(_calls(route.dependant))
    found: list[Cause] = []
    for call, causes in SHARED:
        if call in calls:
            found += [c for c in causes if c not in found]
    return found


def response(causes: list[Cause], existing: Json | None) -> Json:
    """The OpenAPI response object of one status: every cause in its description, an
    example body each, the declared schema (the error envelope unless the route says)."""
    existing = dict(existing or {})
    lines = "\n".join(f"- **{c.name}**: {c.when}" for c in causes)
    head = existing.get("description") or HEADS.get(causes[0].status, "Error")
    content = existing.get("content") or {
        "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
    }
    media = dict(content.get("application/json") or {})
    media["examples"] = {c.name: {"summary": c.title, "value": c.body} for c in causes}
    out: Json = {
        **existing,
        "description": f"{head}.\n\n{lines}" if lines else head,
        "content": {**content, "application/json": media},
    }
    if any(c.retry_after for c in causes):
        out["headers"] = {
            "Retry-After": {
                "description": "Seconds to wait before trying again.",
                "schema": {"type": "integer"},
            }
        }
    return out
