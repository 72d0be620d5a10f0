"""Where an installed pack came from: ``.nat-origin.json`` inside the pack folder.

Written by ``nat packs pull`` (packs/pull.py) and read by ``nat packs`` to show a SOURCE
column, without importing anything network-related. Not part of the pack: the loader and
``nat-export publish`` ignore it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

ORIGIN_FILE = ".nat-origin.json"
MAX_ORIGIN_BYTES = 65536


def read_origin(folder: Path) -> dict | None:
    """The origin record of an installed pack, if it has a readable one."""
    try:
        path = folder / ORIGIN_FILE
        if not path.is_file() or path.stat().st_size > MAX_ORIGIN_BYTES:
            return None
        data = json.loads(path.read_bytes())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def write_origin(folder: Path, origin: dict) -> None:
    """``.nat-origin.json``, replaced whole (never seen half-written)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{ORIGIN_FILE}.", dir=folder)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(origin, sort_keys=True, indent=2) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, folder / ORIGIN_FILE)
