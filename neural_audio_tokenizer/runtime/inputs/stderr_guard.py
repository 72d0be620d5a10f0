"""Keep C libraries from writing to the terminal while a decoder runs.

libsndfile decodes MP3 with libmpg123, which prints its own notes straight to file
descriptor 2 ("Note: Illegal Audio-MPEG-Header ...", "[parse.c:...] warning: ..."), several
lines per damaged file. NAT promises one line per problem on stderr, so the CLI turns this
guard on and the decoder calls in ``audio.py`` run inside :func:`quiet`: fd 2 points at
/dev/null for the duration of the call and is restored after. Python's own messages are
unaffected outside those calls (a decoder call runs no Python code).

Off by default: redirecting fd 2 is process-wide, which a library must not do behind its
host application's back. ``NAT_DEBUG=1`` keeps it off in the CLI too.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

_enabled = False
_lock = threading.Lock()
_depth = 0
_saved: int | None = None


def enable(on: bool = True) -> None:
    """Turn the guard on (the CLI does) or off."""
    global _enabled
    _enabled = on and not os.environ.get("NAT_DEBUG")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence fd 2 around a C call when the guard is on; nested and threaded use is safe."""
    if not _enabled:
        yield
        return
    _push()
    try:
        yield
    finally:
        _pop()


def _push() -> None:
    global _depth, _saved
    with _lock:
        _depth += 1
        if _depth > 1:
            return
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                _saved = os.dup(2)
                os.dup2(devnull, 2)
            finally:
                os.close(devnull)
        except OSError:  # no fd 2, no /dev/null: nothing to protect
            _saved = None


def _pop() -> None:
    global _depth, _saved
    with _lock:
        _depth -= 1
        if _depth or _saved is None:
            return
        try:
            os.dup2(_saved, 2)
        finally:
            os.close(_saved)
            _saved = None
