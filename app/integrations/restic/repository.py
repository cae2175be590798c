from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from app.integrations.s3.client import S3Access


@dataclass(frozen=True)
class Repository:
    """Where a repository lives and how to open it. Secrets go to the child's env only."""

    url: str  # "s3:https://host/bucket" or a local path
    password: str = field(repr=False)
    env: dict[str, str] = field(default_factory=dict, repr=False)  # AWS_* for S3
    cache_dir: Path | None = None
    # Direct access to the storage (S3 targets), for evidence without deriving the key.
    s3: S3Access | None = field(default=None, repr=False)
    s3_prefix: str = ""  # the repository's folder inside the bucket ("" = bucket root)
    # The operator's own repository (the platform plan, from the settings): not a tenant's
    # endpoint, so restic reaches it without the egress proxy.
    operator: bool = False

    def child_env(self) -> dict[str, str]:
        env = {"RESTIC_REPOSITORY": self.url, "RESTIC_PASSWORD": self.password, **self.env}
        if self.cache_dir is not None:
            env["RESTIC_CACHE_DIR"] = str(self.cache_dir)
        return env

    def secret_values(self) -> list[str]:
        return [v for v in (self.password, self.env.get("AWS_SECRET_ACCESS_KEY")) if v]

    @property
    def lock_key(self) -> str:
        """What identifies the repository for cross-worker locking."""
        return self.url.rstrip("/")
