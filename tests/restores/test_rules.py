"""Restores that cannot do what was asked fail before touching the pod, naming why."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI
from sqlalchemy import update

from app.models import Snapshot
from tests.backups.helpers import (
    backup,
    build_pod_tree,
    create_pod,
    diff_states,
    restore,
    tree_state,
    wait_index,
)
from tests.conftest import Tenant, auth
from tests.fixtures.worker import WorkerProcess


async def test_missing_paths_and_missing_dump_leave_the_pod_alone(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,
    app: FastAPI,
) -> None:
    pod_dir = tmp_path / "pod"
    build_pod_tree(pod_dir)
    pod = await create_pod(
        client,
        auth(admin_token),
        account_id=tenant.account_id,
        files={"kind": "local", "path": str(pod_dir)},
        target={"kind": "local", "path": str(tmp_path / "repo")},
    )
    snap = (await backup(client, tenant.headers, pod["id"]))["result"]["snapshot_id"]
    await wait_index(client, tenant.headers, pod["id"], snap)
    (pod_dir / "app" / "run.sh").write_text("changed since\n")
    now = tree_state(pod_dir)

    # Indexed: a path the snapshot does not have is refused at once.
    r = await client.post(
        f"/v1/pods/{pod['id']}/restores",
        json={"snapshot_id": snap, "paths": ["app", "uploads/typo"], "mode": "mirror"},
        headers=tenant.headers,
    )
    assert r.status_code == 404, r.text
    assert "/files/uploads/typo" in r.json()["detail"]

    # Not indexed: the job finds out after reading the snapshot, before the pod is touched.
    async with app.state.sessionmaker() as session:
        await session.execute(update(Snapshot).values(index_status="none"))
        await session.commit()
    done = await restore(
        client, tenant.headers, pod["id"], snap, paths=["app", "uploads/typo"], mode="mirror",
        safety_backup=False,
    )  # fmt: skip
    assert done["status"] == "failed", done
    assert done["error"]["code"] == "path_not_found"
    assert "/files/uploads/typo" in done["error"]["message"]
    assert not diff_states(now, tree_state(pod_dir))

    # A database restore from a snapshot without a dump: the files stay as they are too.
    clone_dir = tmp_path / "clone"
    build_pod_tree(clone_dir)
    (clone_dir / "app" / "run.sh").write_text("the clone's own\n")
    clone_state = tree_state(clone_dir)
    clone = await create_pod(
        client,
        auth(admin_token),
        account_id=tenant.account_id,
        name="clone",
        files={"kind": "local", "path": str(clone_dir)},
        database={
            "kind": "postgres", "host": "127.0.0.1", "port": 1, "name": "db",
            "username": "u", "password": "p",
        },
    )  # fmt: skip
    done = await restore(client, tenant.headers, pod["id"], snap, target_pod_id=clone["id"])
    assert done["status"] == "failed", done
    assert done["error"]["code"] == "no_database_dump"
    assert not diff_states(clone_state, tree_state(clone_dir))
    done = await restore(
        client, tenant.headers, pod["id"], snap, target_pod_id=clone["id"], database=False
    )
    assert done["status"] == "succeeded", done
    assert (clone_dir / "app" / "run.sh").read_bytes() == b"#!/bin/sh\necho hi\n"
