"""Issue 12.3: a restore into a local pod stays inside the pod's folder whatever the folder
holds. The tenant controls the folder's contents: a folder swapped for a symlink that
points outside ``PODBACKUP_LOCAL_ROOTS``, or a planted ``.NAME.podbackup-tmp`` link, must
not lead a partial or mirror restore to write or delete anything outside. Real folders
and symlinks, a real worker and restic."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from tests.backups.conftest import worker  # noqa: F401
from tests.backups.helpers import backup, create_pod, restore, tree_state
from tests.conftest import Tenant, auth
from tests.fixtures.worker import WorkerProcess

T0 = 1_700_000_000


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """Local pods allowed under tmp_path/roots only: tmp_path/outside is outside."""
    (tmp_path / "roots").mkdir()
    return settings.model_copy(update={"local_roots": [tmp_path / "roots"], "job_max_attempts": 1})


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder outside the roots holding sentinels the attacks aim at."""
    out = tmp_path / "outside"
    (out / "deep").mkdir(parents=True)
    (out / "a.txt").write_text("SENTINEL a\n")
    (out / "victim.txt").write_text("SENTINEL victim\n")
    (out / "deep" / "x.txt").write_text("SENTINEL x\n")
    for p in [out / "a.txt", out / "victim.txt", out / "deep" / "x.txt"]:
        os.utime(p, (T0, T0))
    return out


def build(pod: Path) -> None:
    (pod / "docs").mkdir(parents=True)
    (pod / "docs" / "a.txt").write_text("snapshot a\n")
    (pod / "docs" / "keep.txt").write_text("snapshot keep\n")
    (pod / "config.yml").write_text("name: wiki\n")
    for i, p in enumerate([pod / "docs" / "a.txt", pod / "docs" / "keep.txt", pod / "config.yml"]):
        os.utime(p, (T0 + i, T0 + i))


def sealed(outside: Path) -> dict[str, Any]:
    """Everything about the outside folder an escape would change."""
    st = outside.stat()
    return {"tree": tree_state(outside), "dir": (st.st_mode, st.st_mtime_ns, st.st_nlink)}


def swap_for_link(folder: Path, target: Path) -> None:
    shutil.rmtree(folder)
    os.symlink(target, folder)


async def test_restores_never_write_or_delete_through_links_in_the_pod_folder(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    outside: Path,
    worker: WorkerProcess,  # noqa: F811
) -> None:
    pod_dir = tmp_path / "roots" / "pod"
    build(pod_dir)
    pod = await create_pod(
        client,
        auth(admin_token),
        account_id=tenant.account_id,
        files={"kind": "local", "path": str(pod_dir)},
        target={"kind": "local", "path": str(tmp_path / "roots" / "repo")},
    )
    job = await backup(client, tenant.headers, pod["id"])
    assert job["status"] == "succeeded", (job, worker.logs()[-3000:])
    snap = job["result"]["snapshot_id"]
    want = tree_state(pod_dir)
    before = sealed(outside)
    quick: dict[str, Any] = {"database": False, "safety_backup": False}

    # 1. `docs` is now a link out of the roots; a partial restore of one file below it
    # used to write the file through the link (`docs/a.txt` → outside/a.txt).
    swap_for_link(pod_dir / "docs", outside)
    done = await restore(
        client, tenant.headers, pod["id"], snap, paths=["/files/docs/a.txt"], **quick
    )
    assert done["status"] == "succeeded", (done, worker.logs()[-3000:])
    assert sealed(outside) == before
    assert not (pod_dir / "docs").is_symlink()  # the snapshot has a folder there
    assert tree_state(pod_dir)["docs/a.txt"] == want["docs/a.txt"]

    # 2. A mirror restore of the folder, through the same kind of link, used to delete
    # what the folder lacks on the far side of the link and link files into it.
    swap_for_link(pod_dir / "docs", outside)
    done = await restore(
        client, tenant.headers, pod["id"], snap, paths=["/files/docs"], mode="mirror", **quick
    )
    assert done["status"] == "succeeded", (done, worker.logs()[-3000:])
    assert sealed(outside) == before
    assert tree_state(pod_dir) == want

    # 3. A link planted under the old temporary name: restoring the changed file used to
    # open `.config.yml.podbackup-tmp` for writing, i.e. truncate and overwrite its target.
    (pod_dir / "config.yml").write_text("name: XXXXXXXX\n")
    os.symlink(outside / "victim.txt", pod_dir / ".config.yml.podbackup-tmp")
    done = await restore(
        client, tenant.headers, pod["id"], snap, paths=["/files/config.yml"], **quick
    )
    assert done["status"] == "succeeded", (done, worker.logs()[-3000:])
    assert sealed(outside) == before
    assert (pod_dir / "config.yml").read_text() == "name: wiki\n"
    assert os.readlink(pod_dir / ".config.yml.podbackup-tmp") == str(outside / "victim.txt")

    # 4. A deeper link and the planted one, then a full mirror restore (with its safety
    # backup, which stages the links as links): the links go, nothing outside does.
    (pod_dir / "docs" / "sub").symlink_to(outside / "deep")
    done = await restore(client, tenant.headers, pod["id"], snap, mode="mirror", database=False)
    assert done["status"] == "succeeded", (done, worker.logs()[-3000:])
    assert sealed(outside) == before
    assert tree_state(pod_dir) == want
    files = done["result"]["files"]
    assert files["files_deleted"] == 2  # the two links, not what they point at
