from __future__ import annotations

import re
from dataclasses import dataclass

from app.kit import subprocess as sp


@dataclass(frozen=True)
class ResticVersion:
    major: int
    minor: int
    patch: int

    def at_least(self, major: int, minor: int, patch: int = 0) -> bool:
        return (self.major, self.minor, self.patch) >= (major, minor, patch)

    @property
    def text(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"

    # Features by version. 0.14 is the oldest supported (Debian 12).
    @property
    def compression(self) -> bool:
        return self.at_least(0, 14)

    @property
    def exit_codes(self) -> bool:
        """10 no repository, 11 lock failed, 12 wrong password."""
        return self.at_least(0, 17)

    @property
    def skip_if_unchanged(self) -> bool:
        return self.at_least(0, 17)

    @property
    def restore_overwrite(self) -> bool:
        """`restore --overwrite if-changed` and `--delete`."""
        return self.at_least(0, 17)

    @property
    def init_json(self) -> bool:
        """`init --json` prints the new repository's full id (0.14 prints a 10-hex prefix)."""
        return self.at_least(0, 15)

    @property
    def json_summary_full_id(self) -> bool:
        """0.14's summary carries the short id; later versions the full one."""
        return self.at_least(0, 15)


def parse_version(text: str) -> ResticVersion:
    match = re.search(r"restic (\d+)\.(\d+)\.(\d+)", text)
    if not match:
        raise ValueError(f"cannot read a restic version from {text[:80]!r}")
    return ResticVersion(*(int(g) for g in match.groups()))


async def detect(binary: str) -> ResticVersion:
    out: list[str] = []
    done = await sp.run([binary, "version"], on_stdout=out.append, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"`{binary} version` failed: {done.stderr_tail}")
    version = parse_version("\n".join(out))
    if not version.at_least(0, 14):
        raise RuntimeError(f"restic {version.text} is too old; 0.14 or newer is needed")
    return version
