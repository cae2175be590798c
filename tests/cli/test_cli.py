"""The `podbackup` client commands against a live API and worker (see conftest.py)."""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
from typing import Any

import pytest

from tests.cli.commands import run
from tests.cli.conftest import Live


@pytest.fixture(scope="module")
def first_backup(live: Live) -> subprocess.CompletedProcess[str]:
    return live.cli("backup", "wiki", "--wait")


@pytest.fixture(scope="module")
def snapshot(live: Live, first_backup: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert first_backup.returncode == 0, first_backup.stdout + first_backup.stderr
    listed = live.cli("snapshots", "wiki", "--json")
    snaps: list[dict[str, Any]] = json.loads(listed.stdout)
    return snaps[0]


def test_pods_list(live: Live) -> None:
    r = live.cli("pods", "list")
    assert r.returncode == 0, r.stderr
    assert "wiki" in r.stdout
    assert f"local {live.root / 'pod'}" in r.stdout
    pods = json.loads(live.cli("pods", "list", "--json").stdout)
    assert [p["id"] for p in pods] == [live.pod["id"]]


def test_backup_wait_shows_the_snapshot(
    live: Live, first_backup: subprocess.CompletedProcess[str], snapshot: dict[str, Any]
) -> None:
    out = first_backup.stdout
    assert first_backup.returncode == 0, out + first_backup.stderr
    assert "backing up pod wiki" in out
    assert "phase: uploading" in out  # the event stream was followed
    assert "succeeded" in out
    assert f"snapshot {snapshot['short_id']}: 3 files" in out
    r = live.cli("snapshots", "wiki")
    assert r.returncode == 0
    assert snapshot["short_id"] in r.stdout
    assert "manual" in r.stdout


def test_backup_without_wait_and_json(live: Live, snapshot: dict[str, Any]) -> None:
    r = live.cli("backup", live.pod["id"][:8])  # an id prefix names the pod too
    assert r.returncode == 0, r.stderr
    job_id = r.stdout.split()[2]
    assert f"podbackup jobs tail {job_id[:8]}" in r.stdout
    r = live.cli("jobs", "tail", job_id, "--json")  # events as JSON lines, to the end
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert events[-1]["event"] == "end"
    assert events[-1]["data"]["status"] == "succeeded"
    assert any(e["event"] == "progress" for e in events)
    shown = json.loads(live.cli("jobs", "show", job_id, "--json").stdout)
    assert shown["result"]["summary"]["files_unmodified"] == 3  # (--wait --json: test_demo)


def test_jobs_list_show_tail_cancel(live: Live, snapshot: dict[str, Any]) -> None:
    job_id = snapshot["job_id"]
    r = live.cli("jobs", "list", "wiki", "--kind", "backup")
    assert r.returncode == 0, r.stderr
    assert job_id[:8] in r.stdout
    assert f"snapshot {snapshot['short_id']}" in r.stdout
    listed = json.loads(live.cli("jobs", "list", "--json").stdout)
    assert job_id in {j["id"] for j in listed}

    r = live.cli("jobs", "show", job_id[:8])
    assert r.returncode == 0, r.stderr
    assert job_id in r.stdout
    assert "succeeded" in r.stdout
    shown = json.loads(live.cli("jobs", "show", job_id, "--json").stdout)
    assert shown["result"]["snapshot_id"] == snapshot["id"]

    r = live.cli("jobs", "tail", job_id[:8])  # a finished job: its whole log, then the end
    assert r.returncode == 0, r.stderr
    assert "phase: files" in r.stdout
    assert "status: running" in r.stdout
    assert f"snapshot {snapshot['short_id']}" in r.stdout

    r = live.cli("jobs", "cancel", job_id)
    assert r.returncode == 2
    assert "HTTP 409" in r.stderr
    assert "Traceback" not in r.stderr


def test_files_and_download(live: Live, snapshot: dict[str, Any]) -> None:
    r = live.cli("files", "wiki", "latest")
    assert r.returncode == 0, r.stderr
    assert "files/" in r.stdout
    r = live.cli("files", "wiki", snapshot["short_id"], "files/uploads")
    assert r.returncode == 0, r.stderr
    assert "2024/" in r.stdout
    assert "Zürich notes.txt" in r.stdout
    entries = json.loads(live.cli("files", "wiki", "latest", "/files", "--json").stdout)
    assert {e["name"] for e in entries} == {"config.ini", "uploads"}

    dest = live.home / "photo.bin"
    r = live.cli("download", "wiki", "latest", "/files/uploads/2024/photo.bin", "-o", str(dest))
    assert r.returncode == 0, r.stderr
    assert dest.read_bytes() == (live.root / "pod" / "uploads" / "2024" / "photo.bin").read_bytes()
    r = live.cli("download", "wiki", "latest", "/files/uploads/2024/photo.bin", "-o", str(dest))
    assert r.returncode == 2  # no silent overwrite
    assert "--force" in r.stderr

    # A folder comes as tar, named after it; --json tells where and the checksum.
    r = live.cli("download", "wiki", "latest", "files/uploads", "--json")
    assert r.returncode == 0, r.stderr
    saved = json.loads(r.stdout)
    assert saved["path"] == "uploads.tar"
    with tarfile.open(live.home / "uploads.tar") as tar:
        names = tar.getnames()
    assert any(n.endswith("uploads/Zürich notes.txt") for n in names), names


def test_restore_wait_puts_a_file_back(live: Live, snapshot: dict[str, Any]) -> None:
    config = live.root / "pod" / "config.ini"
    original = config.read_text()
    config.write_text("broken\n")
    r = live.cli("restore", "wiki", snapshot["short_id"], "--path", "config.ini", "--wait")
    assert r.returncode == 0, r.stdout + r.stderr
    assert config.read_text() == original
    assert "restore" in r.stdout
    assert "succeeded" in r.stdout
    assert "safety snapshot" in r.stdout  # the pod as it was, before the restore
    assert "1 written" in r.stdout  # and checked afterwards
    assert "0 compared by content (same size and mtime)" in r.stdout
    assert "1 verified after writing" in r.stdout
    r = live.cli("restore", "wiki", "latest", "--no-files", "--no-database")
    assert r.returncode == 2
    assert "nothing to restore" in r.stderr


def test_restore_dry_run_then_undo(live: Live, snapshot: dict[str, Any]) -> None:
    config = live.root / "pod" / "config.ini"
    extra = live.root / "pod" / "uploads" / "extra.txt"
    original = config.read_text()
    config.write_text("broken again\n")
    extra.write_text("not in the snapshot\n")
    sid = snapshot["short_id"]
    r = live.cli("restore", "wiki", sid, "--mirror", "--no-database", "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "previewing a restore of snapshot" in r.stdout
    assert "would add 0" in r.stdout
    assert re.search(r"overwrite[\s│]+/files/config\.ini[\s│]+size, content, mtime", r.stdout), (
        r.stdout
    )
    assert re.search(r"delete[\s│]+/files/uploads/extra\.txt", r.stdout), r.stdout
    assert config.read_text() == "broken again\n"  # nothing written
    assert extra.exists()
    r = live.cli("restore", "wiki", sid, "--mirror", "--no-database", "--dry-run", "--json")
    preview = json.loads(r.stdout)["result"]["preview"]
    assert preview["counts"]["delete"] == 1

    r = live.cli("restore", "wiki", sid, "--path", "config.ini", "--no-database", "--wait",
                 "--json")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    done = json.loads(r.stdout)
    assert config.read_text() == original
    r = live.cli("undo", done["id"][:8], "--wait")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"undid restore {done['id'][:8]}" in r.stdout
    assert config.read_text() == "broken again\n"
    assert extra.exists()  # outside the restored path: left alone
    # back to the snapshot's state for the tests after this one
    config.write_text(original)
    extra.unlink()


def test_export_wait_download(live: Live, snapshot: dict[str, Any]) -> None:
    dest = live.home / "export.tar.gz"
    r = live.cli(
        "export", "wiki", "--snapshot", snapshot["short_id"], "--download", str(dest), "--json"
    )
    assert r.returncode == 0, r.stdout + r.stderr
    exp = json.loads(r.stdout)
    assert exp["status"] == "ready"
    assert exp["download_url"].startswith(live.url + "/v1/exports/")
    assert exp["saved"]["bytes"] == dest.stat().st_size == exp["size_bytes"]
    with tarfile.open(dest) as tar:
        member = tar.extractfile("files/config.ini")
        assert member is not None
        assert member.read() == (live.root / "pod" / "config.ini").read_bytes()
    r = live.cli("export", "wiki", "--wait")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "/v1/exports/" in r.stdout


def test_status_verify_restore_kit(live: Live, snapshot: dict[str, Any]) -> None:
    r = live.cli("status", "wiki")
    assert r.returncode == 0, r.stderr
    assert "succeeded" in r.stdout
    st = json.loads(live.cli("status", "wiki", "--json").stdout)
    assert st["snapshot_count"] >= 1
    assert st["configured"] is True

    r = live.cli("verify", "wiki")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "contents" in r.stdout
    assert "pod_files" in r.stdout  # the pod's own side, in the same table
    assert "could be listed" in r.stdout
    assert json.loads(live.cli("verify", "wiki", "--json").stdout)["ok"] is True

    kit = json.loads(live.cli("restore-kit", "wiki", "--json").stdout)
    r = live.cli("restore-kit", "wiki")
    assert r.returncode == 0
    assert f"export RESTIC_PASSWORD={kit['password']}" in r.stdout
    assert "restic snapshots" in r.stdout


def test_failed_backup_exits_1(live: Live) -> None:
    (live.root / "broken-pod").mkdir()
    (live.root / "broken-pod" / "a.txt").write_text("a\n")
    (live.root / "not-a-folder").write_text("a file where the repository should be\n")
    live.local_pod("broken", live.root / "broken-pod", live.root / "not-a-folder")
    r = live.cli("backup", "broken", "--wait")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "failed" in r.stderr
    assert "target_unusable" in r.stderr, r.stderr  # named at once, on any restic version
    assert "Traceback" not in r.stderr
    r = live.cli("verify", "broken")
    assert r.returncode == 1, r.stdout
    assert "FAILED" in r.stdout


def test_partial_backup_exits_3(live: Live) -> None:
    from tests.cli.threaded_sftp import ThreadedSftp

    folder = live.root / "sftp-pod"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "ok.txt").write_text("fine\n")
    (folder / "data" / "secret.db").write_text("the server refuses this one\n")
    with ThreadedSftp(folder, deny_read={"data/secret.db"}) as server, live.http() as admin:
        r = admin.post(
            "/v1/pods",
            json={
                "name": "sftp-pod",
                "app": "demo",
                "account_id": live.account_id,
                "files": {
                    "kind": "sftp",
                    "host": server.host,
                    "port": server.port,
                    "username": server.username,
                    "password": server.password,
                    "path": "/",
                },
            },
        )
        assert r.status_code == 201, r.text
        pod_id = r.json()["id"]
        r = admin.put(
            f"/v1/pods/{pod_id}/backup-settings",
            json={"target": {"kind": "local", "path": str(live.root / "repo-sftp")}},
        )
        assert r.status_code == 200, r.text
        r2 = live.cli("backup", "sftp-pod", "--wait")
    assert r2.returncode == 3, r2.stdout + r2.stderr
    assert "partial" in r2.stdout
    assert "unreadable: /data/secret.db (permission denied)" in r2.stdout


def test_errors_are_messages_not_tracebacks(live: Live) -> None:
    r = live.cli("pods", "list", token="pbk_nope_nope")
    assert r.returncode == 2
    assert "(Unauthorized, HTTP 401)" in r.stderr
    assert "PODBACKUP_TOKEN" in r.stderr
    r = live.cli("pods", "list", token=None)
    assert r.returncode == 2
    assert "no API token" in r.stderr
    r = live.cli("snapshots", "no-such-pod")
    assert r.returncode == 2
    assert "no pod named 'no-such-pod'" in r.stderr
    r = live.cli("status", "wiki", url="http://127.0.0.1:9")  # nothing listens there
    assert r.returncode == 2
    assert "cannot reach the podbackup API" in r.stderr
    r = live.cli("files", "wiki", "deadbeef")
    assert r.returncode == 2
    assert "HTTP 404" in r.stderr
    for result in (r,):
        assert "Traceback" not in result.stderr + result.stdout


def test_login_saves_the_token(live: Live) -> None:
    r = live.cli("login", "--url", live.url, "--token", live.token, token=None)
    assert r.returncode == 0, r.stderr
    path = live.home / "config.toml"
    assert path.stat().st_mode & 0o777 == 0o600
    assert live.account_id in r.stdout
    r = live.cli("pods", "list", "--json", token=None, url="")  # from the file alone
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["name"] in {"wiki", "broken", "sftp-pod"}
    r = live.cli("login", "--url", live.url, "--token", "pbk_bad", token=None)
    assert r.returncode == 2
    assert path.read_text().count(live.token) == 1  # a refused token is not saved


# -- the commands beyond backup and restore, in this process (typer's runner) against the
# live API: many commands, one server. --


def _env(live: Live, token: str) -> dict[str, str]:
    return {
        "PODBACKUP_URL": live.url,
        "PODBACKUP_TOKEN": token,
        "PODBACKUP_CONFIG": str(live.home / "none.toml"),
        "COLUMNS": "200",
    }


def test_pods_settings_and_errors(live: Live) -> None:
    admin, mine = _env(live, live.admin), _env(live, live.token)

    def ok(env: dict[str, str], *argv: str) -> Any:
        r = run(list(argv), env)
        assert r.exit_code == 0, f"{argv}: {r.stdout}{r.stderr}"
        return json.loads(r.stdout) if "--json" in argv else r.stdout

    folder = live.root / "cmd-pod"
    folder.mkdir()
    (folder / "a.txt").write_text("a\n")
    argv = ["pods", "create", "cmd", "--account", live.account_id, "--local", str(folder)]
    r = run(argv, admin)
    assert r.exit_code == 2
    assert (
        r.stderr == "error: which app does the pod run?\nhint: add --app NAME, e.g. --app wikijs\n"
    )
    made = ok(admin, *argv, "--app", "wiki", "--json")
    assert made["files"] == {"kind": "local", "path": str(folder)}

    # A duplicate name: 409 with the hint, as text and as the envelope on stdout.
    argv = ["pods", "create", "cmd", "--account", live.account_id, "--app", "x"]
    r = run(argv, admin)
    assert r.exit_code == 2
    assert r.stderr.startswith("error: this account has a pod named 'cmd' already"), r.stderr
    assert "(PodNameTaken, HTTP 409)" in r.stderr
    assert "\nhint: pod names are unique per account" in r.stderr
    assert "{'" not in r.stderr  # no dict repr
    r = run([*argv, "--json"], admin)
    assert r.exit_code == 2
    body = json.loads(r.stdout)
    assert (body["error"], body["status"]) == ("PodNameTaken", 409)
    assert made["id"] in body["detail"]
    assert "rename" in body["hint"]
    r = run(["pods", "update", "cmd", "--name", "wiki"], admin)  # rename onto another pod
    assert r.exit_code == 2
    assert "a pod named 'wiki' already" in r.stderr

    updated = ok(admin, "pods", "update", "cmd", "--name", "cmd2", "--app", "blog", "--json")
    assert (updated["id"], updated["name"], updated["app"]) == (made["id"], "cmd2", "blog")
    assert "local " + str(folder) in ok(mine, "pods", "show", "cmd2")

    repo = str(live.root / "cmd-repo")
    saved = ok(admin, "settings", "set", "cmd2", "--local", repo, "--keep-last", "2", "--json")
    assert saved["target"] == {"kind": "local", "path": repo}
    assert saved["retention"]["keep_last"] == 2
    saved = ok(admin, "settings", "set", "cmd2", "--keep-daily", "3", "--no-schedule", "--json")
    assert saved["retention"]["keep_last"] == 2  # kept
    assert (saved["retention"]["keep_daily"], saved["schedule"]["enabled"]) == (3, False)
    shown = ok(mine, "settings", "show", "cmd2")
    assert f"local {repo}" in shown
    assert "last 2, daily 3" in shown

    # Secrets are read from the named variable, never argv; a missing one is named.
    r = run(["pods", "update", "cmd2", "--sftp-host", "h", "--sftp-user", "u",
             "--sftp-password-env", "NO_SUCH_VAR"], admin)  # fmt: skip
    assert r.exit_code == 2
    assert "NO_SUCH_VAR is not set" in r.stderr

    # Short id prefixes, unknown pods, bad ids: messages with a way out.
    r = run(["status", made["id"][:3]], mine)
    assert r.exit_code == 2
    assert "give at least 4 characters of the id, or the pod name" in r.stderr
    r = run(["status", made["id"][:4], "--json"], mine)
    assert r.exit_code == 0, r.stdout  # 4 characters name it
    r = run(["status", "nope", "--json"], mine)
    body = json.loads(r.stdout)
    assert (r.exit_code, body["error"]) == (2, "NotFound")
    r = run(["exports", "show", "not-an-id", "--json"], mine)
    assert r.exit_code == 2
    assert json.loads(r.stdout)["status"] == 422

    ok(mine, "pods", "delete", "cmd2", "--yes")
    assert [p["name"] for p in ok(mine, "pods", "list", "--json")].count("cmd2") == 0


def test_admin_webhooks_and_read_commands(live: Live, snapshot: dict[str, Any]) -> None:
    admin, mine = _env(live, live.admin), _env(live, live.token)

    def ok(env: dict[str, str], *argv: str) -> Any:
        r = run(list(argv), env)
        assert r.exit_code == 0, f"{argv}: {r.stdout}{r.stderr}"
        return json.loads(r.stdout) if "--json" in argv else r.stdout

    assert ok(mine, "whoami", "--json")["account_id"] == live.account_id
    assert "alive, ready" in ok(mine, "health")
    assert "Backblaze" in ok(mine, "providers")
    jobs = ok(mine, "jobs", "list")
    assert re.search(rf"{snapshot['job_id'][:8]}\W+wiki\W+backup", jobs), jobs  # POD column
    assert ok(mine, "snapshot", "wiki", snapshot["short_id"], "--json")["id"] == snapshot["id"]
    assert ok(mine, "stats", "wiki", "--json")["pod_id"] == live.pod["id"]
    preview = ok(mine, "retention", "preview", "wiki", "--keep-last", "1")
    assert "policy: last 1\n" in preview  # the policy given, not the stored one
    assert re.search(rf"keep\W+{snapshot['short_id']}|remove\W+{snapshot['short_id']}", preview)
    assert "pod.create" in ok(mine, "audit", "wiki")

    account = ok(admin, "accounts", "create", "second", "--json")
    assert "second" in ok(admin, "accounts", "list")
    token = ok(admin, "accounts", "token", account["id"], "--name", "ci").strip()
    assert ok(_env(live, token), "whoami", "--json")["account_id"] == account["id"]
    tokens = ok(admin, "accounts", "tokens", account["id"], "--json")
    assert [t["name"] for t in tokens] == ["ci"]
    ok(admin, "tokens", "revoke", tokens[0]["id"])
    r = run(["whoami"], _env(live, token))
    assert r.exit_code == 2
    assert "hint: check PODBACKUP_TOKEN" in r.stderr
    r = run(["accounts", "list"], mine)  # an account token: 403 with the envelope's words
    assert r.exit_code == 2
    assert "HTTP 403" in r.stderr

    url = "http://127.0.0.1:9/hook"
    hook = ok(mine, "webhooks", "create", url, "--event", "job.failed", "--json")
    assert hook["secret"]
    assert hook["id"] in ok(mine, "webhooks", "list")
    assert ok(mine, "webhooks", "show", hook["id"], "--json")["events"] == ["job.failed"]
    ok(mine, "webhooks", "test", hook["id"])
    assert [d["event"] for d in ok(mine, "webhooks", "deliveries", hook["id"], "--json")] == [
        "webhook.test"
    ]
    ok(mine, "webhooks", "delete", hook["id"])
    assert ok(mine, "webhooks", "list", "--json") == []


def test_help_shows_no_type_noise(live: Live) -> None:
    for argv in (
        ["restore", "--help"],
        ["pods", "create", "--help"],
        ["settings", "set", "--help"],
    ):
        r = run([*argv, "--help"] if argv[-1] != "--help" else argv, _env(live, live.token))
        assert r.exit_code == 0
        assert "--json" in r.stdout
        assert "<bool>" not in r.stdout
        assert "<str>" not in r.stdout


def test_settings_set_lock_mode(live: Live) -> None:
    """Lock mode from the CLI: flags over the stored values, secrets from the environment,
    kept when other target flags change, and off with --lock-days 0."""
    mine = _env(live, live.token)

    def ok(*argv: str, env: dict[str, str] = mine) -> Any:
        r = run(list(argv), env)
        assert r.exit_code == 0, f"{argv}: {r.stdout}{r.stderr}"
        return json.loads(r.stdout) if "--json" in argv else r.stdout

    ok("pods", "create", "locked", "--app", "wiki")
    secrets = {**mine, "S3_SECRET": "backup-secret-123456", "MAINT_SECRET": "maint-secret-654321"}
    target = ["--s3-endpoint", "s3.us-west-001.backblazeb2.com", "--bucket", "locked-pod-1",
              "--access-key-id", "0015a1b2c3d4e5f0000000001", "--secret-access-key-env",
              "S3_SECRET"]  # fmt: skip
    r = run(["settings", "set", "locked", *target, "--lock-days", "14"], secrets)
    assert r.exit_code == 2
    assert "keep_within_days to at least 14" in r.stderr
    saved = ok("settings", "set", "locked", *target, "--lock-days", "14",
               "--keep-within-days", "14", "--maintenance-key-id", "0015maint",
               "--maintenance-secret-env", "MAINT_SECRET", "--json", env=secrets)  # fmt: skip
    assert saved["target"]["immutable"] == {
        "lock_days": 14,
        "maintenance_key": {"access_key_id": "0015maint", "secret_access_key_set": True},
    }
    assert saved["retention"]["keep_within_days"] == 14
    assert "maint-secret" not in json.dumps(saved)
    # Another target flag keeps lock mode and the stored maintenance secret.
    saved = ok("settings", "set", "locked", "--bucket", "locked-pod-2", "--json")
    assert saved["target"]["bucket"] == "locked-pod-2"
    assert saved["target"]["immutable"]["maintenance_key"]["secret_access_key_set"] is True
    shown = ok("settings", "show", "locked")
    assert "14 day(s), maintenance key 0015maint" in shown
    saved = ok("settings", "set", "locked", "--lock-days", "0", "--json")
    assert saved["target"]["immutable"] is None
    assert "off" in ok("settings", "show", "locked")
    ok("pods", "delete", "locked", "--yes")
