"""The registry of job error codes is the codes the source raises, no more, no fewer.

The source is read with ``ast``: a code is the first argument (or ``code=``) of a coded
error's constructor (``JobFailure``, ``JobError``, ``IntegrationError`` and every subclass
of them, ``NoBackupTarget``), or a class's ``code = "…"`` (an app error a job records). A
name in that place is followed to its literal: an assignment in the same function, or a
parameter's default and the literals callers pass for it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from app.engine.errors import RETRYABLE_CODES
from app.integrations.dumps.errors import CODES as DUMP_CODES
from app.integrations.dumps.errors import DumpError
from app.integrations.restic.errors import ResticError
from app.integrations.sftp.errors import SftpError
from app.models.errorcodes import JOB_ERROR_CODES

APP = Path(__file__).resolve().parents[2] / "app"
ROOTS = {"JobFailure", "JobError", "IntegrationError", "NoBackupTarget"}


@cache
def _trees() -> dict[Path, ast.Module]:
    return {p: ast.parse(p.read_text(), filename=str(p)) for p in sorted(APP.rglob("*.py"))}


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _coded_classes() -> set[str]:
    found = set(ROOTS)
    classes = [n for t in _trees().values() for n in ast.walk(t) if isinstance(n, ast.ClassDef)]
    while True:
        more = {c.name for c in classes if any(_name(b) in found for b in c.bases)} - found
        if not more:
            return found
        found |= more


def _functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _literals(node: ast.expr) -> list[str] | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        body, orelse = _literals(node.body), _literals(node.orelse)
        return None if body is None or orelse is None else body + orelse
    return None


def _passed_for(function: ast.FunctionDef | ast.AsyncFunctionDef, param: str) -> list[str]:
    """The literals every caller in app/ passes for ``param`` of ``function``, and its
    default."""
    params = [a.arg for a in function.args.posonlyargs + function.args.args]
    out: list[str] = []
    every = function.args.args + function.args.kwonlyargs
    defaults = [None] * (len(function.args.args) - len(function.args.defaults))
    for arg, default in zip(
        every, [*defaults, *function.args.defaults, *function.args.kw_defaults], strict=True
    ):
        if arg.arg == param and default is not None:
            out += _literals(default) or []
    for tree in _trees().values():
        for call in ast.walk(tree):
            if not isinstance(call, ast.Call) or _name(call.func) != function.name:
                continue
            for kw in call.keywords:
                if kw.arg == param:
                    out += _literals(kw.value) or []
            if param in params and params.index(param) < len(call.args):
                out += _literals(call.args[params.index(param)]) or []
    return out


def _resolve(
    node: ast.expr, function: ast.FunctionDef | ast.AsyncFunctionDef | None
) -> list[str] | None:
    """The codes an argument can hold; None when it cannot be told from the source."""
    if (found := _literals(node)) is not None:
        return found
    if not isinstance(node, ast.Name) or function is None:
        return None
    assigned = [
        value
        for stmt in ast.walk(function)
        if isinstance(stmt, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == node.id for t in stmt.targets)
        for value in (_literals(stmt.value) or [])
    ]
    every = function.args.posonlyargs + function.args.args + function.args.kwonlyargs
    if any(a.arg == node.id for a in every):
        assigned += _passed_for(function, node.id)
    return assigned or None


def _raised() -> tuple[dict[str, list[str]], list[str]]:
    """code -> where it is raised; and the places whose code could not be told."""
    coded = _coded_classes()
    codes: dict[str, list[str]] = {}
    unknown: list[str] = []
    for path, tree in _trees().items():
        where = path.relative_to(APP.parent).as_posix()
        owner = {id(n): f for f in _functions(tree) for n in ast.walk(f)}  # innermost last
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    if (
                        isinstance(stmt, ast.Assign)
                        and [_name(t) for t in stmt.targets] == ["code"]
                        and (values := _literals(stmt.value))
                    ):
                        for code in values:
                            codes.setdefault(code, []).append(f"{where}:{stmt.lineno}")
            if not isinstance(node, ast.Call) or _name(node.func) not in coded:
                continue
            arg = next((k.value for k in node.keywords if k.arg == "code"), None)
            arg = arg if arg is not None else (node.args[0] if node.args else None)
            if isinstance(arg, ast.Attribute) and arg.attr == "code":
                continue  # an existing coded error passed on
            found = _resolve(arg, owner.get(id(node))) if arg is not None else None
            if found is None:
                unknown.append(f"{where}:{node.lineno}")
            for code in found or []:
                codes.setdefault(code, []).append(f"{where}:{node.lineno}")
    return codes, unknown


def test_every_code_raised_is_in_the_registry_and_every_entry_is_raised() -> None:
    raised, unknown = _raised()
    assert unknown == [], "a coded error whose code is not a literal this test can follow"
    missing = {code: raised[code] for code in sorted(set(raised) - set(JOB_ERROR_CODES))}
    assert missing == {}, "add these codes to app/models/errorcodes.py"
    assert sorted(set(JOB_ERROR_CODES) - set(raised)) == [], "no code raises these any more"


def test_the_scan_sees_codes_raised_each_way() -> None:
    raised, _ = _raised()
    assert "app/integrations/sftp/tree.py" in " ".join(raised["hostile_listing"])  # literal
    assert "check_failed" in raised  # one branch of a conditional
    assert {"load_failed", "dump_failed"} <= set(raised)  # a parameter's values
    assert "repository_mismatch" in raised  # a class attribute
    assert "platform_not_configured" in raised  # NoBackupTarget


def test_the_integrations_name_only_registered_codes() -> None:
    for declared in (DUMP_CODES, DumpError.HINTS, ResticError.HINTS, SftpError.HINTS):
        assert set(declared) <= set(JOB_ERROR_CODES)
    for retryable in (SftpError.RETRYABLE, ResticError.RETRYABLE):
        assert retryable <= RETRYABLE_CODES


def test_entries_are_documented() -> None:
    assert RETRYABLE_CODES == {c for c, d in JOB_ERROR_CODES.items() if d.retryable}
    for code, doc in JOB_ERROR_CODES.items():
        assert code.isidentifier(), code
        assert code == code.lower(), code
        assert doc.meaning.endswith("."), code
        assert doc.hint, code
        assert not doc.hint.endswith("."), code
