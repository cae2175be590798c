"""Stop/start hooks of a pod: a signed POST, with the outbound-address policy applied."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from app.kit import netpolicy


class HookError(Exception):
    def __init__(self, code: str, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.hint = code, message, hint


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


async def post_signed(
    url: str,
    payload: dict[str, Any],
    *,
    secret: bytes,
    policy: netpolicy.Policy,
    timeout: float,
    headers: dict[str, str] | None = None,
    field: str = "url",
) -> httpx.Response:
    """POST ``payload`` as JSON with an HMAC-SHA256 signature; redirects are not followed
    (a redirect could point at an address the policy refuses)."""
    host = urlsplit(url).hostname or ""
    try:
        await netpolicy.check_before_connect(policy, host, field=field)
    except netpolicy.HostUnresolvable as exc:
        raise HookError("unreachable", f"the name '{host}' does not resolve") from exc
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    stamp = str(int(time.time()))
    all_headers = {
        "Content-Type": "application/json",
        "User-Agent": "podbackup",
        "X-Podbackup-Timestamp": stamp,
        "X-Podbackup-Signature": sign(secret, stamp, body),
        **(headers or {}),
    }
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
        return await client.post(url, content=body, headers=all_headers)


async def call(
    url: str,
    event: str,
    payload: dict[str, Any],
    *,
    secret: bytes,
    policy: netpolicy.Policy,
    timeout: float,
) -> None:
    """Call a pod's stop or start hook; any non-2xx answer or network error is a HookError."""
    try:
        response = await post_signed(
            url,
            {"event": event, **payload},
            secret=secret,
            policy=policy,
            timeout=timeout,
            field=f"hooks.{event}_url",
        )
    except httpx.HTTPError as exc:
        raise HookError(
            "hook_failed",
            f"the {event} hook did not answer ({type(exc).__name__})",
            hint="check that the hook URL is reachable from the backup service",
        ) from exc
    if not 200 <= response.status_code < 300:
        raise HookError(
            "hook_failed",
            f"the {event} hook answered {response.status_code}",
            hint="the hook must answer 2xx once the pod has stopped/started",
        )


def hook_secret(configured: str | None, key_material: bytes) -> bytes:
    """The configured hook secret, or one derived from the newest encryption key."""
    if configured:
        return configured.encode()
    return hmac.new(key_material, b"podbackup-hooks", hashlib.sha256).digest()
