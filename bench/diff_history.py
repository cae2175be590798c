"""Snapshot diff and file history of a pod with 1,000 snapshots of 100,000 files each,
served from the browse index in PostgreSQL; and plain `restic diff` for scale.

    .venv/bin/python -m bench.diff_history [--snapshots 1000] [--files 100000]
        [--requests 20] [--restic-files 100000] [--restic-runs 3]

The index rows are inserted directly in SQL in primary-key order (100 folders; each
snapshot changes the content of 1% of the files, so a file has a new version every 100
snapshots, and 1% of the files come and go every other snapshot): 1,000 x 100,000 =
100 million rows. Then, one request at a time over HTTP (uvicorn in this process, no
worker), medians of: the diff of the newest snapshot against its parent (totals and the
first page of 50), the same with a `change` filter, the diff against the oldest snapshot
(every file changed), and the history of one path over all snapshots; the SQL statements
alone are timed too.

Then a real tree of ``--restic-files`` small files is backed up twice with plain restic
(1% of the files changed in between) and `restic diff` (and `--metadata`) of the two
snapshots is timed: what the diff costs without the index, and what the index job adds
to find content ids.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.browse_index import build as build_tree
from bench.harness import PlainRestic, running_service, throwaway_database

FOLDERS = 100

SNAPSHOTS = text(
    """
INSERT INTO snapshots (pod_id, plan, id, short_id, time, hostname, paths, tags, tree, parent,
                       summary, index_status, indexed_at, file_count, created_at)
SELECT CAST(:pod AS uuid), 'owner', s.hex, left(s.hex, 8), now() - (:n - g) * interval '1 hour',
       CAST(:host AS text),
       ARRAY['/stage/files'], ARRAY['plan:owner', 'trigger:scheduled'], s.hex,
       CASE WHEN g > 1 THEN md5('s' || (g - 1)) || md5((g - 1) || 's') END,
       jsonb_build_object('status', 'succeeded'), 'ready', now(), :files, now()
FROM generate_series(1, :n) g, LATERAL (SELECT md5('s' || g) || md5(g || 's') AS hex) s
RETURNING pk, id
"""
)

# One snapshot's rows in primary-key order, as the index job's COPY of `restic ls` (a
# depth-first walk) lays a folder's entries next to each other. File j of folder d is
# number i = j * 100 + d; its version at snapshot g is (g + d) / 100, so 1% of the files
# change at each snapshot; the last 1% of each folder exist in even snapshots only.
ROWS = text(
    """
INSERT INTO snapshot_files (snapshot_pk, parent, name, type, size, mtime, mode, content_id)
SELECT * FROM (
    SELECT CAST(:pk AS bigint), '/', 'files', 'dir', 0, now(), 493, NULL
    UNION ALL
    (SELECT CAST(:pk AS bigint), '/files', 'd' || lpad(d::text, 3, '0'), 'dir', 0, now(),
            493, NULL
     FROM generate_series(0, 99) d ORDER BY d)
    UNION ALL
    (SELECT CAST(:pk AS bigint), '/files/d' || lpad(d::text, 3, '0'),
            'f' || lpad((j * 100 + d)::text, 6, '0'), 'file',
            1000 + ((j * 100 + d) * 7 + v * 13) % 5000,
            timestamp '2026-01-01' + (v * 86400 + (j * 100 + d) % 86400) * interval '1 second',
            420, left(md5((j * 100 + d) || ':' || v), 32)
     FROM generate_series(0, 99) d, generate_series(0, :per - 1) j,
          LATERAL (SELECT (CAST(:g AS int) + d) / 100 AS v) ver
     WHERE j < :per * 99 / 100 OR CAST(:g AS int) % 2 = 0
     ORDER BY d, j)
) AS rows
"""
)


def median_ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:8.1f} ms"


async def timed(fn: Any, runs: int) -> list[float]:
    await fn()  # warm
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t0)
    return times


async def fill(svc: Any, pod: str, snapshots: int, files: int) -> list[tuple[int, str]]:
    started = time.perf_counter()
    async with svc.app.state.sessionmaker() as session:
        made = (
            await session.execute(
                SNAPSHOTS, {"pod": uuid.UUID(pod), "host": pod, "n": snapshots, "files": files}
            )
        ).all()
        await session.commit()
    snaps = sorted((int(pk), str(sid)) for pk, sid in made)
    per = max(1, files // FOLDERS)
    for n, (pk, _) in enumerate(snaps, 1):
        async with svc.app.state.sessionmaker() as session:
            await session.execute(text("SET LOCAL synchronous_commit = off"))
            await session.execute(ROWS, {"pk": pk, "g": n, "per": per})
            await session.commit()
        if n % 50 == 0 or n == len(snaps):
            rate = n * files / (time.perf_counter() - started)
            print(f"  {n}/{len(snaps)} snapshots indexed ({rate / 1000:.0f}k rows/s)", flush=True)
    async with svc.app.state.sessionmaker() as session:
        await session.execute(text("ANALYZE snapshots"))
        await session.execute(text("ANALYZE snapshot_files"))
        await session.commit()
        size = await session.scalar(text("SELECT pg_total_relation_size('snapshot_files')"))
    print(
        f"inserted {snapshots} snapshots x ~{files} rows in "
        f"{time.perf_counter() - started:.0f} s (snapshot_files: {int(size or 0) / 2**30:.1f} GiB)"
    )
    return snaps


async def service_part(args: argparse.Namespace, database_url: str, work: Path) -> None:
    from app.history import repository

    async with running_service(database_url, work, worker=False) as svc:
        pod = await svc.local_pod(None, work / "repo")
        snaps = await fill(svc, pod, args.snapshots, args.files)
        newest, oldest = snaps[-1][1], snaps[0][1]
        path = f"/files/d042/f{(args.files // 200) * 100 + 42:06d}"
        base = f"/v1/pods/{pod}"

        async def get(url: str, **params: Any) -> dict[str, Any]:
            r = await svc.http.get(url, params=params)
            r.raise_for_status()
            body: dict[str, Any] = r.json()
            return body

        diff = await get(f"{base}/snapshots/{newest}/diff")
        far = await get(f"{base}/snapshots/{newest}/diff", against=oldest)
        hist = await get(f"{base}/files/history", path=path)
        assert diff["source"] == "index", diff["source"]
        print(
            f"newest vs parent: {diff['total']} changes "
            f"({ {k: v['entries'] for k, v in diff['totals'].items()} }); "
            f"vs oldest: {far['total']}; history of {path}: {len(hist['versions'])} versions "
            f"over {hist['snapshots_scanned']} snapshots"
        )
        cases = [
            ("diff vs parent: totals + page 1 (50)", f"{base}/snapshots/{newest}/diff", {}),
            (
                "diff vs parent, change=modified",
                f"{base}/snapshots/{newest}/diff",
                {"change": "modified"},
            ),
            (
                "diff vs parent, page 10 of 50",
                f"{base}/snapshots/{newest}/diff",
                {"page": 10},
            ),
            (
                "diff vs oldest (all changed), page 1",
                f"{base}/snapshots/{newest}/diff",
                {"against": oldest},
            ),
            ("history of one path (1,000 snapshots)", f"{base}/files/history", {"path": path}),
        ]
        print(f"{'HTTP request':<42} {'median':>11}")
        for label, url, params in cases:
            runs = args.requests * (5 if "history" in label else 1)
            times = await timed(lambda u=url, p=params: get(u, **p), runs)
            print(f"{label:<42} {median_ms(times)}  (n={runs})")

        pks = {sid: pk for pk, sid in snaps}
        parent_pk, newest_pk = snaps[-2][0], pks[newest]
        parent_dir, name = path.rsplit("/", 1)
        async with svc.app.state.sessionmaker() as session:

            async def first_page() -> None:
                await repository.diff(session, newest_pk, parent_pk, None, 50, 0)

            async def far_page() -> None:
                await repository.diff(session, newest_pk, snaps[0][0], None, 50, 0)

            async def history() -> None:
                await repository.history(session, uuid.UUID(pod), "owner", parent_dir, name)

            print(f"{'SQL statement alone':<42} {'median':>11}")
            for label, fn, runs in (
                ("diff vs parent: totals + page 1", first_page, args.requests),
                ("diff vs oldest: totals + page 1", far_page, args.requests),
                ("history rows (1,000 PK lookups)", history, args.requests * 5),
            ):
                print(f"{label:<42} {median_ms(await timed(fn, runs))}  (n={runs})")


def restic_part(args: argparse.Namespace, work: Path) -> None:
    tree = work / "tree"
    started = time.perf_counter()
    folders, per = 90, 1000
    if args.restic_files != 100_000:
        folders = max(1, args.restic_files // 1000)
        for d in range(folders):
            (tree / f"d{d:03d}").mkdir(parents=True)
            for f in range(per):
                (tree / f"d{d:03d}" / f"file-{f:05d}.txt").write_bytes(b"%d\n" % f)
        count = folders * per
    else:
        count = build_tree(tree)
    print(f"\nrestic: a tree of {count} small files built in {time.perf_counter() - started:.0f} s")
    plain = PlainRestic(work / "plain-repo", work / "plain-cache")
    plain.run("init")
    t1, _ = plain.run("backup", "--json", "-q", ".", cwd=tree)
    changed = 0
    for d in range(folders):
        for f in range(0, per, 100):  # 1% of the files: a new content
            (tree / f"d{d:03d}" / f"file-{f:05d}.txt").write_bytes(b"changed %d\n" % f)
            changed += 1
    t2, _ = plain.run("backup", "--json", "-q", ".", cwd=tree)
    print(f"restic backup: first {t1:.1f} s, second ({changed} files changed) {t2:.1f} s")
    _, listed = plain.run("snapshots", "--json")
    ids = [s["id"] for s in json.loads(listed)]
    for flags in ((), ("--metadata",)):
        times = [plain.run("diff", "--json", *flags, *ids)[0] for _ in range(args.restic_runs)]
        label = "restic diff " + " ".join(flags)
        print(
            f"{label:<42} {statistics.median(times):8.2f} s  "
            f"({', '.join(f'{t:.2f}' for t in times)})"
        )


async def main(args: argparse.Namespace, database_url: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="podbackup-bench-"))
    try:
        if args.snapshots:
            await service_part(args, database_url, work)
        if args.restic_files:
            restic_part(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--snapshots", type=int, default=1000)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--restic-files", type=int, default=100_000)
    parser.add_argument("--restic-runs", type=int, default=3)
    arguments = parser.parse_args()
    with throwaway_database() as url:
        asyncio.run(main(arguments, url))
