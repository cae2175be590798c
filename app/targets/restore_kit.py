"""The restore kit: what an owner needs to restore with plain restic, without this service.

The only response that carries the repository password. Never the S3 secret: it is not
stored readable, so the kit holds a placeholder for it.
"""

from __future__ import annotations

import shlex

from app.integrations.dumps.mysql import STRIP_DEFINER
from app.kit.crypto import Keyring
from app.models.settings import TargetRow
from app.models.shapes import S3Place
from app.targets.resolve import DEFAULT_SIGNING_REGION, decrypt_password, repository_url
from app.targets.schemas import RestoreCommand, RestoreKit

SECRET_PLACEHOLDER = (
    "<your secret key — not stored readable by podbackup; create a new key if lost>"
)


def _export(name: str, value: str, *, placeholder: bool = False) -> str:
    # A placeholder is shown as is (quoted, so a paste does not run anything).
    return f"export {name}={shlex.quote(value)}" if not placeholder else f"export {name}='{value}'"


def build_kit(row: TargetRow, keyring: Keyring) -> RestoreKit:
    repository = repository_url(row.target_kind, row.target)
    password = decrypt_password(keyring, row)
    env: dict[str, str] = {"RESTIC_REPOSITORY": repository, "RESTIC_PASSWORD": password}
    lines = [_export("RESTIC_REPOSITORY", repository), _export("RESTIC_PASSWORD", password)]
    if row.target_kind == "s3" and isinstance(row.target, S3Place):
        region = row.target.signing_region or DEFAULT_SIGNING_REGION
        env["AWS_ACCESS_KEY_ID"] = row.target.access_key_id
        env["AWS_SECRET_ACCESS_KEY"] = SECRET_PLACEHOLDER
        env["AWS_DEFAULT_REGION"] = region
        lines += [
            _export("AWS_ACCESS_KEY_ID", env["AWS_ACCESS_KEY_ID"]),
            _export("AWS_SECRET_ACCESS_KEY", SECRET_PLACEHOLDER, placeholder=True),
            _export("AWS_DEFAULT_REGION", region),
        ]
    commands = [
        RestoreCommand(title="List the snapshots (newest last)", command="restic snapshots"),
        RestoreCommand(
            title="List the files of one snapshot (its ID from the list above)",
            command="restic ls <snapshot-id>",
        ),
        RestoreCommand(
            title="Restore a whole snapshot into a new folder",
            command="restic restore <snapshot-id> --target ./restore",
        ),
        RestoreCommand(
            title="Restore only the files, or only the database dump",
            command="restic restore <snapshot-id> --target ./restore --include /files",
        ),
        RestoreCommand(
            title="Print the database dump of a snapshot",
            command="restic dump <snapshot-id> /database/<name>.sql > <name>.sql",
        ),
        RestoreCommand(
            title="Load the dump into PostgreSQL (an empty database; all or nothing)",
            command="psql --single-transaction -v ON_ERROR_STOP=1 -d <name> -f <name>.sql",
        ),
        RestoreCommand(
            title=(
                "Load the dump into MySQL/MariaDB; views, triggers, routines and events become "
                "the loading login's (a login without SUPER cannot take on another definer)"
            ),
            command=f"sed -E {shlex.quote(STRIP_DEFINER)} <name>.sql | mariadb <name>",
        ),
    ]
    notes = [
        "Install restic (https://restic.net), paste the export lines into a shell, replace "
        "the secret key placeholder with your key's secret, then run the commands.",
        "Each snapshot holds 'files/' (the pod's files, as seen over SFTP) and "
        "'database/<name>.sql' (the database dump) at its top.",
        "Keep the repository password in a safe place: without it the backups cannot be "
        "decrypted, and podbackup destroys its copy when the pod or its backup settings "
        "are deleted.",
        "Restoring downloads data from your provider, which may charge for it.",
    ]
    if row.target_kind != "s3":
        notes.append("This is a local repository on the service's workers (operators only).")
    return RestoreKit(
        pod_id=row.pod_id,
        repository=repository,
        password=password,
        env=env,
        env_block="\n".join(lines) + "\n",
        commands=commands,
        notes=notes,
    )
