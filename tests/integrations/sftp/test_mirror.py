"""mirror(): a real asyncssh SFTP server on loopback, real files on both sides."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from app.integrations.sftp import MirrorProgress, mirror
from tests.fixtures.sftp import SftpServerHandle, sftp_server  # noqa: F401
from tests.integrations.sftp.helpers import LOOPBACK, T0, build_pod, state, temp_files, write


async def test_first_mirror_copies_everything(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    pod, dest = sftp_server.root, tmp_path / "dest"
    build_pod(pod, big_mb=50)
    seen: list[MirrorProgress] = []

    stats = await mirror(sftp_server.endpoint(), LOOPBACK, dest, on_progress=seen.append)

    assert state(dest) == state(pod)
    assert (dest / "ünïcödé" / "日本語.txt").read_text() == "ok\n"
    assert os.readlink(dest / "link-abs") == "/etc/hostname"  # text kept, never followed
    assert (dest / "medium.bin").stat().st_mtime == T0 + 5
    assert stats.files_total == stats.files_downloaded == 9
    assert stats.symlinks_total == 3
    assert stats.dirs_total == 9  # the root is not counted
    assert (
        stats.bytes_total
        == stats.bytes_downloaded
        == sum(p.lstat().st_size for p in pod.rglob("*") if p.is_file() and not p.is_symlink())
    )
    assert stats.unreadable == []
    assert stats.host_key == sftp_server.host_key_line
    assert seen[-1].phase == "download"
    assert seen[-1].bytes_done == seen[-1].bytes_total == stats.bytes_downloaded
    assert temp_files(dest) == []


async def test_unchanged_mirror_downloads_nothing(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    pod, dest = sftp_server.root, tmp_path / "dest"
    build_pod(pod)
    await mirror(sftp_server.endpoint(), LOOPBACK, dest)
    served = sftp_server.bytes_sent

    stats = await mirror(sftp_server.endpoint(), LOOPBACK, dest)

    assert stats.bytes_downloaded == 0
    assert stats.files_downloaded == 0
    assert stats.files_deleted == 0
    assert sftp_server.bytes_sent == served  # not one file byte left the server
    assert state(dest) == state(pod)


async def test_changes_are_reflected(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    pod, dest = sftp_server.root, tmp_path / "dest"
    build_pod(pod)
    await mirror(sftp_server.endpoint(), LOOPBACK, dest)

    write(pod / "index.html", "<h1>HELLO</h1>\n", mtime=T0 + 60)  # same size, new mtime
    write(pod / "new" / "added.txt", "added\n")
    (pod / "empty.txt").unlink()
    shutil.rmtree(pod / "deep")
    (pod / "bin" / "run.sh").chmod(0o700)  # mode only: no download needed
    os.remove(pod / "link-rel")
    os.symlink("medium.bin", pod / "link-rel")
    (pod / "empty dir").rmdir()
    write(pod / "empty dir", "now a file\n")  # folder became a file
    (pod / "with space" / "file name.txt").unlink()
    write(pod / "with space" / "file name.txt" / "inner.txt", "file became a folder\n")

    stats = await mirror(sftp_server.endpoint(), LOOPBACK, dest)

    assert state(dest) == state(pod)
    assert stats.files_downloaded == 4  # index.html, added.txt, "empty dir", inner.txt
    assert stats.bytes_downloaded == 15 + 6 + 11 + 21
    # empty.txt, deep/a/b/c/d.bin, the old "file name.txt"
    assert stats.files_deleted == 3
    assert temp_files(dest) == []


async def test_leftover_temp_and_foreign_files_are_removed(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    pod, dest = sftp_server.root, tmp_path / "dest"
    build_pod(pod)
    await mirror(sftp_server.endpoint(), LOOPBACK, dest)
    write(dest / ".podbackup-0123456789ab.tmp", "left by a killed worker")
    write(dest / "deep" / "stray.txt", "not on the server")
    os.symlink("/", dest / "stray-link")

    stats = await mirror(sftp_server.endpoint(), LOOPBACK, dest)

    assert state(dest) == state(pod)
    assert stats.files_deleted == 3


async def test_mirror_of_a_subfolder_and_empty_tree(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    pod = sftp_server.root
    build_pod(pod / "site")
    (pod / "blank").mkdir()

    await mirror(sftp_server.endpoint(path="/site/"), LOOPBACK, tmp_path / "site")
    stats = await mirror(sftp_server.endpoint(path="/blank"), LOOPBACK, tmp_path / "blank")

    assert state(tmp_path / "site") == state(pod / "site")
    assert stats.files_total == 0
    assert list((tmp_path / "blank").iterdir()) == []
