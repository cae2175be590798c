"""Reusable field types and checks for write bodies."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints

from app.kit.netpolicy import parse_ip

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


class Body(BaseModel):
    """Base of every write body: unknown fields are refused, strings trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def check_hostname(value: str) -> str:
    host = value.strip()
    if not host:
        raise ValueError("host is empty")
    if "://" in host or "/" in host:
        raise ValueError("give a bare hostname or IP address, without scheme or path")
    if parse_ip(host) is not None:
        return host.strip("[]")
    if len(host) > 253:
        raise ValueError("hostname is longer than 253 characters")
    labels = host.rstrip(".").split(".")
    if not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"'{host}' is not a valid hostname")
    return host.rstrip(".").lower()


Hostname = Annotated[str, AfterValidator(check_hostname)]

# Unicode categories a name must not hold: controls (a terminal obeys ESC sequences),
# formatting marks (bidirectional overrides reorder what is shown, zero-width characters
# hide), surrogates, and line or paragraph separators.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def check_printable(value: str) -> str:
    """A name people read in panels, lists and terminals: visible characters and spaces."""
    for i, ch in enumerate(value):
        if (
            ch == "\u200d"
            and 0 < i < len(value) - 1
            and not (value[i - 1] + value[i + 1]).isascii()
        ):
            continue  # the joiner inside an emoji sequence (👨‍👩‍👧)
        if unicodedata.category(ch) in _HIDDEN:
            raise ValueError(
                f"holds U+{ord(ch):04X} at position {i + 1}, a control or formatting "
                "character; names are shown in panels and terminals: use visible characters"
            )
    return value


Printable = Annotated[str, AfterValidator(check_printable)]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(check_printable),
]
Port = Annotated[int, "port"]


def check_http_url(value: str) -> str:
    url = value.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("the URL must start with https:// (or http://)")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    if parts.username or parts.password:
        raise ValueError("put no credentials in the URL")
    check_hostname(parts.hostname)
    return url


HttpUrl = Annotated[str, AfterValidator(check_http_url)]


def url_host(url: str) -> str:
    return urlsplit(url).hostname or ""


def check_absolute_path(value: str) -> str:
    path = value.strip()
    if not path.startswith("/"):
        raise ValueError("the path must be absolute (start with /)")
    if "\x00" in path:
        raise ValueError("the path contains a NUL byte")
    if any(part == ".." for part in path.split("/")):
        raise ValueError("the path must not contain '..'")
    return path.rstrip("/") or "/"


AbsolutePath = Annotated[str, AfterValidator(check_absolute_path)]


def under_roots(path: str, roots: list[Path]) -> bool:
    """True when ``path`` (symlinks resolved) lies inside one of ``roots``."""
    real = Path(path).resolve()
    for root in roots:
        base = root.resolve()
        if real == base or base in real.parents:
            return True
    return False
