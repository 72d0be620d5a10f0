"""Putting a verified pack folder in place, and taking one out: the one install path for
``nat packs pull`` and ``nat-export`` (export/pack_writer.py).

A pack is assembled in a fresh sibling folder (:func:`staging`) and renamed into place by
:func:`replace_folder`: an existing folder there is moved aside first and put back if the
rename fails, so a failed install never damages the pack before it. :func:`locked` holds a
lock file in the user pack folder so that two pulls (or a pull and a remove) into one
folder run one after the other.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputError, PackError
from . import BUILTIN, BUILTIN_DIR, user_pack_dir
from .sources import NAME, PullError

LOCK_FILE = ".lock"
PARTIAL = ".partial"
LOCK_POLL_S = 0.1


@contextlib.contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A fresh sibling folder of ``out`` to assemble a pack in; removed if anything fails."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a pack is meant to be read by others
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_folder(staged: Path, dest: Path) -> str:
    """Rename ``staged`` to ``dest``; an existing ``dest`` is moved aside first and put back
    if the rename fails. Returns "installed" or "replaced"."""
    if not (dest.exists() or dest.is_symlink()):
        os.replace(staged, dest)
        return "installed"
    aside = Path(tempfile.mkdtemp(prefix=f".old-{dest.name}-", dir=dest.parent)) / dest.name
    try:
        os.replace(dest, aside)
        try:
            os.replace(staged, dest)
        except BaseException:
            os.replace(aside, dest)
            raise
    finally:
        shutil.rmtree(aside.parent, ignore_errors=True)  # the old pack, or the empty folder after a put-back
    return "replaced"


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # per open file: threads and processes alike
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def locked(root: Path, wait_s: float) -> Iterator[None]:
    """Hold ``root/.lock`` (waiting up to ``wait_s`` for another pull or remove to finish)."""
    path = root / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}; nothing changed") from None
    try:
        end = time.monotonic() + wait_s
        while not _try_lock(fd):
            if time.monotonic() >= end:
                raise PullError(f"another pull or remove is working in {root} (it holds {LOCK_FILE}); try again when it has finished")
            time.sleep(LOCK_POLL_S)
        yield  # the lock goes with the descriptor
    finally:
        os.close(fd)


def remove(name: str, root: Path | None = None, wait_s: float = 60.0) -> Path:
    """Delete the pack ``name`` from the user pack folder (never a built-in or NAT_PACK_PATH pack)."""
    root = Path(root) if root is not None else user_pack_dir()
    if not isinstance(name, str) or not NAME.match(name):
        raise PackError(f"remove {name!r}: not a pack name (a pack folder's name, not a path)")
    dest = root / name
    if not (dest / "manifest.json").is_file():
        if name == BUILTIN or (BUILTIN_DIR / name / "manifest.json").is_file():
            raise PackError(f"remove {name}: the pack inside NAT cannot be removed")
        raise PackError(f"remove {name}: no pack of that name in the user pack folder {root}")
    with locked(root, wait_s):
        try:
            aside = Path(tempfile.mkdtemp(prefix=f".remove-{name}-", dir=root))
        except OSError as exc:
            raise OutputError(f"cannot remove {dest}: {exc.strerror or exc}") from None
        try:
            os.replace(dest, aside / name)  # gone from lookups at once, even if deleting takes a while
        except OSError as exc:
            raise OutputError(f"cannot remove {dest}: {exc.strerror or exc}") from None
        finally:
            shutil.rmtree(aside, ignore_errors=True)
    return dest


def clean_partial(root: Path | None = None) -> None:
    """Drop every unfinished download kept for resuming."""
    shutil.rmtree((Path(root) if root is not None else user_pack_dir()) / PARTIAL, ignore_errors=True)
