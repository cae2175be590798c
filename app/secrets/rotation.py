"""Re-encrypt stored secrets with the newest key, row by row, in short transactions."""

from __future__ import annotations

from sqlalchemy import select

from app.config import Settings
from app.db import commit, make_engine, make_sessionmaker
from app.kit.crypto import Keyring
from app.models.encrypted import ENCRYPTED


async def rotate_all(settings: Settings) -> dict[str, int]:
    keyring = Keyring.from_settings(settings.secret_keys)
    engine = make_engine(settings, pool_size=1)
    counts: dict[str, int] = {}
    try:
        maker = make_sessionmaker(engine)
        for sealed in ENCRYPTED:
            counts[sealed.name] = 0
            async with maker() as session:
                rows = (await session.scalars(select(sealed.model).with_for_update())).all()
                for row in rows:
                    stored = getattr(row, sealed.column)
                    if stored and keyring.needs_rotation(stored):
                        setattr(row, sealed.column, keyring.rotate(stored, sealed.context_of(row)))
                        counts[sealed.name] += 1
                await commit(session)
    finally:
        await engine.dispose()
    return counts
