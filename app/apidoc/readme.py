"""The job error code table in README.md, generated from the registry (`make docs`)."""

from __future__ import annotations

import sys
from pathlib import Path

from app.models.errorcodes import JOB_ERROR_CODES

BEGIN = "<!-- job-error-codes:begin -->"
END = "<!-- job-error-codes:end -->"


def table() -> str:
    lines = ["| code | retried | meaning | usual fix |", "|---|---|---|---|"]
    for code, doc in JOB_ERROR_CODES.items():
        retried = "yes" if doc.retryable else "no"
        meaning, hint = (text.replace("|", "\\|") for text in (doc.meaning, doc.hint))
        lines.append(f"| `{code}` | {retried} | {meaning} | {hint} |")
    return "\n".join(lines)


def block() -> str:
    return f"{BEGIN}\n{table()}\n{END}"


def rewrite(path: Path) -> None:
    text = path.read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    path.write_text(text[:start] + block() + text[end:])


if __name__ == "__main__":
    rewrite(Path(sys.argv[1] if len(sys.argv) > 1 else "README.md"))
