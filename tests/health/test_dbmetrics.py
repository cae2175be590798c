"""The fleet gauges /metrics reads from PostgreSQL, on real rows."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from app.models import Account, Job, PlanState, Pod
from app.models.base import utcnow
from app.models.kinds import JobKind

GB = 10**9


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_fleet_gauges_from_postgres(app: FastAPI, client: httpx.AsyncClient) -> None:
    now = utcnow()
    async with app.state.sessionmaker() as session:
        account = Account(name="a")
        session.add(account)
        await session.flush()
        pods = [Pod(account_id=account.id, name=f"p{i}", app="x") for i in range(3)]
        session.add_all(pods)
        await session.flush()
        session.add_all(
            [
                PlanState(
                    pod_id=pods[0].id,
                    plan="owner",
                    repo_size_bytes=2 * GB,
                    stale_alerted_at=now - timedelta(hours=1),
                ),
                PlanState(pod_id=pods[1].id, plan="owner", repo_size_bytes=3 * GB),
                PlanState(pod_id=pods[2].id, plan="owner"),
                PlanState(pod_id=pods[0].id, plan="platform", repo_size_bytes=5 * GB),
            ]
        )
        # Created two hours ago, retried, due again for ten minutes: it waits 600 s.
        session.add(
            Job(
                pod_id=pods[0].id,
                account_id=account.id,
                kind=JobKind.BACKUP,
                status="queued",
                created_at=now - timedelta(hours=2),
                run_after=now - timedelta(minutes=10),
            )
        )
        # Not due yet: no wait at all.
        session.add(
            Job(
                pod_id=pods[1].id,
                account_id=account.id,
                kind=JobKind.REFRESH,
                status="queued",
                created_at=now - timedelta(hours=5),
                run_after=now + timedelta(hours=1),
            )
        )
        await session.commit()

    r = await client.get("/metrics")
    assert r.status_code == 200
    got = _samples(r.text)
    assert got[("podbackup_repository_size_bytes", (("plan", "owner"),))] == 5 * GB
    assert got[("podbackup_repository_size_bytes", (("plan", "platform"),))] == 5 * GB
    assert got[("podbackup_repositories_measured", (("plan", "owner"),))] == 2
    assert got[("podbackup_pods_past_rpo", (("plan", "owner"),))] == 1
    assert got[("podbackup_job_oldest_queued_seconds", ())] == pytest.approx(600, abs=30)
    assert got[("podbackup_jobs_active", (("kind", "backup"), ("status", "queued")))] == 1
