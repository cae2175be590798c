"""Results and progress of SFTP transfers (plain data, safe to log and store)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class MirrorProgress:
    """Progress of a mirror or upload.

    During ``phase == "scan"`` only ``files_total``/``bytes_total`` grow (everything
    found so far). During ``"download"`` (or ``"upload"``) the totals are what has to be
    transferred this run — changed and new files — so ``bytes_done / bytes_total`` is
    a fair completion ratio for an ETA.
    """

    files_total: int
    files_done: int
    bytes_total: int
    bytes_done: int
    phase: str  # "scan" | "download" | "upload"


@dataclass
class MirrorStats:
    files_total: int = 0
    dirs_total: int = 0
    symlinks_total: int = 0
    symlinks_skipped: int = 0  # links the server would not read (listed in unreadable)
    bytes_total: int = 0
    files_downloaded: int = 0
    bytes_downloaded: int = 0
    files_deleted: int = 0
    # {"path": "/relative/path", "error": "permission denied"}, sorted by path
    unreadable: list[dict[str, str]] = field(default_factory=list)
    host_key: str = ""  # the server's key line as seen ("<alg> <base64>"), for pinning


@dataclass
class UploadStats:
    files_total: int = 0
    files_uploaded: int = 0
    bytes_uploaded: int = 0
    files_deleted: int = 0
    files_compared: int = 0  # same size and mtime on the server: compared byte by byte
    files_rewritten: int = 0  # ... and their bytes differed: uploaded again
    files_verified: int = 0  # uploaded, read back and compared, then checked after rename
    host_key: str = ""
