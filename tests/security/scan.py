"""Find secret values in text: raw, JSON-escaped, URL-encoded, and by their random core
(a password with quotes is escaped differently in JSON, shell and conninfo text)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import quote


def forms(secret: str) -> set[str]:
    """The ways a secret may be written into text, shortest meaningful ones included."""
    found = {secret, json.dumps(secret)[1:-1], quote(secret, safe="")}
    # The longest run of plain characters (e.g. the random suffix of "Pw'\"\\ #;$`a1b2c3").
    runs = re.findall(r"[A-Za-z0-9_\-]{10,}", secret)
    found.update(runs)
    return {f for f in found if len(f) >= 8}


@dataclass
class Scanner:
    secrets: dict[str, str] = field(default_factory=dict)  # label -> value
    hits: list[str] = field(default_factory=list)

    def add(self, label: str, value: str | None) -> None:
        if value:
            self.secrets[label] = value

    def scan(self, where: str, text: str | bytes, *, allow: tuple[str, ...] = ()) -> None:
        data = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        for label, value in self.secrets.items():
            if label in allow:
                continue
            for form in forms(value):
                if form in data:
                    at = data.index(form)
                    context = data[max(0, at - 80) : at + len(form) + 40].replace("\n", "⏎")
                    self.hits.append(f"{label} in {where}: …{context}…")
                    break
