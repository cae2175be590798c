"""Pod files over SFTP (asyncssh): incremental mirror into the worker's cache, and
upload back into the pod for restores. The only code that opens SFTP connections."""

from app.integrations.sftp.endpoint import (
    SftpEndpoint,
    fingerprint,
    normalize_host_key,
)
from app.integrations.sftp.errors import SftpError
from app.integrations.sftp.mirror import mirror
from app.integrations.sftp.models import MirrorProgress, MirrorStats, UploadStats
from app.integrations.sftp.transfer import WriteFn
from app.integrations.sftp.upload import upload

__all__ = [
    "MirrorProgress",
    "MirrorStats",
    "SftpEndpoint",
    "SftpError",
    "UploadStats",
    "WriteFn",
    "fingerprint",
    "mirror",
    "normalize_host_key",
    "upload",
]
