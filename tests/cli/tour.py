"""The README's tour as commands: every line of its shell blocks, continuations joined and
comments dropped."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def tour_section() -> str:
    text = README.read_text()
    start = text.index("## A five-minute tour")
    return text[start : text.index("\n## ", start + 1)]


def tour_lines() -> list[str]:
    """The shell lines of the tour's ``sh`` blocks, in order."""
    lines: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", tour_section(), re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()  # a comment after the command
            if line and not line.startswith("#"):
                lines.append(re.sub(r"\s+", " ", line))
    return lines
