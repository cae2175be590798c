"""Paths chosen for a partial restore, relative to the pod's files folder.

Every path is literal: a name may hold spaces at either end, ``*``, ``?``, ``[…]`` or a
backslash and still means only that file (restic's patterns are escaped where the paths
reach it, in ``Restic.restore``)."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence


def normalize(path: str) -> str:
    """'/files/uploads/x', 'files/uploads/x', '/uploads/x' and 'uploads/x' → 'uploads/x'."""
    if "\x00" in path:
        raise ValueError("the path contains a NUL byte")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise ValueError(f"'{path}' must not contain '..'")
    if parts and parts[0] == "files":
        parts = parts[1:]
    return posixpath.join(*parts) if parts else ""


def files_subpaths(paths: Sequence[str] | None) -> list[str]:
    """Normalized, de-duplicated; empty when the whole files folder is meant."""
    if not paths:
        return []
    out: list[str] = []
    for raw in paths:
        rel = normalize(raw)
        if not rel:
            return []  # '/files' or '/': everything
        if rel not in out:
            out.append(rel)
    return out
