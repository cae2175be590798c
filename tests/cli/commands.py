"""Parse a `podbackup …` command line with the real CLI, without running it."""

from __future__ import annotations

import functools
from typing import Any

import typer.main

from app.cli import app


@functools.cache
def root_command() -> Any:
    return typer.main.get_command(app)


def resolve(argv: list[str]) -> tuple[list[str], Any]:
    """The command path (`["pods", "create"]`) and the parsed context of ``argv``; raises
    the CLI's usage error when a command, option or argument is wrong."""
    cmd: Any = root_command()
    ctx = cmd.make_context("podbackup", list(argv))
    path: list[str] = []
    while hasattr(cmd, "resolve_command"):
        # A group keeps the subcommand's name apart from its arguments (click's protected
        # args; this is typer's vendored click).
        args = [*getattr(ctx, "_protected_args", []), *ctx.args]
        name, sub, rest = cmd.resolve_command(ctx, args)
        path.append(name)
        cmd = sub
        ctx = sub.make_context(name, rest, parent=ctx)
    return path, ctx


def command_paths() -> set[tuple[str, ...]]:
    """Every leaf command of the CLI, as its words."""
    found: set[tuple[str, ...]] = set()

    def walk(cmd: Any, prefix: tuple[str, ...]) -> None:
        subs = getattr(cmd, "commands", None)
        if not subs:
            found.add(prefix)
            return
        for name, sub in subs.items():
            walk(sub, (*prefix, name))

    walk(root_command(), ())
    return found


def run(argv: list[str], env: dict[str, str]) -> Any:
    """Run `podbackup ARGV` in this process (a real command against a real API, without
    the interpreter's start-up per command); the result has exit_code, stdout, stderr."""
    from typer.testing import CliRunner

    return CliRunner().invoke(app, argv, env=env, catch_exceptions=False)
