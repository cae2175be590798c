"""Where export archives are kept on the worker's disk."""

from __future__ import annotations

import uuid
from pathlib import Path


def store_path(export_dir: Path, export_id: uuid.UUID) -> Path:
    return export_dir / f"{export_id}.tar.gz"


def private_dir(path: Path) -> None:
    """The export store: 0700, so no other local user lists or reads the archives."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
