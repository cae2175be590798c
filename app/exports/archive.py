"""Build the export archive (tar.gz holding files/ and database/<name>.sql) on disk,
streaming: memory stays flat whatever the pod's size."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import tarfile
from pathlib import Path

from app.integrations.restic import Repository, Restic


class HashingWriter:
    """A file object that hashes and counts what is written through it."""

    def __init__(self, path: Path) -> None:
        # 0600 from the first byte: an export holds the pod's files and database.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
        self._fh = os.fdopen(fd, "wb")
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._fh.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()


def tar_folders(dest: Path, folders: dict[str, Path]) -> tuple[int, str]:
    """tar.gz of ``{arcname: folder}``; returns (size, sha256). Symlinks stay symlinks."""
    out = HashingWriter(dest)
    try:
        with (
            gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6) as gz,
            tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar,
        ):
            for arcname, folder in folders.items():
                if folder.exists():
                    tar.add(folder, arcname=arcname, recursive=True)
    finally:
        out.close()
    return out.size, out.sha256.hexdigest()


async def snapshot_to_targz(
    restic: Restic, repo: Repository, snapshot_id: str, dest: Path
) -> tuple[int, str]:
    """`restic dump --archive tar <id> /` compressed into ``dest``; (size, sha256)."""
    out = HashingWriter(dest)
    try:
        gz = gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6)
        async with restic.dump_stream(repo, snapshot_id, "/", archive="tar") as stream:
            while chunk := await stream.read(1 << 20):
                await asyncio.to_thread(gz.write, chunk)
        gz.close()
    finally:
        out.close()
    return out.size, out.sha256.hexdigest()
