"""One input's tokens as one object: the header, its frames in time order, then the stats.

A :class:`TokenStream` is what the library hands to everything downstream: the NDJSON
writer and the other output formats render it, and the tools (diff, prompt, budget,
report, batch, the Ray integration) consume it. Frames are typed :class:`Frame` records
from end to end; the dict form of a frame exists only where JSON is written (ndjson.py)
or read (reader.py).

The header and stats are the JSON objects NAT writes, less what depends on how frames are
encoded as lines (``encoding`` in the header, ``lines`` in the stats): ndjson.py adds
those when it writes them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .records import Frame

FORMAT = "nat-tokens"
FORMAT_VERSION = 1

LEGEND = (
    "Each frame line is one time slice; t is its start in seconds. "
    "S0-S3 are semantic tokens (musical content: harmony, rhythm, structure), "
    "A0-A3 are acoustic tokens (timbre, texture, spectral shape). "
    "Level 0 is the coarsest description and each next level refines it. "
    "Token numbers are arbitrary labels: equal numbers at the same level mean similar sound, "
    "changes mean the sound changed. kf marks keyframes carrying every token; "
    "n is how many consecutive frames a line stands for; a line without some tokens keeps their previous values."
)


def make_header(
    pack: Any,
    *,
    name: str,
    decoder: str,
    format: str,
    sample_rate: int,
    channels: int,
    bytes: int | None = None,
    sha256: str | None = None,
    duration_s: float | None = None,
) -> dict:
    """The header object of a freshly tokenized stream: the input's fields (``bytes``,
    ``sha256`` and ``duration_s`` are None for piped and live input, known only at its end)
    and the pack's (a runtime Pack)."""
    source = {
        "name": name,
        "bytes": bytes,
        "sha256": sha256,
        "decoder": decoder,
        "format": format,
        "sample_rate": sample_rate,
        "channels": channels,
        "duration_s": duration_s,
    }
    return {
        "type": "header",
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "source": source,
        "pack": {"name": pack.name, "manifest_sha256": pack.manifest_sha256},
        "frame_rate": pack.frame_rate,
        "streams": {
            n: {"levels": s.levels, "codebook_size": s.codebook_size, "tokens": [f"{n}{i}" for i in range(s.levels)]}
            for n, s in pack.streams.items()
        },
        "legend": LEGEND,
    }


class StatsCounter:
    """Per-token statistics over dense frames, for the closing stats line."""

    def __init__(self) -> None:
        self.frames = 0
        self.counts: dict[str, Counter] = {}
        self.changes: dict[str, int] = {}
        self._previous: dict[str, int] | None = None

    def add(self, frame: Frame) -> Frame:
        """Count ``frame`` and hand it back (so it can sit in a ``map`` over frames)."""
        tokens = frame.tokens()
        for key, value in tokens.items():
            self.counts.setdefault(key, Counter())[value] += 1
            if self._previous is not None and self._previous[key] != value:
                self.changes[key] = self.changes.get(key, 0) + 1
        self._previous = tokens
        self.frames += 1
        return frame

    def tokens(self) -> dict:
        """Per token name: distinct codes, entropy in bits, share of frames that change it."""
        out = {}
        for key, counts in self.counts.items():
            total = sum(counts.values())
            entropy = -sum(c / total * math.log2(c / total) for c in sorted(counts.values()))
            out[key] = {
                "distinct": len(counts),
                "entropy_bits": round(entropy + 0.0, 4),
                "change_rate": round(self.changes.get(key, 0) / max(1, total - 1), 4),
            }
        return out


@dataclass
class TokenStream:
    """One input's stream: ``header``, ``frames`` (dense, in time order), then ``stats``.

    From a tokenizer, ``frames`` is computed as it is iterated, once, and ``stats`` is known
    only when it is exhausted (None before). From a file (reader.py) or a tool that
    rebuilt it, ``frames`` is a list and may be iterated again. ``error`` is set when the
    input failed; the frames before the failure are still the stream's.
    """

    header: dict
    frames: Iterable[Frame]
    stats_after: Callable[[], dict | None] = field(default=lambda: None, repr=False)
    error: str | None = None

    @classmethod
    def complete(cls, header: dict, frames: list[Frame], stats: dict | None, error: str | None = None) -> TokenStream:
        """A stream whose frames are all known (read back, pooled, cut to fewer levels)."""
        return cls(header, frames, lambda: stats, error)

    @property
    def stats(self) -> dict | None:
        """The stats object (frames, duration_s, nonfinite_samples, tokens), once frames are done."""
        return self.stats_after()

    @property
    def source(self) -> dict:
        """The input's identity: the header's ``source``, with what a piped or live input's
        header leaves null (``bytes``, ``sha256``) filled in from its stats line once known."""
        source = dict(self.header.get("source") or {})
        known = (self.stats or {}).get("source") or {}
        source.update((key, value) for key, value in known.items() if source.get(key) is None)
        return source

    @property
    def name(self) -> str:
        """The input's name, as its header gives it."""
        return str((self.header.get("source") or {}).get("name", "?"))

    @property
    def frame_rate(self) -> int | float:
        """Pack frames per second."""
        return self.header["frame_rate"]

    @property
    def s_names(self) -> list[str]:
        """The S token names, in level order (``S0``, ``S1``, ...)."""
        return list(self.header.get("streams", {}).get("S", {}).get("tokens", []))

    @property
    def a_names(self) -> list[str]:
        """The A token names, in level order."""
        return list(self.header.get("streams", {}).get("A", {}).get("tokens", []))

    def materialized(self) -> TokenStream:
        """The same stream with its frames in a list (computing them now if they are not)."""
        if isinstance(self.frames, list):
            return self
        frames = list(self.frames)
        return TokenStream.complete(self.header, frames, self.stats, self.error)

    def with_frames(self, frames: Iterable[Frame], header: dict | None = None) -> TokenStream:
        """Another stream with the same stats (and ``header`` if given) over ``frames``."""
        return TokenStream(self.header if header is None else header, frames, self.stats_after, self.error)


def counted(header: dict, frames: Iterable[Frame], finish: Callable[[], dict]) -> TokenStream:
    """A stream over ``frames`` whose stats are counted as they pass: ``finish()`` gives the
    input's own figures (duration_s, nonfinite_samples) once the frames are exhausted."""
    counter = StatsCounter()
    done: list[dict] = []

    def frames_counted() -> Iterator[Frame]:
        for frame in frames:
            yield counter.add(frame)
        done.append({"type": "stats", "frames": counter.frames, **finish(), "tokens": counter.tokens()})

    return TokenStream(header, frames_counted(), lambda: done[0] if done else None)
