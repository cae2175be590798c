"""upload(): restore files into the pod over SFTP, sending only what differs."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest

from app.integrations.sftp import MirrorProgress, SftpError, local, mirror, upload
from app.integrations.sftp.tree import Entry
from tests.fixtures.sftp import SftpServerHandle, sftp_server  # noqa: F401
from tests.integrations.sftp.helpers import LOOPBACK, T0, build_pod, state, temp_files, write


def exact(root: Path) -> dict[str, tuple[object, ...]]:
    """Like state(), but the pod side gets exact modes (nothing is widened there)."""
    out = state(root)
    for rel, value in out.items():
        if value[0] != "link":
            mode = (root / rel).lstat().st_mode & 0o7777
            out[rel] = (
                (*value[:-2], mode, value[-1]) if value[0] == "file" else ("dir", mode, value[2])
            )
    return out


async def test_full_restore_round_trip(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    src, pod = tmp_path / "restore", sftp_server.root
    build_pod(src, big_mb=5)
    write(pod / "extra.txt", "the pod has this, the snapshot does not")
    seen: list[MirrorProgress] = []

    stats = await upload(sftp_server.endpoint(), LOOPBACK, src, on_progress=seen.append)

    assert stats.files_uploaded == stats.files_total == 9
    assert stats.bytes_uploaded == sum(
        p.lstat().st_size for p in src.rglob("*") if p.is_file() and not p.is_symlink()
    )
    assert stats.files_deleted == 0
    assert stats.host_key == sftp_server.host_key_line
    assert (pod / "extra.txt").exists()  # default: extra files are kept
    (pod / "extra.txt").unlink()
    assert exact(pod) == exact(src)
    assert seen[-1].phase == "upload"
    assert seen[-1].bytes_done == seen[-1].bytes_total
    assert temp_files(pod) == []

    again = await upload(sftp_server.endpoint(), LOOPBACK, src)
    assert again.files_uploaded == 0
    assert again.bytes_uploaded == 0

    # and it mirrors back identically
    await mirror(sftp_server.endpoint(), LOOPBACK, tmp_path / "back")
    assert state(tmp_path / "back") == state(src)


async def test_only_differences_are_sent(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    src, pod = tmp_path / "restore", sftp_server.root
    build_pod(src)
    await upload(sftp_server.endpoint(), LOOPBACK, src)
    write(pod / "index.html", "<h1>defaced</h1>", mtime=T0 + 100)
    (pod / "bin" / "run.sh").chmod(0o600)
    (pod / "empty.txt").unlink()
    os.remove(pod / "link-rel")
    write(pod / "link-rel", "a file where a link was")
    shutil.rmtree(pod / "with space")
    write(pod / "with space", "a file where a folder was")

    stats = await upload(sftp_server.endpoint(), LOOPBACK, src)

    assert stats.files_uploaded == 3  # index.html, empty.txt, "with space/file name.txt"
    assert stats.files_deleted == 2  # the file at link-rel, the file at "with space"
    assert exact(pod) == exact(src)


async def test_partial_restore_and_mirror_mode(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    src, pod = tmp_path / "restore", sftp_server.root
    build_pod(src)
    await upload(sftp_server.endpoint(), LOOPBACK, src)
    write(pod / "deep" / "a" / "b" / "c" / "d.bin", "damaged", mtime=T0 + 1)
    write(pod / "deep" / "a" / "new.txt", "created after the snapshot")
    write(pod / "index.html", "changed outside the restored paths", mtime=T0 + 1)
    write(pod / "ünïcödé" / "日本語.txt", "changed too", mtime=T0 + 1)

    stats = await upload(
        sftp_server.endpoint(), LOOPBACK, src, subpaths=["/deep/a/", "ünïcödé/日本語.txt"]
    )

    assert stats.files_uploaded == 2
    assert stats.files_deleted == 0
    assert (pod / "deep" / "a" / "b" / "c" / "d.bin").read_bytes() == (
        src / "deep" / "a" / "b" / "c" / "d.bin"
    ).read_bytes()
    assert (pod / "ünïcödé" / "日本語.txt").read_text() == "ok\n"
    assert (pod / "deep" / "a" / "new.txt").exists()  # kept: default mode
    assert (pod / "index.html").read_text() == "changed outside the restored paths"

    stats = await upload(
        sftp_server.endpoint(), LOOPBACK, src, subpaths=["deep"], delete_extra=True
    )

    assert stats.files_deleted == 1
    assert not (pod / "deep" / "a" / "new.txt").exists()
    assert (pod / "index.html").read_text() == "changed outside the restored paths"

    stats = await upload(sftp_server.endpoint(), LOOPBACK, src, delete_extra=True)
    assert exact(pod) == exact(src)


async def test_restore_into_a_missing_parent_and_bad_paths(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    src, pod = tmp_path / "restore", sftp_server.root
    build_pod(src)
    stats = await upload(sftp_server.endpoint(), LOOPBACK, src, subpaths=["deep/a/b/c/d.bin"])
    assert stats.files_uploaded == 1
    assert sorted(p.relative_to(pod).as_posix() for p in pod.rglob("*")) == [
        "deep",
        "deep/a",
        "deep/a/b",
        "deep/a/b/c",
        "deep/a/b/c/d.bin",
    ]
    with pytest.raises(SftpError) as info:
        await upload(sftp_server.endpoint(), LOOPBACK, src, subpaths=["../etc"])
    assert info.value.code == "failed"


async def test_cancel_during_upload_leaves_no_temp_files(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    src, pod = tmp_path / "restore", sftp_server.root
    write(src / "big.bin", os.urandom(40 * 1024 * 1024))
    cancel = asyncio.Event()

    def on_progress(p: MirrorProgress) -> None:
        if p.bytes_done > 0:
            cancel.set()

    with pytest.raises(SftpError) as info:
        await upload(sftp_server.endpoint(), LOOPBACK, src, on_progress=on_progress, cancel=cancel)

    assert info.value.code == "canceled"
    assert not (pod / "big.bin").exists()
    assert temp_files(pod) == []


async def test_same_size_and_mtime_is_compared_by_content(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Issue 13.1 at the SFTP layer: bytes changed in place with size and mtime kept are
    found (every same-looking file is read back and compared) and rewritten."""
    src, pod = tmp_path / "restore", sftp_server.root
    build_pod(src, big_mb=3)
    await upload(sftp_server.endpoint(), LOOPBACK, src)
    big = pod / "big.bin"
    data = bytearray(big.read_bytes())
    data[len(data) // 2] ^= 0xFF
    write(big, bytes(data), mode=big.stat().st_mode & 0o7777, mtime=int(big.stat().st_mtime))
    seen: list[MirrorProgress] = []

    stats = await upload(sftp_server.endpoint(), LOOPBACK, src, on_progress=seen.append)

    assert (stats.files_compared, stats.files_rewritten) == (stats.files_total, 1)
    assert stats.files_uploaded == stats.files_verified == 1
    assert exact(pod) == exact(src)
    assert any(p.phase == "compare" for p in seen)
    assert temp_files(pod) == []


async def test_reads_of_the_restored_tree_never_follow_links(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 12.3, upload side: a folder of the scratch restore that turns into a link
    after the scan (as a crafted tree could make it) is not read through."""
    src, pod, outside = tmp_path / "restore", sftp_server.root, tmp_path / "outside"
    write(src / "a" / "f.txt", "snapshot")
    write(outside / "f.txt", "SECRET outside the scratch restore")
    scan = local.scan_local

    def scan_then_swap(root: Path, starts: list[bytes]) -> dict[bytes, Entry]:
        entries = scan(root, starts)
        shutil.rmtree(src / "a")
        os.symlink(outside, src / "a")
        return entries

    monkeypatch.setattr(local, "scan_local", scan_then_swap)
    with pytest.raises(SftpError) as info:
        await upload(sftp_server.endpoint(), LOOPBACK, src)
    assert "a/f.txt" in info.value.message
    assert not (pod / "a" / "f.txt").exists()
    assert all(b"SECRET" not in p.read_bytes() for p in pod.rglob("*") if p.is_file())
