"""Retention rules: which snapshots `restic forget` keeps and removes for a pod.

Scope: retention applies to the snapshots this service made for the pod, those with
host = the pod id AND the tag ``pod:<id>`` (``restic forget --host <id> --tag pod:<id>
--group-by host``). Snapshots the owner made with plain restic (another host, or no
``pod:`` tag) are never forgotten by the service: the bucket is the owner's, what they add
by hand they remove by hand. They are listed as ``untouched`` in a preview, with the reason.

The newest successful snapshot (status ``succeeded`` recorded at backup time, else the
plan's last success) is never removed, whatever the policy says: with ``keep_last: 1`` and
a newer partial backup, restic alone would drop the last good one.

A snapshot pinned now (``snapshots.pinned``, until its ``pinned_until``) is never removed
either: the policy's remove list minus the pinned ids is what goes, listed in the plan as
``kept_because_pinned``. restic's own ``--keep-tag`` would need the pin as a tag in the
repository, and ``restic tag`` rewrites a snapshot under a new id; the pin lives in our
table and the forget is by id, so nothing in the repository changes when a pin does. An
expired pin protects nothing.

Preview equals removal: the prune job computes the same plan (a dry run, under the
repository lock) and forgets exactly its ``remove`` ids with ``restic forget <ids>``, so
what the owner was shown is what goes (unless a backup ran in between, adding a snapshot).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.config import Settings
from app.integrations.restic import Repository, Restic, ResticError
from app.models import BackupSettings, CopySettings
from app.models.kinds import Plan
from app.models.settings import TargetRow
from app.plans import repository as plan_states
from app.snapshots import repository as snapshots
from app.snapshots.kinds import kind_of
from app.targets.schemas import RETENTION_KEYS

_TIME = re.compile(r"^(?P<base>[^.]+?)(?:\.(?P<frac>\d+))?(?P<zone>Z|[+-]\d\d:\d\d)?$")

PROTECTED_REASON = "newest successful backup: never removed"
REMOVE_REASON = "no keep rule matches it"
PINNED_REASON = "pinned"


class PolicyMissing(Exception):
    """The pod has no backup settings (owner plan), so no retention policy."""


@dataclass
class PlannedSnapshot:
    id: str
    short_id: str
    time: datetime
    hostname: str
    tags: list[str]
    reasons: list[str] = field(default_factory=list)
    status: str | None = None  # succeeded | partial | safety | None (not recorded)
    kind: str | None = None  # backup | safety | imported (app.snapshots.kinds); None: unknown

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "short_id": self.short_id,
            "time": self.time.isoformat(),
            "hostname": self.hostname,
            "tags": self.tags,
            "reasons": self.reasons,
            "status": self.status,
            "kind": self.kind,
        }


@dataclass(frozen=True)
class Pin:
    note: str | None
    until: datetime | None


@dataclass
class PinnedKeep:
    id: str
    short_id: str
    time: datetime
    note: str | None
    until: datetime | None


def pin_reason(pin: Pin) -> str:
    until = f" until {pin.until.isoformat()}" if pin.until else " until unpinned"
    return PINNED_REASON + until + (f": {pin.note}" if pin.note else "")


@dataclass
class RetentionPlan:
    policy: dict[str, int]
    host: str
    tag: str
    keep: list[PlannedSnapshot] = field(default_factory=list)
    remove: list[PlannedSnapshot] = field(default_factory=list)
    untouched: list[PlannedSnapshot] = field(default_factory=list)
    protected: str | None = None  # the newest successful snapshot's id
    # what the policy alone would remove but a pin keeps (also in ``keep``)
    kept_because_pinned: list[PinnedKeep] = field(default_factory=list)

    @property
    def remove_ids(self) -> list[str]:
        return [s.id for s in self.remove]


@dataclass
class Known:
    """What the snapshots table knows of the pod's snapshots (read before restic runs)."""

    rows: dict[str, PlannedSnapshot]
    newest_successful: str | None
    pins: dict[str, Pin] = field(default_factory=dict)  # pinned now, by snapshot id


def parse_time(value: str) -> datetime:
    """restic's RFC 3339 time with nanoseconds and its zone (Python keeps microseconds)."""
    m = _TIME.match(value.strip())
    if m is None:
        raise ValueError(f"not a restic time: {value!r}")
    zone = m["zone"] or "Z"
    frac = (m["frac"] or "")[:6].ljust(6, "0")
    parsed = datetime.fromisoformat(f"{m['base']}.{frac}{'+00:00' if zone == 'Z' else zone}")
    return parsed.astimezone(UTC)


def scope(pod_id: uuid.UUID) -> tuple[str, str]:
    """(host, tag) that select the snapshots this service made for the pod."""
    return str(pod_id), f"pod:{pod_id}"


def clean_policy(policy: Mapping[str, Any]) -> dict[str, int]:
    """The keep rules (zero rules dropped); ValueError when none is left."""
    rules = {k: int(policy.get(k) or 0) for k in RETENTION_KEYS}
    rules = {k: v for k, v in rules.items() if v > 0}
    if not rules:
        raise ValueError("the retention policy has no keep rule greater than 0")
    return rules


async def stored_policy(
    session: AsyncSession, settings: Settings, pod_id: uuid.UUID, plan: str
) -> dict[str, int]:
    """The policy in force: the owner's settings, or the operator's for the platform plan."""
    if plan == Plan.PLATFORM:
        return clean_policy({"keep_daily": settings.platform_keep_daily})
    row: TargetRow | None = (
        await session.get(CopySettings, pod_id)
        if plan == Plan.COPY
        else await session.get(BackupSettings, pod_id)
    )
    if row is None:
        raise PolicyMissing("the pod has no backup settings")
    return clean_policy(row.retention.model_dump())


def _status(summary: Mapping[str, Any] | None) -> str | None:
    if not summary:
        return None
    if summary.get("status"):
        return str(summary["status"])
    return "safety" if summary.get("safety") else None


async def known(session: AsyncSession, pod_id: uuid.UUID, plan: str) -> Known:
    rows = await snapshots.listing(session, pod_id, plan)
    found = {
        r.id: PlannedSnapshot(
            r.id,
            r.short_id,
            r.time,
            r.hostname,
            list(r.tags or []),
            status=_status(r.summary),
            kind=kind_of(r.summary, r.tags),
        )
        for r in rows
    }
    newest = next((r.id for r in rows if _status(r.summary) == "succeeded"), None)
    if newest is None:
        state = await plan_states.get(session, pod_id, plan)
        if state is not None and state.last_status == "succeeded" and state.last_snapshot_id:
            newest = state.last_snapshot_id
    return Known(found, newest, await pins(session, pod_id, plan))


async def pins(session: AsyncSession, pod_id: uuid.UUID, plan: str) -> dict[str, Pin]:
    """The pod's pins in force now, by snapshot id."""
    rows = await snapshots.pinned_rows(session, pod_id, plan)
    return {r.id: Pin(r.pin_note, r.pinned_until) for r in rows}


async def dry_run(
    restic: Restic, repo: Repository, policy: Mapping[str, int], host: str, tag: str, **kw: Any
) -> list[dict[str, Any]]:
    """``restic forget --dry-run --json`` scoped to (host, tag), without taking a lock
    (``--no-lock`` with ``--dry-run`` skips it since 0.14), so a preview never disturbs a
    running backup."""
    args = [
        "--no-lock",
        "forget",
        *restic.retention_args(policy),
        "--group-by",
        "host",
        "--host",
        host,
        "--tag",
        tag,
        "--dry-run",
        "--json",
    ]
    lines: list[str] = []
    await restic.run(repo, args, on_line=lines.append, **kw)
    text = next((ln for ln in lines if ln.lstrip().startswith(("[", "null"))), "")
    try:
        groups = json.loads(text) if text else []
    except ValueError as exc:
        raise ResticError("failed", "restic printed unreadable JSON for forget") from exc
    return [g for g in groups or [] if isinstance(g, dict)]


def _reasons(group: Mapping[str, Any]) -> dict[str, list[str]]:
    """Keep reasons by snapshot id. restic 0.14 prints reasons without ids, in the order of
    the keep list; later versions add the id."""
    keep = list(group.get("keep") or [])
    reasons = list(group.get("reasons") or [])
    out: dict[str, list[str]] = {}
    for i, reason in enumerate(reasons):
        snap = reason.get("snapshot") or {}
        ident = snap.get("id")
        if not ident and i < len(keep) and keep[i].get("time") == snap.get("time"):
            ident = keep[i].get("id")
        if not ident:
            ident = next(
                (
                    k.get("id")
                    for k in keep
                    if (k.get("time"), k.get("tree")) == (snap.get("time"), snap.get("tree"))
                ),
                None,
            )
        if ident:
            out[str(ident)] = [str(m) for m in reason.get("matches") or []]
    return out


def _planned(snap: Mapping[str, Any], known_rows: Mapping[str, PlannedSnapshot]) -> PlannedSnapshot:
    ident = str(snap["id"])
    row = known_rows.get(ident)
    return PlannedSnapshot(
        id=ident,
        short_id=str(snap.get("short_id") or ident[:8]),
        time=parse_time(str(snap["time"])),
        hostname=str(snap.get("hostname") or ""),
        tags=[str(t) for t in snap.get("tags") or []],
        status=row.status if row else None,
        kind=row.kind if row else None,
    )


def assemble(
    groups: Sequence[Mapping[str, Any]],
    policy: Mapping[str, int],
    pod_id: uuid.UUID,
    recorded: Known,
) -> RetentionPlan:
    host, tag = scope(pod_id)
    plan = RetentionPlan(
        policy=dict(policy), host=host, tag=tag, protected=recorded.newest_successful
    )
    for group in groups:
        reasons = _reasons(group)
        for snap in group.get("keep") or []:
            item = _planned(snap, recorded.rows)
            item.reasons = reasons.get(item.id, []) or ["kept by the policy"]
            plan.keep.append(item)
        for snap in group.get("remove") or []:
            item = _planned(snap, recorded.rows)
            item.reasons = [REMOVE_REASON]
            plan.remove.append(item)
    for item in plan.keep:
        if item.id == plan.protected:
            item.reasons.append(PROTECTED_REASON)
    for item in list(plan.remove):
        if item.id == plan.protected:
            plan.remove.remove(item)
            item.reasons = [PROTECTED_REASON]
            plan.keep.append(item)
    for item in plan.keep:
        if item.id in recorded.pins:
            item.reasons.append(pin_reason(recorded.pins[item.id]))
    for item in list(plan.remove):
        pin = recorded.pins.get(item.id)
        if pin is None:
            continue
        plan.remove.remove(item)
        item.reasons = [pin_reason(pin)]
        plan.keep.append(item)
        plan.kept_because_pinned.append(
            PinnedKeep(item.id, item.short_id, item.time, pin.note, pin.until)
        )
    seen = {s.id for s in plan.keep} | {s.id for s in plan.remove}
    for ident, row in recorded.rows.items():
        if ident in seen:
            continue
        untouched = PlannedSnapshot(
            row.id, row.short_id, row.time, row.hostname, row.tags, status=row.status, kind=row.kind
        )
        if row.hostname != host:
            untouched.reasons = [
                f"made on host '{row.hostname}', not by this service for this pod: "
                "retention leaves it alone"
            ]
        else:
            untouched.reasons = [f"has no '{tag}' tag (made outside the service): left alone"]
        plan.untouched.append(untouched)
    for items in (plan.keep, plan.remove, plan.untouched):
        items.sort(key=lambda s: s.time, reverse=True)
    plan.kept_because_pinned.sort(key=lambda s: s.time, reverse=True)
    return plan


async def compute(
    session: AsyncSession,
    restic: Restic,
    repo: Repository,
    pod_id: uuid.UUID,
    plan: str,
    policy: Mapping[str, int],
    **kw: Any,
) -> RetentionPlan:
    """Read what the table knows, dry-run forget, and assemble the plan."""
    recorded = await known(session, pod_id, plan)
    host, tag = scope(pod_id)
    groups = await dry_run(restic, repo, policy, host, tag, **kw)
    return assemble(groups, policy, pod_id, recorded)
