"""Key rotation re-encrypts every registered column with the newest key, same contexts."""

from __future__ import annotations

import uuid

import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from app.config import Settings
from app.kit.crypto import Keyring, generate_key
from app.models import Pod
from app.models.encrypted import ENCRYPTED
from app.pods.service import decrypt_secrets
from app.secrets.rotation import rotate_all
from tests.conftest import Tenant
from tests.pods.test_pods import DB_PASSWORD, SFTP_PASSWORD, create_pod


async def test_rotation_moves_pod_secrets_to_the_new_key(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    pod_id = uuid.UUID((await create_pod(client, tenant))["id"])
    rotated = settings.model_copy(
        update={"secret_keys": [SecretStr(generate_key("new")), *settings.secret_keys]}
    )

    counts = await rotate_all(rotated)

    assert set(counts) == {c.name for c in ENCRYPTED}
    assert counts["pods.files_secret"] == 1
    assert counts["pods.database_secret"] == 1
    keyring = Keyring.from_settings(rotated.secret_keys)
    async with app.state.sessionmaker() as session:
        pod = await session.get(Pod, pod_id)
        assert pod is not None
        assert pod.files_secret is not None
        assert keyring.key_id_of(pod.files_secret) == "new"
        found = decrypt_secrets(keyring, pod)
    assert (found.sftp_password, found.db_password) == (SFTP_PASSWORD, DB_PASSWORD)
    assert await rotate_all(rotated) == dict.fromkeys(counts, 0)
