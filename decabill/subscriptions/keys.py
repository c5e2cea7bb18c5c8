"""SSH keys of a provisioned server (behavior.md part A §7.5), made with `cryptography`.

Per item two fresh ed25519 key pairs:
* the *client* key: its public half goes into root's `authorized_keys` through cloud-init, its private
  half (OpenSSH format) is stored encrypted on the item and used by the update job;
* the *host* key: written by cloud-init as the server's own ed25519 host key, its public half stored on
  the item, so the update job verifies it is talking to that server (no trust-on-first-use).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat


@dataclass(frozen=True)
class KeyPair:
    private_openssh: str  # -----BEGIN OPENSSH PRIVATE KEY----- ...
    public_openssh: str  # ssh-ed25519 AAAA... (no comment)


def generate_ed25519(comment: str | None = None) -> KeyPair:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption()).decode()
    public = key.public_key().public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    return KeyPair(private, f"{public} {comment}" if comment else public)
