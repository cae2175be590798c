"""A JSONB column whose value is a pydantic model (or a union of them).

``Stored(T)`` validates on the way out (a row's JSON becomes a ``T``) and on the way in
(a ``T``, or a plain dict as older code and tests write, is validated and dumped). Only the
keys a value was given are written (``exclude_unset``): a row read and saved again keeps
exactly the keys it had, so rows written by older versions stay readable by them.

Change tracking: SQLAlchemy sees an assignment of a new value, never a change made inside
one. The stored shapes are frozen, so ``row.files.port = 2222`` raises instead of being
lost silently; write ``row.files = row.files.model_copy(update={"port": 2222})``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, TypeAdapter
from sqlalchemy import String, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapper
from sqlalchemy.types import TypeDecorator, TypeEngine


class StoredShape(BaseModel):
    """Base of the values kept in JSON columns: frozen (assign a new value to change one)
    and tolerant of keys it does not know (older or newer versions may write them)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    def stored(self) -> dict[str, Any]:
        """The JSON ``Stored`` writes for this value: the keys it was given, and no others
        (for copies of it kept elsewhere: job events, webhook payloads)."""
        return self.model_dump(mode="json", exclude_unset=True)


class Stored(TypeDecorator[Any]):
    """JSONB holding a ``shape``: a ``StoredShape`` subclass or a union of them."""

    impl = JSONB
    cache_ok = True

    def __init__(self, shape: Any) -> None:
        super().__init__()
        self.shape = shape
        self.adapter: TypeAdapter[Any] = TypeAdapter(shape)

    def __repr__(self) -> str:
        return f"Stored({getattr(self.shape, '__name__', self.shape)!r})"

    def coerce(self, value: Any) -> Any:
        """A value as the attribute holds it: None, or a validated shape."""
        if value is None or isinstance(value, BaseModel):
            return value
        return self.adapter.validate_python(value)

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return self.adapter.dump_python(self.coerce(value), mode="json", exclude_unset=True)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else self.adapter.validate_python(value)

    def coerce_compared_value(self, op: Any, value: Any) -> TypeEngine[Any]:
        # A shape compares as a shape; anything else (``contains({"enabled": True})``, an
        # index ``col["key"]``) as plain JSONB, as before the column was typed.
        if isinstance(value, BaseModel):
            return self
        return self.impl_instance.coerce_compared_value(op, value)


class TextEnum(TypeDecorator[StrEnum]):
    """A StrEnum stored as its plain value in a VARCHAR(16), as before (no CHECK, no type).
    Loading goes through the enum itself, so an enum that admits values it does not list
    (``JobKind._missing_``) reads rows a newer version wrote."""

    impl = String(16)
    cache_ok = True

    def __init__(self, enum: type[StrEnum]) -> None:
        super().__init__()
        self.enum = enum

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else str(self.enum(value).value)

    def process_result_value(self, value: Any, dialect: Any) -> StrEnum | None:
        return None if value is None else self.enum(value)


@event.listens_for(Mapper, "mapper_configured")
def _coerce_on_set(mapper: Mapper[Any], class_: type[Any]) -> None:
    """Plain dicts assigned to a ``Stored`` column (``Pod(files={...})``) become shapes at
    once, so the attribute always holds what a read from the database would give."""
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        if not isinstance(column.type, Stored):
            continue

        def coerce(
            _target: Any, value: Any, _old: Any, _initiator: Any, t: Stored = column.type
        ) -> Any:
            return t.coerce(value)

        event.listen(getattr(class_, prop.key), "set", coerce, retval=True)
