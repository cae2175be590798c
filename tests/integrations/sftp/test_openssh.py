"""The same client against OpenSSH's own sftp server, which pods most likely run:
its symlink argument order, limits, posix-rename and lsetstat extensions."""

from __future__ import annotations

from pathlib import Path

from app.integrations.sftp import mirror, upload
from tests.fixtures.sftp import SftpServerHandle, openssh_sftp_server  # noqa: F401
from tests.integrations.sftp.helpers import LOOPBACK, T0, build_pod, state, write


async def test_mirror_and_upload_against_openssh(
    openssh_sftp_server: SftpServerHandle,  # noqa: F811
    tmp_path: Path,
) -> None:
    server = openssh_sftp_server
    pod = server.root
    build_pod(pod, big_mb=4)
    pinned = server.endpoint(known_host_key=server.host_key_line)

    stats = await mirror(pinned, LOOPBACK, tmp_path / "dest")
    assert state(tmp_path / "dest") == state(pod)
    assert stats.host_key == server.host_key_line
    again = await mirror(pinned, LOOPBACK, tmp_path / "dest")
    assert again.bytes_downloaded == 0

    target = pod.parent / "restored"
    target.mkdir()
    into = server.endpoint(path=str(target), known_host_key=server.host_key_line)
    await upload(into, LOOPBACK, tmp_path / "dest")
    assert state(target) == state(pod)

    write(target / "index.html", "defaced", mtime=T0 + 9)
    write(target / "extra" / "file.txt", "not in the snapshot")
    sent = await upload(into, LOOPBACK, tmp_path / "dest", delete_extra=True)
    assert sent.files_uploaded == 1
    assert sent.files_deleted == 1
    assert state(target) == state(pod)
