"""Client commands about the service and its accounts: whoami, health, providers,
accounts (admin), tokens, audit, fleet (admin) and webhooks."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from app.cli.client.api import Api, ApiError, load_config
from app.cli.client.data import Json, api
from app.cli.client.render import (
    handles_errors,
    out,
    print_json,
    record,
    status,
    table,
    when,
)

Opt = typer.Option
Arg = typer.Argument
Limit = Annotated[int, Opt("--limit", help="At most this many, newest first.")]
accounts_app = typer.Typer(help="Accounts and their tokens (admin).", no_args_is_help=True)
tokens_app = typer.Typer(
    help="API tokens: revoke one (made by `accounts token` or the operator's `token create`).",
    no_args_is_help=True,
)
webhooks_app = typer.Typer(help="Webhooks: signed event deliveries.", no_args_is_help=True)


@handles_errors
def whoami(as_json: Json = False) -> None:
    """Who this token is: admin, or which account."""
    with api() as client:
        me = client.get("/v1/me")
    if as_json:
        print_json(me)
        return
    out.print(record(me))


@handles_errors
def health(as_json: Json = False) -> None:
    """Is the API alive (/healthz) and ready: PostgreSQL and Redis reachable (/readyz)?"""
    with Api(load_config(), require_token=False) as client:
        alive = client.get("/healthz")
        try:
            ready = client.get("/readyz")
        except ApiError as exc:
            ready = exc.body()
    ok = "error" not in ready
    if as_json:
        print_json({"healthz": alive, "readyz": ready, "ready": ok})
    else:
        out.print(f"{client.url}: alive, " + ("ready" if ok else "NOT ready"))
        if not ok:
            out.print(f"  {ready.get('detail')}")
    raise typer.Exit(0 if ok else 1)


@handles_errors
def providers(as_json: Json = False) -> None:
    """S3 provider presets: example endpoints and how to make a key for one bucket."""
    with api() as client:
        found = client.get("/v1/providers")
    items = found.get("items", found) if isinstance(found, dict) else found
    if as_json:
        print_json(found)
        return
    t = table("PROVIDER", "ENDPOINT", "KEY SETUP")
    for p in items:
        examples = p.get("example_endpoints") or [p.get("endpoint_pattern") or "-"]
        setup = p.get("key_setup")
        setup = "; ".join(map(str, setup)) if isinstance(setup, list) else str(setup or "-")
        t.add_row(p.get("name") or p.get("id", "-"), str(examples[0]), setup)
    out.print(t)


# -- accounts and tokens ---------------------------------------------------------------


@accounts_app.command("list")
@handles_errors
def accounts_list(limit: Limit = 200, as_json: Json = False) -> None:
    """Every account."""
    with api() as client:
        items = client.items("/v1/accounts", limit=limit)
    if as_json:
        print_json(items)
        return
    t = table("ID", "NAME", "EMAIL", "CREATED")
    for a in items:
        t.add_row(a["id"], a["name"], a.get("email") or "-", when(a["created_at"], False))
    out.print(t if items else "no accounts yet")


@accounts_app.command("create")
@handles_errors
def accounts_create(
    name: Annotated[str, Arg(help="The account's name.", metavar="NAME")],
    email: Annotated[str | None, Opt("--email", help="A contact address.")] = None,
    as_json: Json = False,
) -> None:
    """Create an account (then give it a token: accounts token ACCOUNT)."""
    with api() as client:
        account = client.post("/v1/accounts", json={"name": name, "email": email})
    if as_json:
        print_json(account)
        return
    out.print(f"created account {account['name']}: {account['id']}")
    out.print(f"its first token: podbackup accounts token {account['id']}")


@accounts_app.command("show")
@handles_errors
def accounts_show(
    account: Annotated[str, Arg(help="Account id.", metavar="ACCOUNT")], as_json: Json = False
) -> None:
    """One account and its tokens (never their values)."""
    with api() as client:
        found = client.get(f"/v1/accounts/{account}")
    if as_json:
        print_json(found)
        return
    out.print(record(found))


@accounts_app.command("tokens")
@handles_errors
def accounts_tokens(
    account: Annotated[str, Arg(help="Account id.", metavar="ACCOUNT")],
    limit: Limit = 200,
    as_json: Json = False,
) -> None:
    """An account's tokens: prefix, name, last use (never the token values)."""
    with api() as client:
        items = client.items(f"/v1/accounts/{account}/tokens", limit=limit)
    if as_json:
        print_json(items)
        return
    t = table("ID", "PREFIX", "NAME", "LAST USED", "REVOKED")
    for k in items:
        t.add_row(
            k["id"],
            k["prefix"],
            k["name"] or "-",
            when(k.get("last_used_at")),
            when(k.get("revoked_at")),
        )
    out.print(t if items else "no tokens")


@accounts_app.command("token")
@handles_errors
def accounts_token(
    account: Annotated[str, Arg(help="Account id.", metavar="ACCOUNT")],
    name: Annotated[str, Opt("--name", help="What it is for.")] = "",
    as_json: Json = False,
) -> None:
    """Create a token for the account: printed once, stored only hashed."""
    with api() as client:
        made = client.post(f"/v1/accounts/{account}/tokens", json={"name": name})
    if as_json:
        print_json(made)
        return
    out.print(made["token"])


@tokens_app.command("revoke")
@handles_errors
def tokens_revoke(
    token_id: Annotated[str, Arg(help="The token's id (not its value).", metavar="TOKEN_ID")],
    as_json: Json = False,
) -> None:
    """Revoke a token (admin, or an account revoking its own)."""
    with api() as client:
        client.request("DELETE", f"/v1/tokens/{token_id}")
    if as_json:
        print_json({"revoked": token_id})
    else:
        out.print(f"revoked token {token_id}")


# -- audit and fleet -------------------------------------------------------------------


@handles_errors
def audit(
    pod: Annotated[str | None, Arg(help="Only this pod's events.", metavar="POD")] = None,
    action: Annotated[str | None, Opt("--action", help="e.g. restore_kit.read")] = None,
    account: Annotated[str | None, Opt("--account", help="Admin: one account's.")] = None,
    limit: Limit = 50,
    as_json: Json = False,
) -> None:
    """The audit trail: settings changes, restore-kit reads, restores, deletions."""
    params = {k: v for k, v in {"action": action, "account_id": account}.items() if v}
    with api() as client:
        if pod:
            path = f"/v1/pods/{client.pod(pod)['id']}/audit"
            params.pop("account_id", None)
        else:
            path = "/v1/audit"
        items = client.items(path, params=params, limit=limit)
    if as_json:
        print_json(items)
        return
    t = table("AT", "ACTION", "POD", "ACTOR", "CLIENT", "DETAIL")
    for e in items:
        detail = json.dumps(e.get("detail") or {}, ensure_ascii=False) if e.get("detail") else "-"
        t.add_row(
            when(e["at"]),
            e["action"],
            (e.get("pod_id") or "-")[:8],
            str(e.get("actor") or "-"),
            str(e.get("client") or "-"),
            detail,
        )
    out.print(t if items else "no events")


@handles_errors
def fleet(
    hours: Annotated[
        float | None, Opt("--hours", help="Without a platform success this long.")
    ] = None,
    all_pods: Annotated[bool, Opt("--all", help="Every pod, not only the late ones.")] = False,
    limit: Limit = 200,
    as_json: Json = False,
) -> None:
    """Admin: pods without a recent successful platform backup."""
    params: dict[str, Any] = {"all_pods": all_pods} if all_pods else {}
    if hours is not None:
        params["hours"] = hours
    with api() as client:
        items = client.items("/v1/platform/fleet", params=params, limit=limit)
    if as_json:
        print_json(items)
        return
    t = table("POD", "NAME", "APP", "LAST STATUS", "LAST SUCCESS", "NEXT RUN", "SNAPSHOTS")
    for p in items:
        t.add_row(
            p["pod_id"][:8],
            p["name"],
            p["app"],
            status(p.get("last_status")),
            when(p.get("last_success_at")),
            when(p.get("next_run_at")),
            str(p.get("snapshot_count", "-")),
        )
    out.print(t if items else "every pod has a recent platform backup")


# -- webhooks --------------------------------------------------------------------------

HookArg = Annotated[str, Arg(help="Webhook id.", metavar="WEBHOOK")]


@webhooks_app.command("list")
@handles_errors
def webhooks_list(limit: Limit = 200, as_json: Json = False) -> None:
    """Your webhooks."""
    with api() as client:
        items = client.items("/v1/webhooks", limit=limit)
    if as_json:
        print_json(items)
        return
    t = table("ID", "URL", "EVENTS", "ACTIVE", "DESCRIPTION")
    for h in items:
        events = ", ".join(h.get("events") or []) or "all"
        t.add_row(
            h["id"],
            h["url"],
            events,
            "yes" if h.get("active") else "no",
            h.get("description") or "-",
        )
    out.print(t if items else "no webhooks")


@webhooks_app.command("create")
@handles_errors
def webhooks_create(
    url: Annotated[str, Arg(help="Where events are POSTed (https://).", metavar="URL")],
    events: Annotated[
        list[str] | None, Opt("--event", help="Only this event, e.g. job.failed (repeatable).")
    ] = None,
    description: Annotated[str, Opt("--description", help="What it is for.")] = "",
    account: Annotated[str | None, Opt("--account", help="Admin tokens: the account id.")] = None,
    as_json: Json = False,
) -> None:
    """Create a webhook; prints its signing secret once."""
    body: dict[str, Any] = {"url": url, "events": events or [], "description": description}
    if account:
        body["account_id"] = account
    with api() as client:
        made = client.post("/v1/webhooks", json=body)
    if as_json:
        print_json(made)
        return
    out.print(f"created webhook {made['id']}")
    if made.get("secret"):
        out.print(f"signing secret (shown once): {made['secret']}")


@webhooks_app.command("show")
@handles_errors
def webhooks_show(webhook: HookArg, as_json: Json = False) -> None:
    """One webhook."""
    with api() as client:
        h = client.get(f"/v1/webhooks/{webhook}")
    if as_json:
        print_json(h)
        return
    out.print(record(h))


@webhooks_app.command("delete")
@handles_errors
def webhooks_delete(webhook: HookArg, as_json: Json = False) -> None:
    """Delete a webhook; its pending deliveries are dropped."""
    with api() as client:
        client.request("DELETE", f"/v1/webhooks/{webhook}")
    if as_json:
        print_json({"deleted": webhook})
    else:
        out.print(f"deleted webhook {webhook}")


@webhooks_app.command("deliveries")
@handles_errors
def webhooks_deliveries(webhook: HookArg, limit: Limit = 50, as_json: Json = False) -> None:
    """A webhook's deliveries, newest first, with every attempt."""
    with api() as client:
        items = client.items(f"/v1/webhooks/{webhook}/deliveries", limit=limit)
    if as_json:
        print_json(items)
        return
    t = table("ID", "EVENT", "STATUS", "ATTEMPTS", "CREATED", "LAST ERROR")
    for d in items:
        t.add_row(
            str(d.get("id")),
            str(d.get("event") or "-"),
            status(d.get("status")),
            str(d.get("attempts", "-")),
            when(d.get("created_at")),
            str(d.get("last_error") or "-"),
        )
    out.print(t if items else "no deliveries yet")


@webhooks_app.command("test")
@handles_errors
def webhooks_test(webhook: HookArg, as_json: Json = False) -> None:
    """Queue a `webhook.test` event to this webhook (see `webhooks deliveries`)."""
    with api() as client:
        sent = client.post(f"/v1/webhooks/{webhook}/test")
    if as_json:
        print_json(sent)
    else:
        out.print(f"queued a webhook.test event: podbackup webhooks deliveries {webhook}")
