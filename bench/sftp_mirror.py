"""SFTP mirror vs the OpenSSH sftp client, same tree, same server, same run.

    .venv/bin/python -m bench.sftp_mirror [--large-count 4 --large-mb 64 --small-count 2000 ...]
    .venv/bin/python -m bench.sftp_mirror --server openssh --unchanged-files 100000

The server is the test fixture (asyncssh) in its own process, so neither client
shares a CPU-bound event loop with it; ``--server openssh`` (or ``both``) also runs
the comparison against the system's sshd, closer to what pods run. Prints times,
MB/s, the speed ratio ours/OpenSSH (target >= 1.0) and the bytes an unchanged
re-mirror downloads (target 0).

``--unchanged-files N`` measures instead what a nightly backup of a big, unchanged pod
pays: a tree of N small files (1,000 per folder) is mirrored once, then mirrored again
unchanged (best of ``--repeat``), beside the listing alone (``scan``) and OpenSSH
``sftp`` listing the same folders (``ls -l`` of each, the attributes come with the
names as in ours); it prints the cost per file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from app.integrations.sftp import SftpEndpoint, mirror
from app.integrations.sftp.connection import open_session
from app.integrations.sftp.tree import scan
from app.kit import subprocess as sp
from app.kit.netpolicy import Policy
from bench.common import build_tree, row, timed, tree_totals
from tests.fixtures.sftp import start_openssh_server

LOOPBACK = Policy.from_settings(["127.0.0.0/8"])
REPO = Path(__file__).resolve().parents[1]


async def _openssh(info: dict[str, str], key: Path, dest: Path, extra: list[str]) -> float:
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    batch = dest.parent / "batch.txt"
    batch.write_text(f"get -pr {info['tree']} {dest}\n")
    argv = _sftp_argv(info, key, batch, extra)
    with timed() as t:
        done = await sp.run(argv, timeout=3600)
    if done.returncode != 0:
        sys.exit(f"sftp failed ({done.returncode}): {done.stderr_tail}")
    return t[0]


def build_many(root: Path, count: int, size: int = 512) -> None:
    """``count`` files of ``size`` random bytes, 1,000 per folder."""
    for i in range(count):
        folder = root / f"d{i // 1000:04d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i:06d}.dat").write_bytes(os.urandom(size))


def _sftp_argv(info: dict[str, str], key: Path, batch: Path, extra: list[str]) -> list[str]:
    return [
        "sftp",
        "-q",
        "-b",
        str(batch),
        "-i",
        str(key),
        "-P",
        info["port"],
        "-F",
        "/dev/null",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "IdentitiesOnly=yes",
        *extra,
        f"{info['username']}@{info['host']}",
    ]


async def _ours(
    endpoint: SftpEndpoint, dest: Path, fresh: bool, args: argparse.Namespace
) -> tuple[float, int]:
    if fresh:
        shutil.rmtree(dest, ignore_errors=True)
    with timed() as t:
        stats = await mirror(
            endpoint,
            LOOPBACK,
            dest,
            parallel_files=args.parallel_files,
            block_size=args.block_kb * 1024,
            max_requests=args.max_requests,
            small_files=args.small_files,
        )
    return t[0], stats.bytes_downloaded


@contextlib.asynccontextmanager
async def _asyncssh_server(work: Path) -> AsyncIterator[dict[str, str]]:
    """The test fixture server in its own process (so it does not share our loop)."""
    info_file = work / "server.json"
    info_file.unlink(missing_ok=True)
    password = secrets.token_urlsafe(16)
    serve = str(work / "serve")
    argv = [sys.executable, "-m", "tests.fixtures.sftp", "--root", serve, "--info", str(info_file)]
    async with sp.stream(argv, env={"SFTP_PASSWORD": password, "PYTHONPATH": str(REPO)}) as proc:
        for _ in range(200):
            if info_file.exists() and info_file.stat().st_size:
                break
            if proc.returncode is not None:
                sys.exit("the SFTP server did not start")
            await asyncio.sleep(0.05)
        info = json.loads(info_file.read_text())
        yield {**info, "password": password, "tree": "/tree"}


@contextlib.asynccontextmanager
async def _openssh_server(work: Path) -> AsyncIterator[dict[str, str]]:
    """The system's sshd (internal-sftp), key auth, serving the same folder."""
    handle = await start_openssh_server(work / "serve", work / "sshd")
    try:
        yield {
            "host": handle.host,
            "port": str(handle.port),
            "username": handle.username,
            "host_key_line": handle.host_key_line,
            "client_key_private": handle.client_key_private,
            "password": "",
            "tree": str(work / "serve" / "tree"),
        }
    finally:
        await handle.close()


def _client(info: dict[str, str], work: Path) -> tuple[Path, SftpEndpoint]:
    key = work / "client_key"
    key.unlink(missing_ok=True)
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(info["client_key_private"])
    endpoint = SftpEndpoint(
        host=info["host"],
        port=int(info["port"]),
        username=info["username"],
        password=info["password"] or None,
        private_key=None if info["password"] else info["client_key_private"],
        path=info["tree"],
        known_host_key=info["host_key_line"],
    )
    return key, endpoint


async def _scan_only(endpoint: SftpEndpoint) -> float:
    with timed() as t:
        async with open_session(endpoint, LOOPBACK) as session:
            await scan(session)
    return t[0]


async def _sftp_listing(info: dict[str, str], key: Path, work: Path) -> float:
    batch = work / "ls-batch.txt"
    folders = sorted(p.name for p in (work / "serve" / "tree").iterdir() if p.is_dir())
    batch.write_text("".join(f"ls -l {info['tree']}/{name}\n" for name in folders))
    with timed() as t:
        done = await sp.run(_sftp_argv(info, key, batch, []), timeout=3600)
    if done.returncode != 0:
        sys.exit(f"sftp failed ({done.returncode}): {done.stderr_tail}")
    return t[0]


async def _unchanged(
    label: str, info: dict[str, str], work: Path, nbytes: int, args: argparse.Namespace
) -> None:
    key, endpoint = _client(info, work)
    first, _ = await _ours(endpoint, work / "ours", True, args)
    agains, scans, listings = [], [], []
    downloaded = 0
    for _ in range(args.repeat):  # alternate, keep the best of each
        again, got = await _ours(endpoint, work / "ours", False, args)
        agains.append(again)
        downloaded += got
        scans.append(await _scan_only(endpoint))
        listings.append(await _sftp_listing(info, key, work))
    files = args.unchanged_files
    again, listing, plain = min(agains), min(scans), min(listings)
    print(f"{label}: {files:,} files, unchanged re-mirror (best of {args.repeat})")
    row("podbackup mirror(), first run", first, nbytes)
    row("podbackup mirror(), nothing changed", again, nbytes, f"downloaded {downloaded} bytes")
    row("  of which listing (scan alone)", listing, nbytes)
    row("OpenSSH sftp, ls -l of every folder", plain, nbytes)
    print(
        f"  per file: re-mirror {again / files * 1e6:.1f} us, listing {listing / files * 1e6:.1f}"
        f" us, sftp ls -l {plain / files * 1e6:.1f} us"
    )
    print(f"  ratio ours (re-mirror) / sftp listing time: {again / plain:.2f}")
    print(f"  load average: {open('/proc/loadavg').read().split()[:3]}")


async def _compare(
    label: str, info: dict[str, str], work: Path, nbytes: int, args: argparse.Namespace
) -> None:
    key, endpoint = _client(info, work)
    tuned_flags = ["-B", "261120", "-R", "128", "-c", "aes128-gcm@openssh.com"]
    ours, theirs, tuned = [], [], []
    for _ in range(args.repeat):  # alternate, keep the best of each
        ours.append((await _ours(endpoint, work / "ours", True, args))[0])
        theirs.append(await _openssh(info, key, work / "openssh", []))
        tuned.append(await _openssh(info, key, work / "openssh", tuned_flags))
    again, again_bytes = await _ours(endpoint, work / "ours", False, args)

    expected = tree_totals(work / "serve" / "tree")
    same = tree_totals(work / "ours") == tree_totals(work / "openssh" / "tree") == expected
    best, base, best_tuned = min(ours), min(theirs), min(tuned)
    check = "identical totals" if same else "MISMATCH"
    print(f"{label}: full mirror into an empty folder (best of {args.repeat}; {check})")
    shape = (
        f"{args.parallel_files}+{args.small_files} files, {args.max_requests} x {args.block_kb} KiB"
    )
    row(f"podbackup mirror() ({shape})", best, nbytes)
    row("OpenSSH sftp get -pr (defaults)", base, nbytes)
    row("OpenSSH sftp -B 261120 -R 128 -c aes128-gcm", best_tuned, nbytes)
    print(f"  ratio ours/OpenSSH speed: {base / best:.2f} (target >= 1.0)")
    print(f"  ratio ours/OpenSSH tuned: {best_tuned / best:.2f}")
    print(f"{label}: unchanged re-mirror")
    row("podbackup mirror(), nothing changed", again, nbytes, f"downloaded {again_bytes} bytes")
    print(f"  load average: {open('/proc/loadavg').read().split()[:3]}")


async def main(args: argparse.Namespace) -> None:
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-sftp-"))
    tree = work / "serve" / "tree"
    compare = _unchanged if args.unchanged_files else _compare
    if not tree.exists() and args.unchanged_files:
        print(f"building the tree in {tree} ...")
        build_many(tree, args.unchanged_files)
    elif not tree.exists():
        print(f"building the tree in {tree} ...")
        build_tree(
            tree,
            large_count=args.large_count,
            large_mb=args.large_mb,
            small_count=args.small_count,
            small_kb=args.small_kb,
        )
    files, nbytes = tree_totals(tree)
    print(f"tree: {files} files, {nbytes / 1024**2:.0f} MiB; machine: {os.cpu_count()} CPUs")
    try:
        if args.server in ("asyncssh", "both"):
            async with _asyncssh_server(work) as info:
                await compare("asyncssh test server", info, work, nbytes, args)
        if args.server in ("openssh", "both"):
            try:
                async with _openssh_server(work) as info:
                    await compare("OpenSSH sshd", info, work, nbytes, args)
            except RuntimeError as exc:
                print(f"OpenSSH sshd: skipped ({exc})")
    finally:
        if not args.workdir and not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large-count", type=int, default=4)
    parser.add_argument("--large-mb", type=int, default=64)
    parser.add_argument("--small-count", type=int, default=2000)
    parser.add_argument("--small-kb", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--parallel-files", type=int, default=8)
    parser.add_argument("--block-kb", type=int, default=256)
    parser.add_argument("--max-requests", type=int, default=64)
    parser.add_argument("--small-files", type=int, default=32)
    parser.add_argument(
        "--unchanged-files",
        type=int,
        default=0,
        help="measure the unchanged re-mirror of a tree of this many small files",
    )
    parser.add_argument(
        "--server",
        choices=["asyncssh", "openssh", "both"],
        default="asyncssh",
        help="asyncssh: the test fixture server; openssh: the system sshd (needs root)",
    )
    parser.add_argument("--workdir", help="reuse this folder (tree is built once)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    asyncio.run(main(parser.parse_args()))
