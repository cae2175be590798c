from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from app.kit.validators import AbsolutePath, Body, Hostname, HttpUrl, Name, Printable

AppName = Annotated[
    str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]


class SftpSource(Body):
    kind: Literal["sftp"]
    host: Hostname = Field(examples=["sftp.pod.example.com"])
    port: int = Field(22, ge=1, le=65535)
    username: Printable = Field(min_length=1, max_length=200)
    password: SecretStr | None = Field(
        None, description="Write-only. Omit on update to keep the stored one; '' clears it."
    )
    private_key: SecretStr | None = Field(
        None, description="Write-only OpenSSH/PEM private key. Omit to keep; '' clears."
    )
    host_key: str | None = Field(
        None,
        max_length=16384,
        description=(
            "Expected server host key (`ssh-ed25519 AAAA...`). Omitted: pinned on first connect."
        ),
    )
    path: AbsolutePath = Field("/", description="Folder to back up, as the SFTP server shows it.")


class LocalSource(Body):
    kind: Literal["local"]
    path: AbsolutePath = Field(
        description="Admin only: a folder under one of PODBACKUP_LOCAL_ROOTS on the worker."
    )


FileSource = Annotated[SftpSource | LocalSource, Field(discriminator="kind")]

DEFAULT_DB_PORTS = {"postgres": 5432, "mysql": 3306, "mariadb": 3306}


class DatabaseConfig(Body):
    kind: Literal["postgres", "mysql", "mariadb"]
    host: Hostname
    port: int | None = Field(None, ge=1, le=65535, description="Default 5432 or 3306.")
    name: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9_$-]+$")
    username: Printable = Field(min_length=1, max_length=200)
    password: SecretStr | None = Field(
        None, description="Write-only. Omit on update to keep the stored one; '' clears it."
    )


class Hooks(Body):
    stop_url: HttpUrl | None = Field(None, description="Called (POST) before files are read.")
    start_url: HttpUrl | None = Field(None, description="Always called (POST) afterwards.")


_POD_EXAMPLE: dict[str, Any] = {
    "name": "my wiki",
    "app": "wikijs",
    "files": {
        "kind": "sftp",
        "host": "sftp.pod.example.com",
        "port": 22,
        "username": "pod-1234",
        "password": "s3cret",
        "path": "/",
    },
    "database": {
        "kind": "postgres",
        "host": "db.pod.example.com",
        "port": 5432,
        "name": "wiki",
        "username": "wiki",
        "password": "s3cret",
    },
    "hooks": None,
}


class PodCreate(Body):
    model_config = ConfigDict(
        extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [_POD_EXAMPLE]}
    )

    name: Name
    app: AppName
    account_id: uuid.UUID | None = Field(
        None, description="Required for admin tokens; account tokens create in their account."
    )
    files: FileSource | None = None
    database: DatabaseConfig | None = None
    hooks: Hooks | None = None


class PodUpdate(Body):
    name: Name | None = None
    app: AppName | None = None
    files: FileSource | None = None
    database: DatabaseConfig | None = None
    hooks: Hooks | None = None

    @field_validator("name", "app")
    @classmethod
    def _not_null(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("may not be null")
        return value


class SftpSourceRead(BaseModel):
    kind: Literal["sftp"]
    host: str
    port: int
    username: str
    path: str
    password_set: bool
    private_key_set: bool
    host_key: str | None = Field(None, description="Pinned or given host key.")


class LocalSourceRead(BaseModel):
    kind: Literal["local"]
    path: str


class DatabaseRead(BaseModel):
    kind: str
    host: str
    port: int
    name: str
    username: str
    password_set: bool


class HooksRead(BaseModel):
    stop_url: str | None
    start_url: str | None


class PodRead(BaseModel):
    id: uuid.UUID
    account_id: uuid.UUID
    name: str
    app: str
    files: SftpSourceRead | LocalSourceRead | None
    database: DatabaseRead | None
    hooks: HooksRead | None
    created_at: datetime
    updated_at: datetime
