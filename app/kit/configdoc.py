"""The configuration table in README.md, generated from the Settings class."""

from __future__ import annotations

from typing import Any

from app.config import Settings

BEGIN = "<!-- config-table:begin -->"
END = "<!-- config-table:end -->"


def _default(field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    else:
        value = field.default
    if value is None or value == []:
        return "—"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def table() -> str:
    lines = ["| variable | default | what |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        text = (field.description or "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `PODBACKUP_{name.upper()}` | `{_default(field)}` | {text} |")
    return "\n".join(lines)


def block() -> str:
    return f"{BEGIN}\n{table()}\n{END}"
