"""A `restic dump` whose reader went away (a download client that dropped or stopped
reading) is stopped and reaped, and leaves no lock, whichever restic runs.

The case that hung: the reader stops, our side of the pipe fills past its limit and stops
reading, restic blocks writing to stdout. restic 0.17+ handles SIGINT by cancelling its
command's context, which a blocked write never checks, so it only ends once its output is
read again; and on Python 3.11 `Process.wait()` returns only once the pipes have closed.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from app.integrations.restic import Repository, Restic
from app.kit import subprocess as sp


def _blocked_writing(pid: int) -> bool:
    """Whether a thread of ``pid`` sleeps in the kernel's pipe write (the pipe is full)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            if "pipe_write" in (task / "wchan").read_text():
                return True
        except OSError:
            continue
    return False


async def test_a_dump_blocked_on_a_full_pipe_ends_on_interrupt_and_leaves_no_lock(
    tmp_path: Path,
) -> None:
    repo = Repository(url=str(tmp_path / "repo"), password="abandoned-dump")
    env = {**os.environ, **repo.child_env()}
    (tmp_path / "stage" / "files").mkdir(parents=True)
    (tmp_path / "stage" / "files" / "big.bin").write_bytes(os.urandom(12 << 20))
    subprocess.run(["restic", "init"], env=env, check=True, capture_output=True)
    subprocess.run(
        ["restic", "backup", "--host", "h", "files"],
        env=env,
        cwd=tmp_path / "stage",
        check=True,
        capture_output=True,
    )
    restic = await Restic.detect("restic")
    argv = [restic.binary, "--no-cache", "dump", "latest", "/files/big.bin"]

    async with asyncio.timeout(60):  # a guard against the hang, not a timing
        async with sp.stream(argv, env=repo.child_env(), grace=10) as proc:
            assert proc.stdout is not None
            assert await proc.stdout.read(256 * 1024)
            for _ in range(200):  # the reader has stopped: restic fills the pipe
                if _blocked_writing(proc.pid):
                    break
                await asyncio.sleep(0.05)
            assert _blocked_writing(proc.pid), "restic never blocked on the full pipe"

    # restic ended by its own interrupt handling (0.14: 130; 0.17+: 1, context
    # canceled), not by the SIGKILL after the grace period ...
    assert proc.returncode in (1, 130), proc.returncode
    # ... so it removed its lock.
    assert not list((tmp_path / "repo" / "locks").iterdir())
