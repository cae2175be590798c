"""Every operation of the app, discovered from its OpenAPI document (so endpoints added
later are covered without editing a list), with the values a request needs: path ids
from an account's objects, required query values, and a body that passes validation."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from tests.security.world import Owned

IdSource = Callable[[str], str]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    @property
    def authenticated(self) -> bool:
        return bool(self.spec.get("security"))

    def url(self, ids: IdSource) -> str:
        return re.sub(r"{(\w+)}", lambda m: ids(m.group(1)), self.path)


def operations(app: FastAPI) -> list[Operation]:
    """Every operation, DELETEs last (they destroy what the others address)."""
    spec = app.openapi()
    found = [
        Operation(method.upper(), path, op)
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    ]
    return sorted(found, key=lambda o: o.method == "DELETE")


# Required query values, by name (a new required parameter needs an entry here).
QUERY: dict[str, Any] = {"path": "/", "expires": 4102444800, "signature": "0" * 64}


def query(op: Operation) -> dict[str, Any]:
    values = {}
    for param in op.spec.get("parameters", []):
        if param["in"] == "query" and param.get("required"):
            name = param["name"]
            assert name in QUERY, f"{op.label}: teach tests/security/routes.py QUERY '{name}'"
            values[name] = QUERY[name]
    return values


NO_BODY = object()


def bodies(op: Operation, me: Owned) -> list[Any]:
    """Bodies to try, best first; the caller keeps the first that passes validation (a
    request must get past validation to reach the id lookup). Ids in them are the
    caller's own. Known shapes; the operation's OpenAPI example; no body; ``{}``."""
    known: dict[str, Callable[[], Any]] = {
        "PATCH /v1/pods/{pod_id}": lambda: {"name": "renamed"},
        "POST /v1/pods/{pod_id}/restores": lambda: {"snapshot_id": me.ids["snapshot_id"]},
        "POST /v1/pods/{pod_id}/exports": lambda: {"snapshot_id": me.ids["snapshot_id"]},
        "PUT /v1/pods/{pod_id}/backup-settings": lambda: {"schedule": {"enabled": False}},
        "POST /v1/accounts/{account_id}/tokens": lambda: {"name": "x"},
        # It waits for its backup: no worker runs here, so a 202 after a second.
        "POST /v1/pods/{pod_id}/before-update": lambda: {
            "app_version": "1.0",
            "timeout_seconds": 1,
        },
    }
    request = op.spec.get("requestBody")
    if request is None:
        return [NO_BODY]
    found: list[Any] = []
    if op.label in known:
        found.append(known[op.label]())
    media = request.get("content", {}).get("application/json", {})
    if "example" in media:
        found.append(media["example"])
    found += [e["value"] for e in (media.get("examples") or {}).values() if "value" in e]
    if not request.get("required"):
        found.append(NO_BODY)
    found.append({})
    return found


def missing(_: str) -> str:
    """An id nobody has."""
    return str(uuid.uuid4())
