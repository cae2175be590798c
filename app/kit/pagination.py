"""Page/limit lists: ``{"items": [...], "pagination": {"total_count", "max_page"}}``."""

from __future__ import annotations

import math
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query, Request
from pydantic import BaseModel
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

T = TypeVar("T")


class Pagination(BaseModel):
    total_count: int
    max_page: int


class Page(BaseModel, Generic[T]):
    items: list[T]
    pagination: Pagination


class PageParams(BaseModel):
    page: int
    limit: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.limit


async def _page_params(
    request: Request,
    page: Annotated[int, Query(ge=1, le=1_000_000, description="Page number, from 1.")] = 1,
    limit: Annotated[int, Query(ge=1, description="Items per page (capped).")] = 50,
) -> PageParams:
    cap: int = request.app.state.settings.page_limit_max
    return PageParams(page=page, limit=min(limit, cap))


PageQuery = Annotated[PageParams, Depends(_page_params)]


def make_page(items: list[T], total: int, params: PageParams) -> Page[T]:
    return Page[T](
        items=items,
        pagination=Pagination(
            total_count=total, max_page=max(1, math.ceil(total / params.limit)) if total else 1
        ),
    )


async def paginate(
    session: AsyncSession, stmt: Select[tuple[T]], params: PageParams
) -> tuple[list[T], int]:
    """Run ``stmt`` for one page and count all its rows."""
    total = await session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    rows = (await session.scalars(stmt.limit(params.limit).offset(params.offset))).all()
    return list(rows), int(total or 0)
