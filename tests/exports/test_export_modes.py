"""The export store is private to the service's user: archives 0600, their folder 0700,
whatever the umask (an export holds the pod's files and its database dump; another local
user could read a 0644 archive). Both ways of building one: from a snapshot and from the
pod as it is now."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from tests.backups.helpers import backup, build_pod_tree, create_pod
from tests.conftest import Tenant, auth
from tests.exports.test_exports import fetch, run_export
from tests.fixtures.worker import WorkerProcess


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual 022 while the worker starts: files it makes would be world-readable by
    default."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_export_archives_are_0600_in_a_0700_folder(
    open_umask: None,
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    worker: WorkerProcess,
    tmp_path: Path,
    settings: Settings,
) -> None:
    build_pod_tree(tmp_path / "pod")
    pod = await create_pod(
        client,
        auth(admin_token),
        account_id=tenant.account_id,
        files={"kind": "local", "path": str(tmp_path / "pod")},
        target={"kind": "local", "path": str(tmp_path / "repo")},
    )
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    store = settings.export_path
    store.mkdir(parents=True)  # made by someone else first, with the umask's 0755
    assert _mode(store) == 0o755

    for body in ({"snapshot_id": job["result"]["snapshot_id"]}, None):
        done, info = await run_export(client, tenant, pod["id"], body)
        assert done["status"] == "succeeded", (done, worker.logs()[-3000:])
        archive = store / f"{info['id']}.tar.gz"
        assert _mode(archive) == 0o600, oct(_mode(archive))
        assert _mode(store) == 0o700, oct(_mode(store))
        r = await fetch(client, info)
        assert r.status_code == 200
        assert len(r.content) == archive.stat().st_size
