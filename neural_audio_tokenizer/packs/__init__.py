"""Where packs live, and finding one by name or folder.

Search order for a name: the packs shipped inside NAT (``builtin``), each folder in
``NAT_PACK_PATH`` (os.pathsep-separated), then the user's pack folder
(``platformdirs.user_data_dir("nat")/packs``). A path to a folder is used as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import PackError

BUILTIN = "builtin"
BUILTIN_DIR = Path(__file__).resolve().parent


def user_pack_dir() -> Path:
    import platformdirs  # small, pure Python; only needed when looking up packs by name

    return Path(platformdirs.user_data_dir("nat", appauthor=False)) / "packs"


def search_dirs() -> list[Path]:
    """Folders that hold packs, in lookup order."""
    dirs = [BUILTIN_DIR]
    dirs += [Path(p) for p in os.environ.get("NAT_PACK_PATH", "").split(os.pathsep) if p]
    dirs.append(user_pack_dir())
    return dirs


def resolve_pack(pack: str | os.PathLike | None) -> Path:
    """The folder of the pack named ``pack`` (default: the built-in pack)."""
    if pack is None:
        pack = BUILTIN
    text = os.fspath(pack)
    candidate = Path(text)
    if os.sep in text or "/" in text or candidate.is_dir() and (candidate / "manifest.json").exists():
        if not candidate.is_dir():
            raise PackError(f"pack {text!r}: no such folder")
        return candidate
    for folder in search_dirs():
        if (folder / text / "manifest.json").is_file():
            return folder / text
    raise PackError(f"pack {text!r}: not found (looked in {', '.join(str(d) for d in search_dirs())})")
