"""Builders and waits for end-to-end backup tests."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import time
from pathlib import Path
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


# -- pods ------------------------------------------------------------------------------


def sftp_files(handle: Any) -> dict[str, Any]:
    """The pod's `files` block for a fixture SFTP server (tests.fixtures.sftp handle)."""
    return {
        "kind": "sftp",
        "host": handle.host,
        "port": handle.port,
        "username": handle.username,
        "password": handle.password,
        "path": handle.remote_root,
    }


def database_spec(db: Any) -> dict[str, Any]:
    """The pod's `database` block for a DbEndpoint."""
    return {
        "kind": db.kind,
        "host": db.host,
        "port": db.port,
        "name": db.name,
        "username": db.username,
        "password": db.password,
    }


def s3_target(s3: Any, bucket: str) -> dict[str, Any]:
    return {
        "kind": "s3",
        "endpoint": s3.url,
        "bucket": bucket,
        "access_key_id": s3.access_key,
        "secret_access_key": s3.secret_key,
    }


async def create_pod(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    *,
    files: dict[str, Any] | None = None,
    database: dict[str, Any] | None = None,
    account_id: Any = None,
    name: str = "wiki",
    target: dict[str, Any] | None = None,
    target_headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """POST /v1/pods (admins pass ``account_id``), then PUT its backup settings when a
    ``target`` is given (a `local` target needs an admin's ``target_headers``)."""
    body: dict[str, Any] = {"name": name, "app": "wikijs", "files": files, "database": database}
    if account_id is not None:
        body["account_id"] = str(account_id)
    r = await client.post("/v1/pods", json=body, headers=headers)
    assert r.status_code == 201, r.text
    pod: dict[str, Any] = r.json()
    if target is not None:
        r = await client.put(
            f"/v1/pods/{pod['id']}/backup-settings",
            json={"target": target, "retention": {"keep_last": 10}},
            headers=target_headers or headers,
        )
        assert r.status_code == 200, r.text
    return pod


async def restore(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    pod_id: str,
    snapshot_id: str,
    timeout: float = 120,
    **body: Any,
) -> dict[str, Any]:
    """POST a restore and wait for its job to finish."""
    r = await client.post(
        f"/v1/pods/{pod_id}/restores", json={"snapshot_id": snapshot_id, **body}, headers=headers
    )
    assert r.status_code == 202, r.text
    return await wait_job(client, headers, r.json()["id"], timeout)


# -- file trees ------------------------------------------------------------------------


def build_pod_tree(root: Path, *, big_mb: int = 0, base_time: int = 1_700_000_000) -> None:
    """A pod folder with what breaks naive copies: nested folders, symlinks (to a file and
    to a folder), an empty file and an empty folder, non-ASCII and quote-laden names,
    odd modes, distinct whole-second mtimes, and optionally a ``big_mb`` MiB random file."""
    files: dict[str, tuple[bytes, int]] = {
        "app/config/settings.yml": (b"name: wiki\nmode: prod\n", 0o644),
        "app/run.sh": (b"#!/bin/sh\necho hi\n", 0o755),
        "app/secret.key": (os.urandom(64), 0o600),
        "uploads/2024/März/résumé ünïcödé.txt": ("ü ö ä\n".encode(), 0o640),
        "uploads/2024/日本語.txt": ("日本語\n".encode(), 0o644),
        "uploads/2024/photo.bin": (os.urandom(300_000), 0o644),
        'uploads/it\'s a "quoted" name.txt': (b"quotes\n", 0o444),
        "uploads/empty.txt": (b"", 0o644),
        "data/readme.md": (b"# data\n", 0o644),
    }
    for i, (rel, (data, mode)) in enumerate(sorted(files.items())):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(mode)
        os.utime(path, (base_time + i, base_time + i))
    if big_mb:
        big = root / "data" / "big.bin"
        with big.open("wb") as fh:
            for _ in range(big_mb):
                fh.write(os.urandom(1 << 20))
        os.utime(big, (base_time + 100, base_time + 100))
    (root / "cache" / "empty-dir").mkdir(parents=True, exist_ok=True)
    os.symlink("config/settings.yml", root / "app" / "settings-link.yml")
    os.symlink("uploads/2024", root / "current")
    (root / "uploads").chmod(0o750)
    for i, folder in enumerate(sorted((p for p in root.rglob("*") if is_dir(p)), reverse=True)):
        os.utime(folder, (base_time + 200 + i, base_time + 200 + i))  # children first


def is_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def tree_state(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry below ``root`` (not root itself): kind, permission bits, whole-second
    mtime and content digest (files), or the link text (symlinks, whose own mtime SFTP
    cannot always set)."""
    state: dict[str, tuple[Any, ...]] = {}
    for top, dirs, names in os.walk(root):
        for name in dirs + names:
            path = Path(top) / name
            rel = str(path.relative_to(root))
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                state[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                state[rel] = ("dir", stat.S_IMODE(st.st_mode), int(st.st_mtime))
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                state[rel] = ("file", stat.S_IMODE(st.st_mode), int(st.st_mtime), digest)
    return state


def diff_states(want: dict[str, tuple[Any, ...]], got: dict[str, tuple[Any, ...]]) -> list[str]:
    """Human-readable differences (empty when equal)."""
    out = [f"missing {k}: {v}" for k, v in want.items() if k not in got]
    out += [f"extra {k}: {v}" for k, v in got.items() if k not in want]
    out += [
        f"differs {k}: want {want[k]} got {got[k]}" for k in want if k in got and want[k] != got[k]
    ]
    return out
