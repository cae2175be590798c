"""Builders and waits for end-to-end backup tests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

FINAL = ("succeeded", "partial", "failed", "canceled")


async def wait_job(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    job_id: str,
    timeout: float = 120,
    until: tuple[str, ...] = FINAL,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = (await client.get(f"/v1/jobs/{job_id}", headers=headers)).json()
        if job.get("status") in until:
            return job
        await asyncio.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job.get('status')} after {timeout}s: {job}")


async def wait_index(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    pod_id: str,
    snapshot_id: str,
    timeout: float = 60,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    snap: dict[str, Any] = {}
    while time.monotonic() < deadline:
        snap = (
            await client.get(f"/v1/pods/{pod_id}/snapshots/{snapshot_id}", headers=headers)
        ).json()
        if snap.get("index_status") == "ready":
            return snap
        await asyncio.sleep(0.2)
    raise AssertionError(f"snapshot {snapshot_id} not indexed: {snap}")


async def backup(
    client: httpx.AsyncClient, headers: dict[str, str], pod_id: str, timeout: float = 120
) -> dict[str, Any]:
    r = await client.post(f"/v1/pods/{pod_id}/backups", headers=headers)
    assert r.status_code == 202, r.text
    return await wait_job(client, headers, r.json()["id"], timeout)
