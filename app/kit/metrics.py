"""Prometheus metrics of the API process (labels stay bounded: no pod ids), and the
optional access log, which names requests the same way: by route template."""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_REQUESTS = Counter(
    "podbackup_http_requests_total", "HTTP requests", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "podbackup_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


access_log = logging.getLogger("podbackup.access")

# The labelled children, looked up once (``labels()`` builds and locks on every call).
_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): cheap, and streaming responses pass through.

    With ``log_requests``, one INFO line per request: method, route template, status and
    duration. The template (``/v1/pods/{pod_id}``), never the concrete path or the query
    string: download links carry their signature there."""

    def __init__(self, app: ASGIApp, log_requests: bool = False) -> None:
        self.app = app
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def _send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            route: Any = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            key = (scope.get("method", ""), path, status)
            children = _children.get(key)
            if children is None:  # bounded: routes x methods x statuses
                children = _children[key] = (
                    HTTP_REQUESTS.labels(key[0], path, str(status)),
                    HTTP_LATENCY.labels(key[0], path),
                )
            elapsed = time.perf_counter() - start
            children[0].inc()
            children[1].observe(elapsed)
            if self.log_requests:
                access_log.info("%s %s %d %.1fms", key[0], path, status, elapsed * 1000)
