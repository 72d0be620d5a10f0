"""Progress bars and log messages, on stderr only: stdout carries the token stream alone.

A bar appears only where a person watches: stderr is a terminal, ``--quiet`` is off, tqdm
(the optional ``[progress]`` extra) is installed, and the work is long enough to wait for:
several inputs (one bar over the inputs) or an input of at least ``LONG_INPUT_S`` seconds
of audio (a bar over its seconds). Piped or redirected stderr, as in CI logs, gets no
control characters.

Log messages go through the ``nat`` logger as ``nat: message`` lines; ``--log-level``
picks how many (default ``warning``), ``-v`` means ``info``, ``-q`` means errors only.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterable, Iterator

LONG_INPUT_S = 30.0
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "warn": logging.WARNING, "error": logging.ERROR}

log = logging.getLogger("nat")


def configure_logging(level: str = "warning", quiet: bool = False, verbose: bool = False) -> None:
    """Send the ``nat`` logger to stderr as ``nat: ...`` lines at the chosen level."""
    chosen = logging.ERROR if quiet else logging.INFO if verbose and level == "warning" else LEVELS[level.lower()]
    for handler in list(log.handlers):
        if getattr(handler, "_nat", False):
            log.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("nat: %(message)s"))
    handler._nat = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.setLevel(chosen)
    log.propagate = False


def observe(source, callback: Callable) -> None:
    """Call ``callback(block)`` with each decoded block of ``source`` as the tokenizer reads it.

    Wraps the source's block iterator (AudioSource has no public hook). Blocks arrive before
    AudioSource.blocks() replaces NaN/Inf samples, so observers must tolerate them."""
    inner = source._blocks

    def tapped() -> Iterator:
        for block in inner:
            callback(block)
            yield block

    source._blocks = tapped()


def _tqdm():
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


class Progress:
    """Bars for long inputs and batches, or nothing at all."""

    def __init__(self, enabled: bool, stream=None) -> None:
        self.tqdm = _tqdm() if enabled else None
        self.stream = stream if stream is not None else sys.stderr
        self._batch = None

    @classmethod
    def for_stderr(cls, quiet: bool, stream=None) -> Progress:
        stream = stream if stream is not None else sys.stderr
        try:
            tty = stream is not None and stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        return cls(tty and not quiet, stream)

    def inputs(self, items: list) -> Iterable:
        """``items``, with a bar over them when there are several."""
        if self.tqdm is None or not isinstance(items, list) or len(items) < 2:  # piped parts come one by one
            return items
        self._batch = self.tqdm(items, desc="inputs", unit="file", file=self.stream, dynamic_ncols=True)
        return self._batch

    def file(self, source):
        """Context: a bar over a long input's seconds of audio while it is tokenized (none for
        a part of a pipe: its duration is not known before its end)."""
        info = getattr(source, "info", None)  # a part of a pipe has none yet
        if self.tqdm is None or info is None or info.duration_s < LONG_INPUT_S:
            return contextlib.nullcontext()
        return self._file_bar(source, info.duration_s)

    @contextlib.contextmanager
    def _file_bar(self, source, duration: float):
        rate = source.info.sample_rate
        bar = self.tqdm(
            total=round(duration, 1),
            desc=source.info.name[-30:],
            unit="s",
            file=self.stream,
            leave=self._batch is None,
            position=1 if self._batch is not None else 0,
            dynamic_ncols=True,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]",
        )

        def advance(block) -> None:
            bar.update(min(len(block) / rate, bar.total - bar.n))

        observe(source, advance)
        try:
            yield bar
        finally:
            bar.close()
