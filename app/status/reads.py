"""The status of a (pod, plan) in one statement: the pod's account (for visibility), its
plan state, whether settings exist, the active job and the size samples for growth."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.kit import fastread
from app.snapshots.kinds import KIND_SQL
from app.snapshots.repository import parse_time
from app.storage.service import GROWTH_DAYS, Growth

STATUS_SQL = f"""
WITH latest AS (
    SELECT at, size_bytes, id FROM repo_size_samples
    WHERE pod_id = $1 AND plan = $2 AND at <= now()
    ORDER BY at DESC, id DESC LIMIT 1
), base AS (
    SELECT at, size_bytes, id FROM (
        (SELECT at, size_bytes, id, 0 AS o FROM repo_size_samples
         WHERE pod_id = $1 AND plan = $2 AND at <= now() - interval '{GROWTH_DAYS} days'
         ORDER BY at DESC, id DESC LIMIT 1)
        UNION ALL
        (SELECT at, size_bytes, id, 1 FROM repo_size_samples
         WHERE pod_id = $1 AND plan = $2 AND at > now() - interval '{GROWTH_DAYS} days'
         ORDER BY at, id LIMIT 1)
    ) AS b ORDER BY o LIMIT 1
)
SELECT p.account_id,
       bs.pod_id IS NOT NULL AS configured,
       bs.schedule ->> 'enabled' AS schedule_enabled,
       bs.target_kind, bs.target ->> 'provider' AS provider,
       ps.last_attempt_at, ps.last_status, ps.last_job_id, ps.last_success_at,
       ps.last_snapshot_id,
       (SELECT {KIND_SQL} FROM snapshots AS s
        WHERE s.pod_id = p.id AND s.plan = $2 AND s.id = ps.last_snapshot_id) AS last_snapshot_kind,
       ps.next_run_at, coalesce(ps.snapshot_count, 0) AS snapshot_count,
       ps.repo_size_bytes, ps.repo_size_at, ps.last_verification, ps.stale_alerted_at,
       ps.target_state, ps.target_code, ps.target_reason, ps.target_hint,
       ps.target_checked_at, ps.target_since,
       (SELECT to_jsonb(j) FROM (
            SELECT * FROM jobs
            WHERE pod_id = p.id AND plan = $2 AND status IN ('queued', 'running')
            ORDER BY created_at DESC LIMIT 1) AS j) AS active_job,
       EXISTS (SELECT 1 FROM copy_settings AS cs WHERE cs.pod_id = p.id) AS copy_configured,
       (SELECT to_jsonb(l) FROM (
            SELECT count(*) AS behind, min(o.time) AS oldest FROM snapshots AS o
            WHERE o.pod_id = p.id AND o.plan = 'owner'
              AND o.time > coalesce((SELECT max(c.time) FROM snapshots AS c
                                     WHERE c.pod_id = p.id AND c.plan = 'copy'), '-infinity')
        ) AS l) AS copy_lag,
       (SELECT to_jsonb(x) FROM (
            SELECT last_success_at, last_status, stale_alerted_at FROM plan_states
            WHERE pod_id = p.id AND plan = 'copy') AS x) AS copy_state,
       (SELECT to_jsonb(latest) FROM latest) AS latest_sample,
       (SELECT to_jsonb(base) FROM base) AS base_sample
FROM pods AS p
LEFT JOIN plan_states AS ps ON ps.pod_id = p.id AND ps.plan = $2
LEFT JOIN backup_settings AS bs ON bs.pod_id = p.id
WHERE p.id = $1
"""


@dataclass(frozen=True)
class StatusRow:
    account_id: uuid.UUID
    values: dict[str, Any]

    @property
    def provider(self) -> str | None:
        if self.values["target_kind"] == "local":
            return "local"
        if self.values["configured"]:
            return str(self.values["provider"] or "generic")
        return None

    def growth(self) -> Growth | None:
        latest, base = self.values["latest_sample"], self.values["base_sample"]
        if not latest or not base or latest["id"] == base["id"]:
            return None
        return Growth.between(
            parse_time(base["at"]),
            int(base["size_bytes"]),
            parse_time(latest["at"]),
            int(latest["size_bytes"]),
        )


async def status_row(engine: AsyncEngine, pod_id: uuid.UUID, plan: str) -> StatusRow | None:
    row = await fastread.fetchrow(engine, STATUS_SQL, pod_id, plan)
    if row is None:
        return None
    values = dict(row)
    return StatusRow(account_id=values.pop("account_id"), values=values)
