"""Load: the API under many clients, and many pods backed up at once.

    .venv/bin/python -m bench.load [--quick] [--clients 200] [--seconds 60] [--api-workers 2]
                                   [--pods 40] [--workers 2] [--part api|backups|all]
                                   [--read-cache-seconds N]

1. API: ``podbackup api`` (uvicorn, ``--api-workers`` processes) over a throwaway database
   seeded with pods, jobs and snapshots; ``--clients`` keep-alive HTTP/1.1 connections for
   ``--seconds`` on the status, job and snapshot-list endpoints (an account token, random
   objects). Then, in the same run and the same way, a bare FastAPI app returning the
   same payloads from memory. Reports req/s, p50/p99 and errors of both and the ratio
   (target: >= 0.5). Load comes from ``wrk`` when installed (``apt install wrk``), else
   from httpx clients in this process (which then caps both sides alike).
2. Backups: ``--pods`` local pods (small files, local repositories) triggered at once
   across ``--workers`` worker processes: every job must succeed, each pod must end with
   exactly one snapshot, and the service's PostgreSQL connections (sampled all along)
   must stay within (API processes + workers) x (pool size + max overflow).

Bounded: everything stops by itself; ``--quick`` is a ~10 s API run and 12 pods.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.harness import bench_settings, throwaway_database
from bench.load_fleet import backups_part
from bench.load_setup import api_server, bare_server, seed, store_payloads


@dataclass
class Figures:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


WRK_SCRIPT = """
local paths = {%s}
local header = {%s}
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", paths[math.random(#paths)], header)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '@@{"requests": %%d, "us": %%d, "errors": %%d, "status": %%d, "p50": %%d, "p99": %%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_load(
    url: str, paths: list[str], headers: dict[str, str], clients: int, seconds: int, workdir: Path
) -> Figures:
    lua = workdir / f"load-{secrets.token_hex(3)}.lua"
    lua.write_text(
        WRK_SCRIPT
        % (
            ", ".join(json.dumps(p) for p in paths),
            ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()),
        )
    )
    threads = max(1, min(4, os.cpu_count() or 1))  # wrk threads: one per core at most
    done = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{clients}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(lua),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("@@")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {done.stdout}\n{done.stderr}")
    out = json.loads(line[2:])
    return Figures(
        out["requests"],
        out["us"] / 1e6,
        out["errors"] + out["status"],
        out["p50"] / 1000,
        out["p99"] / 1000,
    )


async def _httpx_load(
    url: str, paths: list[str], headers: dict[str, str], clients: int, seconds: int
) -> Figures:
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=10) as c:

        async def one() -> None:
            nonlocal errors
            while time.monotonic() < stop:
                t = time.perf_counter()
                try:
                    r = await c.get(random.choice(paths))
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - t)
                errors += not ok

        started = time.monotonic()
        await asyncio.gather(*(one() for _ in range(clients)))
        elapsed = time.monotonic() - started
    latencies.sort()

    def pick(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    return Figures(len(latencies), elapsed, errors, pick(0.5), pick(0.99))


def load(
    url: str,
    paths: list[str],
    headers: dict[str, str],
    clients: int,
    seconds: int,
    workdir: Path,
    tool: str,
) -> Figures:
    if tool == "wrk":
        return wrk_load(url, paths, headers, clients, seconds, workdir)
    return asyncio.run(_httpx_load(url, paths, headers, clients, seconds))


def show(label: str, f: Figures) -> None:
    print(
        f"  {label:<34} {f.rps:9.0f} req/s   p50 {f.p50_ms:7.1f} ms   p99 {f.p99_ms:7.1f} ms"
        f"   {f.requests} requests, {f.errors} errors"
    )


def api_part(args: argparse.Namespace, database_url: str, workdir: Path, tool: str) -> bool:
    extra = (
        {} if args.read_cache_seconds is None else {"read_cache_seconds": args.read_cache_seconds}
    )
    settings = bench_settings(database_url, workdir, log_level="WARNING", **extra)
    seeded = asyncio.run(seed(settings, args.seed_pods, args.per_pod))
    headers = {"Authorization": f"Bearer {seeded.token}"}
    print(
        f"API: {args.seed_pods} pods x {args.per_pod} jobs and snapshots; {args.clients} "
        f"clients, {args.seconds} s each side, {args.api_workers} uvicorn worker(s), {tool}"
    )
    with api_server(settings, workdir, args.api_workers) as api:
        # The bare app serves exactly what the API answers, path for path.
        payloads = {}
        with httpx.Client(base_url=api.url, headers=headers) as http:
            for p in seeded.paths:  # also warms the pools and caches
                r = http.get(p)
                r.raise_for_status()
                payloads[p.split("?")[0]] = r.text
        real = load(api.url, seeded.paths, headers, args.clients, args.seconds, workdir, tool)
    payload_file = workdir / "payloads.json"
    payload_file.write_text(json.dumps(payloads))
    asyncio.run(store_payloads(database_url, payloads))
    bare: dict[str, Figures] = {}
    with bare_server(payload_file, database_url, workdir, args.api_workers) as server:
        for side in ("mem", "db"):
            paths = [f"/{side}{p.split('?')[0]}" for p in seeded.paths]
            httpx.get(server.url + paths[0]).raise_for_status()
            bare[side] = load(server.url, paths, {}, args.clients, args.seconds, workdir, tool)
    cache = settings.read_cache_seconds
    show("podbackup (auth, read cache)" if cache else "podbackup (auth + PostgreSQL)", real)
    show("bare FastAPI, payloads from memory", bare["mem"])
    show("bare FastAPI, one query per request", bare["db"])
    ratio = real.rps / bare["mem"].rps if bare["mem"].rps else 0.0
    floor = real.rps / bare["db"].rps if bare["db"].rps else 0.0
    print(
        f"  ratio {ratio:.2f} to the in-memory bare app (target >= 0.5); {floor:.2f} to the "
        f"one-query bare app; errors {real.errors} (target 0)"
    )
    errors = real.errors + bare["mem"].errors + bare["db"].errors
    return errors == 0 and ratio >= 0.5


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="~10 s API run, 12 pods")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--api-workers", type=int, default=2)
    parser.add_argument("--seed-pods", type=int, default=200)
    parser.add_argument("--per-pod", type=int, default=50)
    parser.add_argument("--pods", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--part", choices=["api", "backups", "all"], default="all")
    parser.add_argument("--tool", choices=["wrk", "httpx"], default=None)
    parser.add_argument(
        "--read-cache-seconds",
        type=float,
        default=None,
        help="the API's PODBACKUP_READ_CACHE_SECONDS (0: every poll reads PostgreSQL)",
    )
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.pods = 10, 12
    tool = args.tool or ("wrk" if shutil.which("wrk") else "httpx")
    ok = True
    with tempfile.TemporaryDirectory(prefix="podbackup-load-") as tmp:
        workdir = Path(tmp)
        for part in ("api", "backups"):
            if args.part not in (part, "all"):
                continue
            (workdir / part).mkdir()
            with throwaway_database() as url:
                if part == "api":
                    ok &= api_part(args, url, workdir / part, tool)
                else:
                    ok &= backups_part(args, url, workdir / part)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
