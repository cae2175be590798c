"""Issue 12.7: names people read in panels and terminals hold no control or formatting
characters. An ESC sequence in a pod name cleared the screen or recoloured the output of
`podbackup pods list`, and a right-to-left override showed a name reversed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Tenant, auth

HOSTILE = [
    "wiki\x1b[2J\x1b[H",  # clear the screen, cursor home
    "wiki\x1b]0;owned\x07",  # retitle the terminal
    "\u202etxt.exe",  # right-to-left override: shows as exe.txt
    "wi\u200bki",  # a zero-width space: looks like "wiki"
    "two\nlines",
    "nul\x00",
    "c1\x9b31m",  # C1 CSI
]


def refused(r: httpx.Response, *loc: str) -> None:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "ValidationFailed"
    assert body["detail"][0]["loc"] == ["body", *loc]
    assert "control or formatting character" in body["hint"]


@pytest.mark.parametrize("name", HOSTILE)
async def test_pod_names_with_control_characters_are_refused(
    client: httpx.AsyncClient, tenant: Tenant, name: str
) -> None:
    r = await client.post("/v1/pods", json={"name": name, "app": "wiki"}, headers=tenant.headers)
    refused(r, "name")
    r = await client.post("/v1/pods", json={"name": "wiki", "app": "wiki"}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    r = await client.patch(
        f"/v1/pods/{r.json()['id']}", json={"name": name}, headers=tenant.headers
    )
    refused(r, "name")


async def test_visible_unicode_names_stay_welcome(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    for name in ("Zürich wiki", "日本語のウィキ", "family 👨‍👩‍👧 photos", "it's [not] markup"):
        r = await client.post(
            "/v1/pods", json={"name": name, "app": "wiki"}, headers=tenant.headers
        )
        assert r.status_code == 201, r.text
        assert r.json()["name"] == name


async def test_other_names_people_read(
    client: httpx.AsyncClient, admin_token: str, tenant: Tenant
) -> None:
    admin = auth(admin_token)
    refused(await client.post("/v1/accounts", json={"name": "acme\x1b[31m"}, headers=admin), "name")
    r = await client.post(
        f"/v1/accounts/{tenant.account_id}/tokens", json={"name": "panel\u202e"}, headers=admin
    )
    refused(r, "name")
    files: dict[str, Any] = {
        "kind": "sftp",
        "host": "127.0.0.1",
        "port": 2222,
        "username": "pod\x1b[2J",
        "password": "x",
        "path": "/",
    }
    r = await client.post(
        "/v1/pods", json={"name": "wiki", "app": "wiki", "files": files}, headers=tenant.headers
    )
    refused(r, "files", "sftp", "username")
    r = await client.post(
        "/v1/webhooks",
        json={"url": "https://hooks.example.com/x", "description": "ops\x1b[8m"},
        headers=tenant.headers,
    )
    refused(r, "description")
