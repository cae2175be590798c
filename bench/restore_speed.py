"""Restore speed: a restore JOB of a local-path pod (API → worker → restic restore into
scratch → files pushed into the pod's folder) against plain `restic restore` of the same
snapshot from the same repository into an empty folder.

    .venv/bin/python -m bench.restore_speed [--mb 512] [--rounds 2] [--workdir DIR]

Target (issue 5): restic's time / the job's time >= 0.9. Two cases for the job: the pod's
folder emptied (everything comes back, as after a disaster) and the pod unchanged
(nothing differs: only the comparison, which since issue 13 reads every file whose size
and mtime match and compares its bytes with the snapshot's copy). No safety backup
(measured separately: it is a backup job's cost). Dirty pages are flushed (sync) before
each timed run, so one run's writeback does not slow the next. Job times come from the
job row (created_at → finished_at); the phase breakdown shows where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from bench.backup_overhead import build_mixed, show_phases
from bench.common import MB, tree_totals
from bench.harness import PlainRestic, children, durations, running_service, throwaway_database


async def main(args: argparse.Namespace, database_url: str) -> None:
    work = Path(args.workdir or tempfile.mkdtemp(prefix="podbackup-bench-"))
    src = work / "pod"
    (src / "media").mkdir(parents=True, exist_ok=True)
    print(f"building ~{args.mb} MiB in {src} …")
    build_mixed(src, args.mb)
    files, nbytes = tree_totals(src)
    print(f"data: {files} files, {nbytes / MB:.0f} MiB")

    async with running_service(database_url, work) as svc:
        pod = await svc.local_pod(src, work / "repo")
        job = await svc.run_job("POST", f"/v1/pods/{pod}/backups")
        snap = job["result"]["snapshot_id"]
        await svc.idle(pod)
        kit = (await svc.http.get(f"/v1/pods/{pod}/restore-kit")).json()
        plain = PlainRestic(work / "repo", work / "plain-cache", password=kit["password"])

        plain_s, empty_s, same_s = [], [], []
        empty_after: list[float] = []
        same_after: list[float] = []
        for _ in range(args.rounds):
            target = work / "plain-target"
            shutil.rmtree(target, ignore_errors=True)
            os.sync()  # the last run's writes flushed outside the timings
            seconds, _ = plain.run("restore", snap, "--target", str(target))
            assert tree_totals(target / "files") == (files, nbytes)
            plain_s.append(seconds)
            shutil.rmtree(target)

            shutil.rmtree(src)
            src.mkdir()
            os.sync()
            body = {"snapshot_id": snap, "database": False, "safety_backup": False}
            job = await svc.run_job("POST", f"/v1/pods/{pod}/restores", json=body)
            assert tree_totals(src) == (files, nbytes), "the restore did not bring it all back"
            empty_s.append(durations(job)[0])
            empty_phases = sorted(await svc.phases(job["id"]) + children(svc.settings, job))
            empty_after.append(_after_restic(empty_phases))

            os.sync()
            job = await svc.run_job("POST", f"/v1/pods/{pod}/restores", json=body)
            compared = job["result"]["files"]["files_compared"]
            assert compared == files, f"compared {compared} of {files} files by content"
            same_s.append(durations(job)[0])
            same_phases = sorted(await svc.phases(job["id"]) + children(svc.settings, job))
            same_after.append(_after_restic(same_phases))

    p, e, s = (statistics.median(v) for v in (plain_s, empty_s, same_s))
    print(f"  plain restic restore              {_fmt(plain_s)}")
    print(f"  job, pod emptied                  {_fmt(empty_s)}")
    show_phases(empty_phases)
    print(f"      after restic (files into the pod) {_fmt(empty_after)}")
    print(f"  job, pod unchanged ({files} files compared by content) {_fmt(same_s)}")
    show_phases(same_phases)
    print(f"      after restic (comparing every file) {_fmt(same_after)}")
    # Plain and job alternate within a round: a round's ratio shares its moment's load.
    per_e = [a / b for a, b in zip(plain_s, empty_s, strict=True)]
    per_s = [a / b for a, b in zip(plain_s, same_s, strict=True)]
    print("results (speed ratio = restic time / job time, target >= 0.9)")
    print(
        f"  pod emptied:   medians {p / e:.3f} ({nbytes / MB / e:.0f} vs {nbytes / MB / p:.0f} "
        f"MB/s); per round {_fmt(per_e, '')} → median {statistics.median(per_e):.3f}"
    )
    print(
        f"  pod unchanged: medians {p / s:.3f}; per round {_fmt(per_s, '')} → median "
        f"{statistics.median(per_s):.3f}"
    )
    if not args.keep and not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


def _after_restic(phases: list[tuple[float, str]]) -> float:
    """Seconds from the files phase (restic's restore has ended) to the job's end."""
    marks = {label: at for at, label in phases}
    return marks.get("succeeded", 0.0) - marks.get("phase: files", 0.0)


def _fmt(values: list[float], unit: str = " s") -> str:
    return " ".join(f"{v:6.2f}" for v in values) + unit


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=512, help="size of the pod's data (MiB)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", help="keep data here (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true")
    arguments = parser.parse_args()
    with throwaway_database() as url:
        asyncio.run(main(arguments, url))
