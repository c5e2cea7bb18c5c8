"""Secrets at rest (AES-256-GCM) and decision D22: no fixed fallback key."""

from __future__ import annotations

import base64
import stat

import pytest
from cryptography.exceptions import InvalidTag

from decabill import secrets


@pytest.fixture
def fresh_key(env):
    secrets.reset_key_cache()
    yield
    secrets.reset_key_cache()


def test_values_round_trip_and_differ_per_encryption(fresh_key):
    a, b = secrets.encrypt("root-password"), secrets.encrypt("root-password")
    assert a != b and "root-password" not in a
    assert secrets.decrypt(a) == secrets.decrypt(b) == "root-password"
    assert secrets.decrypt_json(secrets.encrypt_json({"token": "x", "n": 1})) == {"token": "x", "n": 1}
    assert secrets.decrypt("legacy-plaintext") == "legacy-plaintext"
    assert secrets.encrypt(None) is None and secrets.encrypt("") == ""


def test_tampered_ciphertext_is_rejected(fresh_key):
    iv, tag, data = secrets.encrypt("hello").split(":")
    flipped = base64.b64encode(bytes([base64.b64decode(data)[0] ^ 1]) + base64.b64decode(data)[1:]).decode()
    with pytest.raises(InvalidTag):
        secrets.decrypt(f"{iv}:{tag}:{flipped}")


def test_without_encryption_key_a_random_key_is_generated_once_with_mode_0600(env, tmp_path, fresh_key):
    env.update(ENCRYPTION_KEY=None, DECABILL_DATA_DIR=str(tmp_path))
    sealed = secrets.encrypt("secret")
    key_file = tmp_path / secrets.KEY_FILE_NAME
    assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(base64.b64decode(key_file.read_text())) == 32
    assert base64.b64decode(key_file.read_text()) != b"\x11" * 32
    secrets.reset_key_cache()  # a restart reads the same key back
    assert secrets.decrypt(sealed) == "secret"
