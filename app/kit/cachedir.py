"""The worker's cache (PODBACKUP_CACHE_DIR) is private to the service's user.

It holds every pod's files (SFTP mirrors, local staging), fresh database dumps and
restic caches: the mirror reproduces each pod's own modes below it, so the cache root
and the folders the service creates in it are 0700, whatever the umask. A cache root
found group- or world-accessible is tightened (logged), not trusted.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE = 0o700


def ensure_cache_dir(cache_dir: Path) -> Path:
    """Create ``cache_dir`` (0700) if needed and make sure only its owner can enter it."""
    cache_dir.mkdir(parents=True, exist_ok=True, mode=PRIVATE)
    st = os.stat(cache_dir)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"PODBACKUP_CACHE_DIR {cache_dir} is not a folder")
    if stat.S_IMODE(st.st_mode) & 0o077:
        log.warning(
            "cache: %s was mode %o; setting it to 0700 (it holds every pod's files)",
            cache_dir,
            stat.S_IMODE(st.st_mode),
        )
        os.chmod(cache_dir, PRIVATE)
    return cache_dir


def private_dirs(cache_dir: Path, path: Path) -> Path:
    """Create ``path`` below ``cache_dir``, each missing folder 0700 (the root too)."""
    ensure_cache_dir(cache_dir)
    rel = path.relative_to(cache_dir)  # ValueError for a path outside the cache
    current = cache_dir
    for part in rel.parts:
        current = current / part
        try:
            os.mkdir(current, PRIVATE)
        except FileExistsError:
            pass
    return path
