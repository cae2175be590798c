"""mirror() under faults: unreadable files, full cache disk, dropped connection, cancel."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from app.integrations.sftp import SftpError, mirror
from tests.fixtures.sftp import SftpServerHandle, sftp_server  # noqa: F401
from tests.integrations.sftp.helpers import (
    LOOPBACK,
    T0,
    build_pod,
    full_after,
    state,
    temp_files,
    write,
)

MB = 1024 * 1024


async def test_unreadable_files_are_listed_and_not_kept_stale(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    pod, dest = sftp_server.root, tmp_path / "dest"
    build_pod(pod)
    await mirror(sftp_server.endpoint(), LOOPBACK, dest)
    assert (dest / "private" / "key.pem").exists()
    # Only files that must be downloaded are opened: an unchanged file's copy is the
    # content last read. So change these two, then make the server refuse them.
    write(pod / "index.html", "changed", mtime=T0 + 1)
    write(pod / "private" / "key.pem", "changed", mode=0o400, mtime=T0 + 1)
    sftp_server.deny_read |= {"private/key.pem", "deep/a", "index.html"}

    stats = await mirror(sftp_server.endpoint(), LOOPBACK, dest)

    assert stats.unreadable == [
        {"path": "/deep/a", "error": "permission denied (folder not listed)"},
        {"path": "/index.html", "error": "permission denied"},
        {"path": "/private/key.pem", "error": "permission denied"},
    ]
    # the old copies are gone: a snapshot must not carry them as if they were current
    assert not (dest / "private" / "key.pem").exists()
    assert not (dest / "index.html").exists()
    assert (dest / "deep" / "a").is_dir()
    assert list((dest / "deep" / "a").iterdir()) == []
    # everything else is still mirrored
    expected = {
        k: v
        for k, v in state(pod).items()
        if k not in ("private/key.pem", "index.html") and not k.startswith("deep/a/")
    }
    got = state(dest)
    for folder in ("private", "deep/a", ""):  # their mtimes changed when files went away
        expected.pop(folder, None)
        got.pop(folder, None)
    assert got == expected

    sftp_server.deny_read.clear()
    stats = await mirror(sftp_server.endpoint(), LOOPBACK, dest)
    assert stats.unreadable == []
    assert state(dest) == state(pod)


async def test_disk_full_fails_cleanly_and_the_next_mirror_recovers(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    pod, dest = sftp_server.root, tmp_path / "dest"
    build_pod(pod)
    for i in range(4):
        write(pod / "data" / f"chunk{i}.bin", bytes([i]) * (2 * MB))

    with pytest.raises(SftpError) as info:
        await mirror(
            sftp_server.endpoint(), LOOPBACK, dest, write=full_after(6 * MB), parallel_files=1
        )

    assert info.value.code == "disk_full"
    assert "PODBACKUP_CACHE_DIR" in (info.value.hint or "")
    assert temp_files(dest) == []
    stats = await mirror(sftp_server.endpoint(), LOOPBACK, dest)
    assert state(dest) == state(pod)
    assert 0 < stats.bytes_downloaded < stats.bytes_total  # earlier complete files were kept


async def test_dropped_connection_is_reported_and_a_retry_succeeds(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    pod, dest = sftp_server.root, tmp_path / "dest"
    build_pod(pod, big_mb=8)
    sftp_server.drop_after_bytes = 2 * MB

    with pytest.raises(SftpError) as info:
        await mirror(sftp_server.endpoint(), LOOPBACK, dest)

    assert info.value.code == "connection_lost"
    assert info.value.retryable
    assert sftp_server.drops == 1
    assert temp_files(dest) == []
    await mirror(sftp_server.endpoint(), LOOPBACK, dest)
    assert state(dest) == state(pod)


async def test_cancel_stops_the_mirror_and_cleans_up(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    pod, dest = sftp_server.root, tmp_path / "dest"
    build_pod(pod, big_mb=40)
    cancel = asyncio.Event()
    written = 0

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        nonlocal written
        written += len(data)
        if written > MB:  # cancel once the transfer is under way
            cancel.set()
        return os.pwrite(fd, data, offset)

    with pytest.raises(SftpError) as info:
        await mirror(sftp_server.endpoint(), LOOPBACK, dest, cancel=cancel, write=pwrite)

    assert info.value.code == "canceled"
    assert written < 20 * MB  # it stopped, far from the 43 MB of the tree
    assert not (dest / "big.bin").exists()  # the partial download was not kept
    assert temp_files(dest) == []
    await mirror(sftp_server.endpoint(), LOOPBACK, dest)
    assert state(dest) == state(pod)


async def test_cancel_set_before_start(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    build_pod(sftp_server.root)
    cancel = asyncio.Event()
    cancel.set()
    with pytest.raises(SftpError) as info:
        await mirror(sftp_server.endpoint(), LOOPBACK, tmp_path / "dest", cancel=cancel)
    assert info.value.code == "canceled"


async def test_disk_full_on_small_files(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    pod, dest = sftp_server.root, tmp_path / "dest"
    for i in range(30):
        write(pod / f"d{i % 3}" / f"small{i}.txt", f"{i}" * 1000)

    with pytest.raises(SftpError) as info:
        await mirror(sftp_server.endpoint(), LOOPBACK, dest, write=full_after(10_000))

    assert info.value.code == "disk_full"
    assert temp_files(dest) == []
    await mirror(sftp_server.endpoint(), LOOPBACK, dest)
    assert state(dest) == state(pod)
