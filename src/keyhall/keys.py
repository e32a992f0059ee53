"""The master key: every secret stored in the database is encrypted under it (ARCHITECTURE.md, scale-out).

One node: a key file in the data directory, written by `keyhall init` with mode 0600. Several nodes: the same
key given to each as KEYHALL_MASTER_KEY.
"""

from __future__ import annotations

import os
from pathlib import Path

from keyhall.crypto import generate_master_key, master_key_from_text, master_key_to_text
from keyhall.settings import Settings


class MasterKeyMissing(RuntimeError):
    pass


def load_master_key(settings: Settings) -> bytes:
    if settings.master_key:
        return master_key_from_text(settings.master_key)
    path = settings.master_key_file
    if not path.exists():
        raise MasterKeyMissing(
            f"No master key: set KEYHALL_MASTER_KEY or run `keyhall init` to create {path}"
        )
    return master_key_from_text(path.read_text().strip())


def ensure_master_key_file(path: Path) -> bool:
    """Create the key file if it is missing; True when created. Written 0600 from the start (no window)."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(master_key_to_text(generate_master_key()) + "\n")
    return True


def derive_key(master_key: bytes, purpose: str) -> bytes:
    """A 32-byte key for one purpose (HKDF-SHA256), so no two uses ever share key material."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"keyhall/{purpose}".encode()).derive(
        master_key
    )
