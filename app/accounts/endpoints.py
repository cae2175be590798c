"""Accounts and their tokens (admin), plus `GET /v1/me` for any token."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, status

from app.accounts import repository
from app.accounts.schemas import (
    AccountCreate,
    AccountRead,
    TokenCreate,
    TokenCreated,
    TokenRead,
    WhoAmI,
)
from app.audit import service as audit
from app.auth import repository as token_rows
from app.auth import tokens
from app.auth.dependencies import AdminPrincipal, AnyPrincipal
from app.db import DbSession
from app.errors import NotFound, error_responses
from app.kit.pagination import Page, PageQuery, make_page, paginate
from app.models import Account, ApiToken

router = APIRouter(tags=["accounts"])


@router.get("/v1/me", summary="Who this token is", responses=error_responses(401))
async def whoami(principal: AnyPrincipal) -> WhoAmI:
    return WhoAmI(
        token_id=principal.token_id, scope=principal.scope, account_id=principal.account_id
    )


@router.post(
    "/v1/accounts",
    status_code=status.HTTP_201_CREATED,
    summary="Create an account (admin)",
    responses=error_responses(401, 403, 422),
)
async def create_account(
    body: AccountCreate, principal: AdminPrincipal, session: DbSession
) -> AccountRead:
    account = Account(name=body.name, email=body.email)
    session.add(account)
    await session.flush()
    await audit.record(session, "account.create", principal=principal, account_id=account.id)
    return AccountRead.model_validate(account)


@router.get(
    "/v1/accounts", summary="List accounts (admin)", responses=error_responses(401, 403, 422)
)
async def list_accounts(
    principal: AdminPrincipal, session: DbSession, params: PageQuery
) -> Page[AccountRead]:
    rows, total = await paginate(session, repository.list_query(), params)
    return make_page([AccountRead.model_validate(r) for r in rows], total, params)


async def _account(session: DbSession, account_id: uuid.UUID) -> Account:
    account = await session.get(Account, account_id)
    if account is None:
        raise NotFound("Account not found")
    return account


@router.get(
    "/v1/accounts/{account_id}",
    summary="One account (admin)",
    responses=error_responses(401, 403, 404, 422),
)
async def get_account(
    account_id: uuid.UUID, principal: AdminPrincipal, session: DbSession
) -> AccountRead:
    return AccountRead.model_validate(await _account(session, account_id))


@router.post(
    "/v1/accounts/{account_id}/tokens",
    status_code=status.HTTP_201_CREATED,
    summary="Create an account token (admin); shown once",
    responses=error_responses(401, 403, 404, 422),
)
async def create_account_token(
    account_id: uuid.UUID,
    principal: AdminPrincipal,
    session: DbSession,
    body: TokenCreate | None = None,
) -> TokenCreated:
    await _account(session, account_id)
    new = await tokens.create_token(
        session, scope="account", account_id=account_id, name=body.name if body else ""
    )
    await audit.record(
        session,
        "token.create",
        principal=principal,
        account_id=account_id,
        detail={"token_id": str(new.row.id)},
    )
    row = new.row
    return TokenCreated(
        id=row.id,
        token=new.token,
        scope=row.scope,
        account_id=row.account_id,
        name=row.name,
        created_at=row.created_at,
    )


@router.get(
    "/v1/accounts/{account_id}/tokens",
    summary="List an account's tokens (admin); never the token values",
    responses=error_responses(401, 403, 404, 422),
)
async def list_account_tokens(
    account_id: uuid.UUID, principal: AdminPrincipal, session: DbSession, params: PageQuery
) -> Page[TokenRead]:
    await _account(session, account_id)
    rows, total = await paginate(session, token_rows.account_tokens_query(account_id), params)
    return make_page([TokenRead.model_validate(r) for r in rows], total, params)


@router.delete(
    "/v1/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a token (admin, or an account revoking its own)",
    responses=error_responses(401, 404, 422),
)
async def revoke_token(
    token_id: uuid.UUID, principal: AnyPrincipal, session: DbSession, request: Request
) -> None:
    row = await session.get(ApiToken, token_id)
    if row is None or not (principal.is_admin or row.account_id == principal.account_id):
        raise NotFound("Token not found")
    await tokens.revoke(session, token_id)
    request.app.state.token_cache.drop_token_id(token_id)
    await audit.record(
        session,
        "token.revoke",
        principal=principal,
        account_id=row.account_id,
        detail={"token_id": str(token_id)},
    )
