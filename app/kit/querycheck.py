"""Refuse a NUL character in the URL (path or query) before any endpoint sees it.

PostgreSQL text cannot hold NUL, restic and the file system cannot take it in a path, and
a filter value carrying one (``?tag=%00``) used to reach the database and fail there as a
500. One check for every parameter, present and future: 422 in the error envelope, naming
the parameter."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

_HINT = "remove the NUL character (%00) from the URL"


class RejectNul:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            where = _nul_in(scope)
            if where is not None:
                await _answer_422(send, where)
                return
        await self.app(scope, receive, send)


def _nul_in(scope: Scope) -> list[str] | None:
    if "\x00" in scope.get("path", ""):
        return ["path"]
    raw: bytes = scope.get("query_string", b"")
    if b"%00" not in raw and b"\x00" not in raw:
        return None
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return ["query", name.replace("\x00", "")]
    return ["query"]


async def _answer_422(send: Send, loc: list[str]) -> None:
    body = json.dumps(
        {
            "error": "ValidationFailed",
            "detail": [{"loc": loc, "msg": "contains a NUL character", "type": "value_error"}],
            "hint": _HINT,
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
