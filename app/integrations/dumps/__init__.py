"""Database dumps of pods: pg_dump / mariadb-dump to a file, load with psql / mariadb,
manifests (tables and row counts contained in a dump) and trial-restore drills.

This package is the only code that runs database clients against a pod's server.
"""

from app.integrations.dumps.clients import choose_pg_client, installed_pg_clients
from app.integrations.dumps.drills import trial_restore
from app.integrations.dumps.errors import CODES, DumpError
from app.integrations.dumps.manifest import read_manifest
from app.integrations.dumps.model import (
    DbEndpoint,
    DrillResult,
    DumpManifest,
    DumpResult,
    LoadResult,
)
from app.integrations.dumps.ops import dump, load, table_counts

__all__ = [
    "CODES",
    "DbEndpoint",
    "DrillResult",
    "DumpError",
    "DumpManifest",
    "DumpResult",
    "LoadResult",
    "choose_pg_client",
    "dump",
    "installed_pg_clients",
    "load",
    "read_manifest",
    "table_counts",
    "trial_restore",
]
