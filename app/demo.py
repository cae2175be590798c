"""The demo `make run` sets up: a demo account with its own token."""

from __future__ import annotations

from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / "var" / "dev"


def _client(url: str, token: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _account(url: str, admin: httpx.Client) -> tuple[str, str]:
    saved = STATE / "demo-account"
    if saved.exists():
        account_id, token = saved.read_text().split()
        r = httpx.get(f"{url}/v1/me", headers={"Authorization": f"Bearer {token}"})
        if r.status_code == 200:
            return account_id, token
    r = admin.post("/v1/accounts", json={"name": "demo", "email": "demo@example.com"})
    r.raise_for_status()
    account_id = r.json()["id"]
    r = admin.post(f"/v1/accounts/{account_id}/tokens", json={"name": "demo"})
    r.raise_for_status()
    token = r.json()["token"]
    saved.write_text(f"{account_id} {token}\n")
    saved.chmod(0o600)
    return account_id, token


def bootstrap(url: str, admin_token: str) -> list[str]:
    with _client(url, admin_token) as admin:
        account_id, token = _account(url, admin)
    return [
        "",
        f"demo account {account_id}, its token: {token}",
        "create a pod with it:",
        f"  curl -s -X POST {url}/v1/pods -H 'Authorization: Bearer {token}' \\",
        "       -H 'Content-Type: application/json' \\",
        """       -d '{"name": "my wiki", "app": "wikijs", "files": {"kind": "sftp", """
        """"host": "127.0.0.1", "port": 2222, "username": "pod", "password": "secret", """
        """"path": "/"}}'""",
    ]
