"""`make run`'s demo set up twice against a live service: the second run reuses the
account, token, pod and database, and the S3 data of the first (its backup is still
there to download), and the demo's next step, `podbackup backup demo --wait`, works."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from devtools.demo import DemoOptions, bootstrap
from devtools.s3 import moto_binary
from tests.cli.commands import run
from tests.cli.conftest import Live
from tests.cli.tour import tour_lines

ROOT = Path(__file__).resolve().parents[2]


class Spawner:
    """The dev server's part: start the demo's servers and stop them again."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def __call__(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            proc.wait(timeout=20)
        self.procs.clear()


@pytest.fixture
def options(live: Live, tmp_path: Path) -> Iterator[DemoOptions]:
    suffix = secrets.token_hex(4)
    opts = DemoOptions(
        demo=tmp_path / "var" / "demo",  # as `make run` has it: the tour's paths work here
        state=tmp_path / "state",
        local_root=live.root / "demo-local",
        sftp_port=0,
        s3_port=0,
        db_server_url=live.settings.sync_database_url,
        db_name=f"podbackup_demo_app_{suffix}",
        db_user=f"podbackup_demo_{suffix}",
    )
    yield opts

    async def drop() -> None:
        conn = await asyncpg.connect(live.settings.sync_database_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{opts.db_name}" WITH (FORCE)')
            await conn.execute(f'DROP ROLE IF EXISTS "{opts.db_user}"')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.mark.skipif(moto_binary() is None, reason="moto_server is not installed")
def test_demo_twice_reuses_everything(live: Live, options: DemoOptions, tmp_path: Path) -> None:
    spawn = Spawner(tmp_path)
    try:
        first = bootstrap(live.url, live.admin, spawn, options)
        text = "\n".join(first.lines)
        assert "settings verified: ok" in text, text
        assert f"export PODBACKUP_URL={live.url} PODBACKUP_TOKEN={first.token}" in text
        assert "podbackup backup demo --wait" in text
        assert (options.pod_files / "uploads" / "2024" / "05" / "team-photo.png").exists()

        r = live.cli("backup", "demo", "--wait", "--json", token=first.token)
        assert r.returncode == 0, r.stdout + r.stderr
        result = json.loads(r.stdout)["result"]
        assert result["database"]["tables"]["public.comments"] == 50
        assert result["files"]["files_total"] == 12
        # Browsing waits for the snapshot's index (a job that reads the S3 server).
        r = live.cli("files", "demo", "latest", "/files", token=first.token)
        assert "uploads/" in r.stdout, r.stdout + r.stderr
        first.persist()
        host_key = (options.demo / "sftp-host-key").read_bytes()
    finally:
        spawn.stop()  # Ctrl-C: the servers go, their state stays in options.demo

    try:
        second = bootstrap(live.url, live.admin, spawn, options)
        text = "\n".join(second.lines)
        assert (second.token, second.pod_id) == (first.token, first.pod_id)
        assert "settings verified: ok" in text, text
        assert "objects put back" in text
        assert (options.demo / "sftp-host-key").read_bytes() == host_key
        with live.http() as admin:
            accounts = admin.get("/v1/accounts", params={"limit": 200}).json()["items"]
        assert [a["name"] for a in accounts].count("demo") == 1
        env_file = options.demo / "env.sh"
        assert env_file.stat().st_mode & 0o777 == 0o600
        assert f"export DEMO_POD={first.pod_id}" in env_file.read_text()
        original = options.pod_files / "config" / "app.ini"
        dest = tmp_path / "app.ini"
        r = live.cli(
            "download",
            "demo",
            "latest",
            "/files/config/app.ini",
            "-o",
            str(dest),
            token=second.token,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert dest.read_bytes() == original.read_bytes()
    finally:
        spawn.stop()


def test_demo_without_moto_uses_a_local_repository(
    live: Live, options: DemoOptions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("devtools.demo_servers.s3.moto_binary", lambda: None)
    spawn = Spawner(tmp_path)
    try:
        run = bootstrap(live.url, live.admin, spawn, options)
    finally:
        spawn.stop()
    text = "\n".join(run.lines)
    assert "moto_server not found" in text
    assert "settings verified: ok" in text, text
    with live.http() as admin:
        target = admin.get(f"/v1/pods/{run.pod_id}/backup-settings").json()["target"]
    assert target == {"kind": "local", "path": str(options.local_root / "demo-repo")}


@pytest.mark.skipif(moto_binary() is None, reason="moto_server is not installed")
def test_demo_s3_server_checks_the_secret(live: Live, options: DemoOptions, tmp_path: Path) -> None:
    """The demo's S3 server checks signatures: a typo'd secret fails verify's credentials
    check, as at a real provider; the right one passes."""
    spawn = Spawner(tmp_path)
    try:
        run = bootstrap(live.url, live.admin, spawn, options)
        assert run.s3 is not None
        body = {
            "target": {
                "kind": "s3",
                "endpoint": run.s3.url,
                "bucket": "demo-pod-backups",
                "region": "us-east-1",
                "access_key_id": run.s3.key_id,
                "secret_access_key": run.s3.secret[:-1]
                + ("A" if run.s3.secret[-1] != "A" else "B"),
            }
        }
        with live.http(token=run.token) as api:
            settings = f"/v1/pods/{run.pod_id}/backup-settings"
            assert api.put(settings, json=body).status_code == 200
            checks = api.post(f"{settings}/verify").json()
            assert checks["ok"] is False
            credentials = next(c for c in checks["checks"] if c["name"] == "credentials")
            assert credentials["level"] == "error", checks
            assert "secret access key does not match" in credentials["detail"]

            body["target"]["secret_access_key"] = run.s3.secret
            assert api.put(settings, json=body).status_code == 200
            checks = api.post(f"{settings}/verify").json()
            credentials = next(c for c in checks["checks"] if c["name"] == "credentials")
            assert (checks["ok"], credentials["level"]) == (True, "ok"), checks
    finally:
        spawn.stop()


@pytest.mark.skipif(moto_binary() is None, reason="moto_server is not installed")
def test_the_readme_tour_runs_with_podbackup_alone(
    live: Live, options: DemoOptions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every line of the README's tour, in order, after `make run`'s demo set-up: the
    `podbackup` lines through the real CLI (in this process), the `rm` as a process."""
    monkeypatch.chdir(tmp_path)  # the tour's relative paths (var/demo/…, logo.png)
    spawn = Spawner(tmp_path)
    logo = options.pod_files / "uploads" / "2024" / "06" / "logo.png"
    try:
        bootstrap(live.url, live.admin, spawn, options)
        original = logo.read_bytes()
        env = {"PODBACKUP_CONFIG": str(tmp_path / "config.toml"), "COLUMNS": "200"}
        for line in (options.demo / "env.sh").read_text().splitlines():
            if line.startswith("export "):
                key, _, value = shlex.split(line)[1].partition("=")
                env[key] = value
        outputs: dict[str, str] = {}
        for line in tour_lines():
            argv = shlex.split(re.sub(r"\$(\w+)", lambda m: env[m.group(1)], line))
            if argv[0] == "rm":
                subprocess.run(argv, check=True)
                assert not logo.exists()
                continue
            r = run(argv[1:], env)
            assert r.exit_code == 0, f"{line}\n{r.stdout}\n{r.stderr}"
            outputs[line] = r.stdout
        # A second pod of the same name is refused, with the way out.
        r = run(["pods", "create", "wiki", "--app", "x"], env)
        assert r.exit_code == 2
        assert "a pod named 'wiki' already" in r.stderr
        assert "hint: pod names are unique per account" in r.stderr
    finally:
        spawn.stop()
    assert logo.read_bytes() == original  # restored
    assert (tmp_path / "logo.png").read_bytes() == original  # downloaded
    text = "\n".join(outputs.values())
    assert "created pod wiki" in text
    assert "pod_files" in text  # verify's table
    assert "succeeded" in text
    assert "wiki-backups" in text
