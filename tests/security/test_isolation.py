"""Tenant isolation, for every operation the app has (discovered from its OpenAPI):
account A's token with account B's ids answers exactly like a missing object (404, or
403 where the route is admin-only), never reveals B's data, and no list or overview A
can read ever includes B's objects."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.security.routes import NO_BODY, Operation, bodies, missing, operations, query
from tests.security.world import Owned, World, build_world


@pytest.fixture
async def world(app: FastAPI, client: httpx.AsyncClient) -> World:
    return await build_world(client, app.state.sessionmaker)


def leaks(response: httpx.Response, other: Owned) -> list[str]:
    """The other account's identifiers in a response — except what the request itself
    carried (a 404 may name the id it was asked for)."""
    asked = str(response.request.url) + response.request.content.decode()
    return [m for m in other.markers() if m in response.text and m not in asked]


async def send(
    client: httpx.AsyncClient,
    op: Operation,
    me: Owned,
    ids: Any,
    payload: Any = NO_BODY,
    params: dict[str, Any] | None = None,
) -> httpx.Response:
    kwargs: dict[str, Any] = {"params": {**query(op), **(params or {})}, "headers": me.headers}
    if payload is not NO_BODY:
        kwargs["content"] = json.dumps(payload)
        kwargs["headers"] = {**me.headers, "Content-Type": "application/json"}
    return await client.request(op.method, op.url(ids), **kwargs)


async def valid_body(client: httpx.AsyncClient, op: Operation, me: Owned) -> tuple[Any, int]:
    """The first candidate body that passes validation, and how a missing id answers."""
    status = 0
    for payload in bodies(op, me):
        status = (await send(client, op, me, missing, payload)).status_code
        if status != 422:
            return payload, status
    return NO_BODY, status


async def test_another_accounts_ids_answer_like_missing_ones(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    a, b = world.a, world.b
    checked: list[str] = []
    problems: list[str] = []
    for op in operations(app):
        if not op.path_params or not op.authenticated:
            continue  # the signed export link is covered by its signature test
        for name in op.path_params:
            assert name in a.ids, f"{op.label}: teach tests/security/world.py about '{name}'"
        payload, expected = await valid_body(client, op, a)
        if expected not in (403, 404):
            problems.append(f"{op.label}: a missing id answers {expected}, not 404")
            continue
        # All of B's ids, then each of B's ids among A's own (a snapshot of B under A's pod).
        variants = [dict.fromkeys(op.path_params, "b")]
        if len(op.path_params) > 1:
            variants += [{**dict.fromkeys(op.path_params, "a"), n: "b"} for n in op.path_params]
        for variant in variants:

            def ids(name: str, variant: dict[str, str] = variant) -> str:
                return (a if variant[name] == "a" else b).ids[name]

            r = await send(client, op, a, ids, payload)
            where = f"{op.label} with {variant}"
            if r.status_code != expected:
                problems.append(f"{where}: {r.status_code} (a missing id: {expected}) {r.text}")
            elif r.json().get("error") not in ("NotFound", "Forbidden"):
                problems.append(f"{where}: not the error envelope: {r.text}")
            if found := leaks(r, b):
                problems.append(f"{where}: reveals {found}")
        if op.method != "DELETE":
            # The owner reaches the same object: the 404 above is isolation, not a bad path.
            mine = await send(client, op, a, lambda n: a.ids[n], payload)
            if mine.status_code == 404:
                problems.append(f"{op.label}: 404 for its owner too: {mine.text}")
        checked.append(op.label)
    assert not problems, "\n".join(problems)
    assert len(checked) >= 25, checked  # the discovery found the id routes


async def test_lists_and_overviews_never_include_another_accounts_objects(
    app: FastAPI, client: httpx.AsyncClient, world: World
) -> None:
    a, b = world.a, world.b
    problems: list[str] = []
    seen = 0
    for op in operations(app):
        if op.method != "GET" or not op.authenticated:
            continue
        if any(name not in a.ids for name in op.path_params):
            continue
        # A's own objects in the path, and B's ids offered as every filter a list takes.
        filters = {
            p["name"]: b.ids[p["name"]]
            for p in op.spec.get("parameters", [])
            if p["in"] == "query" and p["name"] in b.ids
        }
        r = await send(client, op, a, lambda n: a.ids[n], params=filters)
        seen += 1
        if r.status_code >= 500:
            problems.append(f"{op.label}: {r.status_code} {r.text}")
        if found := leaks(r, b):
            problems.append(f"{op.label} {filters}: B's {found} in {r.text[:300]}")
    assert not problems, "\n".join(problems)
    assert seen >= 15
    # And A does see its own things (the check above is not vacuous).
    r = await client.get("/v1/pods", headers=a.headers)
    assert [p["id"] for p in r.json()["items"]] == [a.ids["pod_id"]]
    r = await client.get("/v1/webhooks", headers=a.headers)
    assert [w["id"] for w in r.json()["items"]] == [a.ids["webhook_id"]]


async def test_bodies_cannot_reach_another_accounts_objects(
    client: httpx.AsyncClient, world: World
) -> None:
    a, b = world.a, world.b
    pod = a.ids["pod_id"]
    cases = [
        ("POST", f"/v1/pods/{pod}/restores", {"snapshot_id": b.ids["snapshot_id"]}),
        (
            "POST",
            f"/v1/pods/{pod}/restores",
            {"snapshot_id": a.ids["snapshot_id"], "target_pod_id": b.ids["pod_id"]},
        ),
        ("POST", f"/v1/pods/{pod}/exports", {"snapshot_id": b.ids["snapshot_id"]}),
        ("POST", "/v1/pods", {"name": "x", "app": "y", "account_id": b.ids["account_id"]}),
        ("POST", "/v1/webhooks", {"url": "https://e.example/h", "account_id": b.ids["account_id"]}),
    ]  # fmt: skip
    for method, path, payload in cases:
        r = await client.request(method, path, json=payload, headers=a.headers)
        assert r.status_code in (403, 404, 422), (path, payload, r.status_code, r.text)
        assert not leaks(r, b), (path, r.text)
    # Nothing was created in B's name.
    r = await client.get("/v1/pods", headers=b.headers)
    assert [p["id"] for p in r.json()["items"]] == [b.ids["pod_id"]]
    r = await client.get("/v1/webhooks", headers=b.headers)
    assert [w["id"] for w in r.json()["items"]] == [b.ids["webhook_id"]]
