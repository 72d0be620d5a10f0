"""Exceptions raised inside C callbacks come back out when the C call returns.

libsndfile reads files through Python callbacks (soundfile's virtual I/O, via cffi). An
exception raised in a callback cannot cross the C frames: Ctrl-C's KeyboardInterrupt, the
CLI's SIGTERM exception, an OSError from a failing disk. cffi reports it to
``sys.unraisablehook`` (several lines on stderr), returns 0 to libsndfile, and libsndfile
takes the short read for the end of the file: the input was silently cut short, the output
looked complete, and the interrupt was lost (found by tests/test_faults.py, where SIGTERM
mid-file ended in exit 0).

``reraised()`` collects such reports for its own thread and raises the first one when the
block ends. Reports from other threads, or outside the block, go to the previous hook.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator

_local = threading.local()
_lock = threading.Lock()
_previous = sys.unraisablehook


def _hook(unraisable) -> None:
    stash = getattr(_local, "stash", None)
    if stash is None:
        _previous(unraisable)
    elif not stash and unraisable.exc_value is not None:
        stash.append(unraisable.exc_value)


def _install() -> None:
    """(Re)install the hook; others (pytest, a host application) may have replaced it."""
    global _previous
    if sys.unraisablehook is _hook:
        return
    with _lock:
        if sys.unraisablehook is not _hook:
            _previous = sys.unraisablehook
            sys.unraisablehook = _hook


@contextlib.contextmanager
def reraised() -> Iterator[None]:
    """Run a C call; re-raise the first exception its Python callbacks swallowed."""
    _install()
    outer = getattr(_local, "stash", None)
    _local.stash = []
    try:
        yield
    finally:
        stash, _local.stash = _local.stash, outer
        if stash:
            raise stash[0]  # the root cause wins over whatever the C call made of it
