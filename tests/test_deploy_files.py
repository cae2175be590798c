"""The Dockerfile, docker-compose.yml and constraints.txt agree with the code.

Nothing is built (no Docker engine on test machines): the files are parsed and every name
in them is looked up in the code. Env names are settings, commands are CLI commands with
their real flags (parsed by the CLI's own click definition), ports and health URLs agree,
every dependency is pinned, and the base image is Debian 13.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from app.cli import app as cli_app
from app.config import Settings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_ENV = {f"PODBACKUP_{name.upper()}" for name in Settings.model_fields}


# --- readers -----------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    lines: list[str] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        if raw.lstrip().startswith("#") or not raw.strip():
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        lines.append(pending + raw)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    out = []
    for line in lines:
        instruction, _, args = line.strip().partition(" ")
        out.append((instruction.upper(), " ".join(args.split())))
    return out


def instructions(name: str) -> list[str]:
    return [args for instruction, args in dockerfile() if instruction == name]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for args in instructions("ENV"):
        for part in shlex.split(args):
            key, sep, value = part.partition("=")
            assert sep, f"ENV {args!r}: write ENV KEY=value"
            env[key] = value
    return env


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


def ours(service: dict[str, Any]) -> bool:
    """A service running this image (built from the Dockerfile)."""
    return "build" in service


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} / ${VAR:?message}, as if no VAR were set (a dummy for :?)."""

    def one(match: re.Match[str]) -> str:
        name, op, rest = match.group(1), match.group(2), match.group(3)
        if op == ":-":
            return rest
        assert op == ":?", f"${{{name}}}: give a default (:-) or a message (:?)"
        return {"PODBACKUP_SECRET_KEYS": "k1:" + "A" * 43 + "="}.get(name, "x")

    return re.sub(r"\$\{(\w+)(:-|:\?)?([^}]*)\}", one, value)


class CliRefused(Exception):
    """The CLI would refuse this command line (the CLI's own message)."""


def cli_command(argv: list[str]) -> Any:
    """The CLI command that ``argv`` runs, its options parsed by the CLI's own definition:
    ``CliRefused`` for an unknown command or flag, a bad or missing value."""
    assert argv[0] == "podbackup", f"{argv}: not a podbackup command"
    command: Any = typer.main.get_command(cli_app)
    path, rest = ["podbackup"], list(argv[1:])
    while hasattr(command, "commands"):  # a group: descend to the subcommand named
        if not rest:
            raise CliRefused(f"{argv}: names a group, not a command")
        sub = command.get_command(typer.Context(command), rest[0])
        if sub is None:
            raise CliRefused(f"no command {rest[0]!r} in {' '.join(path)}")
        path.append(rest.pop(0))
        command = sub
    try:
        command.make_context(" ".join(path), rest)  # parses and type-checks every option
    except typer.TyperException as exc:  # click's UsageError and kin, as typer ships them
        raise CliRefused(f"{argv}: {exc}") from exc
    return command


def port_of(url: str) -> int:
    match = re.match(r"https?://[^/:]+:(\d+)(/.*)?$", url)
    assert match, f"{url}: give the port explicitly"
    return int(match.group(1))


def option(argv: list[str], flag: str) -> str:
    assert flag in argv, f"{argv}: no {flag}"
    return argv[argv.index(flag) + 1]


# --- the checker itself --------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["podbackup", "nosuch"],
        ["podbackup", "api", "--prot", "8000"],
        ["podbackup", "api", "--port", "http"],
        ["podbackup", "token", "create", "--admin", "--nosuch"],
        ["podbackup", "worker-health", "--max-age"],
    ],
)
def test_the_cli_check_refuses_what_the_cli_refuses(argv: list[str]) -> None:
    with pytest.raises(CliRefused):
        cli_command(argv)


# --- the image -----------------------------------------------------------------------------


def test_base_image_is_debian_13_with_the_python_of_the_pins() -> None:
    (base,) = instructions("FROM")
    image, _, tag = base.split()[0].partition(":")
    assert image in ("python", "debian"), base
    assert "trixie" in tag or tag.startswith("13"), f"{base}: not Debian 13 (trixie)"
    if image == "python":
        pinned = re.search(r"^# python (\d+\.\d+)$", (ROOT / "constraints.txt").read_text(), re.M)
        assert pinned, "constraints.txt names no python version (run `make constraints`)"
        assert tag.startswith(pinned.group(1) + "-"), (
            f"{base}: constraints.txt was resolved on python {pinned.group(1)}"
        )


def test_image_installs_the_clients_and_the_pinned_project() -> None:
    runs = " ".join(instructions("RUN"))
    for package in ("restic", "postgresql-client", "mariadb-client", "openssh-client"):
        assert re.search(rf"\b{package}\b", runs), f"the image lacks {package}"
    assert re.search(r"pip install -c constraints\.txt -e \.", runs), runs
    copied = " ".join(instructions("COPY"))
    # Editable, from the WORKDIR: `podbackup migrate` reads alembic.ini and migrations/
    # beside the app package (app/cli/server.py: run_migrations).
    for needed in ("constraints.txt", "pyproject.toml", "alembic.ini", "app", "workers"):
        assert re.search(rf"(^|\s){re.escape(needed)}(\s|$)", copied), f"COPY lacks {needed}"
    assert "COPY migrations ./migrations" in [f"COPY {c}" for c in instructions("COPY")]


def test_image_env_names_are_settings() -> None:
    env = dockerfile_env()
    names = {k for k in env if k.startswith("PODBACKUP_")}
    assert names, "the image sets no PODBACKUP_* (cache and data folders expected)"
    assert names <= SETTINGS_ENV, f"not settings: {sorted(names - SETTINGS_ENV)}"


def test_image_command_port_and_health_check_agree() -> None:
    (cmd,) = instructions("CMD")
    argv = json.loads(cmd)
    cli_command(argv)
    assert argv[1] == "api"
    (expose,) = instructions("EXPOSE")
    port = int(option(argv, "--port"))
    assert int(expose) == port
    (health,) = instructions("HEALTHCHECK")
    url = re.search(r"https?://\S+", health)
    assert url, health
    assert port_of(url.group(0)) == port
    assert url.group(0).endswith("/healthz")
    if "curl" in health:
        assert re.search(r"\bcurl\b", " ".join(instructions("RUN"))), "curl is not installed"


# --- the compose file ------------------------------------------------------------------------


def test_compose_env_names_are_settings_and_load() -> None:
    anchored = compose()["x-podbackup-env"]
    names = set(anchored)
    for name, service in services().items():
        if not ours(service):
            continue
        env = service.get("environment") or {}
        # The shared environment, plus a role's own settings (the worker's metrics address).
        shared = {k: v for k, v in env.items() if k in anchored}
        assert shared == anchored, f"{name}: use the shared environment (<<: *podbackup-env)"
        names |= set(env)
    assert names <= SETTINGS_ENV, f"not settings: {sorted(names - SETTINGS_ENV)}"
    values = {**dockerfile_env(), **{k: interpolate(str(v)) for k, v in anchored.items()}}
    mp = pytest.MonkeyPatch()
    try:
        for key, value in values.items():
            mp.setenv(key, value)
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
    finally:
        mp.undo()
    assert settings.cache_dir == Path("/var/lib/podbackup/cache")


def test_compose_urls_reach_its_own_services() -> None:
    env = compose()["x-podbackup-env"]
    pg = services()["postgres"]["environment"]
    db = re.match(
        r"postgresql\+asyncpg://(\w+):(\w+)@(\w+):(\d+)/(\w+)$", env["PODBACKUP_DATABASE_URL"]
    )
    assert db, env["PODBACKUP_DATABASE_URL"]
    user, password, host, port, name = db.groups()
    assert (user, password, name) == (
        pg["POSTGRES_USER"],
        pg["POSTGRES_PASSWORD"],
        pg["POSTGRES_DB"],
    )
    assert host in services()
    assert port == "5432"
    redis = re.match(r"redis://(\w+):(\d+)/\d+$", env["PODBACKUP_REDIS_URL"])
    assert redis, env["PODBACKUP_REDIS_URL"]
    assert redis.group(1) in services()
    assert redis.group(2) == "6379"


def test_compose_commands_are_real_cli_commands() -> None:
    for name, service in services().items():
        if ours(service):
            cli_command(service["command"])
            assert service.get("image") == "podbackup:local", f"{name}: one image for all"
        health = (service.get("healthcheck") or {}).get("test")
        if health and health[0] == "CMD" and health[1] == "podbackup":
            cli_command(health[1:])


def test_compose_api_ports_and_health_agree_with_the_image() -> None:
    api = services()["api"]
    port = int(option(api["command"], "--port"))
    (expose,) = instructions("EXPOSE")
    assert port == int(expose)
    published = [str(p).split(":") for p in api["ports"]]
    assert [int(p[-1]) for p in published] == [port]
    host_port = int(published[0][-2]) if len(published[0]) > 1 else port
    assert port_of(compose()["x-podbackup-env"]["PODBACKUP_PUBLIC_URL"]) == host_port
    test = api["healthcheck"]["test"]
    url = next(part for part in test if part.startswith("http"))
    assert port_of(url) == port
    assert url.endswith("/healthz")


def test_every_service_has_a_health_check_of_its_own_kind() -> None:
    for name, service in services().items():
        health = service.get("healthcheck")
        assert health, f"{name}: no healthcheck"
        if not ours(service):
            if health == {"disable": True}:
                # A one-shot helper: what waits for it waits for it to complete.
                waits = [
                    other["depends_on"][name]["condition"]
                    for other in services().values()
                    if name in (other.get("depends_on") or {})
                ]
                assert waits, f"{name}: a one-shot nothing waits for"
                assert set(waits) == {"service_completed_successfully"}, name
                continue
            assert health.get("test"), name
            continue
        role = service["command"][1]
        if role == "migrate":
            assert health == {"disable": True}, f"{name}: a one-shot; disable the image's check"
        elif role == "worker":
            # Not the image's (the API's): a worker serves no HTTP.
            assert health["test"][:3] == ["CMD", "podbackup", "worker-health"], name
        else:
            assert role == "api", f"{name}: {role} would inherit the API's health check"
            assert any("/healthz" in part for part in health["test"]), name


def test_compose_starts_in_order() -> None:
    svc = services()
    for name, service in svc.items():
        for dep, spec in (service.get("depends_on") or {}).items():
            assert dep in svc, f"{name} depends on unknown {dep}"
            if spec["condition"] == "service_healthy":
                assert svc[dep].get("healthcheck", {}).get("test"), f"{dep} has no check"
    assert svc["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    for name in ("api", "worker"):
        assert svc[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }, f"{name} must start after migrate succeeded"


def test_readme_docker_commands_are_real() -> None:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Run with Docker Compose") :]
    section = section[: section.index("\n## ", 4)]
    found = 0
    for line in section.splitlines():
        match = re.search(r"docker (?:compose run --rm \w+|run --rm \S+) (podbackup [^`)|]*)", line)
        if match:
            cli_command(shlex.split(match.group(1).split("#")[0]))
            found += 1
    assert found >= 2, "the section shows no key or token command"
    assert "token create --admin" in section


# --- pins -------------------------------------------------------------------------------------


def test_constraints_pin_every_dependency_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    for extra in project.get("optional-dependencies", {}).values():
        wanted += [Requirement(r) for r in extra]
    pins: dict[str, Version] = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, version = line.strip().partition("==")
            assert sep, f"constraints.txt: {line!r} is not name==version"
            pins[canonicalize_name(name)] = Version(version)
    assert "podbackup" not in pins, "constraints.txt pins the project itself"
    for req in wanted:
        pin = pins.get(canonicalize_name(req.name))
        assert pin is not None, f"{req.name} is not pinned: run `make constraints`"
        assert req.specifier.contains(pin, prereleases=True), (
            f"{req.name}=={pin} is outside {req.specifier}: run `make constraints`"
        )


def test_make_venv_and_constraints_targets_use_the_pins() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^\$\(STAMP\): .*constraints\.txt", makefile, re.M)
    assert re.search(r"pip install .*-c constraints\.txt", makefile)
    assert re.search(r"^constraints:", makefile, re.M)
