"""The API's edges: hostile query values, event streams asked to resume from nonsense or
kept open after their token was revoked, a failed-auth limiter that must not lock out
valid tokens, and the export store's file modes."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from fastapi import FastAPI

from app.models import Job
from app.models.base import utcnow
from tests.conftest import auth
from tests.security.world import World, build_world
from tests.snapshots.server import serve


@pytest.fixture
async def world(app: FastAPI, client: httpx.AsyncClient) -> World:
    return await build_world(client, app.state.sessionmaker)


def _is_422_envelope(r: httpx.Response) -> None:
    assert r.status_code == 422, (r.request.url, r.status_code, r.text)
    body = r.json()
    assert body["error"] == "ValidationFailed", body
    assert body["hint"], body


@pytest.mark.parametrize("bad", ["\x00", "a\x00b", "/files/\x00"])
async def test_nul_in_a_query_value_is_422(
    client: httpx.AsyncClient, world: World, bad: str
) -> None:
    a = world.a
    pod, snap = a.ids["pod_id"], a.ids["snapshot_id"]
    probes = [
        (f"/v1/pods/{pod}/snapshots", {"tag": bad}),
        (f"/v1/pods/{pod}/snapshots/{snap}/files", {"path": bad}),
        (f"/v1/pods/{pod}/snapshots/{snap}/download", {"path": bad}),
        ("/v1/audit", {"action": bad}),
        ("/v1/providers", {"bucket": bad}),
        (f"/v1/exports/{a.ids['export_id']}/download", {"expires": "1", "signature": bad * 64}),
    ]
    for path, params in probes:
        r = await client.get(path, params=params, headers=auth(world.admin_token))
        _is_422_envelope(r)
        r = await client.get(path, params=params, headers=a.headers)
        assert r.status_code in (403, 422), (path, r.status_code, r.text)
    # A NUL in a path segment too (a snapshot id).
    r = await client.get(f"/v1/pods/{pod}/snapshots/ab%00cd", headers=a.headers)
    _is_422_envelope(r)


@pytest.mark.parametrize("value", ["-1", "9223372036854775808", "99999999999999999999999", "abc"])
async def test_sse_with_an_out_of_range_last_event_id_is_422(
    client: httpx.AsyncClient, world: World, value: str
) -> None:
    a = world.a
    r = await client.get(
        f"/v1/jobs/{a.ids['job_id']}/events", headers={**a.headers, "Last-Event-ID": value}
    )
    _is_422_envelope(r)
    # The largest id there can be is fine: nothing after it, the finished job ends the stream.
    r = await client.get(
        f"/v1/jobs/{a.ids['job_id']}/events",
        headers={**a.headers, "Last-Event-ID": str(2**63 - 1)},
    )
    assert r.status_code == 200, r.text
    assert r.text.rstrip().endswith('data: {"status": "succeeded"}'), r.text


async def _running_job(app: FastAPI, world: World) -> str:
    a = world.a
    now = utcnow()
    async with app.state.sessionmaker() as session:
        job = Job(
            id=uuid.uuid4(),
            pod_id=uuid.UUID(a.ids["pod_id"]),
            account_id=a.tenant.account_id,
            kind="check",
            status="running",
            trigger="manual",
            params={},
            progress={"phase": "checking"},
            attempt=1,
            max_attempts=1,
            created_at=now,
            started_at=now,
        )
        session.add(job)
        await session.commit()
    return str(job.id)


async def test_sse_stream_ends_when_its_token_is_revoked(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    a = world.a
    job_id = await _running_job(app, world)
    spare = auth(a.secrets["spare_token"])
    async with (
        serve(app) as base,
        httpx.AsyncClient(base_url=base, timeout=30) as http,
        http.stream("GET", f"/v1/jobs/{job_id}/events", params={"poll": 0.2}, headers=spare) as r,
    ):
        assert r.status_code == 200
        lines = r.aiter_lines()
        assert await anext(lines) == "event: state"
        revoked = await client.delete(f"/v1/tokens/{a.ids['token_id']}", headers=a.headers)
        assert revoked.status_code == 204, revoked.text
        rest: list[str] = []

        async def read_to_the_end() -> None:
            async for line in lines:
                rest.append(line)

        # Before: keep-alives every 15 s for as long as the job runs (here: forever).
        await asyncio.wait_for(read_to_the_end(), timeout=10)
    assert "event: error" in rest, rest
    assert any('"Unauthorized"' in line for line in rest), rest
