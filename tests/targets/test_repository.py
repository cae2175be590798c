"""Repository initialisation and identity, and the restore kit used with plain restic."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.integrations.restic import Repository, Restic, ResticError
from app.models import BackupSettings
from app.targets.repository import RepositoryMismatch, build_repository, ensure_repository
from app.targets.restore_kit import SECRET_PLACEHOLDER
from tests.conftest import Tenant
from tests.fixtures.s3 import S3ServerHandle
from tests.targets.conftest import make_pod, put_settings, s3_target

SERVER_SECRET = "moto-accepts-any-secret-but-this-one-is-ours"


def _run(argv: list[str], env: dict[str, str], **kw: object) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run(
        argv, env={**base, **env}, capture_output=True, text=True, timeout=120, **kw
    )


async def _ensure(app: FastAPI, pod_id: str, cache: Path) -> tuple[str, Repository]:
    restic = await Restic.detect(app.state.settings.restic_binary)
    async with app.state.sessionmaker() as session:
        row = await session.get(BackupSettings, uuid.UUID(pod_id))
        assert row is not None
        repo = build_repository(row, app.state.keyring, cache)
        repository_id = await ensure_repository(session, restic, row, repo)
        await session.commit()
    return repository_id, repo


async def test_ensure_repository_inits_once_and_detects_another_repository(
    client: httpx.AsyncClient,
    tenant: Tenant,
    app: FastAPI,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    pod_id = await make_pod(client, tenant)
    target = s3_target(s3_server, s3_bucket, secret=SERVER_SECRET)
    await put_settings(client, tenant.headers, pod_id, target=target)

    first, repo = await _ensure(app, pod_id, tmp_path / "cache")
    assert repo.url == f"s3:{s3_server.url}/{s3_bucket}"
    assert repo.env == {
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": SERVER_SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    assert SERVER_SECRET not in repr(repo)
    keys = s3_server.keys(s3_bucket)
    assert "config" in keys
    read = (await client.get(f"/v1/pods/{pod_id}/backup-settings", headers=tenant.headers)).json()
    assert read["repository_id"] == first
    assert read["initialized_at"] is not None
    config = _run(["restic", "cat", "config"], repo.child_env())
    assert json.loads(config.stdout)["version"] == 2  # compressed repository format

    second, _ = await _ensure(app, pod_id, tmp_path / "cache")
    assert second == first
    assert s3_server.keys(s3_bucket) == keys  # not initialised again
    again = await client.get(f"/v1/pods/{pod_id}/backup-settings", headers=tenant.headers)
    assert again.json()["initialized_at"] == read["initialized_at"]

    r = await client.post(f"/v1/pods/{pod_id}/backup-settings/verify", headers=tenant.headers)
    contents = {c["name"]: c for c in r.json()["checks"]}["contents"]
    assert contents["level"] == "ok"
    assert f"this pod's repository {first[:8]}" in contents["detail"]

    # Someone re-initialises the bucket with another repository (another password).
    s3_server.empty_bucket(s3_bucket)
    other = _run(["restic", "init"], {**repo.child_env(), "RESTIC_PASSWORD": "someone-else"})
    assert other.returncode == 0, other.stderr
    # Once a repository is recorded, a password that does not open the bucket's repository
    # cannot tell "another repository" from "password changed": wrong_password, whose hint
    # names both.
    with pytest.raises(ResticError) as wrong:
        await _ensure(app, pod_id, tmp_path / "cache")
    assert wrong.value.code == "wrong_password"
    assert "another pod's repository" in (wrong.value.hint or "")

    # The recorded repository vanished: not silently replaced by a new one.
    s3_server.empty_bucket(s3_bucket)
    with pytest.raises(RepositoryMismatch, match="is gone"):
        await _ensure(app, pod_id, tmp_path / "cache")
    assert s3_server.keys(s3_bucket) == []


async def test_restore_kit_lists_snapshots_with_plain_restic(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    app: FastAPI,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    pod_id = await make_pod(client, tenant)
    target = s3_target(s3_server, s3_bucket, secret=SERVER_SECRET)
    await put_settings(client, tenant.headers, pod_id, target=target)
    _, repo = await _ensure(app, pod_id, tmp_path / "cache")

    staging = tmp_path / "staging"
    (staging / "files" / "uploads").mkdir(parents=True)
    (staging / "files" / "uploads" / "cat.jpg").write_bytes(b"meow")
    (staging / "database").mkdir()
    (staging / "database" / "wiki.sql").write_text("-- dump\n")
    backup = await asyncio.to_thread(
        _run, ["restic", "backup", "--json", "--host", pod_id, "."], repo.child_env(), cwd=staging
    )
    assert backup.returncode == 0, backup.stderr

    r = await client.get(f"/v1/pods/{pod_id}/restore-kit", headers=tenant.headers)
    assert r.status_code == 200
    kit = r.json()
    assert SERVER_SECRET not in r.text
    assert kit["password"] == repo.password
    assert kit["repository"] == f"s3:{s3_server.url}/{s3_bucket}"
    assert kit["env"]["AWS_SECRET_ACCESS_KEY"] == SECRET_PLACEHOLDER
    assert f"export AWS_SECRET_ACCESS_KEY='{SECRET_PLACEHOLDER}'" in kit["env_block"]
    commands = [c["command"] for c in kit["commands"]]
    assert "restic snapshots" in commands
    assert "restic ls <snapshot-id>" in commands
    assert "restic restore <snapshot-id> --target ./restore" in commands
    assert any("'files/'" in n and "'database/<name>.sql'" in n for n in kit["notes"])

    # Paste the env block into a shell, put in the real secret, list the snapshots.
    env_block = kit["env_block"].replace(SECRET_PLACEHOLDER, SERVER_SECRET)
    script = env_block + "export RESTIC_CACHE_DIR=" + str(tmp_path / "owner-cache") + "\n"
    script += "restic snapshots --json\n"
    shell = await asyncio.to_thread(_run, ["bash", "-s"], {}, input=script)
    assert shell.returncode == 0, shell.stderr
    snapshots = json.loads(shell.stdout)
    assert [s["hostname"] for s in snapshots] == [pod_id]
    listing = await asyncio.to_thread(
        _run,
        ["bash", "-s"],
        {},
        input=env_block + f"restic ls {snapshots[0]['short_id']}\n",
    )
    assert "/files/uploads/cat.jpg" in listing.stdout
    assert "/database/wiki.sql" in listing.stdout

    # Audited; owners of other accounts see nothing.
    audit = (await client.get(f"/v1/pods/{pod_id}/audit", headers=tenant.headers)).json()
    assert audit["items"][0]["action"] == "restore_kit.read"
    assert kit["password"] not in json.dumps(audit)
    r = await client.get(f"/v1/pods/{pod_id}/restore-kit", headers=other_tenant.headers)
    assert r.status_code == 404
    no_settings = await make_pod(client, tenant, "bare")
    r = await client.get(f"/v1/pods/{no_settings}/restore-kit", headers=tenant.headers)
    assert r.status_code == 404
