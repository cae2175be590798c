"""A pod's server must never make the mirror write outside its destination."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from app.integrations.sftp import SftpError, mirror
from tests.fixtures.sftp import PodSftpServer, SftpServerHandle, sftp_server, start_sftp_server  # noqa: F401
from tests.integrations.sftp.helpers import LOOPBACK, state, write


async def test_symlink_swapped_for_a_folder_is_not_followed(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    pod, dest, outside = sftp_server.root, tmp_path / "dest", tmp_path / "outside"
    outside.mkdir()
    write(outside / "precious.txt", "keep me")
    os.symlink(outside, pod / "evil")  # absolute, points out of the pod
    os.symlink("../../outside", pod / "evil-rel")

    await mirror(sftp_server.endpoint(), LOOPBACK, dest)
    assert os.readlink(dest / "evil") == str(outside)

    # The pod now shows real folders at those names, with files that would land in
    # `outside` if the old local links were followed.
    for name in ("evil", "evil-rel"):
        (pod / name).unlink()
        write(pod / name / "precious.txt", "overwritten!")
        write(pod / name / "payload.txt", "planted")
    await mirror(sftp_server.endpoint(), LOOPBACK, dest)

    assert sorted(p.name for p in outside.iterdir()) == ["precious.txt"]
    assert (outside / "precious.txt").read_text() == "keep me"
    assert not (dest / "evil").is_symlink()
    assert state(dest) == state(pod)


class _HostileServer(PodSftpServer):
    """Lists names no honest server sends: with slashes, '..', and duplicates of '.'."""

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        async for name in super().scandir(path):
            yield name
        attrs = asyncssh.SFTPAttrs.from_local(os.stat(self.map_path(b"/real.txt")))
        for bad in (b"../escaped.txt", b"..", b"sub/../../escaped2.txt", b"/abs.txt", b""):
            yield asyncssh.SFTPName(bad, attrs=attrs)

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        # Would serve the real file for any path, so a client that asked for one of
        # the bad names would get data and write it somewhere.
        return super().open(b"/real.txt", pflags, attrs)


async def test_hostile_names_fail_the_mirror(tmp_path: Path) -> None:
    pod, dest = tmp_path / "srv" / "pod", tmp_path / "srv" / "dest"
    write(pod / "real.txt", "real")
    handle = await start_sftp_server(pod, server_class=_HostileServer)
    try:
        with pytest.raises(SftpError) as info:
            await mirror(handle.endpoint(), LOOPBACK, dest)
    finally:
        await handle.close()

    assert info.value.code == "hostile_listing"
    assert "'../escaped.txt'" in info.value.message
    assert not dest.exists() or list(dest.iterdir()) == []
    found = [p for p in tmp_path.rglob("*") if p.name in ("escaped.txt", "escaped2.txt", "abs.txt")]
    assert found == []
    assert not Path("/abs.txt").exists()


async def test_dest_that_is_a_symlink_is_refused(
    sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    write(sftp_server.root / "a.txt", "a")
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "link")
    with pytest.raises(SftpError) as info:
        await mirror(sftp_server.endpoint(), LOOPBACK, tmp_path / "link")
    assert info.value.code == "failed"
    assert list((tmp_path / "real").iterdir()) == []
