"""Secrets at rest: AES-256-GCM with ENCRYPTION_KEY (base64 of 32 bytes).

Stored form: `base64(iv):base64(tag):base64(ciphertext)` with a random 12-byte IV per value (the
reference's format, so its data stays readable). Values that are not in that form are returned as they
are (legacy plaintext).

Decision D22: there is no built-in fallback key. Outside production, when ENCRYPTION_KEY is unset, a
random key is generated once into the data folder (mode 0600) and a warning names the file; in
production a missing key stops start-up (decabill.config).
"""

from __future__ import annotations

import base64
import functools
import json
import os
from pathlib import Path
from typing import Any

import structlog
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from decabill.config import get_settings

log = structlog.get_logger(__name__)

KEY_FILE_NAME = "encryption.key"
_TAG_BYTES = 16


def _generated_key_file(data_dir: Path) -> bytes:
    path = data_dir / KEY_FILE_NAME
    if path.exists():
        return base64.b64decode(path.read_text().strip())
    data_dir.mkdir(parents=True, exist_ok=True)
    key = AESGCM.generate_key(bit_length=256)
    # O_EXCL: if two processes start at once, exactly one writes the key and the other reads it.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return base64.b64decode(path.read_text().strip())
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.b64encode(key).decode())
    log.warning(
        "secrets.generated_key",
        path=str(path.resolve()),
        hint="ENCRYPTION_KEY is not set; a random key was generated. Back it up, or set ENCRYPTION_KEY.",
    )
    return key


@functools.cache
def encryption_key() -> bytes:
    settings = get_settings()
    if settings.encryption_key:
        return base64.b64decode(settings.encryption_key)
    return _generated_key_file(settings.data_dir)


def encrypt(plaintext: str | None) -> str | None:
    if plaintext is None or plaintext == "":
        return plaintext
    iv = os.urandom(12)
    sealed = AESGCM(encryption_key()).encrypt(iv, plaintext.encode(), None)
    ciphertext, tag = sealed[:-_TAG_BYTES], sealed[-_TAG_BYTES:]
    return ":".join(base64.b64encode(part).decode() for part in (iv, tag, ciphertext))


def decrypt(stored: str | None) -> str | None:
    if stored is None or stored == "":
        return stored
    parts = stored.split(":")
    if len(parts) != 3:
        return stored  # legacy plaintext
    iv, tag, ciphertext = (base64.b64decode(part) for part in parts)
    return AESGCM(encryption_key()).decrypt(iv, ciphertext + tag, None).decode()


def encrypt_json(value: Any) -> str | None:
    return None if value is None else encrypt(json.dumps(value, separators=(",", ":"), sort_keys=True))


def decrypt_json(stored: str | None) -> Any:
    plaintext = decrypt(stored)
    return None if plaintext is None else json.loads(plaintext)


def reset_key_cache() -> None:
    encryption_key.cache_clear()
