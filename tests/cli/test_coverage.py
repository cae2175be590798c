"""Every API operation has a `podbackup` command (or a short, reasoned exception), and the
README's tour uses `podbackup` commands only, each of which parses with the real CLI.
No server: these read openapi/openapi.json, the README and the CLI's own command tree."""

from __future__ import annotations

import importlib
import inspect
import json
import re
import shlex
from pathlib import Path
from typing import Any

from tests.cli.commands import command_paths, resolve, root_command
from tests.cli.tour import tour_lines, tour_section

ROOT = Path(__file__).resolve().parents[2]

# (`import app.cli.client.api as x` would give the package's `api` function instead.)
client_api = importlib.import_module("app.cli.client.api")

# operationId → the command that calls it.
COMMANDS: dict[str, str] = {
    "list_accounts_v1_accounts_get": "accounts list",
    "create_account_v1_accounts_post": "accounts create",
    "get_account_v1_accounts__account_id__get": "accounts show",
    "list_account_tokens_v1_accounts__account_id__tokens_get": "accounts tokens",
    "create_account_token_v1_accounts__account_id__tokens_post": "accounts token",
    "revoke_token_v1_tokens__token_id__delete": "tokens revoke",
    "whoami_v1_me_get": "whoami",
    "all_audit_v1_audit_get": "audit",
    "pod_audit_v1_pods__pod_id__audit_get": "audit",
    "fleet_v1_platform_fleet_get": "fleet",
    "list_providers_v1_providers_get": "providers",
    "healthz_healthz_get": "health",
    "readyz_readyz_get": "health",
    "list_pods_v1_pods_get": "pods list",
    "create_pod_v1_pods_post": "pods create",
    "get_pod_v1_pods__pod_id__get": "pods show",
    "update_pod_v1_pods__pod_id__patch": "pods update",
    "delete_pod_v1_pods__pod_id__delete": "pods delete",
    "get_settings_v1_pods__pod_id__backup_settings_get": "settings show",
    "put_settings_v1_pods__pod_id__backup_settings_put": "settings set",
    "delete_settings_v1_pods__pod_id__backup_settings_delete": "settings delete",
    "get_copy_settings_v1_pods__pod_id__copy_settings_get": "copy show",
    "put_copy_settings_v1_pods__pod_id__copy_settings_put": "copy set",
    "delete_copy_settings_v1_pods__pod_id__copy_settings_delete": "copy delete",
    "verify_copy_settings_v1_pods__pod_id__copy_settings_verify_post": "copy verify",
    "trigger_copy_v1_pods__pod_id__copies_post": "copy now",
    "copy_lag_v1_pods__pod_id__copy_lag_get": "copy lag",
    "copy_restore_kit_v1_pods__pod_id__copy_settings_restore_kit_get": "copy kit",
    "verify_settings_v1_pods__pod_id__backup_settings_verify_post": "verify",
    "restore_kit_v1_pods__pod_id__restore_kit_get": "restore-kit",
    "pod_status_v1_pods__pod_id__status_get": "status",
    "pod_stats_v1_pods__pod_id__stats_get": "stats",
    "trigger_backup_v1_pods__pod_id__backups_post": "backup",
    "list_jobs_v1_jobs_get": "jobs list",
    "list_pod_jobs_v1_pods__pod_id__jobs_get": "jobs list",
    "get_job_v1_jobs__job_id__get": "jobs show",
    "cancel_job_v1_jobs__job_id__cancel_post": "jobs cancel",
    "job_events_v1_jobs__job_id__events_get": "jobs tail",
    "list_snapshots_v1_pods__pod_id__snapshots_get": "snapshots",
    "refresh_snapshots_v1_pods__pod_id__snapshots_refresh_post": "refresh",
    "pin_snapshot_v1_pods__pod_id__snapshots__snapshot_id__pin_put": "pin",
    "unpin_snapshot_v1_pods__pod_id__snapshots__snapshot_id__pin_delete": "unpin",
    "before_update_v1_pods__pod_id__before_update_post": "before-update",
    "get_snapshot_v1_pods__pod_id__snapshots__snapshot_id__get": "snapshot",
    "list_files_v1_pods__pod_id__snapshots__snapshot_id__files_get": "files",
    "download_v1_pods__pod_id__snapshots__snapshot_id__download_get": "download",
    "undo_restore_v1_restores__job_id__undo_post": "undo",
    "diff_v1_pods__pod_id__snapshots__snapshot_id__diff_get": "diff",
    "history_v1_pods__pod_id__files_history_get": "history",
    "create_restore_v1_pods__pod_id__restores_post": "restore",
    "create_export_v1_pods__pod_id__exports_post": "export",
    "get_export_v1_exports__export_id__get": "exports show",
    "preview_v1_pods__pod_id__retention_preview_post": "retention preview",
    "prune_v1_pods__pod_id__prune_post": "prune",
    "start_check_v1_pods__pod_id__checks_post": "check",
    "list_webhooks_v1_webhooks_get": "webhooks list",
    "create_webhook_v1_webhooks_post": "webhooks create",
    "get_webhook_v1_webhooks__webhook_id__get": "webhooks show",
    "delete_webhook_v1_webhooks__webhook_id__delete": "webhooks delete",
    "list_deliveries_v1_webhooks__webhook_id__deliveries_get": "webhooks deliveries",
    "send_test_event_v1_webhooks__webhook_id__test_post": "webhooks test",
}

# Links the API hands out and a command follows (their path is never written in the CLI).
FOLLOWED: dict[str, str] = {
    "download_export_v1_exports__export_id__download_get": "export",  # --download FILE
}

# Operations no command calls, and why.
EXCEPTIONS: dict[str, str] = {
    "metrics_metrics_get": "Prometheus text for a scraper, not for people",
}


def _operations() -> dict[str, tuple[str, str]]:
    spec = json.loads((ROOT / "openapi" / "openapi.json").read_text())
    return {
        op["operationId"]: (verb.upper(), path)
        for path, ops in spec["paths"].items()
        for verb, op in ops.items()
    }


def _callback_source(words: str) -> str:
    cmd: Any = root_command()
    for word in words.split():
        cmd = cmd.commands[word]
    return inspect.getsource(inspect.unwrap(cmd.callback))


def test_every_operation_has_a_command_that_calls_it() -> None:
    operations = _operations()
    missing = set(operations) - set(COMMANDS) - set(FOLLOWED) - set(EXCEPTIONS)
    assert not missing, f"operations without a command (add one, or an exception): {missing}"
    stale = (set(COMMANDS) | set(FOLLOWED) | set(EXCEPTIONS)) - set(operations)
    assert not stale, f"no such operation any more: {stale}"
    leaves = {" ".join(p) for p in command_paths()}
    helpers = inspect.getsource(client_api)  # pod and snapshot lookups live there
    for op_id, words in COMMANDS.items():
        assert words in leaves, f"{op_id}: no command `podbackup {words}`"
        verb, path = operations[op_id]
        # The path as the code writes it: each {param} is some f-string expression.
        pattern = re.escape(path).replace(r"\{", "{").replace(r"\}", "}")
        pattern = re.sub(r"\{[a-z_]+\}", r"\\{[^}]+\\}", pattern) + r"[\"'?]"
        source = _callback_source(words)
        assert re.search(pattern, source) or re.search(pattern, helpers), (
            f"`podbackup {words}` never calls {verb} {path}"
        )
    for op_id, words in FOLLOWED.items():
        assert words in leaves, f"{op_id}: no command `podbackup {words}`"
        assert "download_url" in _callback_source(words)


# Sample values for the variables the tour reads from var/demo/env.sh.
SAMPLE_ENV = {
    "DEMO_SFTP_PORT": "2222",
    "DEMO_S3_ENDPOINT": "http://127.0.0.1:9000",
    "DEMO_S3_KEY": "demo-access-key",
}


def test_the_readme_tour_is_podbackup_commands_that_parse() -> None:
    lines = tour_lines()
    commands = [line for line in lines if line.startswith("podbackup ")]
    others = [line for line in lines if not line.startswith("podbackup ")]
    assert len(commands) >= 15, lines
    assert all(line.startswith("rm ") for line in others), f"not a podbackup command: {others}"
    assert "curl" not in tour_section()
    used: set[str] = set()
    for line in commands:
        expanded = re.sub(r"\$(\w+)", lambda m: SAMPLE_ENV[m.group(1)], line)
        path, _ = resolve(shlex.split(expanded)[1:])  # raises on a wrong option or argument
        used.add(" ".join(path))
    # The tour's own steps, each with the CLI alone.
    assert {"pods create", "settings set", "verify", "backup", "restore", "prune"} <= used


def test_an_error_detail_reads_as_text_never_as_a_repr() -> None:
    text = client_api.detail_text
    assert text("Pod not found") == "Pod not found"
    validation = [{"loc": ["body", "files", "port"], "msg": "too big", "type": "value_error"}]
    assert text(validation) == "files.port: too big"
    assert text({"job_id": "1a2b", "kind": "restore"}) == "job_id: 1a2b, kind: restore"
    err = client_api.ApiError(409, "PodBusy", {"job_id": "1a2b", "kind": "restore"}, "wait")
    assert err.message == "job_id: 1a2b, kind: restore (PodBusy, HTTP 409)"
    assert err.body() == {
        "error": "PodBusy",
        "detail": {"job_id": "1a2b", "kind": "restore"},
        "status": 409,
        "hint": "wait",
    }
