"""The house rules of `app/`, read from the code with `ast` (ARCHITECTURE.md explains them).

Each rule is checked on the import graph or the call sites as they stand; the lists of
exceptions below may only shrink. A new exception needs a reason in ARCHITECTURE.md.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app"

# The rooms that hold no domain: everything else in app/ is a domain package or the app's
# own wiring (main, api, config, db, errors, models, deps).
FOUNDATION = {"kit", "integrations"}
WIRING = {"main", "api", "config", "db", "errors", "models", "deps", "handlers"}

# SQL outside repository modules: file -> statements, each with its reason. May only shrink.
SQL_OUTSIDE_REPOSITORIES: dict[str, int] = {
    # PostgreSQL advisory locks (pg_advisory_lock and its unlock): the engine's lock
    # mechanism, not a query on a table.
    "app/engine/locks.py": 2,
    # Counts the rows of a statement a repository built (select count(*) from (...)).
    "app/kit/pagination.py": 1,
    # Key rotation walks every table with encrypted columns, row by row, locked.
    "app/secrets/rotation.py": 1,
}


@dataclass
class Module:
    name: str  # app.pods.service
    path: Path
    tree: ast.Module
    imports: list[tuple[str, ast.stmt, bool]] = field(
        default_factory=list
    )  # (module, node, in_function)

    @property
    def room(self) -> str:
        """First-level package (or module) under app/."""
        parts = self.name.split(".")
        return parts[1] if len(parts) > 1 else parts[0]


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(module: Module, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.name.split(".")
    if module.path.name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _walk_imports(module: Module) -> Iterator[tuple[str, ast.stmt, bool]]:
    def visit(
        node: ast.AST, in_function: bool, in_type_checking: bool
    ) -> Iterator[tuple[str, ast.stmt, bool]]:
        for child in ast.iter_child_nodes(node):
            fn = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            tc = in_type_checking
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                tc = True
            if isinstance(child, ast.Import) and not tc:
                for alias in child.names:
                    yield alias.name, child, in_function
            elif isinstance(child, ast.ImportFrom) and not tc:
                target = _resolve(module, child)
                for alias in child.names:
                    sub = f"{target}.{alias.name}"
                    yield (sub if _exists(sub) else target), child, in_function
            yield from visit(child, fn, tc)

    yield from visit(module.tree, False, False)


@cache
def _exists(name: str) -> bool:
    path = ROOT / Path(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


@cache
def modules() -> dict[str, Module]:
    out: dict[str, Module] = {}
    for path in sorted(APP.rglob("*.py")):
        name = _module_name(path)
        out[name] = Module(name, path, ast.parse(path.read_text(), filename=str(path)))
    for module in out.values():
        module.imports = [
            (target, node, fn)
            for target, node, fn in _walk_imports(module)
            if target.startswith("app.")
        ]
    return out


def _owner(target: str) -> str | None:
    """The module of app/ that an imported name lives in."""
    mods = modules()
    while target and target not in mods:
        target = target.rpartition(".")[0]
    return target or None


def _graph(key: str) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module in modules().values():
        src = module.name if key == "module" else module.room
        for target, _node, in_function in module.imports:
            owner = _owner(target)
            if owner is None or in_function:
                continue
            dst = owner if key == "module" else modules()[owner].room
            if dst != src:
                graph[src].add(dst)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(set(graph) | {w for ws in graph.values() for w in ws}):
        if v not in index:
            visit(v)
    return found


def test_no_module_cycles() -> None:
    assert _cycles(_graph("module")) == []


def test_no_package_cycles() -> None:
    assert _cycles(_graph("room")) == []


def test_foundation_imports_no_domain() -> None:
    bad = []
    for module in modules().values():
        if module.room not in FOUNDATION:
            continue
        for target, node, _fn in module.imports:
            owner = _owner(target)
            if owner is None:
                continue
            room = modules()[owner].room
            if room not in FOUNDATION and room not in {"config", "errors"}:
                bad.append(f"{module.path.relative_to(ROOT)}:{node.lineno} imports {target}")
    assert bad == []


def test_in_function_imports_say_why() -> None:
    """An import inside a function hides an arrow: allowed where a comment (on the line, or
    above the block of imports it stands in) says why."""
    bad = []
    for module in modules().values():
        lines = module.path.read_text().splitlines()
        for target, node, in_function in module.imports:
            if not in_function or "#" in lines[node.lineno - 1]:
                continue
            above = node.lineno - 2
            while (above >= 0 and lines[above].strip().startswith(("import ", "from ", ")"))) or (
                above >= 0 and not lines[above].strip()
            ):
                above -= 1
            if above < 0 or not lines[above].strip().startswith("#"):
                bad.append(f"{module.path.relative_to(ROOT)}:{node.lineno} {target}")
    assert bad == [], "an import inside a function needs a comment saying why"


# Network clients of other people's endpoints (S3, SFTP, HTTP hooks, e-mail) live under
# integrations/; the service's own infrastructure (PostgreSQL, Redis) is not in this list.
NETWORK_CLIENTS = {
    "httpx",
    "aiohttp",
    "aiobotocore",
    "aioboto3",
    "boto3",
    "botocore",
    "asyncssh",
    "smtplib",
    "aiosmtplib",
    "urllib.request",
    "socket",
    "ssl",
}
# Where a network library may be imported outside integrations/, and why.
NETWORK_ELSEWHERE = {
    "app/kit/netpolicy.py": "the outbound-address policy resolves names itself (socket)",
}
# The CLI's HTTP client talks to this service's own API, not to a tenant's endpoint.
CLIENT_FOLDER = "app/cli/client/"


def _third_party_imports(module: Module) -> Iterator[tuple[str, int]]:
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, node.lineno


def _rel(module: Module) -> str:
    return module.path.relative_to(ROOT).as_posix()


def test_subprocesses_only_through_the_kit() -> None:
    bad = []
    for module in modules().values():
        if _rel(module) == "app/kit/subprocess.py":
            continue
        for name, line in _third_party_imports(module):
            if name in {"subprocess", "pty"} or name.startswith("subprocess."):
                bad.append(f"{_rel(module)}:{line} imports {name}")
        for node in ast.walk(module.tree):
            if isinstance(node, ast.Attribute) and node.attr in {
                "create_subprocess_exec",
                "create_subprocess_shell",
                "system",
                "popen",
                "execv",
                "execve",
                "execvp",
                "spawnv",
                "fork",
            }:
                base = ast.unparse(node.value)
                if base in {"asyncio", "os"}:
                    bad.append(f"{_rel(module)}:{node.lineno} calls {base}.{node.attr}")
    assert bad == [], "start child processes with app.kit.subprocess"


def test_network_clients_only_under_integrations() -> None:
    bad = []
    for module in modules().values():
        rel = _rel(module)
        if rel.startswith(("app/integrations/", CLIENT_FOLDER)) or rel in NETWORK_ELSEWHERE:
            continue
        for name, line in _third_party_imports(module):
            if name in NETWORK_CLIENTS or name.split(".")[0] in NETWORK_CLIENTS - {
                "urllib.request"
            }:
                bad.append(f"{rel}:{line} imports {name}")
    assert bad == []


def test_the_cli_client_imports_no_server_code() -> None:
    bad = []
    for module in modules().values():
        if not _rel(module).startswith(CLIENT_FOLDER):
            continue
        for target, node, _fn in module.imports:
            if not target.startswith("app.cli.client"):
                bad.append(f"{_rel(module)}:{node.lineno} imports {target}")
    assert bad == []


# The operator CLI is the process's entry point: `podbackup worker` starts the worker.
WORKERS_IMPORTED_BY = {"app/cli/server.py"}


def test_app_imports_no_dev_or_worker_code() -> None:
    bad = []
    for module in modules().values():
        for name, line in _third_party_imports(module):
            top = name.split(".")[0]
            if top == "workers" and _rel(module) in WORKERS_IMPORTED_BY:
                continue
            if top in {"devtools", "workers", "tests", "bench"}:
                bad.append(f"{_rel(module)}:{line} imports {name}")
    assert bad == []
    assert not (APP / "demo.py").exists()
    assert not (APP / "devserver.py").exists()


SQL_CALLS = {"select", "insert", "update", "delete", "text"}


def _sql_statements(module: Module) -> int:
    names = set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
            names |= {a.asname or a.name for a in node.names if a.name in SQL_CALLS}
    return sum(
        1
        for node in ast.walk(module.tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names
    )


def _counts_sql(module: Module) -> bool:
    """Schema (models/: index predicates spelled in SQL) is not a statement."""
    return not _rel(module).startswith("app/models/")


def _is_repository(module: Module) -> bool:
    return module.path.name == "repository.py" or "repository" in module.path.parent.name


def test_sql_lives_in_repositories() -> None:
    counted = [m for m in modules().values() if _counts_sql(m)]
    outside = {_rel(m): n for m in counted if not _is_repository(m) and (n := _sql_statements(m))}
    inside = sum(_sql_statements(m) for m in counted if _is_repository(m))
    grown = {f: n for f, n in outside.items() if n > SQL_OUTSIDE_REPOSITORIES.get(f, 0)}
    assert grown == {}, "SQL goes into the package's repository.py (see ARCHITECTURE.md)"
    stale = {f: n for f, n in SQL_OUTSIDE_REPOSITORIES.items() if outside.get(f, 0) < n}
    assert stale == {}, "fewer statements outside repositories now: shrink the list"
    assert inside / (inside + sum(outside.values())) >= 0.9


# Worker-side job machinery: an endpoint that reaches it could run (or half-run) a job in
# a request. Endpoints create job rows through app.jobs (the API side) and nothing more.
ENGINE = "app.engine"


def _closure(start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for target, _node, in_function in modules()[name].imports:
            owner = _owner(target)
            if owner is not None and not in_function:
                todo.append(owner)
    return seen


def test_no_job_types_reachable_from_endpoints() -> None:
    bad = {}
    for name, module in modules().items():
        if module.path.name != "endpoints.py" and _rel(module) not in {"app/main.py", "app/api.py"}:
            continue
        reached = sorted(n for n in _closure(name) if n == ENGINE or n.startswith(ENGINE + "."))
        if reached:
            bad[_rel(module)] = reached
    assert bad == {}


def test_every_room_is_named_in_architecture() -> None:
    """A new package of app/ is a new room: ARCHITECTURE.md says what lives there."""
    text = (ROOT / "ARCHITECTURE.md").read_text()
    rooms = {p.name for p in APP.iterdir() if (p / "__init__.py").is_file()}
    assert {room for room in rooms if f"`{room}/`" not in text} == set()


# Rooms read by rooms above them, never the other way: (lower, upper).
LAYERED = [("snapshots", "history"), ("pods", "history"), ("plans", "history")]


def test_history_sits_above_the_snapshots() -> None:
    graph = _graph("room")
    for lower, upper in LAYERED:
        assert lower in graph[upper], (upper, lower)
        assert upper not in graph.get(lower, set()), (lower, upper)
