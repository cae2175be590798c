"""The `podbackup` command line: server operations and (later) an API client."""

from __future__ import annotations

from app.cli.server import app


def main() -> None:
    app()
