"""Targets watched between runs: every scheduled pod's target gets a light probe
(``targets.probe``: no restic) every ``target_probe_hours``, and once more when its next
nightly run is within ``target_probe_lead_hours``, so a target that turned bad (a key
revoked, a bucket deleted, the repository's config gone, an endpoint now pointing at a
refused address) is on the pod's status and alerted before the run fails, not after.

The state lives on ``plan_states`` (``target_state``, reason, hint, ``target_checked_at``).
A change of state raises a webhook once: ``target.unavailable`` when a target stops
answering as it should, ``target.recovered`` when a probe or a successful backup finds it
usable again. An unavailable target is probed every hour (at most) to see the fix soon.

Any number of workers may run a pass at once: rows are claimed ``FOR UPDATE SKIP LOCKED``
and leased (``target_checked_at = now``) before the network is touched; the probes run
outside any transaction, a bounded number at a time; each result is written in a
transaction that locks the row and compares it with the state found there.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.config import Settings
from app.db import commit
from app.kit.crypto import Keyring
from app.models import BackupSettings
from app.models.kinds import Plan
from app.targets.probe import ERROR, ProbeResult, probe_target
from app.targets.resolve import stored_target
from app.watch import repository
from app.watch.repository import AVAILABLE, UNAVAILABLE
from app.webhooks.events import emit

log = logging.getLogger(__name__)

PLAN = "owner"  # the owner's own target; the platform's is the operator's to watch
RETRY_UNAVAILABLE = timedelta(hours=1)


@dataclass
class WatchResult:
    probed: int = 0
    unavailable: int = 0  # probes that found the target unavailable
    went_unavailable: int = 0  # of which newly: `target.unavailable` raised
    recovered: int = 0  # `target.recovered` raised
    rows_added: int = 0


async def watch(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    keyring: Keyring,
    now: datetime,
) -> WatchResult:
    """One pass: probe every target that is due, record and alert what changed."""
    result = WatchResult()
    if settings.target_probe_hours <= 0:
        return result
    every = timedelta(hours=settings.target_probe_hours)
    lead = timedelta(hours=settings.target_probe_lead_hours)
    retry = min(every, RETRY_UNAVAILABLE)
    async with sessionmaker() as session:
        result.rows_added = await repository.add_missing_states(session, PLAN)
        await commit(session)
    size = settings.target_probe_batch_size
    while True:
        async with sessionmaker() as session:
            rows = await repository.claim_due(
                session, PLAN, now, every=every, lead=lead, retry=retry, limit=size
            )
            await commit(session)  # the lease: the probes run outside any transaction
        if not rows:
            break
        found = await _probe_all(settings, keyring, rows)
        async with sessionmaker() as session:
            for (row, account_id), probe in zip(rows, found, strict=True):
                change = await record(session, row.pod_id, account_id, PLAN, probe, now)
                result.went_unavailable += change == UNAVAILABLE
                result.recovered += change == AVAILABLE
            await commit(session)
        result.probed += len(rows)
        result.unavailable += sum(not p.ok for p in found)
        if len(rows) < size:
            break
    if result.went_unavailable or result.recovered:
        log.info(
            "target watch: %d probed, %d newly unavailable, %d recovered",
            result.probed,
            result.went_unavailable,
            result.recovered,
        )
    return result


async def _probe_all(
    settings: Settings, keyring: Keyring, rows: list[tuple[BackupSettings, uuid.UUID]]
) -> list[ProbeResult]:
    gate = asyncio.Semaphore(settings.target_probe_concurrency)

    async def one(row: BackupSettings) -> ProbeResult:
        async with gate:
            try:
                resolved = stored_target(keyring, row)
                return await probe_target(
                    settings, resolved, has_repository=row.repository_id is not None
                )
            except Exception:  # one pod's trouble (a key not in the keyring…) is not all's
                log.exception("target watch: probing pod %s failed", row.pod_id)
                return ProbeResult(
                    ok=False,
                    code=ERROR,
                    reason="the target could not be probed (the error was logged for the "
                    "operators)",
                    hint="if it persists, tell the operators",
                )

    return list(await asyncio.gather(*(one(row) for row, _ in rows)))


async def record(
    session: AsyncSession,
    pod_id: uuid.UUID,
    account_id: uuid.UUID | None,
    plan: str,
    probe: ProbeResult,
    now: datetime,
    *,
    by: str = "probe",
) -> str | None:
    """Write what ``probe`` found; on a change of state queue the webhook (in this
    transaction). Returns the new state when it changed (``available`` only from
    ``unavailable``: a first probe that finds the target fine is no news), else None."""
    state = await repository.lock_state(session, pod_id, plan)
    if state is None:
        return None  # settings deleted since the claim
    before = state.target_state
    values: dict[str, Any] = {"target_checked_at": now}
    if probe.ok:
        values.update(
            target_state=AVAILABLE, target_code=None, target_reason=None, target_hint=None
        )
        if before != AVAILABLE:
            values["target_since"] = now
    else:
        values.update(
            target_state=UNAVAILABLE,
            target_code=probe.code,
            target_reason=probe.reason,
            target_hint=probe.hint,
        )
        if before != UNAVAILABLE:
            values["target_since"] = now
    await repository.write_state(session, pod_id, plan, values)
    if plan != Plan.OWNER:
        return None
    base = {"pod_id": str(pod_id), "plan": plan, "checked_at": now.isoformat()}
    if not probe.ok and before != UNAVAILABLE:
        data = {**base, "code": probe.code, "check": probe.check}
        data.update(reason=probe.reason, hint=probe.hint, since=now.isoformat())
        await emit(session, account_id, "target.unavailable", data)
        return UNAVAILABLE
    if probe.ok and before == UNAVAILABLE:
        since = state.target_since.isoformat() if state.target_since else None
        data = {**base, "unavailable_since": since, "by": by}
        await emit(session, account_id, "target.recovered", data)
        return AVAILABLE
    return None


async def mark_available(
    session: AsyncSession, pod_id: uuid.UUID, account_id: uuid.UUID, plan: str, now: datetime
) -> None:
    """A backup just wrote a snapshot there: the target works (and needs no probe soon).
    Only the owner's target is watched."""
    if plan != Plan.OWNER:
        return
    await record(session, pod_id, account_id, plan, ProbeResult(ok=True), now, by="backup")
