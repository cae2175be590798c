"""Stop/start hooks of a pod: a signed POST, with the outbound-address policy applied."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx

from app.integrations.errors import IntegrationError
from app.kit import netpolicy


class HookError(IntegrationError):
    """A pod's stop/start hook could not be called or answered with an error."""


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
    read_body: bool = True,
) -> httpx.Response:
    """POST ``payload`` as JSON with an HMAC-SHA256 signature; redirects are not followed
    (a redirect could point at an address the policy refuses).

    The connection goes to the addresses the policy check approved, not to the name again
    (the Host header and TLS server name stay the URL's), so a name re-pointed between the
    check and the connect cannot reach a refused address. With ``read_body=False`` the
    response is closed unread: status and headers only, whatever the receiver sends.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addrs = await netpolicy.check_before_connect(policy, host, port, field=field)
    except netpolicy.HostUnresolvable as exc:
        raise HookError("unreachable", f"the name '{host}' does not resolve") from exc
    if parts.scheme != "https" and not netpolicy.plain_http_allowed(policy, addrs):
        raise HookError(
            "address_refused",
            f"plain http:// to '{host}' is only allowed inside PODBACKUP_ALLOW_NETWORKS",
            hint="use an https:// URL",
        )
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    stamp = str(int(time.time()))
    all_headers = {
        "Content-Type": "application/json",
        "User-Agent": "podbackup",
        "X-Podbackup-Timestamp": stamp,
        "X-Podbackup-Signature": sign(secret, stamp, body),
        **(headers or {}),
    }
    pinned = netpolicy.parse_ip(host) is None
    if pinned:
        all_headers["Host"] = parts.netloc.rpartition("@")[2]
    # trust_env=False: a proxy from the environment would connect by name, past the check.
    async with httpx.AsyncClient(
        timeout=timeout, follow_redirects=False, trust_env=False
    ) as client:
        last: httpx.ConnectError | None = None
        for addr in addrs if pinned else [None]:
            target, extensions = url, {}
            if addr is not None:
                target = _with_address(parts, addr)
                if parts.scheme == "https":
                    extensions["sni_hostname"] = host
            request = client.build_request(
                "POST", target, content=body, headers=all_headers, extensions=extensions
            )
            try:
                response = await client.send(request, stream=True)
            except httpx.ConnectError as exc:
                last = exc  # try the name's next address, like a resolver-driven connect
                continue
            try:
                if read_body:
                    await response.aread()
            finally:
                await response.aclose()
            return response
        assert last is not None
        raise last


def _with_address(parts: SplitResult, addr: netpolicy.IPAddress) -> str:
    shown = f"[{addr}]" if addr.version == 6 else str(addr)
    netloc = f"{shown}:{parts.port}" if parts.port else shown
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


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


def describe_send_failure(exc: BaseException, timeout_seconds: float) -> str | None:
    """A person's words for a request that failed in transport (no answer, no connection,
    a broken exchange); None when ``exc`` is not such a failure."""
    if isinstance(exc, (TimeoutError, httpx.TimeoutException)):
        return f"no answer within {timeout_seconds:g} s"
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect ({str(exc) or type(exc).__name__})"
    if isinstance(exc, httpx.HTTPError):
        return f"the request failed ({type(exc).__name__}: {exc})"
    return None
