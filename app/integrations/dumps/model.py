"""Value types of the dumps integration."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

KINDS = ("postgres", "mysql", "mariadb")


def family(kind: str) -> str:
    """ "postgres" or "mysql" (MariaDB and MySQL share clients and dump format)."""
    if kind == "postgres":
        return "postgres"
    if kind in ("mysql", "mariadb"):
        return "mysql"
    raise ValueError(f"unknown database kind {kind!r}; expected one of {', '.join(KINDS)}")


@dataclass(frozen=True)
class DbEndpoint:
    kind: str  # "postgres" | "mysql" | "mariadb"
    host: str
    port: int
    name: str
    username: str
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Conn:
    """An endpoint whose host passed the address policy; connect to ``address`` only."""

    endpoint: DbEndpoint
    address: str

    @property
    def name(self) -> str:
        return self.endpoint.name

    @property
    def password(self) -> str | None:
        return self.endpoint.password

    @property
    def where(self) -> str:
        return f"{self.endpoint.host}:{self.endpoint.port}"

    def on(self, database: str) -> Conn:
        """The same server and login, another database."""
        return Conn(replace(self.endpoint, name=database), self.address)


@dataclass(frozen=True)
class ServerInfo:
    version: str
    major: int


@dataclass
class DumpResult:
    path: Path
    bytes: int
    sha256: str
    server_version: str
    client: str  # the binary used (path) and its version
    tables: dict[str, int]  # table -> row count as contained in the dump


@dataclass
class LoadResult:
    tables: dict[str, int]
    seconds: float
    not_restored: list[str] = field(default_factory=list)  # what the load left out, and why


@dataclass
class DumpManifest:
    """What a dump file holds, read in one streaming pass.

    ``complete``: the completion footer is present and no COPY block/INSERT statement is
    left open. Table keys are ``schema.table`` for PostgreSQL and ``table`` for MySQL, the
    same keys ``table_counts`` returns.
    """

    kind: str  # "postgres" | "mysql" | "unknown"
    complete: bool
    tables: dict[str, int]
    bytes: int
    sha256: str
    problem: str | None = None


@dataclass
class DrillResult:
    ok: bool
    tables: dict[str, dict[str, Any]]  # table -> {"expected", "restored", "ok"}
    problems: list[str]
    seconds: float
