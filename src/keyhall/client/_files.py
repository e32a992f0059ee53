"""Atomic, private file writes: a temporary file in the same directory, then ``os.replace``."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def write_text_atomic(path: str | Path, text: str, *, mode: int = 0o600) -> None:
    """Write *text* so readers see the old file or the new one, never half; *mode* applies to the new file.

    Directories created on the way are 0700, as the AWS CLI makes ``~/.aws/sso/cache``.
    """
    target = Path(path)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temp_name).chmod(mode)
        Path(temp_name).replace(target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def write_json_atomic(path: str | Path, data: object, *, indent: int | None = None) -> None:
    """JSON the way the AWS CLI writes its caches (``json.dumps`` defaults), mode 0600."""
    write_text_atomic(path, json.dumps(data, indent=indent), mode=0o600)
