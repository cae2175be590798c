"""The restic binary: version detection, a runner that classifies failures, and commands."""

from app.integrations.restic.commands import Restic
from app.integrations.restic.errors import ResticError
from app.integrations.restic.repository import Repository

__all__ = ["Repository", "Restic", "ResticError"]
