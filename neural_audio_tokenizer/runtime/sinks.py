"""Where NDJSON goes: stdout, one file (``-o``), or one file per input (``--output-dir``).

Files are written under a temporary name in the target folder and renamed into place only
when complete, so an interrupted or crashed run never leaves a half file under a final name.
Stdout gets whole lines, flushed one by one (each under PIPE_BUF, so a reader never sees a
torn line even when NAT is interrupted).
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import OutputError
from .ndjson import dumps


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM (main thread, POSIX) until the block is done; they arrive after."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _bytes(obj: dict | str) -> bytes:
    """A line object as canonical NDJSON, or a line a text format already rendered (with its newline)."""
    return obj.encode("utf-8") if isinstance(obj, str) else dumps(obj).encode("ascii")


def _read_umask() -> int:
    mask = os.umask(0)  # the only portable way to read it; done once, at import, before threads
    os.umask(mask)
    return mask


_UMASK = _read_umask()


class AtomicFile:
    """A file that appears under ``path`` only when ``commit`` is called; ``discard`` drops it.

    Written under a temporary name in the same folder, then renamed: a reader never sees
    a half file, and an interrupted writer leaves none behind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        except OSError as exc:
            raise OutputError(f"cannot write in {path.parent}: {exc.strerror or exc}") from None
        self.tmp = Path(tmp)
        # mkstemp creates 0600; the finished file should get what any other new file gets.
        os.chmod(fd, 0o666 & ~_UMASK)
        self.handle: BinaryIO = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        try:
            self.handle.write(data)
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot write {self.path.name}: {exc.strerror or exc}") from None

    def commit(self) -> None:
        try:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot write {self.path.name}: {exc.strerror or exc}") from None

    def discard(self) -> None:
        with _signals_deferred():  # a second Ctrl-C must not leave the .part file behind
            try:
                self.handle.close()
            except OSError:
                pass
            self.tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` whole: the file appears complete or not at all."""
    out = AtomicFile(Path(path))
    out.write(data)
    out.commit()


class Sink:
    """Receives each input's lines between ``begin(name)`` and ``end()``; ``line`` takes an
    NDJSON object (a dict) or a text format's line (a str with its newline); ``close`` after
    the last input, ``abort`` instead when interrupted."""

    def begin(self, name: str) -> None: ...

    def line(self, obj: dict | str) -> None: ...

    def end(self) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None:
        """Interrupted: drop whatever is not complete."""


class StreamSink(Sink):
    """Every input's stream, one after another, on one binary stream (stdout)."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def line(self, obj: dict) -> None:
        try:
            self.stream.write(_bytes(obj))
            self.stream.flush()
        except BrokenPipeError:
            raise  # the reader left (`| head`): the CLI exits 141, quietly
        except OSError as exc:  # disk full, I/O error: stop, as no later line can be trusted
            raise OutputError(f"cannot write to stdout: {exc.strerror or exc}") from None


class _DirectFile:
    """Writes straight into an existing non-regular file (/dev/null, /dev/stdout, a FIFO).

    Renaming a temporary file over such a path would replace the device node itself (as
    root: /dev/null becomes a plain file), so these are opened and written in place.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.handle: BinaryIO = open(path, "wb")  # noqa: SIM115
        except OSError as exc:
            raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None

    def write(self, data: bytes) -> None:
        try:
            self.handle.write(data)
        except BrokenPipeError:
            raise
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def commit(self) -> None:
        try:
            self.handle.close()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def discard(self) -> None:
        try:
            self.handle.close()
        except OSError:
            pass


def _is_special(path: Path) -> bool:
    """True for an existing path that is neither a regular file nor a folder, and for
    anything under /dev (so that a /dev/null already turned into a plain file by some other
    program is not replaced again, and ``-o /dev/stdout`` works whatever it points to)."""
    if os.path.realpath(path).startswith("/dev/") or os.path.abspath(path).startswith("/dev/"):
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


class FileSink(Sink):
    """Every input's stream into one file, renamed into place at the end (devices: in place)."""

    def __init__(self, path: str) -> None:
        target = Path(path)
        if target.is_dir():
            raise OutputError(f"-o {path}: is a directory (use --output-dir)")
        self.file = _DirectFile(target) if _is_special(target) else AtomicFile(target)

    def line(self, obj: dict) -> None:
        self.file.write(_bytes(obj))

    def close(self) -> None:
        self.file.commit()

    def abort(self) -> None:
        self.file.discard()


class DirectorySink(Sink):
    """One ``<name>.ndjson`` per input; same-named inputs get ``-2``, ``-3``... in input order."""

    def __init__(self, folder: str, suffix: str = ".ndjson") -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"--output-dir {folder}: {exc.strerror or exc}") from None
        if not os.access(self.folder, os.W_OK):
            raise OutputError(f"--output-dir {folder}: not writable")
        self.suffix = suffix
        self.used: set[str] = set()
        self.current: AtomicFile | None = None
        self.written: list[Path] = []

    def output_name(self, name: str) -> str:
        """The file name for input ``name``: its stem (``#`` -> ``-``) plus the suffix, made unique."""
        stem = Path(name.replace("#", "-")).name
        stem = stem.rsplit(".", 1)[0] if "." in stem.lstrip(".") else stem
        stem = stem or "input"
        candidate, k = stem, 1
        while candidate in self.used:
            k += 1
            candidate = f"{stem}-{k}"
        self.used.add(candidate)
        return candidate + self.suffix

    def begin(self, name: str) -> None:
        self.current = AtomicFile(self.folder / self.output_name(name))

    def line(self, obj: dict) -> None:
        assert self.current is not None
        self.current.write(_bytes(obj))

    def end(self) -> None:
        if self.current is not None:
            self.current.commit()
            self.written.append(self.current.path)
            self.current = None

    def abort(self) -> None:
        if self.current is not None:
            self.current.discard()
            self.current = None
