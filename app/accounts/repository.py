"""Every SQL query on accounts."""

from __future__ import annotations

from sqlalchemy import Select, select

from app.models import Account


def list_query() -> Select[tuple[Account]]:
    return select(Account).order_by(Account.created_at, Account.id)
