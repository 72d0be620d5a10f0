"""One input's tokens as one object: the header, its frames in time order, then the stats.

A :class:`TokenStream` is what the library hands to everything downstream: the NDJSON
writer and the other output formats render it, and the tools (diff, prompt, budget,
report, batch, the Ray integration) consume it. Frames are typed :class:`Frame` records
from end to end; the dict form of a frame exists only where JSON is written (ndjson.py)
or read (reader.py).

The header and stats are typed too (:class:`~.header.Header`, :class:`~.header.Stats`,
runtime/header.py): the objects NAT writes, less what depends on how frames are encoded
as lines (``encoding`` in the header, ``lines`` in the stats), which ndjson.py adds when it
writes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .header import Header, Source, Stats, StatsCounter, make_header, make_stats
from .records import Frame

__all__ = ["TokenStream", "counted", "make_header"]  # make_header: where the input modules import it from


@dataclass
class TokenStream:
    """One input's stream: ``header``, ``frames`` (dense, in time order), then ``stats``.

    From a tokenizer, ``frames`` is computed as it is iterated, once, and ``stats`` is known
    only when it is exhausted (None before). From a file (reader.py) or a tool that
    rebuilt it, ``frames`` is a list and may be iterated again. ``error`` is set when the
    input failed; the frames before the failure are still the stream's.
    """

    header: Header
    frames: Iterable[Frame]
    stats_after: Callable[[], Stats | None] = field(default=lambda: None, repr=False)
    error: str | None = None

    @classmethod
    def complete(cls, header: Header, frames: list[Frame], stats: Stats | None, error: str | None = None) -> TokenStream:
        """A stream whose frames are all known (read back, pooled, cut to fewer levels)."""
        return cls(header, frames, lambda: stats, error)

    @property
    def stats(self) -> Stats | None:
        """The stats (frames, duration_s, nonfinite_samples, tokens), once frames are done."""
        return self.stats_after()

    @property
    def source(self) -> Source:
        """The input's identity: the header's ``source``, with what a piped or live input's
        header leaves null (``bytes``, ``sha256``) filled in from its stats once known."""
        source = self.header.source
        stats = self.stats
        known = stats.source if stats is not None else None
        if known is None:
            return source
        return replace(
            source,
            bytes=known.bytes if source.bytes is None else source.bytes,
            sha256=known.sha256 if source.sha256 is None else source.sha256,
        )

    @property
    def name(self) -> str:
        """The input's name, as its header gives it."""
        return str(self.header.source.name)

    @property
    def frame_rate(self) -> int | float:
        """Pack frames per second."""
        return self.header.frame_rate

    @property
    def s_names(self) -> list[str]:
        """The S token names, in level order (``S0``, ``S1``, ...)."""
        return self.header.token_names("S")

    @property
    def a_names(self) -> list[str]:
        """The A token names, in level order."""
        return self.header.token_names("A")

    def materialized(self) -> TokenStream:
        """The same stream with its frames in a list (computing them now if they are not)."""
        if isinstance(self.frames, list):
            return self
        frames = list(self.frames)
        return TokenStream.complete(self.header, frames, self.stats, self.error)

    def with_frames(self, frames: Iterable[Frame], header: Header | None = None) -> TokenStream:
        """Another stream with the same stats (and ``header`` if given) over ``frames``."""
        return TokenStream(self.header if header is None else header, frames, self.stats_after, self.error)


def counted(header: Header, frames: Iterable[Frame], finish: Callable[[], Mapping[str, Any]]) -> TokenStream:
    """A stream over ``frames`` whose stats are counted as they pass: once the frames are
    exhausted, ``finish()`` gives the input's own figures, as :func:`~.header.make_stats`'s
    keyword arguments (samples, sample_rate, nonfinite_samples; bytes and sha256 for piped input)."""
    counter = StatsCounter()
    done: list[Stats] = []

    def frames_counted() -> Iterator[Frame]:
        for frame in frames:
            yield counter.add(frame)
        done.append(make_stats(counter, **finish()))

    return TokenStream(header, frames_counted(), lambda: done[0] if done else None)
