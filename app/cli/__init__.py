"""The `podbackup` command line: server operations and an API client, on one typer app."""

from __future__ import annotations

from app.cli import client
from app.cli.server import app

client.register(app)


def main() -> None:
    app()
