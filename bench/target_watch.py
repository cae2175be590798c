"""Targets watched between runs: one watch pass over N pods, each with its own bucket on a
local moto server, against the plain floor (one aioboto3 client GETting each bucket's
``config``, as many at once as the watch runs).

    .venv/bin/python -m bench.target_watch [--pods 1000] [--concurrency 16]

Creates its own throwaway database (migrated with Alembic) and moto server, fills them,
times ``watch`` (claim, decrypt, probe, record), an idle pass (nothing due: what the
per-minute cron costs), and the plain GETs; then drops the database and stops moto.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import aioboto3
import boto3
from botocore.config import Config

from app.db import make_engine, make_sessionmaker
from app.kit.crypto import Keyring
from app.models import Account, BackupSettings, Pod
from app.models.encrypted import TARGET_SECRET
from app.models.shapes import S3Place
from app.watch.service import watch
from bench.harness import bench_settings, throwaway_database
from devtools.s3 import moto_argv, moto_binary, moto_env, wait_ready
from tests.fixtures.s3 import free_port

KEY, SECRET = "AKIABENCHWATCH000001", "bench-secret-not-shown"


def _fill_buckets(url: str, pods: int) -> list[str]:
    s3 = boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=KEY,
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
        config=Config(max_pool_connections=32),
    )
    names = [f"pod-watch-{i:05d}" for i in range(pods)]

    def one(name: str) -> None:
        s3.create_bucket(Bucket=name)
        s3.put_object(Bucket=name, Key="config", Body=os.urandom(155))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, names))
    return names


async def _plain(url: str, buckets: list[str], concurrency: int) -> float:
    session = aioboto3.Session(
        aws_access_key_id=KEY, aws_secret_access_key=SECRET, region_name="us-east-1"
    )
    gate = asyncio.Semaphore(concurrency)
    started = time.perf_counter()
    async with session.client(
        "s3", endpoint_url=url, config=Config(max_pool_connections=concurrency)
    ) as client:

        async def one(bucket: str) -> None:
            async with gate:
                response = await client.get_object(Bucket=bucket, Key="config")
                async with response["Body"] as body:
                    await body.read()

        await asyncio.gather(*(one(b) for b in buckets))
    return time.perf_counter() - started


async def _run(database_url: str, url: str, buckets: list[str], concurrency: int) -> None:
    with TemporaryDirectory() as tmp:
        settings = bench_settings(
            database_url, Path(tmp), target_probe_concurrency=concurrency,
            target_probe_batch_size=1000,
        )  # fmt: skip
        keyring = Keyring.from_settings(settings.secret_keys)
        engine = make_engine(settings)
        maker = make_sessionmaker(engine)
        endpoint = url.removeprefix("http://")
        async with maker() as session:
            account = Account(name="bench")
            session.add(account)
            await session.flush()
            for i, bucket in enumerate(buckets):
                pod = Pod(id=uuid.uuid4(), account_id=account.id, name=f"pod-{i}", app="a")
                session.add(pod)
                row = BackupSettings(
                    pod_id=pod.id,
                    target_kind="s3",
                    target=S3Place(
                        endpoint=endpoint,
                        scheme="http",
                        bucket=bucket,
                        access_key_id=KEY,
                        region="us-east-1",
                        signing_region="us-east-1",
                    ),
                    repo_password="v1:x:y",
                    repository_id="0" * 64,
                    schedule={"enabled": True},
                    retention={"keep_daily": 7},
                    verified_ok=True,
                )
                row.target_secret = keyring.encrypt(SECRET, TARGET_SECRET.context_of(row))
                session.add(row)
            await session.commit()
        now = datetime.now(UTC)
        started = time.perf_counter()
        result = await watch(maker, settings, keyring, now)
        ours = time.perf_counter() - started
        started = time.perf_counter()
        idle = await watch(maker, settings, keyring, now + timedelta(minutes=1))
        idle_s = time.perf_counter() - started
        await engine.dispose()
    plain = await _plain(url, buckets, concurrency)
    n = len(buckets)
    print(f"pods {n}, concurrency {concurrency}, load {os.getloadavg()[0]:.1f}")
    print(
        f"  watch pass:     {ours:6.2f} s  {n / ours:7.1f} probes/s  "
        f"(probed {result.probed}, unavailable {result.unavailable})"
    )
    print(f"  plain GETs:     {plain:6.2f} s  {n / plain:7.1f} GETs/s   one shared client")
    print(f"  ratio watch/plain: {ours / plain:.2f}")
    print(f"  idle pass (nothing due): {idle_s * 1000:.1f} ms (probed {idle.probed})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    binary = moto_binary()
    if binary is None:
        raise SystemExit("moto_server is not installed (make venv)")
    port = free_port()
    proc = subprocess.Popen(
        moto_argv(binary, port),
        env=moto_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, alive=lambda: proc.poll() is None)
        buckets = _fill_buckets(url, args.pods)
        with throwaway_database() as database_url:
            asyncio.run(_run(database_url, url, buckets, args.concurrency))
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
