"""Issue 13.7: a symlink whose text the server will not read is never dropped silently:
it is listed in ``unreadable`` (the job is then ``partial``) and counted."""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh
import pytest

from app.integrations.sftp import mirror
from tests.fixtures.sftp import PodSftpServer, start_sftp_server
from tests.integrations.sftp.helpers import LOOPBACK, write


class _ChrootReadlink(PodSftpServer):
    """asyncssh's own chrooted readlink: a target outside the chroot is "no such file"
    (what a chrooted pod server answers for `/etc/...` or `../../` links)."""

    def readlink(self, path: bytes) -> bytes:
        result = asyncssh.SFTPServer.readlink(self, path)
        assert isinstance(result, bytes)
        return result


class _FailingReadlink(PodSftpServer):
    def readlink(self, path: bytes) -> bytes:
        if path.endswith(b"/out"):
            raise asyncssh.SFTPFailure("readlink disabled by policy")
        return super().readlink(path)


@pytest.mark.parametrize(
    ("server_class", "why"),
    [(_ChrootReadlink, "will not read"), (_FailingReadlink, "readlink disabled by policy")],
)
async def test_a_symlink_the_server_will_not_read_is_reported_and_counted(
    tmp_path: Path, server_class: type[PodSftpServer], why: str
) -> None:
    pod, dest = tmp_path / "pod", tmp_path / "dest"
    write(pod / "index.html", "hello")
    os.symlink("/etc/hostname", pod / "out")
    handle = await start_sftp_server(pod, server_class=server_class)
    try:
        os.makedirs(dest)
        os.symlink("stale text from an earlier run", dest / "out")
        stats = await mirror(handle.endpoint(), LOOPBACK, dest)
    finally:
        await handle.close()

    assert [u["path"] for u in stats.unreadable] == ["/out"]
    assert why in stats.unreadable[0]["error"]
    assert stats.symlinks_skipped == 1
    assert stats.symlinks_total == 0
    assert stats.files_total == 1
    assert not os.path.lexists(dest / "out")  # no stale link stands in for it
    assert (dest / "index.html").read_text() == "hello"


async def test_a_symlink_that_vanished_while_listing_is_not_reported(tmp_path: Path) -> None:
    class _Vanishing(PodSftpServer):
        def readlink(self, path: bytes) -> bytes:
            os.unlink(self.map_path(path))  # gone between the listing and the readlink
            raise asyncssh.SFTPNoSuchFile("No such file")

    pod, dest = tmp_path / "pod", tmp_path / "dest"
    write(pod / "index.html", "hello")
    os.symlink("index.html", pod / "gone")
    handle = await start_sftp_server(pod, server_class=_Vanishing)
    try:
        stats = await mirror(handle.endpoint(), LOOPBACK, dest)
    finally:
        await handle.close()
    assert stats.unreadable == []
    assert stats.symlinks_skipped == 0
