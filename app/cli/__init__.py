"""The `podbackup` command line: server operations and an API client, on one typer app."""

from __future__ import annotations

from app.cli import client, help
from app.cli.server import app

help.install()
client.register(app)


def main() -> None:
    app()
