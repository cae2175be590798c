"""`make run`: the API and a worker against the local PostgreSQL and Redis, ready to use.

Creates `.env` with a fresh encryption key on first run, migrates, starts both processes,
prints an admin token and a curl example, and stops everything on Ctrl-C. Running it again
reuses the `.env`, the database and the saved token.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.kit.crypto import generate_key

ROOT = Path(__file__).resolve().parents[1]
ENV_FILE = ROOT / ".env"
STATE = ROOT / "var" / "dev"
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
        "PODBACKUP_DATA_DIR=./var\n"
        "PODBACKUP_CACHE_DIR=./var/cache\n"
        f"PODBACKUP_LOCAL_ROOTS={ROOT / 'var' / 'local'}\n"
        f"PODBACKUP_PUBLIC_URL=http://127.0.0.1:{PORT}\n"
        "PODBACKUP_RECONCILE_SECONDS=5\n"
    )
    ENV_FILE.chmod(0o600)
    say(f"wrote {ENV_FILE.name} with a new development encryption key")


def podbackup(*args: str) -> list[str]:
    return [sys.executable, "-m", "app.cli.__main__", *args]


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def start(name: str, argv: list[str], log_dir: Path) -> subprocess.Popen[bytes]:
    from app.kit.subprocess import die_with_parent

    log = (log_dir / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent,
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


def admin_token() -> str:
    """Reuse the saved development admin token while it is valid; else create one."""
    path = STATE / "admin-token"
    if path.exists():
        token = path.read_text().strip()
        with contextlib.suppress(httpx.HTTPError):
            r = httpx.get(
                f"http://127.0.0.1:{PORT}/v1/me",
                headers={"Authorization": f"Bearer {token}"},
                timeout=5,
            )
            if r.status_code == 200:
                return token
    out = subprocess.run(
        podbackup("token", "create", "--admin", "--name", "dev"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    token = out.stdout.strip().splitlines()[-1]
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    ensure_env_file()
    STATE.mkdir(parents=True, exist_ok=True)
    (ROOT / "var" / "local").mkdir(parents=True, exist_ok=True)
    log_dir = ROOT / "var" / "log"
    log_dir.mkdir(parents=True, exist_ok=True)

    migrate = subprocess.run(podbackup("migrate"), cwd=ROOT)
    if migrate.returncode != 0:
        raise SystemExit(migrate.returncode)

    procs: list[subprocess.Popen[bytes]] = []

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

    try:
        api = start("api", podbackup("api", "--port", str(PORT)), log_dir)
        procs.append(api)
        wait_healthy(f"http://127.0.0.1:{PORT}/healthz", api, log_dir / "api.log")
        procs.append(start("worker", podbackup("worker"), log_dir))
        token = admin_token()
        demo_lines = run_demo(token)
        say()
        say(f"podbackup is running: API http://127.0.0.1:{PORT}  (docs: /docs)")
        say(f"logs: {log_dir}/api.log and worker.log   stop: Ctrl-C")
        say()
        say(f"admin token: {token}")
        say(f"  export PODBACKUP_URL=http://127.0.0.1:{PORT} PODBACKUP_TOKEN={token}")
        for line in demo_lines:
            say(line)
        say()
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        say("a process stopped; see the logs in var/log; shutting down")
    except KeyboardInterrupt:
        say("\nstopping…")
    finally:
        stop_all()


def run_demo(token: str) -> list[str]:
    """Create (or find) the demo account and pod; return lines to print."""
    from app.demo import bootstrap

    return bootstrap(f"http://127.0.0.1:{PORT}", token)


if __name__ == "__main__":
    main()
