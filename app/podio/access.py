"""How to reach a pod: its SFTP and database endpoints from its settings and secrets, and
the SFTP host key trusted on first use."""

from __future__ import annotations

from app.integrations.dumps import DbEndpoint
from app.integrations.sftp import SftpEndpoint
from app.models import Pod
from app.models.shapes import SftpFiles
from app.pods.service import PodSecrets


def sftp_endpoint(pod: Pod, secrets: PodSecrets) -> SftpEndpoint:
    files = pod.files
    if not isinstance(files, SftpFiles):
        raise ValueError("the pod's files are not reached by SFTP")
    return SftpEndpoint(
        host=files.host,
        port=files.port or 22,
        username=files.username,
        password=secrets.sftp_password,
        private_key=secrets.sftp_private_key,
        path=files.path or "/",
        known_host_key=pod.pinned_host_key or files.host_key,
    )


def db_endpoint(pod: Pod, secrets: PodSecrets) -> DbEndpoint:
    db = pod.database
    if db is None:
        raise ValueError("the pod has no database")
    return DbEndpoint(
        kind=db.kind,
        host=db.host,
        port=db.port,
        name=db.name,
        username=db.username,
        password=secrets.db_password,
    )
