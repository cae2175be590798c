"""Snapshot diffs on a real restic repository: each kind of change, the same answer from
the browse index and from `restic diff`, an unchanged snapshot, the database dump's
change, pagination and filters, and the errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from tests.backups.helpers import database_spec
from tests.conftest import Tenant
from tests.fixtures.databases import DbEndpoint
from tests.fixtures.worker import WorkerProcess
from tests.history.helpers import BASE_TIME, local_pod, snapshot, write

T0, T1 = BASE_TIME, BASE_TIME + 5000


def first_tree(root: Path) -> None:
    write(root, "keep.txt", b"kept as is\n", T0)
    write(root, "gone.txt", b"to be removed\n", T0 + 1)
    write(root, "grow.txt", b"short\n", T0 + 2)
    write(root, "same-size.txt", b"AAAA-1111\n", T0 + 3)
    write(root, "chmod.txt", b"mode changes\n", T0 + 4)
    write(root, "touched.txt", b"mtime changes\n", T0 + 5)
    write(root, "docs/readme.md", b"# docs\n", T0 + 6)
    write(root, "typed", b"a file, later a folder\n", T0 + 7)
    os.symlink("keep.txt", root / "link")


def second_tree(root: Path) -> None:
    (root / "gone.txt").unlink()
    write(root, "grow.txt", b"a longer content\n", T1)
    # The same size, a new content: only a content id tells it from a touch.
    write(root, "same-size.txt", b"BBBB-2222\n", T1 + 1)
    (root / "chmod.txt").chmod(0o600)
    os.utime(root / "touched.txt", (T1 + 2, T1 + 2))
    write(root, "new.txt", b"brand new\n", T1 + 3)
    write(root, "newdir/inside.txt", b"inside\n", T1 + 4)
    (root / "typed").unlink()
    write(root, "typed/child.txt", b"child\n", T1 + 5)


EXPECTED = {
    ("/files/gone.txt", "removed", "file"),
    ("/files/grow.txt", "modified", "file"),
    ("/files/same-size.txt", "modified", "file"),
    ("/files/chmod.txt", "metadata", "file"),
    ("/files/touched.txt", "metadata", "file"),
    ("/files/new.txt", "added", "file"),
    ("/files/newdir", "added", "dir"),
    ("/files/newdir/inside.txt", "added", "file"),
    ("/files/typed", "type", "dir"),
    # restic names only the entry whose type changed; what the new folder holds is added
    ("/files/typed/child.txt", "added", "file"),
}


def by_path(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {i["path"]: i for i in answer["items"]}


async def seed(db: DbEndpoint, rows: int, extra_table: bool = False) -> None:
    conn = await asyncpg.connect(
        host=db.host, port=db.port, user=db.username, password=db.password, database=db.name
    )
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS pages (id int primary key, title text)")
        await conn.execute("DELETE FROM pages")
        await conn.execute(
            "INSERT INTO pages SELECT g, 'page ' || g FROM generate_series(1, $1) g", rows
        )
        if extra_table:
            await conn.execute("CREATE TABLE tags (name text)")
            await conn.execute("INSERT INTO tags VALUES ('a'), ('b')")
    finally:
        await conn.close()


async def test_diff_kinds_index_equals_restic_unchanged_and_database(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,
    pg_pod: DbEndpoint,
) -> None:
    await seed(pg_pod, 50)
    pod = await local_pod(client, admin_token, tenant, tmp_path, database_spec(pg_pod))
    root = tmp_path / "pod"
    first_tree(root)
    s1 = await snapshot(client, tenant, pod["id"])
    base = f"/v1/pods/{pod['id']}/snapshots"

    r = await client.get(f"{base}/{s1}/diff", headers=tenant.headers)
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "NoEarlierSnapshot"
    assert "against=" in r.json()["hint"]

    second_tree(root)
    await seed(pg_pod, 70, extra_table=True)
    s2 = await snapshot(client, tenant, pod["id"])

    r = await client.get(f"{base}/{s2}/diff", params={"limit": 500}, headers=tenant.headers)
    assert r.status_code == 200, r.text
    index = r.json()
    assert index["source"] == "index"
    assert index["snapshot"]["id"] == s2
    assert index["against"]["id"] == s1
    files = {(i["path"], i["change"], i["type"]) for i in index["items"]}
    dump = next(p for p, _, _ in files if p.startswith("/database/"))
    assert files - {(dump, "modified", "file")} == EXPECTED
    items = by_path(index)
    assert (
        items["/files/same-size.txt"]["size_before"] == items["/files/same-size.txt"]["size_after"]
    )
    assert (items["/files/chmod.txt"]["mode_before"], items["/files/chmod.txt"]["mode_after"]) == (
        0o644,
        0o600,
    )
    assert items["/files/gone.txt"]["size_after"] is None
    assert items["/files/gone.txt"]["size_before"] == len(b"to be removed\n")
    totals = index["totals"]
    assert totals["added"] == {
        "files": 3,
        "bytes": len(b"brand new\n") + len(b"inside\n") + len(b"child\n"),
        "entries": 4,
    }
    assert totals["removed"]["files"] == 1
    assert totals["modified"]["files"] == 3  # two files and the dump
    assert totals["metadata"]["files"] == 2
    assert totals["type"]["entries"] == 1
    assert index["total"] == len(EXPECTED) + 1
    paths = [i["path"] for i in index["items"]]
    assert paths == sorted(paths)

    # The same pair from restic itself: the same items.
    r = await client.get(
        f"{base}/{s2}/diff",
        params={"limit": 500, "source": "restic", "against": s1[:8]},
        headers=tenant.headers,
    )
    assert r.status_code == 200, r.text
    restic = r.json()
    assert restic["source"] == "restic"
    assert restic["items"] == index["items"]
    assert restic["totals"] == index["totals"]

    # The database: the dump file's change and the row counts each backup recorded.
    [db] = index["database"]
    assert db["file"] == f"/database/{pg_pod.name}.sql"
    assert db["change"] == "modified"
    assert db["sha256_before"] != db["sha256_after"]
    tables = {t["table"].split(".")[-1]: t for t in db["tables"]}
    assert (tables["pages"]["rows_before"], tables["pages"]["rows_after"]) == (50, 70)
    assert tables["pages"]["change"] == "changed"
    assert tables["tags"]["change"] == "added"
    assert tables["tags"]["rows_before"] is None

    # Filter and pages.
    r = await client.get(
        f"{base}/{s2}/diff", params={"change": "modified", "limit": 2}, headers=tenant.headers
    )
    page1 = r.json()
    assert page1["total"] == 3
    assert page1["pagination"] == {"total_count": 3, "max_page": 2}
    r = await client.get(
        f"{base}/{s2}/diff",
        params={"change": "modified", "limit": 2, "page": 2},
        headers=tenant.headers,
    )
    page2 = r.json()
    assert page2["offset"] == 2
    assert [i["path"] for i in page1["items"] + page2["items"]] == sorted(
        p for p, c, _ in files if c == "modified"
    )

    # Unchanged files and database: an empty diff (restic 0.17+ copies the index).
    s3 = await snapshot(client, tenant, pod["id"])
    r = await client.get(f"{base}/{s3}/diff", headers=tenant.headers)
    assert r.status_code == 200, r.text
    same = r.json()
    assert same["source"] == "index"
    assert same["against"]["id"] == s2
    assert [i for i in same["items"] if not i["path"].startswith("/database")] == []
    r = await client.get(f"{base}/{s3}/diff", params={"source": "restic"}, headers=tenant.headers)
    assert [i for i in r.json()["items"] if not i["path"].startswith("/database")] == []

    # Backwards (against a later one) swaps added and removed.
    r = await client.get(f"{base}/{s1}/diff", params={"against": s2}, headers=tenant.headers)
    back = by_path(r.json())
    assert back["/files/gone.txt"]["change"] == "added"
    assert back["/files/new.txt"]["change"] == "removed"


async def test_diff_errors(
    client: httpx.AsyncClient,
    admin_token: str,
    tenant: Tenant,
    other_tenant: Tenant,
    tmp_path: Path,
    worker: WorkerProcess,
) -> None:
    pod = await local_pod(client, admin_token, tenant, tmp_path)
    write(tmp_path / "pod", "a.txt", b"a\n", T0)
    s1 = await snapshot(client, tenant, pod["id"])
    write(tmp_path / "pod", "a.txt", b"b\n", T1)
    s2 = await snapshot(client, tenant, pod["id"])
    base = f"/v1/pods/{pod['id']}/snapshots"

    r = await client.get(
        f"{base}/{s2}/diff", params={"against": "deadbeef"}, headers=tenant.headers
    )
    assert r.status_code == 404
    assert r.json()["hint"]
    r = await client.get(f"{base}/nothex!/diff", headers=tenant.headers)
    assert r.status_code == 422
    r = await client.get(f"{base}/{s2}/diff", params={"change": "nope"}, headers=tenant.headers)
    assert r.status_code == 422
    r = await client.get(f"{base}/{s2}/diff", headers=other_tenant.headers)
    assert r.status_code == 404
    assert r.json()["detail"] == "Pod not found"
    r = await client.get(f"{base}/{s2}/diff", params={"plan": "platform"}, headers=tenant.headers)
    assert r.status_code == 404
    r = await client.get(f"{base}/{s2}/diff", params={"against": s1}, headers=tenant.headers)
    assert r.status_code == 200
    assert [(i["path"], i["change"]) for i in r.json()["items"]] == [("/files/a.txt", "modified")]
