"""`make run`: the API and a worker against the local PostgreSQL and Redis, ready to use.

Where no PostgreSQL or Redis is configured or answers on the default address, starts
embedded ones under var/embedded (devtools/services.py). Then it
creates `.env` with a fresh encryption key on first run, migrates, starts both processes,
prints an admin token, sets up the demo (devtools/demo.py: a pod served by a local SFTP server,
a demo database, a local S3 server as its target) and stops everything it started on
Ctrl-C. Running it again reuses the `.env`, the database, the saved tokens and the demo.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import pwd
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from app.config import get_settings
from app.kit.crypto import generate_key
from devtools import services

if TYPE_CHECKING:
    from devtools.demo import DemoRun

ROOT = Path(__file__).resolve().parents[1]
# Where .env and var/ live (the project; a test points it at a folder of its own).
HOME = Path(os.environ.get("PODBACKUP_DEV_HOME") or ROOT).resolve()
ENV_FILE = HOME / ".env"
STATE = HOME / "var" / "dev"
PORT = int(os.environ.get("PODBACKUP_DEV_PORT", "8000"))


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def ensure_env_file() -> None:
    if ENV_FILE.exists():
        return
    ENV_FILE.write_text(
        "# Written by `make run` for development. Do not use these values in production.\n"
        f"PODBACKUP_SECRET_KEYS={generate_key('dev1')}\n"
        "PODBACKUP_ALLOW_NETWORKS=127.0.0.0/8,::1/128\n"
        "# The demo pod's database lives on the control database's server.\n"
        "PODBACKUP_ALLOW_OPERATOR_SERVICES=true\n"
        "PODBACKUP_DATA_DIR=./var\n"
        "PODBACKUP_CACHE_DIR=./var/cache\n"
        f"PODBACKUP_LOCAL_ROOTS={HOME / 'var' / 'local'}\n"
        f"PODBACKUP_PUBLIC_URL=http://127.0.0.1:{PORT}\n"
        "PODBACKUP_RECONCILE_SECONDS=5\n"
    )
    ENV_FILE.chmod(0o600)
    say(f"wrote {ENV_FILE.name} with a new development encryption key")


def podbackup(*args: str) -> list[str]:
    return [sys.executable, "-m", "app.cli.__main__", *args]


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def start(
    name: str,
    argv: list[str],
    log_dir: Path,
    env: dict[str, str] | None = None,
    user: str | None = None,
) -> subprocess.Popen[bytes]:
    from app.kit.subprocess import die_with_parent

    uid: int | None = None
    gid: int | None = None
    groups: list[int] | None = None
    preexec: Callable[[], object] = die_with_parent
    if user is not None:  # the embedded PostgreSQL, which will not run as root
        entry = pwd.getpwnam(user)
        uid, gid, groups = entry.pw_uid, entry.pw_gid, []
        # That user may not read this Python's own files: load libc before the fork.
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        preexec = functools.partial(libc.prctl, 1, signal.SIGINT)  # PR_SET_PDEATHSIG
    log = (log_dir / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        argv,
        cwd=HOME,
        env=env,  # the whole environment, or None: ours
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=preexec,  # runs after the change of user, which would clear it
        user=uid,
        group=gid,
        extra_groups=groups,
    )
    log.close()
    return proc


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            say(log.read_text(errors="replace")[-3000:])
            raise SystemExit("the API exited during start-up (log above)")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.3)
    raise SystemExit(f"the API did not answer at {url} within 60 s; see {log}")


def _token_create() -> subprocess.Popen[str]:
    return subprocess.Popen(
        podbackup("token", "create", "--admin", "--name", "dev"),
        cwd=HOME,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def create_admin_token() -> subprocess.Popen[str] | None:
    """Start `podbackup token create` now (it only needs the database, so it runs while the
    API loads) when no admin token is saved; else None."""
    return None if (STATE / "admin-token").exists() else _token_create()


def admin_token(created: subprocess.Popen[str] | None) -> str:
    """The token ``created`` makes; else the saved one while it is valid; else a new one."""
    path = STATE / "admin-token"
    if created is None:
        token = path.read_text().strip()
        with contextlib.suppress(httpx.HTTPError):
            r = httpx.get(
                f"http://127.0.0.1:{PORT}/v1/me",
                headers={"Authorization": f"Bearer {token}"},
                timeout=5,
            )
            if r.status_code == 200:
                return token
        created = _token_create()  # saved for another database
    out, err = created.communicate(timeout=120)
    if created.returncode != 0:
        raise SystemExit(f"`podbackup token create` failed: {err.strip()[-2000:]}")
    token = out.strip().splitlines()[-1]
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)  # even when started with SIGINT ignored (`cmd &`)
    os.chdir(HOME)  # the settings read ./.env
    ensure_env_file()
    # The demo keeps its pod's database on the control database's server (a .env written
    # before that setting existed lacks it): development only, as everything here.
    os.environ.setdefault("PODBACKUP_ALLOW_OPERATOR_SERVICES", "true")
    STATE.mkdir(parents=True, exist_ok=True)
    (HOME / "var" / "local").mkdir(parents=True, exist_ok=True)
    log_dir = HOME / "var" / "log"
    log_dir.mkdir(parents=True, exist_ok=True)

    procs: list[subprocess.Popen[bytes]] = []
    embedded = services.Embedded()
    demo: DemoRun | None = None

    def stop_all(*_: object) -> None:
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    try:
        embedded = services.ensure(
            get_settings(),
            HOME / "var",
            lambda name, argv, user: start(name, argv, log_dir, user=user),
            say,
        )
        os.environ.update(embedded.env)  # for every child, and the demo's own settings
        get_settings.cache_clear()
        migrate = subprocess.run(podbackup("migrate"), cwd=HOME)
        if migrate.returncode != 0:
            raise SystemExit(migrate.returncode)
        api = start("api", podbackup("api", "--port", str(PORT)), log_dir)
        procs.append(api)
        procs.append(start("worker", podbackup("worker"), log_dir))  # loads while the API does
        created = create_admin_token()  # and so does this
        try:
            wait_healthy(f"http://127.0.0.1:{PORT}/healthz", api, log_dir / "api.log")
            token = admin_token(created)
        finally:
            if created is not None and created.poll() is None:
                created.kill()
                created.wait()

        def spawn(name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
            proc = start(name, argv, log_dir, env)
            procs.append(proc)  # stopped with the rest on Ctrl-C
            return proc

        say("setting up the demo (pod, SFTP and S3 servers, database)…")
        demo = run_demo(token, spawn)
        say()
        say(f"podbackup is running: API http://127.0.0.1:{PORT}  (docs: /docs)")
        say(f"logs: {log_dir}/  (api, worker, demo-sftp, demo-s3)   stop: Ctrl-C")
        say()
        say(f"admin token: {token}")
        for line in demo.lines if demo else []:
            say(line)
        say()
        kept = time.monotonic()
        watched = procs + [proc for proc, _sig in embedded.procs]
        while all(p.poll() is None for p in watched):
            time.sleep(0.5)
            if time.monotonic() - kept > 10:
                persist(demo)
                kept = time.monotonic()
        say("a process stopped; see the logs in var/log; shutting down")
    except KeyboardInterrupt:
        say("\nstopping…")
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            persist(demo)  # before the S3 server stops
        stop_all()
        embedded.stop()  # last: the API and the worker were its clients


def run_demo(
    token: str, spawn: Callable[[str, list[str], dict[str, str]], subprocess.Popen[bytes]]
) -> DemoRun | None:
    """Create (or reuse) the demo. A failed demo leaves the API and worker running and
    says why."""
    from devtools.demo import DemoError, DemoOptions, bootstrap

    paths = DemoOptions(demo=HOME / "var" / "demo", state=STATE, local_root=HOME / "var" / "local")
    try:
        return bootstrap(f"http://127.0.0.1:{PORT}", token, spawn, paths)
    except (DemoError, httpx.HTTPError) as exc:
        say(f"\nthe demo could not be set up: {exc}\nthe API and worker run anyway")
        return None


def persist(demo: DemoRun | None) -> None:
    """Copy the demo's S3 objects to disk; a failure only costs the next run its data."""
    if demo is None:
        return
    try:
        demo.persist()
    except Exception as exc:  # never stop the dev server over the demo's copy
        say(f"could not keep the demo S3 data ({type(exc).__name__}: {exc})")


if __name__ == "__main__":
    main()
