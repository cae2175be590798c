from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from app.kit.validators import Body, Name, Printable


class AccountCreate(Body):
    name: Name = Field(examples=["Ada's pods"])
    email: EmailStr | None = Field(None, examples=["ada@example.com"])


class AccountRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    email: str | None
    created_at: datetime


class TokenCreate(Body):
    name: Printable = Field("", max_length=200, examples=["control panel"])


class TokenCreated(BaseModel):
    id: uuid.UUID
    token: str = Field(description="Shown once; only its hash is stored.")
    scope: str
    account_id: uuid.UUID | None
    name: str
    created_at: datetime


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    scope: str
    account_id: uuid.UUID | None
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class WhoAmI(BaseModel):
    token_id: uuid.UUID
    scope: str
    account_id: uuid.UUID | None
