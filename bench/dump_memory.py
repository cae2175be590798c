"""Worker memory while dumping a large PostgreSQL database, against a bare pg_dump.

    .venv/bin/python -m bench.dump_memory [--gb 2] [--server postgresql://postgres@127.0.0.1:5432]

Creates a throwaway database of about ``--gb`` GiB of dump text (wide rows from
generate_series), runs a bare ``pg_dump -f file`` and then our ``dump()`` in a separate
Python process (a worker stand-in) whose RSS is sampled from /proc while it runs; prints
size, seconds, MB/s, the worker's peak RSS (target <= 200 MB, flat in the dump size), the
pg_dump child's, and the ratio of our time to bare pg_dump. The database is dropped after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg

MB = 1024 * 1024
ROW_BYTES = 590  # dump text per generated row, measured: id, 512+32 chars, numeric, timestamptz
TARGET_RSS_MB = 200


async def create_database(server: str, name: str, gib: float) -> int:
    rows = int(gib * 1024 * MB / ROW_BYTES)
    admin = await asyncpg.connect(f"{server}/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    conn = await asyncpg.connect(f"{server}/{name}")
    try:
        await conn.execute(
            "CREATE UNLOGGED TABLE wide (id bigint, a text, b text, n numeric, t timestamptz)"
        )
        step = 500_000
        for start in range(1, rows + 1, step):
            await conn.execute(
                "INSERT INTO wide SELECT g, repeat(md5(g::text), 16), md5((g * 7)::text), "
                "g * 1.5, timestamptz '2024-01-01' + g * interval '1 second' "
                "FROM generate_series($1::bigint, $2::bigint) g",
                start,
                min(start + step - 1, rows),
            )
        await conn.execute(
            "CREATE TABLE small (id int PRIMARY KEY, s text); "
            "INSERT INTO small SELECT g, 'row ' || g FROM generate_series(1, 1000) g"
        )
    finally:
        await conn.close()
    return rows


async def drop_database(server: str, name: str) -> None:
    admin = await asyncpg.connect(f"{server}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def rss_kb(pid: int, field: str = "VmRSS") -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def run_sampled(argv: list[str]) -> tuple[subprocess.CompletedProcess[str], list[int], float]:
    """Run argv; sample its RSS (kB) every 0.1 s; (result, samples, seconds)."""
    samples: list[int] = []
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def sample() -> None:
        while proc.poll() is None:
            value = rss_kb(proc.pid)
            if value:
                samples.append(value)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    sampler.join()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err), samples, seconds


def child(args: argparse.Namespace) -> None:
    """The worker stand-in: run dump() once, report its own and pg_dump's peak RSS."""
    from app.integrations.dumps import DbEndpoint, dump
    from app.kit.netpolicy import Policy

    user_host = args.server.split("://", 1)[1]
    user, host_port = user_host.split("@", 1)
    host, _, port = host_port.partition(":")
    endpoint = DbEndpoint("postgres", host, int(port or 5432), args.database, user)
    policy = Policy.from_settings(["0.0.0.0/0", "::/0"])
    started = time.perf_counter()
    result = asyncio.run(dump(endpoint, policy, Path(args.dest)))
    seconds = time.perf_counter() - started
    report = {
        "seconds": seconds,
        "bytes": result.bytes,
        "tables": result.tables,
        "self_peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "pg_dump_peak_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    }
    print(json.dumps(report))


def line(label: str, seconds: float, nbytes: int, extra: str = "") -> None:
    rate = nbytes / MB / seconds if seconds else float("inf")
    print(f"  {label:<34} {seconds:8.1f} s {rate:8.1f} MB/s  {extra}".rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=2.0, help="approximate dump size in GiB")
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    parser.add_argument("--dest", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    name = f"podbackup_bench_{secrets.token_hex(4)}"
    work = Path(tempfile.mkdtemp(prefix="podbackup-bench-"))
    from app.integrations.dumps import installed_pg_clients

    # the binary dump() picks on this machine (the newest versioned one)
    installed = installed_pg_clients("pg_dump")
    pg_dump = str(installed[max(installed)]) if installed else shutil.which("pg_dump") or "pg_dump"
    try:
        print(f"creating {name} (~{args.gb:g} GiB of dump text) ...", flush=True)
        t0 = time.perf_counter()
        rows = asyncio.run(create_database(args.server, name, args.gb))
        print(f"  {rows:,} rows in {time.perf_counter() - t0:.0f} s", flush=True)

        bare_file = work / "bare.sql"
        bare_argv = [pg_dump, "--no-owner", "--no-privileges", f"--file={bare_file}",
                     f"--dbname={args.server}/{name}"]  # fmt: skip

        def run_bare() -> float:
            bare, _, seconds = run_sampled(bare_argv)
            if bare.returncode != 0:
                raise SystemExit(f"bare pg_dump failed: {bare.stderr}")
            return seconds

        # bare before and after ours (the faster of the two), so cache warm-up and
        # write-back favour neither side
        bare_times = [run_bare()]
        bare_bytes = bare_file.stat().st_size
        bare_peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        bare_file.unlink()

        ours, samples, ours_s = run_sampled(
            [sys.executable, "-m", "bench.dump_memory", "--child", "--server", args.server,
             "--database", name, "--dest", str(work / "ours.sql")]
        )  # fmt: skip
        if ours.returncode != 0:
            raise SystemExit(f"dump() failed: {ours.stderr}")
        report: dict[str, Any] = json.loads(ours.stdout.strip().splitlines()[-1])
        (work / "ours.sql").unlink(missing_ok=True)
        bare_times.append(run_bare())
    finally:
        asyncio.run(drop_database(args.server, name))
        shutil.rmtree(work, ignore_errors=True)

    size = report["bytes"]
    peak_mb = report["self_peak_kb"] / 1024
    print(f"\ndump of {size / MB:,.0f} MB ({report['tables']['public.wide']:,} rows counted)")
    bare_s = min(bare_times)
    line(
        "bare pg_dump -f file (best of 2)",
        bare_s,
        bare_bytes,
        f"peak RSS {bare_peak_kb / 1024:.0f} MB",
    )
    line("dump() in a worker process", report["seconds"], size)
    print(f"  {'worker process, incl. start-up':<34} {ours_s:8.1f} s")
    deciles = (
        [samples[int(i * (len(samples) - 1) / 9)] // 1024 for i in range(10)] if samples else []
    )
    print(f"  worker RSS over time (MB, deciles): {deciles}")
    verdict = "OK" if peak_mb <= TARGET_RSS_MB else "OVER TARGET"
    print(f"  worker peak RSS: {peak_mb:.0f} MB (target <= {TARGET_RSS_MB} MB): {verdict}")
    print(f"  pg_dump child peak RSS: {report['pg_dump_peak_kb'] / 1024:.0f} MB")
    print(f"  ratio dump() / bare pg_dump: {report['seconds'] / bare_s:.2f}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
