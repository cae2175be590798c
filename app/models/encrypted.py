"""Every column that holds ciphertext, declared once.

A value is sealed by ``app.kit.crypto.Keyring`` with a context (its associated data) that
names the row it belongs to, so a ciphertext copied to another row or column does not
open. The services encrypt and decrypt with these contexts; key rotation
(``app/secrets/rotation.py``) re-encrypts every column listed in ``ENCRYPTED``. A new
encrypted column is declared here, and nowhere else.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from app.models.base import Base
from app.models.pod import Pod
from app.models.settings import BackupSettings, CopySettings
from app.models.webhook import Webhook


@dataclass(frozen=True)
class EncryptedColumn:
    """``model.column`` holds ciphertext whose context is ``template`` with the row's
    ``key`` attribute filled in. The contexts are part of the stored format: changing
    one makes every stored value of the column unreadable."""

    model: type[Base]
    column: str
    key: str
    template: str

    @property
    def name(self) -> str:
        return f"{self.model.__tablename__}.{self.column}"

    def context(self, key: uuid.UUID) -> str:
        """The context for the row whose ``key`` attribute is ``key``."""
        return self.template.format(key)

    def context_of(self, row: Any) -> str:
        return self.context(getattr(row, self.key))


# Pod.files_secret: JSON {"password", "private_key"} of the SFTP access.
POD_FILES = EncryptedColumn(Pod, "files_secret", "id", "pod:{}:files")
# Pod.database_secret: JSON {"password"} of the database login.
POD_DATABASE = EncryptedColumn(Pod, "database_secret", "id", "pod:{}:database")
# The S3 secret access key of the owner's target.
TARGET_SECRET = EncryptedColumn(BackupSettings, "target_secret", "pod_id", "pod:{}:target")
# Lock mode's maintenance key (the one that may delete): its S3 secret access key.
MAINTENANCE_SECRET = EncryptedColumn(
    BackupSettings, "maintenance_secret", "pod_id", "pod:{}:maintenance"
)
# The restic repository password, generated on the first save.
REPO_PASSWORD = EncryptedColumn(BackupSettings, "repo_password", "pod_id", "pod:{}:repo_password")
# The second copy's S3 secret access key and its own repository password.
COPY_TARGET_SECRET = EncryptedColumn(CopySettings, "target_secret", "pod_id", "pod:{}:copy_target")
COPY_REPO_PASSWORD = EncryptedColumn(
    CopySettings, "repo_password", "pod_id", "pod:{}:copy_repo_password"
)
# A webhook's signing secret.
WEBHOOK_SECRET = EncryptedColumn(Webhook, "secret", "id", "webhook:{}")

ENCRYPTED: tuple[EncryptedColumn, ...] = (
    POD_FILES,
    POD_DATABASE,
    TARGET_SECRET,
    MAINTENANCE_SECRET,
    REPO_PASSWORD,
    COPY_TARGET_SECRET,
    COPY_REPO_PASSWORD,
    WEBHOOK_SECRET,
)
