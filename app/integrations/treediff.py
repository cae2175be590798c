"""What a restore would change in a pod's folder: the answer of a restore preview, built by
the comparisons of ``localfs.compare`` and ``sftp.compare`` (which read and never write).

Paths are shown as ``/files/<path in the pod's folder>`` (the snapshot's own names).
Lists are capped at ``limit`` entries each (``truncated`` then says so); counts and byte
totals are exact."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Why an entry the pod has would be written: its kind (file, folder, link), its size, its
# bytes (or a link's text), its permission bits, its mtime (as the restore sets it).
REASONS = ("type", "size", "content", "mode", "mtime")
LIMIT = 1000


def shown(rel: str) -> str:
    return f"/files/{rel}" if rel else "/files"


@dataclass
class TreeDiff:
    limit: int = LIMIT
    add: list[dict[str, Any]] = field(default_factory=list)
    overwrite: list[dict[str, Any]] = field(default_factory=list)
    delete: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: {"add": 0, "overwrite": 0, "delete": 0, "unchanged": 0}
    )
    bytes: dict[str, int] = field(default_factory=lambda: {"add": 0, "overwrite": 0})
    truncated: bool = False
    unreadable: list[dict[str, Any]] = field(default_factory=list)

    def _keep(self, items: list[dict[str, Any]], item: dict[str, Any]) -> None:
        if len(items) < self.limit:
            items.append(item)
        else:
            self.truncated = True

    def added(self, rel: str, kind: str, size: int) -> None:
        """The pod lacks it: the restore creates it (``size``: a file's bytes, else 0)."""
        self.counts["add"] += 1
        self.bytes["add"] += size
        self._keep(self.add, {"path": shown(rel), "type": kind, "size": size})

    def changed(self, rel: str, kind: str, size: int, reasons: list[str]) -> None:
        """The pod has it, different by ``reasons`` (``REASONS`` order); ``size`` is the
        snapshot's, counted in ``bytes.overwrite`` when its bytes are written."""
        if not reasons:
            self.counts["unchanged"] += 1
            return
        self.counts["overwrite"] += 1
        if "content" in reasons or "type" in reasons:
            self.bytes["overwrite"] += size
        ordered = [r for r in REASONS if r in reasons]
        self._keep(self.overwrite, {"path": shown(rel), "type": kind, "reasons": ordered})

    def deleted(self, rel: str, kind: str) -> None:
        """The pod has it and the restore removes it (mirror mode, or below a folder a
        file or link of the snapshot replaces)."""
        self.counts["delete"] += 1
        self._keep(self.delete, {"path": shown(rel), "type": kind})

    def unreadable_folder(self, rel: str) -> None:
        """A folder the restore removes whose contents could not be read: the counts
        below it are unknown (the restore would fail there)."""
        self._keep(self.unreadable, {"path": shown(rel)})

    def result(self) -> dict[str, Any]:
        return {
            "add": self.add,
            "overwrite": self.overwrite,
            "delete": self.delete,
            "unchanged": self.counts["unchanged"],
            "counts": dict(self.counts),
            "bytes": dict(self.bytes),
            "truncated": self.truncated,
            "unreadable": self.unreadable,
        }
