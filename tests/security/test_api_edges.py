"""The API's edges: hostile query values, event streams asked to resume from nonsense or
kept open after their token was revoked, a failed-auth limiter that must not lock out
valid tokens, and the export store's file modes."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from app.config import Settings
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


def _client_from(app: Any, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://podbackup.test")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"auth_fail_limit": 3, "token_cache_seconds": 0})


async def test_a_valid_token_works_while_its_address_is_throttled_for_bad_guesses(
    app: FastAPI, world: World
) -> None:
    a = world.a
    async with _client_from(app, "203.0.113.9") as shared:  # one NAT: an attacker, a tenant
        for i in range(3):
            r = await shared.get("/v1/pods", headers=auth(f"pbk_deadbeef_guess{i}"))
            assert r.status_code == 401, r.text
        r = await shared.get("/v1/pods", headers=auth("pbk_deadbeef_guess-over"))
        assert r.status_code == 429, r.text
        assert r.headers["retry-after"]
        # Guesses stay throttled: well-formed, malformed or none at all.
        for headers in (auth("pbk_deadbeef_again"), auth("nonsense"), {}):
            r = await shared.get("/v1/pods", headers=headers)
            assert r.status_code == 429, (headers, r.text)
        # Valid tokens from the same address are not locked out (no token cache here:
        # each is looked up), the account's and the admin's alike.
        for _ in range(3):
            r = await shared.get("/v1/pods", headers=a.headers)
            assert r.status_code == 200, r.text
        assert (
            await shared.get("/v1/accounts", headers=auth(world.admin_token))
        ).status_code == 200
        # A revoked token is a failing guess like any other.
        r = await shared.delete(f"/v1/tokens/{a.ids['token_id']}", headers=a.headers)
        assert r.status_code == 204, r.text
        r = await shared.get("/v1/pods", headers=auth(a.secrets["spare_token"]))
        assert r.status_code == 429, r.text


async def test_behind_a_trusted_proxy_the_limit_counts_each_forwarded_client(
    app: FastAPI, world: World, settings: Settings
) -> None:
    """What `podbackup api` runs with (uvicorn's proxy headers, PODBACKUP_TRUSTED_PROXIES):
    clients behind the balancer on 127.0.0.1 are told apart; a peer that is not trusted
    cannot choose its address by sending the header."""
    assert settings.trusted_proxies == ["127.0.0.1"]
    behind = ProxyHeadersMiddleware(app, trusted_hosts=settings.trusted_proxies)

    def via(peer: str, client: str) -> tuple[httpx.AsyncClient, dict[str, str]]:
        return _client_from(behind, peer), {"X-Forwarded-For": client}

    balancer, attacker = via("127.0.0.1", "198.51.100.1")
    async with balancer:
        for i in range(4):
            await balancer.get("/v1/pods", headers={**attacker, **auth(f"pbk_deadbeef_g{i}")})
        r = await balancer.get("/v1/pods", headers={**attacker, **auth("pbk_deadbeef_gx")})
        assert r.status_code == 429
        other = {"X-Forwarded-For": "198.51.100.2"}
        r = await balancer.get("/v1/pods", headers={**other, **auth("pbk_deadbeef_typo")})
        assert r.status_code == 401, r.text  # another client behind the balancer: counted apart

    stranger, spoofed = via("203.0.113.50", "198.51.100.3")
    async with stranger:
        for i in range(4):
            await stranger.get("/v1/pods", headers={**spoofed, **auth(f"pbk_deadbeef_s{i}")})
        # Counted by its own address, whatever header it sends: a new header is no way out.
        r = await stranger.get(
            "/v1/pods", headers={"X-Forwarded-For": "198.51.100.4", **auth("pbk_deadbeef_sx")}
        )
        assert r.status_code == 429, r.text
