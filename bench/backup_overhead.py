"""Orchestration overhead: a backup JOB of a local-source pod (API → queue → real worker
process → restic) against plain `restic backup` of the same data into the same kind of
repository (a local one, fresh for each side), first run and unchanged run.

    .venv/bin/python -m bench.backup_overhead [--mb 1024] [--rounds 2] [--workdir DIR]

Targets (issue 16): job/plain <= 1.10 on the first run (<= 1.05 at 1 GB); an unchanged
run within 0.3 s of restic's own. The first run is compared both with `restic init` +
`restic backup` (what an owner does for a new repository, and what the job does inside)
and with the backup alone. Job times come from the job row (created_at → finished_at:
queue pickup, lock, staging, restic, evidence, the finishing transaction); the phase
breakdown of each job is printed to show where the time goes.

Each round: plain restic (fresh repository: init, first, unchanged), then the job (a new
pod with a fresh repository: first, unchanged); medians over the rounds, since other work
on a small machine makes single runs noisy. Plain goes first in a round because the
job's hard-link staging changes the source files' ctime, which would make plain restic's
next unchanged run re-read everything (the job passes --ignore-ctime). Both sides read
warm data and use a fresh restic cache of their own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

from bench.common import MB, tree_totals
from bench.harness import (
    PlainRestic,
    Service,
    children,
    durations,
    running_service,
    throwaway_database,
)


def build_mixed(root: Path, total_mb: int) -> None:
    """About ``total_mb`` MiB: half in 64 MiB random files, 30 % in 1 MiB random files,
    20 % in 16 KiB files (half random, half compressible text) over 100 folders."""
    rng = Path("/dev/urandom").open("rb")
    large = max(1, total_mb // 2 // 64)
    for i in range(large):
        with (root / "media").joinpath(f"video-{i:02d}.bin").open("wb") as fh:
            for _ in range(64):
                fh.write(rng.read(MB))
    medium = total_mb * 3 // 10
    for i in range(medium):
        folder = root / "uploads" / f"{i % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"photo-{i:05d}.jpg").write_bytes(rng.read(MB))
    small = total_mb * 2 // 10 * 64
    text = b"".join(b"line %d of a log file, quite repetitive\n" % n for n in range(400))
    for i in range(small):
        folder = root / "site" / f"{i % 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        data = rng.read(16 * 1024) if i % 2 else text[: 16 * 1024]
        (folder / f"page-{i:06d}.html").write_bytes(data)
    rng.close()


def plain_backup(plain: PlainRestic, src: Path) -> tuple[float, dict[str, Any]]:
    os.sync()  # the last run's writes flushed outside the timings
    seconds, out = plain.run("backup", "--json", "--host", "plain", ".", cwd=src)
    summary = [json.loads(x) for x in out.splitlines() if '"summary"' in x][-1]
    return seconds, summary


async def job_backup(svc: Service, pod: str) -> tuple[dict[str, Any], list[tuple[float, str]]]:
    os.sync()
    job = await svc.run_job("POST", f"/v1/pods/{pod}/backups")
    phases = sorted(await svc.phases(job["id"]) + children(svc.settings, job))
    await svc.idle(pod)  # the index job that follows must not overlap the next run
    return job, phases


def show_phases(phases: list[tuple[float, str]]) -> None:
    marks = [f"{at:6.2f}s {label}" for at, label in phases]
    print("      job phases: " + " | ".join(marks))


async def main(args: argparse.Namespace, database_url: str) -> None:
    work = Path(args.workdir or tempfile.mkdtemp(prefix="podbackup-bench-"))
    src = work / "pod"
    (src / "media").mkdir(parents=True, exist_ok=True)
    print(f"building ~{args.mb} MiB in {src} …")
    build_mixed(src, args.mb)
    files, nbytes = tree_totals(src)
    print(f"data: {files} files, {nbytes / MB:.0f} MiB; {args.rounds} rounds")
    rows: list[dict[str, float]] = []

    async with running_service(database_url, work) as svc:
        for n in range(args.rounds):
            # plain restic: a fresh repository and cache, first then unchanged run
            plain = PlainRestic(work / f"plain-repo-{n}", work / f"plain-cache-{n}")
            r: dict[str, float] = {}
            r["init"], _ = plain.run("init", "--repository-version", "2")
            r["plain_first"], summary = plain_backup(plain, src)
            assert summary["files_new"] == files, summary
            r["plain_unchanged"], summary = plain_backup(plain, src)
            assert summary["files_unmodified"] == files, summary
            plain.fresh()
            # the job: a new pod with a fresh repository, first then unchanged run
            pod = await svc.local_pod(src, work / f"job-repo-{n}", name=f"bench-{n}")
            job, first_phases = await job_backup(svc, pod)
            assert job["result"]["summary"]["files_new"] == files
            r["job_first"] = durations(job)[0]
            r["pickup_first"] = r["job_first"] - durations(job)[1]
            job, same_phases = await job_backup(svc, pod)
            assert job["result"]["summary"]["files_unmodified"] == files, job["result"]
            r["job_unchanged"] = durations(job)[0]
            r["pickup_unchanged"] = r["job_unchanged"] - durations(job)[1]
            shutil.rmtree(work / f"job-repo-{n}", ignore_errors=True)
            rows.append(r)
            print(
                f"  round {n + 1}: init {r['init']:.2f} s, plain first {r['plain_first']:.2f} s, "
                f"unchanged {r['plain_unchanged']:.2f} s | job first {r['job_first']:.2f} s, "
                f"unchanged {r['job_unchanged']:.2f} s (queue pickup {r['pickup_first']:.2f} / "
                f"{r['pickup_unchanged']:.2f} s)"
            )
        print("  last job phases, first run:")
        show_phases(first_phases)
        print("  last job phases, unchanged run:")
        show_phases(same_phases)

    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    plain_first = med["init"] + med["plain_first"]
    print("results (medians)")
    print(
        f"  first run: job {med['job_first']:.2f} s vs restic init + backup {plain_first:.2f} s "
        f"→ {med['job_first'] / plain_first:.3f}; vs backup alone "
        f"{med['plain_first']:.2f} s → {med['job_first'] / med['plain_first']:.3f} "
        "(target <= 1.10; <= 1.05 at 1 GB)"
    )
    print(f"  load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    print(
        f"  unchanged: job {med['job_unchanged']:.2f} s vs restic {med['plain_unchanged']:.2f} s "
        f"→ {med['job_unchanged'] - med['plain_unchanged']:+.2f} s (target <= +0.3 s)"
    )
    if not args.keep and not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


def _fmt(values: list[float]) -> str:
    return " ".join(f"{v:6.2f}" for v in values) + " s"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=1024, help="size of the pod's data (MiB)")
    parser.add_argument("--rounds", type=int, default=3, help="first+unchanged pairs per side")
    parser.add_argument("--workdir", help="keep data here (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="do not delete the temporary folder")
    arguments = parser.parse_args()
    with throwaway_database() as url:
        asyncio.run(main(arguments, url))
