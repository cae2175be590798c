"""restic's failures on real repositories map to the same error codes on every version:
0.17+ says what went wrong in its exit code (10 no repository, 11 lock failed, 12 wrong
password); 0.14 exits 1 and only its stderr tells."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from app.integrations.restic import Repository, Restic, ResticError


async def _restic() -> Restic:
    return await Restic.detect("restic", lock_wait_seconds=0)


def _init(repo: Repository) -> None:
    env = {**os.environ, **repo.child_env()}
    subprocess.run(["restic", "init"], env=env, check=True, capture_output=True)


def _expected_exit(restic: Restic, code: int) -> int:
    return code if restic.version.exit_codes else 1


async def test_no_repository_is_repository_not_found(tmp_path: Path) -> None:
    restic = await _restic()
    (tmp_path / "empty").mkdir()
    repo = Repository(url=str(tmp_path / "empty"), password="exit-codes")
    with pytest.raises(ResticError) as caught:
        await restic.snapshots(repo)
    assert caught.value.code == "repository_not_found", caught.value.message
    assert caught.value.exit_code == _expected_exit(restic, 10)


async def test_wrong_password_is_wrong_password(tmp_path: Path) -> None:
    restic = await _restic()
    _init(Repository(url=str(tmp_path / "repo"), password="the right one"))
    repo = Repository(url=str(tmp_path / "repo"), password="a wrong one")
    with pytest.raises(ResticError) as caught:
        await restic.snapshots(repo)
    assert caught.value.code == "wrong_password", caught.value.message
    assert caught.value.exit_code == _expected_exit(restic, 12)


async def test_a_lock_held_by_a_live_process_is_repository_locked(tmp_path: Path) -> None:
    restic = await _restic()
    repo = Repository(url=str(tmp_path / "repo"), password="exit-codes")
    _init(repo)
    # A backup from stdin holds its lock until its input ends: a live process's lock,
    # which no stale-lock removal may take away.
    holder = await asyncio.create_subprocess_exec(
        "restic",
        "backup",
        "--stdin",
        "--stdin-filename",
        "held",
        env={**os.environ, **repo.child_env()},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            if [p for p in (tmp_path / "repo" / "locks").iterdir() if "-tmp-" not in p.name]:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the holder never took its lock")
        with pytest.raises(ResticError) as caught:
            await restic.check(repo)  # needs the repository alone
        assert caught.value.code == "repository_locked", caught.value.message
        assert caught.value.exit_code == _expected_exit(restic, 11)
        assert caught.value.retryable
    finally:
        assert holder.stdin is not None
        holder.stdin.write(b"held\n")
        holder.stdin.close()
        await holder.wait()
    assert holder.returncode == 0
    assert (await restic.check(repo)).ok  # the lock went with its process
