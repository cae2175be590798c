"""The registry of encrypted columns: names and contexts are part of the stored format."""

from __future__ import annotations

import uuid

from sqlalchemy import Text

from app.models.encrypted import ENCRYPTED


def test_the_contexts_are_as_stored() -> None:
    key = uuid.UUID(int=7)
    assert {c.name: c.context(key) for c in ENCRYPTED} == {
        "pods.files_secret": f"pod:{key}:files",
        "pods.database_secret": f"pod:{key}:database",
        "backup_settings.target_secret": f"pod:{key}:target",
        "backup_settings.maintenance_secret": f"pod:{key}:maintenance",
        "backup_settings.repo_password": f"pod:{key}:repo_password",
        "copy_settings.target_secret": f"pod:{key}:copy_target",
        "copy_settings.repo_password": f"pod:{key}:copy_repo_password",
        "webhooks.secret": f"webhook:{key}",
    }


def test_every_column_is_a_text_column_and_its_key_an_attribute() -> None:
    for sealed in ENCRYPTED:
        column = sealed.model.__table__.c[sealed.column]
        assert isinstance(column.type, Text), sealed.name
        assert sealed.key in sealed.model.__table__.c, sealed.name
