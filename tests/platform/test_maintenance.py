from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import FastAPI

from app.platform.maintenance import claim


async def test_one_repository_wide_turn_per_interval(app: FastAPI) -> None:
    now = datetime.now(UTC)
    week = timedelta(days=7)
    async with app.state.sessionmaker() as session:
        assert await claim(session, "s3:https://x/shared", "prune", week, now)
        assert not await claim(session, "s3:https://x/shared", "prune", week, now)
        assert await claim(session, "s3:https://x/shared", "check", week, now)  # its own turn
        assert await claim(session, "/other/repo", "prune", week, now)
        assert not await claim(session, "s3:https://x/shared", "prune", week, now + week / 2)
        assert await claim(session, "s3:https://x/shared", "prune", week, now + week * 1.1)
        await session.commit()
