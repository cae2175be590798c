"""Operator commands: run the API or a worker, migrate, create tokens, manage keys."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path
from typing import Annotated

import typer

from app.config import Settings, get_settings

app = typer.Typer(
    help="podbackup: incremental, encrypted backups of pods with restic.", no_args_is_help=True
)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
keys_app = typer.Typer(help="Encryption keys for secrets at rest.", no_args_is_help=True)
app.add_typer(token_app, name="token")
app.add_typer(keys_app, name="keys")


def _fail(message: str, code: int = 2) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


async def _probe(settings: Settings, need_database: bool) -> list[str]:
    """What is unreachable, each with how to start it."""
    # Imported on use: each command loads only what it needs, and the CLI starts fast.
    import asyncpg
    from redis.asyncio import Redis

    problems = []
    try:
        conn = await asyncio.wait_for(asyncpg.connect(settings.sync_database_url), 5)
        await conn.close()
    except asyncpg.InvalidCatalogNameError:
        if need_database:
            problems.append(
                f"the database of {_safe_url(settings.sync_database_url)} does not exist yet.\n"
                "  Create it and its tables: podbackup migrate"
            )
    except Exception as exc:
        problems.append(
            f"PostgreSQL is unreachable at {_safe_url(settings.sync_database_url)} "
            f"({type(exc).__name__}: {exc}).\n  Start it: pg_ctlcluster --skip-systemctl-redirect "
            "$(ls /etc/postgresql) main start   (or set PODBACKUP_DATABASE_URL)"
        )
    try:
        redis = Redis.from_url(settings.redis_url, socket_connect_timeout=3)
        await redis.ping()
        await redis.aclose()
    except Exception as exc:
        problems.append(
            f"Redis is unreachable at {_safe_url(settings.redis_url)} ({type(exc).__name__}).\n"
            '  Start it: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ""'
            "   (or set PODBACKUP_REDIS_URL)"
        )
    return problems


def _safe_url(url: str) -> str:
    # Imported on use: each command loads only what it needs, and the CLI starts fast.
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable url>"


def check_backing_services(settings: Settings, need_database: bool = True) -> None:
    problems = asyncio.run(_probe(settings, need_database))
    if problems:
        _fail("\n".join(problems))


def ensure_database(settings: Settings) -> None:
    """Create the configured database when the server is up but the database is missing."""
    # Imported on use: each command loads only what it needs, and the CLI starts fast.
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(settings.sync_database_url)

    async def _create() -> None:
        try:
            conn = await asyncpg.connect(settings.sync_database_url)
            await conn.close()
            return
        except asyncpg.InvalidCatalogNameError:
            pass
        admin = await asyncpg.connect(url.set(database="postgres").render_as_string(False))
        try:
            await admin.execute(f'CREATE DATABASE "{url.database}"')
        except asyncpg.DuplicateDatabaseError:
            pass
        finally:
            await admin.close()

    asyncio.run(_create())


def run_migrations(settings: Settings) -> None:
    # Imported on use: each command loads only what it needs, and the CLI starts fast.
    from alembic import command
    from alembic.config import Config

    root = Path(__file__).resolve().parents[2]
    cfg = Config(str(root / "alembic.ini"))
    cfg.set_main_option("script_location", str(root / "migrations"))
    cfg.attributes["database_url"] = settings.database_url
    command.upgrade(cfg, "head")


@app.command()
def migrate() -> None:
    """Create the database if missing and apply all migrations."""
    settings = get_settings()
    check_backing_services(settings, need_database=False)
    ensure_database(settings)
    run_migrations(settings)
    typer.echo("database is at the newest schema")


@app.command()
def api(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes.")] = 1,
) -> None:
    """Serve the HTTP API."""
    # Imported on use: each command loads only what it needs, and the CLI starts fast.
    import uvicorn

    from app.kit.crypto import CryptoConfigError, Keyring
    from app.kit.logging import setup_logging

    settings = get_settings()
    setup_logging(settings.log_level, settings.log_format)
    try:
        Keyring.from_settings(settings.secret_keys)
    except CryptoConfigError as exc:
        _fail(str(exc))
    check_backing_services(settings)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        # The client address (failed-auth limit, audit) from X-Forwarded-For, only when
        # the peer is one of the operator's proxies.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=",".join(settings.trusted_proxies) or None,
    )


@app.command()
def worker() -> None:
    """Run an arq worker (start as many as you like, on any number of hosts)."""
    # Imported on use: each command loads only what it needs, and the CLI starts fast.
    from app.kit.crypto import CryptoConfigError, Keyring
    from app.kit.logging import setup_logging

    settings = get_settings()
    setup_logging(settings.log_level, settings.log_format)
    try:
        Keyring.from_settings(settings.secret_keys)
    except CryptoConfigError as exc:
        _fail(str(exc))
    check_backing_services(settings)
    from workers.settings import WorkerSettings
    from workers.transport import run_worker

    run_worker(WorkerSettings, heartbeat_path=settings.heartbeat_path)  # type: ignore[arg-type]


@app.command("worker-health")
def worker_health(
    max_age: Annotated[
        float | None,
        typer.Option(
            help="Seconds since the last heartbeat still counted as alive "
            "(default PODBACKUP_JOB_STALE_SECONDS, after which its jobs count as lost too)."
        ),
    ] = None,
) -> None:
    """Exit 0 when this host's worker beats (PODBACKUP_WORKER_HEARTBEAT_FILE), else 1.

    The container health check of a worker: it reads a file, needs no network and no keys.
    """
    # Imported on use: each command loads only what it needs, and the CLI starts fast.
    from app.kit.heartbeat import check

    settings = get_settings()
    limit = settings.job_stale_seconds if max_age is None else max_age
    healthy, message = check(settings.heartbeat_path, limit)
    typer.echo(message, err=not healthy)
    raise typer.Exit(0 if healthy else 1)


@app.command()
def openapi(
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout.")] = None,
) -> None:
    """Print (or write) the OpenAPI document generated from the app."""
    # Imported on use: each command loads only what it needs, and the CLI starts fast.
    from app.main import create_app

    text = json.dumps(create_app().openapi(), indent=2, sort_keys=True) + "\n"
    if out:
        out.write_text(text)
    else:
        sys.stdout.write(text)


async def _create_token(
    settings: Settings, scope: str, account_id: uuid.UUID | None, name: str
) -> str:
    # Imported on use: each command loads only what it needs, and the CLI starts fast.
    from app.auth.tokens import create_token
    from app.db import make_engine, make_sessionmaker
    from app.models import Account

    engine = make_engine(settings, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            if account_id is not None and await session.get(Account, account_id) is None:
                _fail(f"no account {account_id}")
            new = await create_token(session, scope=scope, account_id=account_id, name=name)
            await session.commit()
            return new.token
    finally:
        await engine.dispose()


@token_app.command("create")
def token_create(
    admin: Annotated[bool, typer.Option("--admin", help="An admin token.")] = False,
    account: Annotated[str | None, typer.Option("--account", help="An account's token.")] = None,
    name: Annotated[str, typer.Option(help="A label for the token.")] = "cli",
) -> None:
    """Print a new token (shown once; only its hash is stored)."""
    if admin == (account is not None):
        _fail("give exactly one of --admin or --account ACCOUNT_ID")
    account_id = None
    if account is not None:
        try:
            account_id = uuid.UUID(account)
        except ValueError:
            _fail(f"'{account}' is not an account id (a UUID)")
    settings = get_settings()
    check_backing_services(settings)
    token = asyncio.run(_create_token(settings, "admin" if admin else "account", account_id, name))
    typer.echo(token)


@app.command("config-doc")
def config_doc() -> None:
    """Print the configuration table (README.md embeds it; a test keeps them equal)."""
    # Imported on use: each command loads only what it needs, and the CLI starts fast.
    from app.kit.configdoc import table

    typer.echo(table())


@keys_app.command("generate")
def keys_generate(
    key_id: Annotated[str | None, typer.Option("--id", help="Key id (default random).")] = None,
) -> None:
    """Print a new `id:key` entry for PODBACKUP_SECRET_KEYS (put it first to make it current)."""
    # Imported on use: each command loads only what it needs, and the CLI starts fast.
    from app.kit.crypto import generate_key

    typer.echo(generate_key(key_id))


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-encrypt every stored secret with the newest key (the first in PODBACKUP_SECRET_KEYS)."""
    # Imported on use: each command loads only what it needs, and the CLI starts fast.
    from app.secrets.rotation import rotate_all

    settings = get_settings()
    check_backing_services(settings)
    counts = asyncio.run(rotate_all(settings))
    typer.echo(json.dumps(counts))
