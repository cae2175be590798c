"""Snapshot list of a pod with 1,000 snapshots, served from PostgreSQL.

    .venv/bin/python -m bench.snapshot_list [--snapshots 1000] [--other-pods 99] [--requests 200]

Rows are inserted directly (realistic tags and summaries), for the measured pod and for
``--other-pods`` more pods with as many snapshots each, so the table is not tiny. Then,
one request at a time over HTTP (uvicorn in this process, no worker needed), p50/p95 of:
the first page (50), a page deep in the list, a tag filter, and one snapshot by short id.
Target (issue 5): p95 < 20 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from pathlib import Path

from sqlalchemy import text

from bench.browse_index import pct
from bench.harness import running_service, throwaway_database

INSERT = text(
    """
INSERT INTO snapshots (pod_id, plan, id, short_id, time, hostname, paths, tags, tree,
                       summary, index_status, created_at)
SELECT p.id, 'owner', s.hex, left(s.hex, 8), now() - g * interval '1 hour', p.id::text,
       ARRAY['/var/cache/podbackup/pods/' || p.id || '/owner/stage'],
       ARRAY['pod:' || p.id, 'app:bench', 'plan:owner',
             CASE WHEN g % 10 = 0 THEN 'trigger:manual' ELSE 'trigger:schedule' END,
             'job:' || gen_random_uuid()],
       s.hex,
       jsonb_build_object('files_new', g % 7, 'files_changed', g % 13,
                          'files_unmodified', 12000, 'data_added', g * 1000,
                          'total_bytes_processed', 1073741824, 'total_duration', 3.2,
                          'status', 'succeeded'),
       'ready', now()
FROM pods p, generate_series(1, :n) g,
     LATERAL (SELECT md5(p.id::text || g) || md5(g || p.id::text) AS hex) s
WHERE p.id = ANY(:pods)
"""
)


async def main(args: argparse.Namespace, database_url: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="podbackup-bench-"))
    async with running_service(database_url, work, worker=False) as svc:
        pods = [await svc.local_pod(None, work / f"repo-{i}") for i in range(1 + args.other_pods)]
        started = time.perf_counter()
        async with svc.app.state.sessionmaker() as session:
            await session.execute(INSERT, {"n": args.snapshots, "pods": pods})
            await session.execute(text("ANALYZE snapshots"))
            await session.commit()
        total = args.snapshots * len(pods)
        print(f"inserted {total} snapshot rows in {time.perf_counter() - started:.1f} s")
        pod = pods[0]
        page = (await svc.http.get(f"/v1/pods/{pod}/snapshots")).json()
        assert page["pagination"]["total_count"] == args.snapshots, page["pagination"]
        short = page["items"][0]["short_id"]
        cases = [
            ("first page (50)", f"/v1/pods/{pod}/snapshots", {}),
            ("page 15 of 50", f"/v1/pods/{pod}/snapshots", {"page": 15}),
            ("page 1 of 200", f"/v1/pods/{pod}/snapshots", {"limit": 200}),
            ("tag trigger:manual", f"/v1/pods/{pod}/snapshots", {"tag": "trigger:manual"}),
            ("one snapshot by short id", f"/v1/pods/{pod}/snapshots/{short}", {}),
        ]
        print(f"{'request':<28} {'p50':>8} {'p95':>8}")
        for label, url, params in cases:
            for _ in range(10):
                (await svc.http.get(url, params=params)).raise_for_status()
            times = []
            for _ in range(args.requests):
                t0 = time.perf_counter()
                r = await svc.http.get(url, params=params)
                times.append(time.perf_counter() - t0)
                r.raise_for_status()
            print(f"{label:<28} {pct(times, 0.5) * 1000:6.1f}ms {pct(times, 0.95) * 1000:6.1f}ms")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--snapshots", type=int, default=1000)
    parser.add_argument("--other-pods", type=int, default=99)
    parser.add_argument("--requests", type=int, default=200)
    arguments = parser.parse_args()
    with throwaway_database() as url:
        asyncio.run(main(arguments, url))
