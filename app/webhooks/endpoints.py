from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from app.audit import service as audit
from app.auth.dependencies import AnyPrincipal, client_address
from app.db import DbSession
from app.deps import KeyringDep, SettingsDep
from app.errors import error_responses
from app.kit.pagination import Page, PageQuery, make_page, paginate
from app.webhooks import repository, service
from app.webhooks.schemas import (
    DeliveryRead,
    DeliveryStatus,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
)

router = APIRouter(tags=["webhooks"])


@router.post(
    "/v1/webhooks",
    status_code=status.HTTP_201_CREATED,
    summary="Create a webhook: signed event deliveries to a URL",
    description=(
        "Events are POSTed as JSON `{id, event, created_at, data}` with "
        "`X-Podbackup-Event-Id`, `X-Podbackup-Event`, `X-Podbackup-Timestamp` and "
        "`X-Podbackup-Signature: sha256=<HMAC-SHA256 of '<timestamp>.<body>'>`. Failed "
        "deliveries are retried with backoff, always with the same event id. Without "
        "`secret`, one is generated and returned in this response only."
    ),
    responses=error_responses(401, 409, 422),
)
async def create_webhook(
    body: WebhookCreate,
    principal: AnyPrincipal,
    session: DbSession,
    settings: SettingsDep,
    keyring: KeyringDep,
    request: Request,
) -> WebhookCreated:
    hook, generated = await service.create(session, settings, keyring, principal, body)
    await audit.record(
        session,
        "webhook.create",
        principal=principal,
        account_id=hook.account_id,
        detail={"webhook_id": str(hook.id), "events": hook.events},
        client=client_address(request),
    )
    return WebhookCreated(**service.to_read(hook).model_dump(), secret=generated)


@router.get("/v1/webhooks", summary="List webhooks", responses=error_responses(401, 422))
async def list_webhooks(
    principal: AnyPrincipal,
    session: DbSession,
    params: PageQuery,
    account_id: Annotated[
        uuid.UUID | None, Query(description="Admin only: webhooks of this account.")
    ] = None,
) -> Page[WebhookRead]:
    rows, total = await paginate(session, service.list_query(principal, account_id), params)
    return make_page([service.to_read(h) for h in rows], total, params)


@router.get(
    "/v1/webhooks/{webhook_id}", summary="One webhook", responses=error_responses(401, 404, 422)
)
async def get_webhook(
    webhook_id: uuid.UUID, principal: AnyPrincipal, session: DbSession
) -> WebhookRead:
    return service.to_read(await service.get_visible(session, principal, webhook_id))


@router.delete(
    "/v1/webhooks/{webhook_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a webhook; its pending deliveries are dropped",
    responses=error_responses(401, 404, 422),
)
async def delete_webhook(
    webhook_id: uuid.UUID, principal: AnyPrincipal, session: DbSession, request: Request
) -> None:
    hook = await service.get_visible(session, principal, webhook_id)
    await audit.record(
        session,
        "webhook.delete",
        principal=principal,
        account_id=hook.account_id,
        detail={"webhook_id": str(hook.id), "url": hook.url},
        client=client_address(request),
    )
    await service.delete(session, hook)


@router.get(
    "/v1/webhooks/{webhook_id}/deliveries",
    summary="Deliveries of a webhook, newest first, with every attempt",
    responses=error_responses(401, 404, 422),
)
async def list_deliveries(
    webhook_id: uuid.UUID,
    principal: AnyPrincipal,
    session: DbSession,
    params: PageQuery,
    status_filter: Annotated[
        DeliveryStatus | None, Query(alias="status", description="Only deliveries in this state.")
    ] = None,
) -> Page[DeliveryRead]:
    hook = await service.get_visible(session, principal, webhook_id)
    rows, total = await paginate(
        session, repository.deliveries_query(hook.id, status_filter), params
    )
    return make_page(await service.deliveries_read(session, rows), total, params)


@router.post(
    "/v1/webhooks/{webhook_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Queue a `webhook.test` event to this webhook",
    description="The worker delivers it like any event; follow it in the deliveries list.",
    responses=error_responses(401, 404, 422),
)
async def send_test_event(
    webhook_id: uuid.UUID, principal: AnyPrincipal, session: DbSession
) -> DeliveryRead:
    hook = await service.get_visible(session, principal, webhook_id)
    delivery = await service.queue_test(session, hook)
    return service.delivery_read(delivery, [])
