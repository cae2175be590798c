"""SFTP restore: upload() into a pod, against the OpenSSH sftp client, same tree, same
server, same run.

    .venv/bin/python -m bench.sftp_restore [--large-count 4 --large-mb 64 --small-count 2000]

Three cases for ``upload()`` (the files part of a restore job over SFTP):
- into an empty folder (everything written, read back and verified) vs `sftp put -pr`;
- into an unchanged folder: every file has the snapshot's size and mtime, so every file is
  read from the server and compared byte by byte — the price of the content guarantee,
  against what reading the tree costs: `sftp get -pr` of the same tree;
- the same with 1% of the files rotted in place (size and mtime kept): they are found and
  rewritten.
The server is the asyncssh test fixture in its own process (as in ``bench.sftp_mirror``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
from pathlib import Path

from app.integrations.sftp import SftpEndpoint, upload
from app.kit import subprocess as sp
from bench.common import build_tree, row, timed, tree_totals
from bench.sftp_mirror import LOOPBACK, _asyncssh_server, _openssh


def _rot(root: Path, every: int) -> int:
    """Flip one byte in every ``every``-th file, keeping size and mtime."""
    count = 0
    for i, path in enumerate(sorted(p for p in root.rglob("*") if p.is_file())):
        if i % every:
            continue
        st = path.stat()
        if not st.st_size:
            continue
        with path.open("r+b") as fh:
            fh.seek(st.st_size // 2)
            byte = fh.read(1)
            fh.seek(st.st_size // 2)
            fh.write(bytes([byte[0] ^ 0xFF]))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        count += 1
    return count


async def main(args: argparse.Namespace) -> None:
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-sftp-restore-"))
    src = work / "snapshot"
    if not src.exists():
        print(f"building the tree in {src} ...")
        build_tree(
            src,
            large_count=args.large_count,
            large_mb=args.large_mb,
            small_count=args.small_count,
            small_kb=args.small_kb,
        )
    files, nbytes = tree_totals(src)
    print(f"tree: {files} files, {nbytes / 1024**2:.0f} MiB; machine: {os.cpu_count()} CPUs")
    served = work / "serve" / "tree"
    try:
        async with _asyncssh_server(work) as info:
            key = work / "client_key"
            key.unlink(missing_ok=True)
            key.write_text(info["client_key_private"])
            key.chmod(0o600)
            endpoint = SftpEndpoint(
                host=info["host"],
                port=int(info["port"]),
                username=info["username"],
                password=info["password"],
                path=info["tree"],
                known_host_key=info["host_key_line"],
            )
            empty, same, rotted, put, get = [], [], [], [], []
            found = rewritten = 0
            for _ in range(args.repeat):
                shutil.rmtree(served, ignore_errors=True)
                served.mkdir(parents=True)
                with timed() as t:
                    stats = await upload(endpoint, LOOPBACK, src)
                empty.append(t[0])
                assert stats.files_verified == files, stats
                assert tree_totals(served) == (files, nbytes)

                with timed() as t:
                    stats = await upload(endpoint, LOOPBACK, src)
                same.append(t[0])
                assert (stats.files_compared, stats.files_uploaded) == (files, 0), stats

                rotted_now = _rot(served, 100)
                with timed() as t:
                    stats = await upload(endpoint, LOOPBACK, src)
                rotted.append(t[0])
                found, rewritten = rotted_now, stats.files_rewritten
                assert rewritten == found, stats

                get.append(await _openssh(info, key, work / "openssh", []))
                shutil.rmtree(served)
                served.mkdir()
                put.append(await _put(info, key, src, work))
    finally:
        if not args.workdir and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    best = min
    print(f"asyncssh test server, best of {args.repeat}")
    row("upload() into an empty folder (+ read back)", best(empty), nbytes)
    row("OpenSSH sftp put -pr", best(put), nbytes)
    row("upload() into an unchanged folder (compare)", best(same), nbytes)
    row("OpenSSH sftp get -pr (reading the tree)", best(get), nbytes)
    row(f"upload(), {found} files rotted in place", best(rotted), nbytes, f"{rewritten} rewritten")
    print(f"  ratio empty folder: OpenSSH put / ours {best(put) / best(empty):.2f}")
    print(f"  ratio unchanged:    OpenSSH get / ours {best(get) / best(same):.2f}")


async def _put(info: dict[str, str], key: Path, src: Path, work: Path) -> float:
    """`sftp put -pr` of the tree's contents into the served folder."""
    batch = work / "put.txt"
    batch.write_text(f"put -pr {src}/* {info['tree']}/\n")
    argv = [
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
        f"{info['username']}@{info['host']}",
    ]
    with timed() as t:
        done = await sp.run(argv, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(f"sftp put failed ({done.returncode}): {done.stderr_tail}")
    return t[0]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large-count", type=int, default=4)
    parser.add_argument("--large-mb", type=int, default=64)
    parser.add_argument("--small-count", type=int, default=2000)
    parser.add_argument("--small-kb", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workdir", help="reuse this folder (the tree is built once)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    asyncio.run(main(parser.parse_args()))
