"""The worker side of webhooks: send due deliveries, signed, retried with backoff.

One tick claims due pending deliveries (``FOR UPDATE SKIP LOCKED``, so several workers
never take the same one), leases them (``next_attempt_at`` pushed past the time the batch
can take) and commits; then it sends them concurrently with a small bound and records each
attempt in its own short transaction. A worker that dies mid-send leaves its deliveries due
again when the lease ends: delivery is at-least-once, and the receiver deduplicates by the
event id, which is the delivery id and the same on every retry.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import commit
from app.integrations import hooks
from app.kit import netpolicy
from app.kit.crypto import DecryptError, Keyring
from app.kit.logging import redact
from app.models import WebhookAttempt
from app.models.base import utcnow
from app.models.encrypted import WEBHOOK_SECRET
from app.webhooks import repository

log = logging.getLogger(__name__)

ATTEMPTS = Counter(
    "podbackup_webhook_attempts_total", "Webhook delivery attempts", ["event", "outcome"]
)
_ERROR_MAX = 500


class DeliveryServices(Protocol):
    """What delivery needs of a worker (``app.engine.context.Services`` has it)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def sessionmaker(self) -> async_sessionmaker[AsyncSession]: ...

    @property
    def keyring(self) -> Keyring: ...


@dataclass(frozen=True)
class _Claimed:
    delivery_id: uuid.UUID
    webhook_id: uuid.UUID
    event: str
    url: str
    sealed_secret: str
    payload: dict[str, Any]
    number: int  # this attempt's number, from 1


@dataclass(frozen=True)
class AttemptResult:
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def backoff(settings: Settings, failed_attempts: int) -> timedelta:
    """Delay after the ``failed_attempts``-th failure: base x factor^(n-1), capped."""
    exponent = max(0, failed_attempts - 1)
    seconds = settings.webhook_retry_base_seconds * settings.webhook_retry_factor**exponent
    return timedelta(seconds=min(seconds, settings.webhook_retry_max_seconds))


def _lease(settings: Settings, count: int) -> timedelta:
    """Longest a claimed batch can take: rounds of the concurrency bound, each one timeout."""
    rounds = math.ceil(count / settings.webhook_concurrency)
    return timedelta(seconds=rounds * (settings.http_timeout_seconds + 5) + 30)


async def deliver_due(
    services: DeliveryServices, now: datetime | None = None, limit: int | None = None
) -> dict[str, int]:
    """Send the deliveries due at ``now``; returns counts by outcome."""
    settings = services.settings
    now = now or utcnow()
    started = time.monotonic()

    def clock() -> datetime:  # the tick's clock: ``now`` advanced by real elapsed time
        return now + timedelta(seconds=time.monotonic() - started)

    counts = {"claimed": 0, "delivered": 0, "retrying": 0, "failed": 0, "dropped": 0, "gone": 0}
    claimed: list[_Claimed] = []
    async with services.sessionmaker() as session:
        for delivery, hook in await repository.claim_due(
            session, now, limit or settings.webhook_batch_size
        ):
            if not hook.active:
                delivery.status, delivery.next_attempt_at = "failed", None
                delivery.last_error = "the webhook is inactive; the event was not sent"
                counts["dropped"] += 1
                continue
            claimed.append(
                _Claimed(
                    delivery_id=delivery.id,
                    webhook_id=hook.id,
                    event=delivery.event,
                    url=hook.url,
                    sealed_secret=hook.secret,
                    payload=delivery.payload,
                    number=delivery.attempts + 1,
                )
            )
        ids = [c.delivery_id for c in claimed]
        await repository.lease(session, ids, now + _lease(settings, len(ids)))
        await commit(session)
    counts["claimed"] = len(claimed)
    if not claimed:
        return counts

    bound = asyncio.Semaphore(settings.webhook_concurrency)

    async def one(item: _Claimed) -> str:
        async with bound:
            result = await _attempt(services, item, clock)
        return await _record(services, item, result, now, clock)

    for outcome in await asyncio.gather(*(one(c) for c in claimed)):
        counts[outcome] += 1
    return counts


async def _attempt(
    services: DeliveryServices, item: _Claimed, clock: Callable[[], datetime] = utcnow
) -> AttemptResult:
    """One signed POST of the delivery's payload; never raises."""
    settings = services.settings
    at, started = clock(), time.monotonic()
    secret = ""
    status_code: int | None = None
    error: str | None = None
    try:
        secret = services.keyring.decrypt(
            item.sealed_secret, WEBHOOK_SECRET.context(item.webhook_id)
        )
        async with asyncio.timeout(settings.http_timeout_seconds):
            response = await hooks.post_signed(
                item.url,
                item.payload,
                secret=secret.encode(),
                policy=netpolicy.Policy.from_settings(settings),
                timeout=settings.http_timeout_seconds,
                headers={
                    "X-Podbackup-Event-Id": str(item.delivery_id),
                    "X-Podbackup-Event": item.event,
                    "X-Podbackup-Attempt": str(item.number),
                },
                read_body=False,
            )
        status_code = response.status_code
        error = _status_error(status_code)
    except DecryptError as exc:
        error = f"the webhook's secret cannot be decrypted ({exc}); create the webhook again"
    except netpolicy.OutboundAddressRefused as exc:
        error = f"refused by the outbound-address policy: {exc.message}"
    except hooks.HookError as exc:
        error = exc.message
    except Exception as exc:  # one odd delivery must not stop the batch
        error = hooks.describe_send_failure(exc, settings.http_timeout_seconds)
        if error is None:
            log.exception("webhook delivery %s: unexpected error", item.delivery_id)
            error = f"internal error ({type(exc).__name__})"
    duration_ms = int((time.monotonic() - started) * 1000)
    return AttemptResult(at, status_code, _clean(error, secret), duration_ms)


def _status_error(code: int) -> str | None:
    if 200 <= code < 300:
        return None
    if 300 <= code < 400:
        return (
            f"the receiver answered {code} (a redirect); redirects are not followed: "
            "set the webhook URL to the final address"
        )
    return f"the receiver answered {code}"


def _clean(error: str | None, secret: str) -> str | None:
    if error is None:
        return None
    if secret:
        error = error.replace(secret, "***")
    return redact(error)[:_ERROR_MAX]


async def _record(
    services: DeliveryServices,
    item: _Claimed,
    result: AttemptResult,
    now: datetime,
    clock: Callable[[], datetime],
) -> str:
    """Store the attempt and the delivery's next state; returns the outcome's name."""
    settings = services.settings
    async with services.sessionmaker() as session:
        delivery = await repository.lock_pending(session, item.delivery_id)
        if delivery is None:  # the webhook was deleted meanwhile
            return "gone"
        delivery.attempts += 1
        session.add(
            WebhookAttempt(
                delivery_id=delivery.id,
                at=result.at,
                status_code=result.status_code,
                error=result.error,
                duration_ms=result.duration_ms,
            )
        )
        delivery.last_status_code, delivery.last_error = result.status_code, result.error
        if result.ok:
            outcome = "delivered"
            delivery.status, delivery.delivered_at = "delivered", clock()
            delivery.next_attempt_at = None
        elif delivery.attempts >= settings.webhook_max_attempts:
            outcome = "failed"
            delivery.status, delivery.next_attempt_at = "failed", None
        else:
            outcome = "retrying"
            delivery.next_attempt_at = now + backoff(settings, delivery.attempts)
        await commit(session)
    ATTEMPTS.labels(item.event, outcome).inc()
    log.info(
        "webhook delivery %s (%s) attempt %d: %s%s",
        item.delivery_id,
        item.event,
        delivery.attempts,
        outcome,
        f" ({result.error})" if result.error else "",
    )
    return outcome
