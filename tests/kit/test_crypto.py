from __future__ import annotations

import pytest
from pydantic import SecretStr

from app.kit.crypto import CryptoConfigError, DecryptError, Keyring, generate_key


def ring(*entries: str) -> Keyring:
    return Keyring.from_settings([SecretStr(e) for e in entries])


def test_round_trip_and_context_binding() -> None:
    keys = ring(generate_key("a"))
    stored = keys.encrypt("hunter2", "pod:1:files")
    assert "hunter2" not in stored
    assert stored.startswith("v1:a:")
    assert keys.decrypt(stored, "pod:1:files") == "hunter2"
    with pytest.raises(DecryptError):
        keys.decrypt(stored, "pod:2:files")


def test_rotation_keeps_old_values_readable() -> None:
    old = generate_key("old")
    stored = ring(old).encrypt("secret", "ctx")
    both = ring(generate_key("new"), old)
    assert both.decrypt(stored, "ctx") == "secret"
    assert both.needs_rotation(stored)
    rotated = both.rotate(stored, "ctx")
    assert rotated.startswith("v1:new:")
    assert both.decrypt(rotated, "ctx") == "secret"


def test_missing_key_names_the_key_id() -> None:
    stored = ring(generate_key("gone")).encrypt("secret", "ctx")
    with pytest.raises(DecryptError, match="'gone'"):
        ring(generate_key("other")).decrypt(stored, "ctx")


@pytest.mark.parametrize("entry", ["nokey", "a:!!!", "a:c2hvcnQ"])
def test_bad_key_configuration(entry: str) -> None:
    with pytest.raises(CryptoConfigError):
        ring(entry)


def test_no_keys_explains_the_fix() -> None:
    with pytest.raises(CryptoConfigError, match="podbackup keys generate"):
        Keyring.from_settings([])
