"""Help text without type noise: typer (0.2x) prints ``<bool>`` beside every flag and
``<str>`` beside every argument. Flags get no type; a value shows click's metavar (``TEXT``,
``INTEGER``, the choices), an argument its own metavar (``POD``) only once."""

from __future__ import annotations

from typing import Any

from typer import core

_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "NUMBER", "Path": "PATH"}


def _option_type(self: core.TyperOption, ctx: Any) -> str | None:
    if self.metavar is not None:
        return self.metavar
    shown = self.display_type(ctx) or ""
    if getattr(self, "is_flag", False) or shown == "<bool>":
        return None
    bare = shown.removeprefix("<").removesuffix(">")
    if bare.startswith("list[") and bare.endswith("]"):  # a repeatable option
        bare = bare[5:-1]
    return _NAMES.get(bare, bare.upper() if "|" not in bare else bare)


def _argument_type(self: core.TyperArgument, ctx: Any) -> str | None:
    return None  # the argument's name (its metavar) already says what goes there


def install() -> None:
    """Replace typer's type column for options and arguments (idempotent)."""
    patched: Any = core
    patched.TyperOption.display_type_rich = _option_type
    patched.TyperArgument.display_type_rich = _argument_type
