"""The README's configuration table is the one the Settings class generates."""

from __future__ import annotations

from pathlib import Path

from app.kit.configdoc import block


def test_readme_config_table_is_current() -> None:
    readme = Path("README.md").read_text()
    assert block() in readme, "README.md's config table is stale: run `make docs`"
