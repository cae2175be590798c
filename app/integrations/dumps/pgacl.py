"""Privileges in a PostgreSQL dump, loaded as far as the pod's login may.

Dumps keep GRANT/REVOKE (pg_dump without --no-privileges), so a restore gives the pod's
other roles their access back. Owners are not restored (--no-owner: only a superuser may
give objects away): every restored object belongs to the login that loads the dump.
What the login cannot do is left out and reported, rather than failing the whole load:
privileges of roles that do not exist on the server (a clone onto another server, a
drill), default privileges of roles the login is not a member of, and pg_dump's
``SET SESSION AUTHORIZATION`` around grants another role made (superusers only: those
grants are made by the login instead).
"""

from __future__ import annotations

import re
from collections import Counter

_ROLE = rb'(?:"(?:[^"]|"")+"|[A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*)'
_GRANT = re.compile(
    rb"^(?:GRANT|REVOKE)\s.*\s(?:TO|FROM)\s+(?P<roles>"
    + _ROLE
    + rb"(?:\s*,\s*"
    + _ROLE
    + rb")*)(?:\s+WITH GRANT OPTION)?(?:\s+(?:CASCADE|RESTRICT))?\s*;\s*$",
    re.DOTALL,
)
_DEFAULTS = re.compile(rb"^ALTER DEFAULT PRIVILEGES FOR ROLE (?P<role>" + _ROLE + rb")\s")
_SESSION = re.compile(rb"^(?:SET|RESET) SESSION AUTHORIZATION\b.*;\s*$", re.DOTALL)
_ROLE_TOKEN = re.compile(_ROLE)


def role_name(token: bytes) -> str:
    text = token.decode("utf-8", "replace")
    if text.startswith('"'):
        return text[1:-1].replace('""', '"')
    return text.lower()


class PrivilegeFilter:
    """Drops the privilege statements the loading login cannot run; ``notes()`` says what
    was left out. ``roles``: every role on the server -> whether the login is a member."""

    def __init__(self, roles: dict[str, bool], login: str) -> None:
        self.roles = roles
        self.login = login
        self.missing: Counter[str] = Counter()
        self.foreign_defaults: Counter[str] = Counter()
        self.sessions = 0

    def edit(self, at_start: bool, piece: bytes) -> bytes:
        if not at_start or piece[:1] not in (b"G", b"R", b"A", b"S"):
            return piece
        if _SESSION.match(piece):
            self.sessions += 1
            return b""
        match = _DEFAULTS.match(piece)
        if match:
            owner = role_name(match.group("role"))
            if not self.roles.get(owner, False) and owner != self.login:
                self.foreign_defaults[owner] += 1
                return b""
        match = _GRANT.match(piece)
        if match:
            names = [role_name(t) for t in _ROLE_TOKEN.findall(match.group("roles"))]
            gone = [n for n in names if n.lower() != "public" and n not in self.roles]
            if gone:
                self.missing.update(gone)
                return b""
        return piece

    def notes(self) -> list[str]:
        notes = [
            f"every restored object belongs to {self.login} (owners are not restored: only "
            "a superuser may give objects to other roles)"
        ]
        for role, n in sorted(self.missing.items()):
            notes.append(
                f"privileges for role {role} were not restored ({n} statements): the role "
                "does not exist on this server"
            )
        for role, n in sorted(self.foreign_defaults.items()):
            notes.append(
                f"default privileges of role {role} were not restored ({n} statements): "
                f"{self.login} is not a member of it"
            )
        if self.sessions:
            notes.append(
                "grants another role had made were made by "
                f"{self.login} (SET SESSION AUTHORIZATION needs a superuser)"
            )
        return notes
