"""Issue 12.2: a pod's own SFTP server is hostile input. Whatever it lists, the mirror
never creates, writes, renames or deletes anything outside its destination (the stage
in the worker's cache), and a listing no honest server sends fails the backup with a
code that names the entry.

The servers here are real asyncssh SFTP servers on 127.0.0.1 that serve a real folder
but lie in their listings (the same name twice, first a folder then a symlink pointing
out; names that are not one path component). A sentinel folder outside the destination
holds a file the attack would overwrite or delete; each test checks it is untouched.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncssh
import httpx
import pytest

from app.config import Settings
from app.integrations.sftp import SftpError, mirror
from app.integrations.sftp import local as sftp_local
from app.integrations.sftp.models import MirrorStats
from app.integrations.sftp.tree import DIR, FILE, LINK, Entry, RemoteTree
from tests.backups.helpers import backup, create_pod, s3_target, sftp_files
from tests.conftest import Tenant
from tests.fixtures.s3 import S3ServerHandle
from tests.fixtures.sftp import PodSftpServer, SftpServerHandle, start_sftp_server
from tests.fixtures.worker import WorkerProcess
from tests.integrations.sftp.helpers import LOOPBACK, T0, state, write


@pytest.fixture
def worker(settings: Settings, tmp_path: Path) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(settings, tmp_path / "worker").start()
    yield proc
    proc.stop()


# One scripted listing: (name as sent, what it is). "real" takes the attributes of the
# pod's real entry of that name; "link" announces a symlink (its text comes from
# ``links``); "file" announces a small regular file.
Script = dict[bytes, list[tuple[bytes, str]]]


def _link_attrs() -> asyncssh.SFTPAttrs:
    return asyncssh.SFTPAttrs(
        type=asyncssh.FILEXFER_TYPE_SYMLINK,
        permissions=stat.S_IFLNK | 0o777,
        size=10,
        mtime=T0,
        atime=T0,
    )


def _file_attrs() -> asyncssh.SFTPAttrs:
    return asyncssh.SFTPAttrs(
        type=asyncssh.FILEXFER_TYPE_REGULAR,
        permissions=stat.S_IFREG | 0o644,
        size=4,
        mtime=T0,
        atime=T0,
    )


def hostile(script: Script, links: dict[bytes, bytes]) -> type[PodSftpServer]:
    """A server class that answers listings of the folders in ``script`` with exactly
    the scripted names (other folders honestly), and ``readlink`` from ``links``."""

    class Hostile(PodSftpServer):
        async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
            key = b"/" + path.strip(b"/")
            if key not in script:
                async for honest in super().scandir(path):
                    yield honest
                return
            for name, what in script[key]:
                if what == "real":
                    real = os.path.join(self.map_path(path), name)
                    attrs = asyncssh.SFTPAttrs.from_local(os.lstat(real))
                elif what == "link":
                    attrs = _link_attrs()
                else:
                    attrs = _file_attrs()
                yield asyncssh.SFTPName(name, attrs=attrs)

        def readlink(self, path: bytes) -> bytes:
            key = b"/" + path.strip(b"/")
            if key in links:
                return links[key]
            return super().readlink(path)

        def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
            if not os.path.lexists(self.map_path(path)):
                path = b"/real.txt"  # real data for any made-up name, as a liar would serve
            return super().open(path, pflags, attrs)

    return Hostile


def fingerprint(root: Path) -> dict[str, Any]:
    """Everything under ``root`` (links not followed), with content hashes and modes."""
    out: dict[str, Any] = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(top) / name
            st = path.lstat()
            rel = path.relative_to(root).as_posix()
            if stat.S_ISREG(st.st_mode):
                out[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest(), st.st_mode)
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            else:
                out[rel] = ("dir", st.st_mode)
    return out


def make_sentinel(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    write(outside / "precious.txt", "keep me")
    write(outside / "keep" / "also.txt", "keep me too")
    return outside


def make_pod(root: Path) -> None:
    """The real folder the liar serves: ``evil`` is a folder whose files would land in
    the sentinel folder if the mirror wrote through a link named ``evil``."""
    write(root / "real.txt", "real")
    write(root / "evil" / "precious.txt", "overwritten!")
    write(root / "evil" / "payload.txt", "planted")
    write(root / "evil" / "keep" / "also.txt", "overwritten too")


async def run_mirror(
    pod: Path, dest: Path, server_class: type[PodSftpServer], deny: set[str] | None = None
) -> MirrorStats:
    handle = await start_sftp_server(pod, server_class=server_class, deny_read=deny)
    try:
        return await mirror(handle.endpoint(), LOOPBACK, dest)
    finally:
        await handle.close()


@pytest.mark.parametrize("order", ["folder-then-link", "link-then-folder"])
@pytest.mark.parametrize("target", ["absolute", "relative"])
async def test_a_name_listed_twice_folder_and_link_writes_nothing_outside(
    tmp_path: Path, order: str, target: str
) -> None:
    pod, dest = tmp_path / "pod", tmp_path / "cache" / "stage" / "files"
    outside = make_sentinel(tmp_path)
    make_pod(pod)
    before = fingerprint(outside)
    entries = [(b"evil", "real"), (b"evil", "link")]
    if order == "link-then-folder":
        entries.reverse()
    text = os.fsencode(outside) if target == "absolute" else b"../../../outside"
    server = hostile({b"/": [(b".", "real"), (b"real.txt", "real"), *entries]}, {b"/evil": text})

    # A refused open of a child makes the old code delete through the planted link too.
    with pytest.raises(SftpError) as info:
        await run_mirror(pod, dest, server, deny={"evil/precious.txt"})

    assert info.value.code == "hostile_listing"
    assert "/evil" in info.value.message
    assert info.value.hint
    assert fingerprint(outside) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "outside", "pod"]


@pytest.mark.parametrize(
    "bad",
    [b"../escaped.txt", b"sub/../../escaped.txt", b"/abs.txt", b"", b"nul\0byte", b"a/b"],
)
async def test_a_name_that_is_not_one_path_component_fails_the_mirror(
    tmp_path: Path, bad: bytes
) -> None:
    pod, dest = tmp_path / "srv" / "pod", tmp_path / "srv" / "cache"
    outside = make_sentinel(tmp_path)
    write(pod / "real.txt", "real")
    before = fingerprint(outside)
    server = hostile({b"/": [(b"..", "real"), (b"real.txt", "real"), (bad, "file")]}, {})

    with pytest.raises(SftpError) as info:
        await run_mirror(pod, dest, server)

    assert info.value.code == "hostile_listing"
    shown = bad.decode("utf-8", "backslashreplace")
    assert repr(shown) in info.value.message or shown in info.value.message
    assert fingerprint(outside) == before
    assert not list(tmp_path.rglob("*escaped*"))
    assert not Path("/abs.txt").exists()
    assert not (tmp_path / "srv" / "cache" / "real.txt").exists()  # nothing half-done


async def test_dot_entries_are_skipped_quietly(tmp_path: Path) -> None:
    """Every honest server lists "." and ".." in each folder: they are not entries."""
    pod, dest = tmp_path / "pod", tmp_path / "dest"
    write(pod / "real.txt", "real")
    server = hostile({b"/": [(b".", "real"), (b"..", "real"), (b"real.txt", "real")]}, {})
    stats = await run_mirror(pod, dest, server)
    assert stats.files_total == 1
    assert state(dest) == state(pod)


async def test_links_to_parents_and_outside_are_stored_as_text_never_followed(
    tmp_path: Path,
) -> None:
    pod, dest = tmp_path / "pod", tmp_path / "cache" / "files"
    outside = make_sentinel(tmp_path)
    write(pod / "real.txt", "real")
    write(pod / "sub" / "inner.txt", "inner")
    os.symlink("..", pod / "up")
    os.symlink(".", pod / "self")
    os.symlink("/", pod / "root")
    os.symlink("../../..", pod / "sub" / "way-up")
    os.symlink(outside, pod / "out")
    os.symlink(outside / "precious.txt", pod / "out-file")
    before = fingerprint(outside)

    handle = await start_sftp_server(pod)
    try:
        await mirror(handle.endpoint(), LOOPBACK, dest)
        # The pod now lists real folders and files at the old link names: the mirror
        # replaces the links, never writes through them.
        for name in ("up", "self", "out", "out-file"):
            (pod / name).unlink()
        write(pod / "up" / "precious.txt", "overwritten!")
        write(pod / "self" / "x.txt", "x")
        write(pod / "out" / "precious.txt", "overwritten!")
        write(pod / "out-file", "overwritten!")
        (pod / "sub" / "way-up").unlink()
        write(pod / "sub" / "way-up" / "precious.txt", "overwritten!")
        await mirror(handle.endpoint(), LOOPBACK, dest)
    finally:
        await handle.close()

    assert fingerprint(outside) == before
    assert state(dest) == state(pod)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "outside", "pod"]


def test_the_local_side_never_writes_or_deletes_through_a_link(tmp_path: Path) -> None:
    """Second line of defence: even a tree that names a file below a symlink (what the
    duplicate listing produced) cannot make the cache side follow the link: parents are
    opened one component at a time with O_NOFOLLOW."""
    dest, outside = tmp_path / "dest", make_sentinel(tmp_path)
    before = fingerprint(outside)
    sftp_local.prepare_dest(dest)
    root = sftp_local.open_root(dest)
    small = sftp_local.SmallFiles(dest, os.pwrite)  # the mirror's small-file writer
    try:
        os.symlink(outside, dest / "evil")  # as the old code planted it
        tree = RemoteTree(
            {
                b"": Entry(b"", DIR, 0, T0, 0o755),
                b"evil": Entry(b"evil", LINK, 0, T0, 0o777, os.fsencode(outside)),
                b"evil/keep": Entry(b"evil/keep", DIR, 0, T0, 0o755),
                b"evil/payload.txt": Entry(b"evil/payload.txt", FILE, 4, T0, 0o644),
            }
        )
        with pytest.raises(sftp_local.UnsafeEntry) as info:
            sftp_local.reconcile(dest, tree, MirrorStats())
        assert info.value.rel == b"evil"

        # Writing, replacing and deleting a file below the link are refused as well.
        attempts: list[Callable[[], object]] = [
            lambda: sftp_local.open_dir(root, b"evil"),
            lambda: sftp_local.open_dir(root, b"evil/keep"),
            lambda: sftp_local.store_file(dest, b"evil/payload.txt", b"x", 0o644, T0, os.pwrite),
            lambda: sftp_local.store_file(dest, b"evil/precious.txt", b"x", 0o644, T0, os.pwrite),
            lambda: small.store(b"evil/payload.txt", b"x", 0o644, T0),
            lambda: small.store(b"evil/precious.txt", b"x", 0o644, T0),
            lambda: sftp_local.create_temp(dest, b"evil/payload.txt"),
            lambda: sftp_local.commit_temp(dest, b"evil/precious.txt", b"precious.txt"),
            lambda: sftp_local.remove(dest, b"evil/precious.txt"),
            lambda: sftp_local.remove(dest, b"evil/keep"),
        ]
        for attempt in attempts:
            with pytest.raises(sftp_local.UnsafeEntry):
                attempt()
        sftp_local.drop_temp(dest, b"evil/precious.txt", b"precious.txt")  # never raises
        # Names that are not one component are refused before any system call.
        for rel in (b"../outside/precious.txt", b"a/../../outside/x", b"a//b", b"x/."):
            with pytest.raises(sftp_local.UnsafeEntry):
                sftp_local.store_file(dest, rel, b"x", 0o644, T0, os.pwrite)
            with pytest.raises(sftp_local.UnsafeEntry):
                small.store(rel, b"x", 0o644, T0)
    finally:
        small.close()
        os.close(root)
    assert fingerprint(outside) == before
    assert os.readlink(dest / "evil") == str(outside)


async def test_a_backup_from_a_lying_server_fails_with_the_entry_named(
    client: httpx.AsyncClient,
    tenant: Tenant,
    s3_server: S3ServerHandle,
    s3_bucket: str,
    worker: WorkerProcess,
    tmp_path: Path,
) -> None:
    """The whole pipeline: a worker process mirrors from the liar into its cache."""
    pod_root = tmp_path / "pod"
    outside = make_sentinel(tmp_path)
    make_pod(pod_root)
    before = fingerprint(outside)
    # The stage is <cache>/pods/<id>/<plan>/stage/files: an absolute target is the sure one.
    server_class = hostile(
        {b"/": [(b"real.txt", "real"), (b"evil", "real"), (b"evil", "link")]},
        {b"/evil": os.fsencode(outside)},
    )
    server: SftpServerHandle = await start_sftp_server(
        pod_root, server_class=server_class, deny_read={"evil/precious.txt"}
    )
    try:
        pod = await create_pod(
            client,
            tenant.headers,
            files=sftp_files(server),
            target=s3_target(s3_server, s3_bucket),
        )
        job = await backup(client, tenant.headers, pod["id"])
    finally:
        await server.close()

    assert job["status"] == "failed", job
    assert job["error"]["code"] == "hostile_listing", job["error"]
    assert "/evil" in job["error"]["message"]
    assert job["error"]["hint"]
    assert job["attempt"] == 1  # not retried: the server will lie again
    assert fingerprint(outside) == before


async def test_the_named_entry_is_quoted_not_printed_raw(tmp_path: Path) -> None:
    """The entry's name comes from the tenant's server: control characters in it reach
    the job's error (and the CLI, and logs) escaped."""
    pod, dest = tmp_path / "pod", tmp_path / "dest"
    write(pod / "real.txt", "real")
    name = b"x\n\x1b[2Jfake: job succeeded"
    server = hostile({b"/": [(name, "file"), (name, "file")]}, {})

    with pytest.raises(SftpError) as info:
        await run_mirror(pod, dest, server)

    assert info.value.code == "hostile_listing"
    assert "\n" not in info.value.message
    assert "\x1b" not in info.value.message
    assert "x\\n\\x1b[2Jfake" in info.value.message


async def test_a_tree_nested_without_end_is_refused(tmp_path: Path) -> None:
    """A server can list a folder inside itself forever (every folder's listing is the
    same): the mirror stops at a fixed depth instead of exhausting descriptors."""
    from app.integrations.sftp.tree import MAX_DEPTH

    pod, dest = tmp_path / "pod", tmp_path / "dest"
    (pod / "a").mkdir(parents=True)

    class Endless(PodSftpServer):
        async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
            attrs = asyncssh.SFTPAttrs.from_local(os.lstat(self.map_path(b"/a")))
            yield asyncssh.SFTPName(b"a", attrs=attrs)

    with pytest.raises(SftpError) as info:
        await run_mirror(pod, dest, Endless)

    assert info.value.code == "hostile_listing"
    assert f"deeper than {MAX_DEPTH} folders" in info.value.message
    assert not dest.exists() or list(dest.iterdir()) == []


async def test_sizes_that_lie_never_store_more_than_listed(tmp_path: Path) -> None:
    """Small files are read with one request of the listed size: a server whose listing
    overstates a size (the answer comes short), understates it, or whose read answers
    with more bytes than asked stores at most the listed size, complete files only,
    nothing outside the destination."""
    pod, dest = tmp_path / "pod", tmp_path / "dest"
    outside = make_sentinel(tmp_path)
    before = fingerprint(outside)
    write(pod / "short.txt", "abcd")
    write(pod / "long.txt", "x" * 5000)
    write(pod / "greedy.txt", "hello")
    listed = {b"short.txt": 100, b"long.txt": 10}

    class Liar(PodSftpServer):
        async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
            async for name in super().scandir(path):
                assert isinstance(name.filename, bytes)
                if name.filename in listed:
                    name.attrs.size = listed[name.filename]
                yield name

        def read(self, file_obj: object, offset: int, size: int) -> bytes:
            data = super().read(file_obj, offset, size)
            return data + b"EXTRA" if data == b"hello" else data

    stats = await run_mirror(pod, dest, Liar)

    assert (dest / "short.txt").read_bytes() == b"abcd"  # the short answer's general path
    assert (dest / "long.txt").read_bytes() == b"x" * 10
    assert (dest / "greedy.txt").read_bytes() == b"hello"
    assert stats.files_downloaded == 3
    assert sorted(p.name for p in dest.iterdir()) == ["greedy.txt", "long.txt", "short.txt"]
    assert fingerprint(outside) == before
