"""check, forget and prune wait for a reader's restic lock instead of failing the job.

restic 0.14 fails at once with "repository is already locked" when any other process holds
a lock; a restore, an export or the index built after each backup read beside a check. The
reader here is a real `restic dump` kept blocked on a full stdout pipe: it holds its
(non-exclusive) lock until the test reads the pipe.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.integrations.restic import Restic
from app.integrations.restic.errors import ResticError
from app.integrations.restic.repository import Repository

PASSWORD = "lock-test-password"


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    repository = Repository(url=str(tmp_path / "repo"), password=PASSWORD)
    env = {**os.environ, **repository.child_env()}
    subprocess.run(["restic", "init"], env=env, check=True, capture_output=True)
    data = tmp_path / "data"
    data.mkdir()
    (data / "big.bin").write_bytes(os.urandom(4 * 1024 * 1024))  # far beyond a pipe buffer
    subprocess.run(
        ["restic", "backup", "--host", "h", "."],
        env=env,
        cwd=data,
        check=True,
        capture_output=True,
    )
    return repository


@pytest.fixture
def reader(repo: Repository) -> Iterator[subprocess.Popen[bytes]]:
    """A `restic dump` holding its lock: blocked writing to a pipe nobody reads yet."""
    env = {**os.environ, **repo.child_env()}
    proc = subprocess.Popen(
        ["restic", "dump", "--no-cache", "latest", "/big.bin"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    proc.stdout.read(1)  # it has the lock and is writing
    yield proc
    proc.kill()
    proc.wait()


def drain(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    proc.stdout.read()
    proc.wait()


async def test_check_waits_for_a_readers_lock_and_then_runs(
    repo: Repository, reader: subprocess.Popen[bytes]
) -> None:
    restic = await Restic.detect("restic", lock_wait_seconds=60)
    check = asyncio.create_task(restic.check(repo))
    await asyncio.sleep(2.5)
    assert not check.done()  # still waiting for the reader, not failed
    await asyncio.to_thread(drain, reader)
    outcome = await asyncio.wait_for(check, timeout=60)
    assert outcome.ok, outcome.errors


async def test_without_a_wait_the_lock_fails_fast_and_is_named(
    repo: Repository, reader: subprocess.Popen[bytes]
) -> None:
    restic = await Restic.detect("restic", lock_wait_seconds=0)
    with pytest.raises(ResticError) as err:
        await restic.check(repo)
    assert err.value.code == "repository_locked"
    assert err.value.retryable


async def test_forget_and_prune_wait_too(repo: Repository, reader: subprocess.Popen[bytes]) -> None:
    restic = await Restic.detect("restic", lock_wait_seconds=60)
    forget = asyncio.create_task(restic.forget(repo, {"keep_last": 1}))
    await asyncio.sleep(2.5)
    assert not forget.done()
    await asyncio.to_thread(drain, reader)
    kept = await asyncio.wait_for(forget, timeout=60)
    assert kept
    assert kept[0]["keep"]
    await restic.prune(repo)


async def test_a_canceled_wait_stops_at_once(
    repo: Repository, reader: subprocess.Popen[bytes]
) -> None:
    restic = await Restic.detect("restic", lock_wait_seconds=600)
    cancel = asyncio.Event()
    check = asyncio.create_task(restic.check(repo, cancel=cancel))
    await asyncio.sleep(1.5)
    cancel.set()
    with pytest.raises(ResticError) as err:
        await asyncio.wait_for(check, timeout=20)
    assert err.value.code == "interrupted"


def dead_restics_lock(repo: Repository, data: Path, *command: str) -> str:
    """A `restic backup` (or ``command``) killed mid-run, as a killed worker's child is:
    its lock stays in the repository. Returns the lock's id."""
    env = {**os.environ, **repo.child_env()}
    locks = Path(repo.url) / "locks"
    (data / "more.bin").write_bytes(os.urandom(64 * 1024 * 1024))
    proc = subprocess.Popen(
        ["restic", "--no-cache", *(command or ("backup", "--host", "h", "."))],
        env=env,
        cwd=data,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not [p for p in locks.iterdir() if "-tmp-" not in p.name]:  # written whole
            assert proc.poll() is None, "restic ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        proc.kill()
        proc.wait()  # reaped: the pid is gone, as restic's stale rule asks
    (lock,) = [p for p in locks.iterdir() if "-tmp-" not in p.name]
    return lock.name


async def test_a_killed_processs_lock_is_removed_before_check_and_prune(
    repo: Repository, tmp_path: Path
) -> None:
    lock = dead_restics_lock(repo, tmp_path / "data")
    restic = await Restic.detect("restic", lock_wait_seconds=0)  # no waiting it out
    outcome = await restic.check(repo)
    assert outcome.ok, outcome.errors
    assert not (Path(repo.url) / "locks" / lock).exists()

    dead_restics_lock(repo, tmp_path / "data")
    kept = await restic.forget(repo, {"keep_last": 1})
    assert kept
    dead_restics_lock(repo, tmp_path / "data")
    await restic.prune(repo)
    assert not list((Path(repo.url) / "locks").iterdir())


async def test_a_live_readers_lock_is_never_removed(
    repo: Repository, reader: subprocess.Popen[bytes]
) -> None:
    """Only stale locks go (never `unlock --remove-all`): a running reader keeps its lock
    and the exclusive command waits for it (here: no wait, so it fails as locked)."""
    restic = await Restic.detect("restic", lock_wait_seconds=0)
    with pytest.raises(ResticError) as err:
        await restic.prune(repo)
    assert err.value.code == "repository_locked"
    assert len(list((Path(repo.url) / "locks").iterdir())) == 1
    assert reader.poll() is None


async def test_a_killed_checks_exclusive_lock_does_not_stop_backups_or_restores(
    repo: Repository, tmp_path: Path
) -> None:
    """A worker killed during a check or prune leaves an exclusive lock, which refuses
    even backups and restores: they remove it (it is provably stale) and go on."""
    data = tmp_path / "data"
    dead_restics_lock(repo, data)  # a backup of the new file, killed: its data stays
    subprocess.run(
        ["restic", "backup", "--no-cache", "--host", "h", "."],
        env={**os.environ, **repo.child_env()},
        cwd=data,
        check=True,
        capture_output=True,
    )
    subprocess.run(["restic", "unlock"], env={**os.environ, **repo.child_env()}, check=True)
    lock = dead_restics_lock(repo, data, "check", "--read-data")
    locks = Path(repo.url) / "locks"
    restic = await Restic.detect("restic", lock_wait_seconds=0)
    outcome = await restic.backup(repo, ["."], cwd=data, host="h", tags=["t"])
    assert outcome.snapshot_id
    assert not (locks / lock).exists()

    dead_restics_lock(repo, data, "prune")
    await restic.restore(repo, outcome.snapshot_id, tmp_path / "out")
    assert (tmp_path / "out" / "big.bin").read_bytes() == (data / "big.bin").read_bytes()
