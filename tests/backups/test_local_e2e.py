"""A local-source pod backed up into a local repository by a real worker process."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.backups.helpers import backup, wait_index
from tests.conftest import Tenant, auth
from tests.fixtures.worker import WorkerProcess

PASSWORDS: dict[str, str] = {}


def make_tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_text("hello\n")
    (root / "sub" / "b.bin").write_bytes(os.urandom(200_000))
    (root / "sub" / "deeper" / "ünïcode name.txt").write_text("ü\n")
    (root / "empty").write_bytes(b"")
    os.symlink("a.txt", root / "link-to-a")
    os.utime(root / "a.txt", (1_600_000_000, 1_600_000_000))


async def local_pod(
    client: httpx.AsyncClient, admin_token: str, tenant: Tenant, tmp_path: Path
) -> dict[str, Any]:
    pod_dir = tmp_path / "pod"
    make_tree(pod_dir)
    r = await client.post(
        "/v1/pods",
        json={
            "name": "local",
            "app": "demo",
            "account_id": str(tenant.account_id),
            "files": {"kind": "local", "path": str(pod_dir)},
        },
        headers=auth(admin_token),
    )
    assert r.status_code == 201, r.text
    pod = r.json()
    r = await client.put(
        f"/v1/pods/{pod['id']}/backup-settings",
        json={
            "target": {"kind": "local", "path": str(tmp_path / "repo")},
            "retention": {"keep_last": 5},
        },
        headers=auth(admin_token),
    )
    assert r.status_code == 200, r.text
    return pod


async def test_local_pod_backup_browse_download(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,
) -> None:
    pod = await local_pod(client, admin_token, tenant, tmp_path)
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    result = job["result"]
    assert result["files"]["files_total"] == 4
    snap_id = result["snapshot_id"]
    assert len(snap_id) == 64

    snaps = (await client.get(f"/v1/pods/{pod['id']}/snapshots", headers=tenant.headers)).json()
    assert [s["id"] for s in snaps["items"]] == [snap_id]
    snap = snaps["items"][0]
    assert f"pod:{pod['id']}" in snap["tags"]
    assert "trigger:manual" in snap["tags"]
    assert snap["hostname"] == pod["id"]

    status = (await client.get(f"/v1/pods/{pod['id']}/status", headers=tenant.headers)).json()
    assert status["last_backup"]["status"] == "succeeded"
    assert status["last_snapshot_id"] == snap_id
    assert status["snapshot_count"] == 1
    assert status["last_success_at"]

    latest = await client.get(f"/v1/pods/{pod['id']}/snapshots/latest", headers=tenant.headers)
    assert latest.json()["id"] == snap_id
    await wait_index(client, tenant.headers, pod["id"], snap["short_id"])
    root = (
        await client.get(
            f"/v1/pods/{pod['id']}/snapshots/{snap_id}/files?path=/", headers=tenant.headers
        )
    ).json()
    assert [e["name"] for e in root["items"]] == ["files"]
    files = (
        await client.get(
            f"/v1/pods/{pod['id']}/snapshots/{snap_id}/files?path=/files", headers=tenant.headers
        )
    ).json()
    names = {e["name"]: e for e in files["items"]}
    assert set(names) == {"a.txt", "empty", "link-to-a", "sub"}
    assert names["a.txt"]["size"] == 6
    assert names["link-to-a"]["type"] == "symlink"
    assert names["link-to-a"]["link_target"] in (None, "a.txt")  # restic 0.14 omits it
    assert names["a.txt"]["mode"] == (tmp_path / "pod" / "a.txt").stat().st_mode & 0o7777

    r = await client.get(
        f"/v1/pods/{pod['id']}/snapshots/{snap['short_id']}/download",
        params={"path": "/files/sub/b.bin"},
        headers=tenant.headers,
    )
    assert r.status_code == 200
    assert r.content == (tmp_path / "pod" / "sub" / "b.bin").read_bytes()
    assert "b.bin" in r.headers["content-disposition"]
    r = await client.get(
        f"/v1/pods/{pod['id']}/snapshots/{snap_id}/download",
        params={"path": "/files/nope"},
        headers=tenant.headers,
    )
    assert r.status_code == 404
    assert "/files/nope" in r.json()["detail"]

    # Unchanged: another snapshot, nothing new uploaded, the first one as parent.
    again = await backup(client, tenant.headers, pod["id"])
    assert again["status"] == "succeeded"
    summary = again["result"]["summary"]
    assert summary["files_new"] == 0
    assert summary["files_changed"] == 0
    assert summary["files_unmodified"] == 4

    # An owner with plain restic sees files/ at the top of the snapshot.
    env = {
        "PATH": os.environ["PATH"],
        "RESTIC_REPOSITORY": str(tmp_path / "repo"),
        "RESTIC_PASSWORD": await restic_password(client, admin_token, pod["id"]),
        "RESTIC_CACHE_DIR": str(tmp_path / "rc"),
    }
    out = subprocess.run(
        ["restic", "ls", snap_id], env=env, capture_output=True, text=True, check=True
    )
    assert "/files/sub/deeper/ünïcode name.txt" in out.stdout


async def restic_password(client: httpx.AsyncClient, admin_token: str, pod_id: str) -> str:
    kit = (await client.get(f"/v1/pods/{pod_id}/restore-kit", headers=auth(admin_token))).json()
    return str(kit["password"])


async def test_local_restore_merge_mirror_partial_and_clone(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,
) -> None:
    from tests.backups.helpers import wait_job

    pod = await local_pod(client, admin_token, tenant, tmp_path)
    pod_dir = tmp_path / "pod"
    original = {
        p.relative_to(pod_dir): p.read_bytes()
        for p in pod_dir.rglob("*")
        if p.is_file() and not p.is_symlink()
    }
    mtime = (pod_dir / "a.txt").stat().st_mtime
    job = await backup(client, tenant.headers, pod["id"])
    snap = job["result"]["snapshot_id"]

    (pod_dir / "a.txt").write_text("changed\n")
    (pod_dir / "sub" / "b.bin").unlink()
    (pod_dir / "extra.txt").write_text("keep me?\n")

    async def restore(**body: Any) -> dict[str, Any]:
        r = await client.post(
            f"/v1/pods/{pod['id']}/restores",
            json={"snapshot_id": snap[:8], **body},
            headers=tenant.headers,
        )
        assert r.status_code == 202, r.text
        done = await wait_job(client, tenant.headers, r.json()["id"])
        assert done["status"] == "succeeded", (done, worker.logs()[-3000:])
        return done

    done = await restore()
    assert done["result"]["safety_snapshot_id"]
    for rel, data in original.items():
        assert (pod_dir / rel).read_bytes() == data, rel
    assert (pod_dir / "a.txt").stat().st_mtime == mtime
    assert (pod_dir / "extra.txt").exists()  # merge keeps extra files

    # The safety snapshot holds the state before the restore: the restore can be undone.
    snaps = (await client.get(f"/v1/pods/{pod['id']}/snapshots", headers=tenant.headers)).json()
    assert done["result"]["safety_snapshot_id"] in [s["id"] for s in snaps["items"]]

    await restore(mode="mirror", safety_backup=False)
    assert not (pod_dir / "extra.txt").exists()

    (pod_dir / "sub" / "b.bin").write_bytes(b"broken")
    (pod_dir / "a.txt").write_text("changed again\n")
    await restore(paths=["/files/sub"], safety_backup=False)
    assert (pod_dir / "sub" / "b.bin").read_bytes() == original[Path("sub/b.bin")]
    assert (pod_dir / "a.txt").read_text() == "changed again\n"  # outside the chosen path

    clone_dir = tmp_path / "clone"
    clone_dir.mkdir()
    r = await client.post(
        "/v1/pods",
        json={
            "name": "clone",
            "app": "demo",
            "account_id": str(tenant.account_id),
            "files": {"kind": "local", "path": str(clone_dir)},
        },
        headers=auth(admin_token),
    )
    clone = r.json()
    await restore(target_pod_id=clone["id"])
    for rel, data in original.items():
        assert (clone_dir / rel).read_bytes() == data, rel

    r = await client.post(
        f"/v1/pods/{pod['id']}/restores",
        json={"snapshot_id": snap, "paths": ["../etc"]},
        headers=tenant.headers,
    )
    assert r.status_code == 422
    r = await client.post(
        f"/v1/pods/{pod['id']}/restores", json={"snapshot_id": "deadbeef"}, headers=tenant.headers
    )
    assert r.status_code == 404


async def test_local_exports_of_snapshot_and_of_now(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,
    app: Any,
) -> None:
    import io
    import tarfile
    from urllib.parse import urlsplit

    from app.exports import signing
    from tests.backups.helpers import wait_job

    pod = await local_pod(client, admin_token, tenant, tmp_path)
    job = await backup(client, tenant.headers, pod["id"])
    snap = job["result"]["snapshot_id"]
    (tmp_path / "pod" / "new-after-backup.txt").write_text("fresh\n")

    async def export(body: dict[str, Any] | None) -> tuple[dict[str, Any], tarfile.TarFile]:
        r = await client.post(f"/v1/pods/{pod['id']}/exports", json=body, headers=tenant.headers)
        assert r.status_code == 202, r.text
        assert r.json()["status"] == "pending"
        assert r.json()["download_url"] is None
        done = await wait_job(client, tenant.headers, str(r.json()["job_id"]))
        assert done["status"] == "succeeded", (done, worker.logs()[-2000:])
        info = (await client.get(f"/v1/exports/{r.json()['id']}", headers=tenant.headers)).json()
        assert info["status"] == "ready"
        url = urlsplit(info["download_url"])
        got = await client.get(f"{url.path}?{url.query}")  # no token: the link is the key
        assert got.status_code == 200, got.text
        assert len(got.content) == info["size_bytes"]
        return info, tarfile.open(fileobj=io.BytesIO(got.content), mode="r:gz")

    info, tar = await export({"snapshot_id": snap[:8]})
    names = set(tar.getnames())
    assert {"files/a.txt", "files/sub/b.bin", "files/link-to-a"} <= names
    assert "files/new-after-backup.txt" not in names
    member = tar.extractfile("files/sub/b.bin")
    assert member is not None
    assert member.read() == (tmp_path / "pod" / "sub" / "b.bin").read_bytes()

    _, now_tar = await export(None)
    assert "files/new-after-backup.txt" in now_tar.getnames()

    export_id = info["id"]
    bad = await client.get(
        f"/v1/exports/{export_id}/download",
        params={"expires": 4_000_000_000, "signature": "0" * 64},
    )
    assert bad.status_code == 403
    old = 1_000_000_000
    sig = signing.sign(app.state.keyring, __import__("uuid").UUID(export_id), old)
    expired = await client.get(
        f"/v1/exports/{export_id}/download", params={"expires": old, "signature": sig}
    )
    assert expired.status_code == 410
    other = await client.get(f"/v1/exports/{export_id}", headers=auth(admin_token))
    assert other.status_code == 200
