"""Who is calling: ``Principal`` from the bearer token, declared once as Annotated aliases."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import update

from app.auth import tokens
from app.db import DbSession
from app.errors import Forbidden, NotFound, TooManyRequests, Unauthorized
from app.models import ApiToken
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
    return request.client.host if request.client else "unknown"


def _fail_key(request: Request) -> str:
    namespace = request.app.state.settings.queue_name
    return f"{namespace}:authfail:{client_address(request)}:{int(time.time() // 60)}"


async def _rate_limited(request: Request) -> bool:
    redis = getattr(request.app.state, "redis", None)
    if redis is None:
        return False
    key = _fail_key(request)
    try:
        count = await redis.get(key)
    except Exception:  # Redis down must not lock everyone out
        return False
    return count is not None and int(count) >= request.app.state.settings.auth_fail_limit


async def _record_failure(request: Request) -> None:
    redis = getattr(request.app.state, "redis", None)
    if redis is None:
        return
    key = _fail_key(request)
    try:
        pipe = redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, 120)
        await pipe.execute()
    except Exception:
        log.debug("could not record failed auth", exc_info=True)


async def authenticate(
    request: Request,
    session: DbSession,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if await _rate_limited(request):
        raise TooManyRequests(
            "too many failed authentications from this address",
            hint="wait a minute, then retry with a valid token",
            headers={"Retry-After": "60"},
        )
    if credentials is None or credentials.scheme.lower() != "bearer":
        await _record_failure(request)
        raise Unauthorized("missing bearer token")
    token = credentials.credentials.strip()
    row = await tokens.find_active(session, token) if tokens.looks_like_token(token) else None
    if row is None:
        await _record_failure(request)
        raise Unauthorized("invalid or revoked token")
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > timedelta(minutes=1):
        await session.execute(
            update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now)
        )
    return Principal(token_id=row.id, scope=row.scope, account_id=row.account_id)


async def require_admin(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
    if not principal.is_admin:
        raise Forbidden("this needs an admin token", hint="ask an operator for an admin token")
    return principal


AnyPrincipal = Annotated[Principal, Depends(authenticate)]
AdminPrincipal = Annotated[Principal, Depends(require_admin)]
