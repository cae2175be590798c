"""Every path a restore takes is literal: glob characters and edge spaces are part of the
name, never a pattern (restic's --include is a glob per path component)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx

from app.integrations.restic import Restic
from app.integrations.restic.repository import Repository
from tests.backups.helpers import backup, create_pod, restore, tree_state, wait_index
from tests.conftest import Tenant, auth
from tests.fixtures.worker import WorkerProcess

# Names that a pattern would mismatch: a class that does not match its own text (and
# matches "Q1 d (final).txt"), a star beside another file, a `?`, a backslash, `**`, and
# spaces at the ends that a trimmed body would drop.
ODD = {
    "reports/Q1 [draft] (final).txt": b"the draft\n",
    "reports/Q1 d (final).txt": b"a neighbour the class matches\n",
    "d/*": b"the star\n",
    "d/a": b"beside the star\n",
    "d/b?": b"question\n",
    "d/bc": b"what b? also matches\n",
    "d/back\\slash": b"backslash\n",
    "**/deep.txt": b"under a folder named **\n",
    "x/y/deep.txt": b"what ** would match\n",
    " edge ": b"spaces at both ends\n",
    "edge": b"the trimmed name\n",
}
WANTED = ["reports/Q1 [draft] (final).txt", "d/*", "d/b?", "d/back\\slash", "**", " edge "]


def build(root: Path) -> None:
    for rel, data in ODD.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def restored(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


async def test_restic_restore_takes_include_paths_literally(tmp_path: Path) -> None:
    repo = Repository(url=str(tmp_path / "repo"), password="literal-paths")
    env = {**os.environ, **repo.child_env()}
    subprocess.run(["restic", "init"], env=env, check=True, capture_output=True)
    build(tmp_path / "stage" / "files")
    subprocess.run(
        ["restic", "backup", "--host", "h", "files"],
        env=env,
        cwd=tmp_path / "stage",
        check=True,
        capture_output=True,
    )
    restic = await Restic.detect("restic")

    await restic.restore(repo, "latest", tmp_path / "one", include=["/files/d/*"])
    assert restored(tmp_path / "one") == {"files/d/*"}

    out = tmp_path / "all"
    await restic.restore(repo, "latest", out, include=[f"/files/{p}" for p in WANTED])
    assert restored(out) == {
        "files/reports/Q1 [draft] (final).txt",
        "files/d/*",
        "files/d/b?",
        "files/d/back\\slash",
        "files/**/deep.txt",
        "files/ edge ",
    }
    assert (out / "files/reports/Q1 [draft] (final).txt").read_bytes() == b"the draft\n"

    # A download (`restic dump`) names its file literally on every version.
    async with restic.dump_stream(repo, "latest", "/files/d/*") as stream:
        assert await stream.read() == b"the star\n"


async def test_partial_restore_of_odd_names_restores_exactly_those(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,
) -> None:
    pod_dir = tmp_path / "pod"
    build(pod_dir)
    pod = await create_pod(
        client,
        auth(admin_token),
        account_id=tenant.account_id,
        files={"kind": "local", "path": str(pod_dir)},
        target={"kind": "local", "path": str(tmp_path / "repo")},
    )
    snap = (await backup(client, tenant.headers, pod["id"]))["result"]["snapshot_id"]
    await wait_index(client, tenant.headers, pod["id"], snap)
    before = tree_state(pod_dir)
    for rel in ODD:
        (pod_dir / rel).write_bytes(b"damaged\n")

    done = await restore(
        client, tenant.headers, pod["id"], snap, paths=WANTED, database=False, safety_backup=False
    )
    assert done["status"] == "succeeded", done
    for rel, data in ODD.items():
        wanted = any(rel == w or rel.startswith(w + "/") for w in WANTED)
        assert (pod_dir / rel).read_bytes() == (data if wanted else b"damaged\n"), rel
    assert (
        tree_state(pod_dir)["reports/Q1 [draft] (final).txt"]
        == (before["reports/Q1 [draft] (final).txt"])
    )

    # Browsing and downloading take the same literal paths.
    url = f"/v1/pods/{pod['id']}/snapshots/{snap}"
    listed = await client.get(f"{url}/files", params={"path": "/files/d"}, headers=tenant.headers)
    assert {e["name"] for e in listed.json()["items"]} == {"*", "a", "b?", "bc", "back\\slash"}
    for rel in (" edge ", "d/*", "reports/Q1 [draft] (final).txt", "**/deep.txt"):
        r = await client.get(
            f"{url}/download", params={"path": f"/files/{rel}"}, headers=tenant.headers
        )
        assert r.status_code == 200, (rel, r.text)
        assert r.content == ODD[rel], rel
