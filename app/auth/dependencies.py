"""Who is calling: ``Principal`` from the bearer token, declared once as Annotated aliases."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth import repository, tokens
from app.db import commit
from app.errors import Forbidden, NotFound, TooManyRequests, Unauthorized
from app.models.base import utcnow

log = logging.getLogger(__name__)
_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>`")


@dataclass(frozen=True)
class Principal:
    token_id: uuid.UUID
    scope: str  # admin | account
    account_id: uuid.UUID | None

    @property
    def is_admin(self) -> bool:
        return self.scope == "admin"

    @property
    def actor(self) -> str:
        return self.scope

    def owns(self, account_id: uuid.UUID | None) -> bool:
        return self.is_admin or (account_id is not None and account_id == self.account_id)

    def require_visible(self, account_id: uuid.UUID | None, what: str = "Resource") -> None:
        """Another account's object answers exactly like a missing one."""
        if not self.owns(account_id):
            raise NotFound(f"{what} not found")


def client_address(request: Request) -> str:
    """The client's address as the server saw it; behind a load balancer, the address the
    server took from ``X-Forwarded-For`` of a trusted proxy (PODBACKUP_TRUSTED_PROXIES;
    uvicorn's ``--forwarded-allow-ips``), so the failure limit counts each client, not
    the balancer."""
    return request.client.host if request.client else "unknown"


def _fail_key(request: Request) -> str:
    namespace = request.app.state.settings.queue_name
    return f"{namespace}:authfail:{client_address(request)}"


def _blocked(request: Request) -> bool:
    """Addresses this process saw go over the limit, until their minute is over.

    Failures are counted in Redis (shared by every API process); only the failure path
    talks to Redis, so a valid request costs no Redis round trip.
    """
    blocked: dict[str, float] = request.app.state.auth_blocked
    until = blocked.get(client_address(request))
    if until is None:
        return False
    if until > time.monotonic():
        return True
    blocked.pop(client_address(request), None)
    return False


async def _record_failure(request: Request) -> bool:
    """Count a failed authentication; True when the address is now over the limit."""
    redis = getattr(request.app.state, "redis", None)
    if redis is None:
        return False
    key = _fail_key(request)
    try:
        # The window opens at an address's first failure and lasts a minute. (A window per
        # clock minute let an address make twice the limit across a minute boundary, and
        # reset the count in the middle of a burst.)
        pipe = redis.pipeline()
        pipe.set(key, 0, ex=60, nx=True)
        pipe.incr(key)
        _, count = await pipe.execute()
    except Exception:  # Redis down must not lock everyone out
        log.debug("could not record failed auth", exc_info=True)
        return False
    if int(count) > request.app.state.settings.auth_fail_limit:
        request.app.state.auth_blocked[client_address(request)] = time.monotonic() + 60
        return True
    return False


def _too_many() -> TooManyRequests:
    return TooManyRequests(
        "too many failed authentications from this address",
        hint="wait a minute, then retry with a valid token",
        headers={"Retry-After": "60"},
    )


async def _lookup(request: Request, token: str) -> tokens.ActiveToken | None:
    """The token's row, from a short session of its own (so a request that only reads
    through ``fastread`` holds no session at all); marks it used at most once a minute."""
    async with request.app.state.sessionmaker() as session:
        row = await tokens.find_active(session, token)
        now = utcnow()
        if row is not None and (
            row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1)
        ):
            await repository.mark_used(session, row.id, now)
            await commit(session)
        return row


async def _lookup_once(request: Request, token: str) -> tokens.ActiveToken | None:
    """One lookup per token at a time in this process: when a busy token's cache entry
    lapses, the requests that arrive meanwhile wait for the same answer instead of each
    opening a session (hundreds of clients polling with one token)."""
    pending: dict[str, asyncio.Future[tokens.ActiveToken | None]] = request.app.state.token_lookups
    key = tokens.hash_token(token)
    running = pending.get(key)
    if running is not None:
        return await asyncio.shield(running)
    future: asyncio.Future[tokens.ActiveToken | None] = asyncio.get_running_loop().create_future()
    pending[key] = future
    try:
        row = await _lookup(request, token)
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: no "never retrieved" warning when nobody waits
        raise
    else:
        future.set_result(row)
        return row
    finally:
        pending.pop(key, None)


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    # An address over the failure limit gets 429 for every failing attempt until its
    # minute is over, but a valid token from it still works: the limit throttles
    # guessing, and must not lock out the honest clients behind the same address (a
    # NAT, an office, a proxy whose clients are not told apart).
    blocked = _blocked(request)
    if credentials is None or credentials.scheme.lower() != "bearer":
        if blocked or await _record_failure(request):
            raise _too_many()
        raise Unauthorized("missing bearer token")
    token = credentials.credentials.strip()
    cache: tokens.TokenCache = request.app.state.token_cache
    cached: Principal | None = cache.get(token)
    if cached is not None:
        return cached
    row = await _lookup_once(request, token) if tokens.looks_like_token(token) else None
    if row is None:
        if blocked or await _record_failure(request):
            raise _too_many()
        raise Unauthorized("invalid or revoked token")
    principal = Principal(token_id=row.id, scope=row.scope, account_id=row.account_id)
    cache.put(token, principal)
    return principal


async def require_admin(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if not principal.is_admin:
        raise Forbidden("this needs an admin token", hint="ask an operator for an admin token")
    return principal


AnyPrincipal = Annotated[Principal, Depends(authenticate)]
AdminPrincipal = Annotated[Principal, Depends(require_admin)]
