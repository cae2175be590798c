"""Issue 17.3: a restore preview (`dry_run: true`) says what the restore would add,
overwrite (and why) and delete, and what the database load replaces, without touching the
pod; the real restore then does exactly that. Real SFTP server, local folders,
PostgreSQL, restic and worker."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.integrations.dumps import DbEndpoint
from tests.backups.helpers import (
    backup,
    build_pod_tree,
    create_pod,
    database_spec,
    restore,
    sftp_files,
    tree_state,
)
from tests.conftest import Tenant, auth
from tests.faults.services import HookGate
from tests.fixtures.sftp import SftpServerHandle
from tests.fixtures.worker import WorkerProcess
from tests.restores.content import damage_pg, pg_rows, seed_pg


def exact_state(root: Path) -> dict[str, tuple[int, int, int]]:
    """Mode, size and nanosecond mtime of every entry (folders and links too)."""
    out = {}
    for top, dirs, names in os.walk(root):
        for name in dirs + names:
            st = (Path(top) / name).lstat()
            out[str((Path(top) / name).relative_to(root))] = (
                st.st_mode,
                st.st_size,
                st.st_mtime_ns,
            )
    return out


def change_pod(root: Path) -> None:
    """Since the snapshot: content changed with size and mtime kept, content rewritten,
    a mode-only change, a deleted folder, a re-pointed link, a new file."""
    settings = root / "app" / "config" / "settings.yml"
    st = settings.stat()
    settings.write_text("name: XXXX\nmode: prod\n")  # same size
    os.utime(settings, ns=(st.st_atime_ns, st.st_mtime_ns))
    (root / "data" / "readme.md").write_text("rewritten entirely, longer than before\n")
    (root / "app" / "secret.key").chmod(0o644)
    shutil.rmtree(root / "uploads" / "2024")
    (root / "current").unlink()
    os.symlink("data", root / "current")
    (root / "uploads" / "new-since.txt").write_text("not in the snapshot\n")


async def preview(
    client: httpx.AsyncClient, tenant: Tenant, pod_id: str, snap: str, **body: Any
) -> dict[str, Any]:
    job = await restore(client, tenant.headers, pod_id, snap, dry_run=True, **body)
    assert job["status"] == "succeeded", job
    assert job["kind"] == "restore"
    assert job["params"]["dry_run"] is True
    assert job["result"]["dry_run"] is True
    assert job["result"]["safety_snapshot_id"] is None
    result: dict[str, Any] = job["result"]["preview"]
    return result


def by_path(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["path"].removeprefix("/files/"): i for i in items}


def what_changed(
    before: dict[str, tuple[Any, ...]], after: dict[str, tuple[Any, ...]]
) -> tuple[set[str], set[str], set[str]]:
    """(added, overwritten, deleted) between two tree states; a folder counts as
    overwritten only when its kind or mode changed (its mtime follows its contents)."""
    added = set(after) - set(before)
    deleted = set(before) - set(after)
    over = set()
    for key in set(before) & set(after):
        was, now = before[key], after[key]
        if was[0] == "dir" and now[0] == "dir":
            if was[1] != now[1]:
                over.add(key)
        elif was != now:
            over.add(key)
    return added, over, deleted


def assert_preview_is_what_happened(
    result: dict[str, Any], before: dict[str, Any], after: dict[str, Any]
) -> None:
    added, over, deleted = what_changed(before, after)
    assert not result["truncated"]
    assert set(by_path(result["add"])) == added
    assert set(by_path(result["delete"])) == deleted
    # tree_state does not see a link's own mtime, which SFTP restores too
    shown_over = {p for p, i in by_path(result["overwrite"]).items() if i["reasons"] != ["mtime"]}
    assert shown_over == over
    counts = result["counts"]
    assert (counts["add"], counts["delete"]) == (len(added), len(deleted))
    assert counts["overwrite"] == len(result["overwrite"])
    assert result["unchanged"] == counts["unchanged"] > 0


@pytest.mark.timeout(240)
async def test_preview_of_merge_and_mirror_restores_of_an_sftp_pod_with_a_database(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    sftp_server: SftpServerHandle,
    pg_pod: DbEndpoint,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    root = sftp_server.root
    build_pod_tree(root, big_mb=2)
    await seed_pg(pg_pod)
    pod = await create_pod(
        client,
        tenant.headers,
        files=sftp_files(sftp_server),
        database=database_spec(pg_pod),
        target={"kind": "local", "path": str(tmp_path / "repo")},
        target_headers=auth(admin_token),
    )
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    snap = job["result"]["snapshot_id"]
    snapshot_tree = tree_state(root)

    change_pod(root)
    await damage_pg(pg_pod)
    before, exact, rows = tree_state(root), exact_state(root), await pg_rows(pg_pod)
    snaps_before = [
        s["id"]
        for s in (
            await client.get(f"/v1/pods/{pod['id']}/snapshots", headers=tenant.headers)
        ).json()["items"]
    ]

    merge = await preview(client, tenant, pod["id"], snap)
    # The pod is untouched: every byte, mode and nanosecond mtime, every row; no safety
    # snapshot was taken.
    assert exact_state(root) == exact
    assert tree_state(root) == before
    assert await pg_rows(pg_pod) == rows
    snaps = (await client.get(f"/v1/pods/{pod['id']}/snapshots", headers=tenant.headers)).json()
    assert [s["id"] for s in snaps["items"]] == snaps_before

    over = by_path(merge["overwrite"])
    assert over["app/config/settings.yml"]["reasons"] == ["content"]  # same size and mtime
    assert over["app/secret.key"]["reasons"] == ["mode"]
    assert over["data/readme.md"]["reasons"][:2] == ["size", "content"]
    assert "content" in over["current"]["reasons"]
    added = by_path(merge["add"])
    assert "uploads/2024" in added
    assert added["uploads/2024"]["type"] == "dir"
    photo = added["uploads/2024/photo.bin"]
    assert photo["type"] == "file"
    assert photo["size"] > 0
    assert merge["delete"] == []
    assert merge["counts"]["delete"] == 0
    assert merge["bytes"]["add"] == sum(i["size"] for i in merge["add"])
    database = merge["database"]
    assert database["target_database"] == pg_pod.name
    assert database["dump_file"] == f"/database/{pg_pod.name}.sql"
    assert {"public.blobs", "public.notes", "public.numbers"} <= set(database["replaces"])
    assert database["rows"]["public.numbers"] == 2000
    assert database["recorded"] is True

    mirror = await preview(client, tenant, pod["id"], snap, mode="mirror")
    assert exact_state(root) == exact
    assert by_path(mirror["delete"]) == {
        "uploads/new-since.txt": {"path": "/files/uploads/new-since.txt", "type": "file"}
    }
    assert mirror["add"] == merge["add"]
    assert mirror["overwrite"] == merge["overwrite"]

    # The restore itself does what its preview said.
    done = await restore(
        client, tenant.headers, pod["id"], snap, mode="mirror", safety_backup=False
    )
    assert done["status"] == "succeeded", (done, worker.logs()[-3000:])
    after = tree_state(root)
    assert_preview_is_what_happened(mirror, before, after)
    assert after == snapshot_tree
    assert set(await pg_rows(pg_pod)) == {"Mixed Case", "blobs", "notes", "numbers"}

    # Nothing left to do: an empty preview.
    again = await preview(client, tenant, pod["id"], snap, mode="mirror", database=False)
    assert again["counts"] == {
        "add": 0,
        "overwrite": again["counts"]["overwrite"],
        "delete": 0,
        "unchanged": again["counts"]["unchanged"],
    }
    assert all(i["reasons"] == ["mtime"] for i in again["overwrite"]), again["overwrite"]
    assert again["database"] is None


@pytest.mark.timeout(240)
async def test_preview_of_a_local_pod_partial_mirror_and_merge(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,
) -> None:
    root = tmp_path / "pod"
    build_pod_tree(root, big_mb=2)
    pod = await create_pod(
        client,
        auth(admin_token),
        account_id=tenant.account_id,
        files={"kind": "local", "path": str(root)},
        target={"kind": "local", "path": str(tmp_path / "repo")},
    )
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    snap = job["result"]["snapshot_id"]
    # Hooks from now on: a preview calls neither; a restore calls both.
    gate = await HookGate().start()
    gate.open()
    r = await client.patch(
        f"/v1/pods/{pod['id']}",
        json={"hooks": {"stop_url": gate.url, "start_url": gate.url}},
        headers=auth(admin_token),
    )
    assert r.status_code == 200, r.text
    sizes = {p: (root / p).stat().st_size for p in ("app/config/settings.yml", "data/readme.md")}

    change_pod(root)
    (root / "data" / "big.bin").chmod(0o600)  # a mode-only change of a large file
    before, exact = tree_state(root), exact_state(root)

    merge = await preview(client, tenant, pod["id"], snap, database=False)
    assert exact_state(root) == exact
    over = by_path(merge["overwrite"])
    assert over["app/config/settings.yml"]["reasons"] == ["content"]
    assert over["app/secret.key"]["reasons"] == ["mode"]
    assert over["data/big.bin"]["reasons"] == ["mode"]
    assert over["current"]["reasons"] == ["content"]
    assert merge["bytes"]["overwrite"] == sizes["app/config/settings.yml"] + sizes["data/readme.md"]
    assert merge["database"] is None

    # A partial mirror restore of `uploads`: only inside it, the new file goes.
    part = await preview(
        client, tenant, pod["id"], snap, paths=["uploads"], mode="mirror", database=False
    )
    assert exact_state(root) == exact
    assert {i["path"] for i in part["delete"]} == {"/files/uploads/new-since.txt"}
    assert all(i["path"].startswith("/files/uploads") for i in part["add"] + part["overwrite"])
    assert gate.calls == 0
    done = await restore(
        client, tenant.headers, pod["id"], snap, paths=["uploads"], mode="mirror",
        database=False, safety_backup=False,
    )  # fmt: skip
    assert done["status"] == "succeeded", (done, worker.logs()[-3000:])
    assert gate.calls == 2  # stop and start
    after = tree_state(root)
    assert_preview_is_what_happened(part, before, after)

    # Then the whole merge restore: what the first preview said, minus what is now done.
    before = after
    merge = await preview(client, tenant, pod["id"], snap, database=False)
    done = await restore(client, tenant.headers, pod["id"], snap, database=False,
                         safety_backup=False)  # fmt: skip
    assert done["status"] == "succeeded", done
    assert_preview_is_what_happened(merge, before, tree_state(root))
    await gate.close()
