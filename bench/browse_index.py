"""Browsing a snapshot of 100,000 files: folder listings served from the index in
PostgreSQL (the API) against `restic ls` of the same folder.

    .venv/bin/python -m bench.browse_index [--requests 200] [--restic-runs 5]

A local pod with 90 folders of 1,000 files and one folder of 10,000 (100,000 files) is
backed up by a real worker, which then indexes the snapshot (`restic ls --json` → COPY;
its time is printed). Then, one request at a time over HTTP (uvicorn in this process),
p50/p95 of: the top folder (91 entries), a 1,000-file folder (first page of 200), the
10,000-file folder (first page, and page 40 of 200 = offset 7,800). Target (issue 5):
p95 < 50 ms. `restic ls <snapshot> <folder>` is timed for the same folders.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from bench.harness import PlainRestic, durations, running_service, throwaway_database

FOLDERS, PER_FOLDER, BIG = 90, 1000, 10_000


def build(root: Path) -> int:
    for d in range(FOLDERS):
        folder = root / f"d{d:03d}"
        folder.mkdir(parents=True)
        for f in range(PER_FOLDER):
            (folder / f"file-{f:05d}.txt").write_bytes(b"%d\n" % f)
    big = root / "big"
    big.mkdir()
    for f in range(BIG):
        (big / f"item-{f:06d}.json").write_bytes(b"{}\n")
    return FOLDERS * PER_FOLDER + BIG


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(args: argparse.Namespace, database_url: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="podbackup-bench-"))
    src = work / "pod"
    print("building 100,000 files …")
    count = build(src)
    async with running_service(database_url, work) as svc:
        pod = await svc.local_pod(src, work / "repo")
        job = await svc.run_job("POST", f"/v1/pods/{pod}/backups")
        snap = job["result"]["snapshot_id"]
        print(f"backup job: {durations(job)[0]:.1f} s for {count} files")
        await svc.idle(pod)
        jobs = (await svc.http.get(f"/v1/pods/{pod}/jobs")).json()["items"]
        index = next(j for j in jobs if j["kind"] == "index")
        print(
            f"index job: {durations(index)[1]:.1f} s for {index['result']['files']} nodes "
            "(restic ls --json + COPY)"
        )
        kit = (await svc.http.get(f"/v1/pods/{pod}/restore-kit")).json()
        plain = PlainRestic(work / "repo", work / "plain-cache", password=kit["password"])

        cases = [
            ("/files (91 entries)", "/files", {}),
            ("/files/d042 (1,000; page 1 of 200)", "/files/d042", {"limit": 200}),
            ("/files/big (10,000; page 1 of 200)", "/files/big", {"limit": 200}),
            ("/files/big (10,000; page 40 of 200)", "/files/big", {"limit": 200, "page": 40}),
        ]
        url = f"/v1/pods/{pod}/snapshots/{snap}/files"
        print(f"{'folder':<40} {'API p50':>9} {'API p95':>9} {'restic ls':>10}")
        for label, folder, extra in cases:
            times = []
            for _ in range(10):  # warm-up: connections, plans, caches
                (await svc.http.get(url, params={"path": folder, **extra})).raise_for_status()
            for _ in range(args.requests):
                started = time.perf_counter()
                r = await svc.http.get(url, params={"path": folder, **extra})
                times.append(time.perf_counter() - started)
                r.raise_for_status()
            restic = []
            for _ in range(args.restic_runs):
                seconds, _ = plain.run("ls", snap, folder)
                restic.append(seconds)
            print(
                f"{label:<40} {pct(times, 0.5) * 1000:7.1f}ms {pct(times, 0.95) * 1000:7.1f}ms "
                f"{statistics.median(restic) * 1000:8.0f}ms"
            )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--restic-runs", type=int, default=5)
    arguments = parser.parse_args()
    with throwaway_database() as url:
        asyncio.run(main(arguments, url))
