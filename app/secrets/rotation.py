"""Re-encrypt stored secrets with the newest key, row by row, in short transactions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from app.config import Settings
from app.db import commit, make_engine, make_sessionmaker
from app.kit.crypto import Keyring
from app.models import BackupSettings, Pod, Webhook
from app.pods.service import database_context, files_context

# (model, primary-key attribute, column, context for a row)
_Target = tuple[Any, str, str, Callable[[Any], str]]


def _targets() -> list[_Target]:
    return [
        (Pod, "id", "files_secret", lambda r: files_context(r.id)),
        (Pod, "id", "database_secret", lambda r: database_context(r.id)),
        (BackupSettings, "pod_id", "target_secret", lambda r: f"pod:{r.pod_id}:target"),
        (BackupSettings, "pod_id", "repo_password", lambda r: f"pod:{r.pod_id}:repo_password"),
        (Webhook, "id", "secret", lambda r: f"webhook:{r.id}"),
    ]


async def rotate_all(settings: Settings) -> dict[str, int]:
    keyring = Keyring.from_settings(settings.secret_keys)
    engine = make_engine(settings, pool_size=1)
    counts: dict[str, int] = {}
    try:
        maker = make_sessionmaker(engine)
        for model, _pk, column, context in _targets():
            name = f"{model.__tablename__}.{column}"
            counts[name] = 0
            async with maker() as session:
                rows = (await session.scalars(select(model).with_for_update())).all()
                for row in rows:
                    stored = getattr(row, column)
                    if stored and keyring.needs_rotation(stored):
                        setattr(row, column, keyring.rotate(stored, context(row)))
                        counts[name] += 1
                await commit(session)
    finally:
        await engine.dispose()
    return counts
