"""A stream's header and stats as typed, frozen objects, like :class:`~.records.Frame`.

Each is built in one place and becomes JSON (or comes back from it) in one place:

- :func:`make_header` builds the :class:`Header` of a freshly tokenized stream, from the
  pack and what is known about the input (files, pipes and live input alike).
- :func:`make_stats` builds the :class:`Stats` from a :class:`StatsCounter` and the
  input's own figures (``stream.counted`` and ``LiveStream.close`` both call it).
- ``to_json()`` gives the objects NAT writes, keys in their fixed order; ``from_json()``
  reads them back (reader.py), from files of any NAT version.

What depends on how frames are encoded as lines is not part of either: ``encoding`` in the
header and ``lines`` in the stats are given to ``to_json`` by the writer (ndjson.py) and
dropped by ``from_json``.

Annotations. The header keys that tools add after ``legend`` (``glossary`` by
``nat --glossary``, ``fit`` by ``nat prompt``), and any key this NAT does not know in a
header it reads, are kept in :attr:`Header.annotations`, an ordered mapping written after
``legend`` in its order. :attr:`Header.glossary` and :attr:`Header.fit` read it;
:meth:`Header.with_annotation` adds or replaces a key (in place, as a dict update would),
:meth:`Header.without_annotation` drops one. The same holds for unknown stats keys
(:attr:`Stats.extra`, written last).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
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

# What the frame measures after the tokens mean (records.MEASURE_KEYS), for the reader of a stream.
MEASURES = {
    "dB": "loudness of the slice in dB relative to digital full scale (RMS): 0 is the loudest possible, "
    "about -15 very loud, -25 loud, -35 moderate, -45 soft, -60 very soft; -99 is silence (below the pack's silence floor)",
    "hits": "drum-like hits in the slice (sharp noisy attacks: snare, hi-hat, cymbal, clap): 0 none; "
    "hits in most slices mean a drum kit, their regular pattern is the beat",
}

# The header keys the typed fields hold (``encoding`` belongs to the lines), in written order.
CORE_KEYS = ("type", "format", "format_version", "source", "pack", "frame_rate", "streams", "measures", "encoding", "legend")
# The stats keys the typed fields hold (``lines`` belongs to the lines).
STATS_KEYS = ("type", "frames", "lines", "duration_s", "nonfinite_samples", "source", "tokens")


@dataclass(frozen=True)
class Source:
    """The input a stream was made from, as the header's ``source`` says.

    ``bytes``, ``sha256`` and ``duration_s`` are None for piped and live input (known only at
    its end: a piped stream's stats carry its bytes and sha256). A header converted from the
    original script's lam files (reader.py) knows only ``name`` and ``sha256``."""

    name: str
    bytes: int | None = None
    sha256: str | None = None
    decoder: str | None = None  # soundfile, raw, array, stream, live
    format: str | None = None  # "WAV/PCM_16", "s16le", "float32", ...
    sample_rate: int | None = None
    channels: int | None = None
    duration_s: float | None = None

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "decoder": self.decoder,
            "format": self.format,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "duration_s": self.duration_s,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Source:
        return cls(
            name=obj.get("name", "?"),
            bytes=obj.get("bytes"),
            sha256=obj.get("sha256"),
            decoder=obj.get("decoder"),
            format=obj.get("format"),
            sample_rate=obj.get("sample_rate"),
            channels=obj.get("channels"),
            duration_s=obj.get("duration_s"),
        )


@dataclass(frozen=True)
class PackRef:
    """The pack a stream was made with: its name and manifest hash (``codebook_id``: only in
    headers converted from the original script's lam files, which name no manifest)."""

    name: str | None
    manifest_sha256: str | None
    codebook_id: str | None = None

    def to_json(self) -> dict:
        out = {"name": self.name, "manifest_sha256": self.manifest_sha256}
        if self.codebook_id is not None:
            out["codebook_id"] = self.codebook_id
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> PackRef:
        return cls(obj.get("name"), obj.get("manifest_sha256"), obj.get("codebook_id"))


@dataclass(frozen=True)
class StreamInfo:
    """One token stream (S or A) of the pack: its levels, codebook size and token names."""

    levels: int
    codebook_size: int | None  # the largest level's
    tokens: tuple[str, ...]
    codebook_sizes: tuple[int, ...] | None = None  # codes each level can emit, level 0 first

    def to_json(self) -> dict:
        out = {"levels": self.levels, "codebook_size": self.codebook_size}
        if self.codebook_sizes is not None:
            out["codebook_sizes"] = list(self.codebook_sizes)
        out["tokens"] = list(self.tokens)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> StreamInfo:
        sizes = obj.get("codebook_sizes")
        return cls(obj.get("levels"), obj.get("codebook_size"), tuple(obj["tokens"]), tuple(sizes) if isinstance(sizes, list) else None)


@dataclass(frozen=True)
class Header:
    """A stream's header: the input, the pack, the frame rate, the token streams, the legend
    an LLM reads, then the annotations tools add (see the module docstring).

    ``format_version`` and ``legend`` are None (and not written) only in headers converted
    from lam files; ``pack`` is None only in the placeholder header of an error record."""

    source: Source
    pack: PackRef | None
    frame_rate: int | float
    streams: Mapping[str, StreamInfo]
    legend: str | None = LEGEND
    measures: Mapping[str, str] | None = None  # the frame measures the lines carry (MEASURES), if any
    format: str = FORMAT
    format_version: int | None = FORMAT_VERSION
    annotations: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        clash = [key for key in self.annotations if key in CORE_KEYS]
        if clash:
            raise ValueError(f"header annotations may not hold the header's own keys: {clash}")

    @property
    def glossary(self) -> dict | None:
        """The ``glossary`` object ``nat --glossary`` adds (runtime/glossary.annotate), if any."""
        return self.annotations.get("glossary")

    @property
    def fit(self) -> dict | None:
        """The ``fit`` object ``nat prompt`` adds (cli/budget.fit_stream), if any."""
        return self.annotations.get("fit")

    def token_names(self, stream: str) -> list[str]:
        """The token names of ``stream`` ("S" or "A") in level order; [] if it has none."""
        info = self.streams.get(stream)
        return list(info.tokens) if info is not None else []

    def with_annotation(self, key: str, value: Any) -> Header:
        """This header with annotation ``key`` set to ``value``: replaced where it is, else last."""
        return replace(self, annotations={**self.annotations, key: value})

    def without_annotation(self, key: str) -> Header:
        """This header without annotation ``key``."""
        return replace(self, annotations={k: v for k, v in self.annotations.items() if k != key})

    def to_json(self, encoding: Mapping[str, Any] | None = None, measures: bool = True) -> dict:
        """The header object, keys in NAT's fixed order; ``encoding`` (the writer's, ndjson.py)
        goes between ``streams`` and ``legend``; ``measures`` False leaves out what the lines
        then do not carry."""
        out: dict[str, Any] = {"type": "header", "format": self.format}
        if self.format_version is not None:
            out["format_version"] = self.format_version
        out["source"] = self.source.to_json()
        if self.pack is not None:
            out["pack"] = self.pack.to_json()
        out["frame_rate"] = self.frame_rate
        out["streams"] = {name: info.to_json() for name, info in self.streams.items()}
        if self.measures is not None and measures:
            out["measures"] = dict(self.measures)
        if encoding is not None:
            out["encoding"] = dict(encoding)
        if self.legend is not None:
            out["legend"] = self.legend
        out.update(self.annotations)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Header:
        """A header line read back. ``encoding`` is dropped; keys after the core ones (and
        any this NAT does not know) become annotations, in their order. Raises KeyError,
        TypeError or ValueError when ``frame_rate`` or ``streams`` is missing or malformed."""
        source, pack = obj.get("source"), obj.get("pack")
        return cls(
            source=Source.from_json(source if isinstance(source, Mapping) else {}),
            pack=PackRef.from_json(pack) if isinstance(pack, Mapping) else None,
            frame_rate=obj["frame_rate"],
            streams={name: StreamInfo.from_json(spec) for name, spec in obj["streams"].items()},
            legend=obj.get("legend"),
            measures=obj.get("measures") if isinstance(obj.get("measures"), Mapping) else None,
            format=obj.get("format", FORMAT),
            format_version=obj.get("format_version"),
            annotations={key: value for key, value in obj.items() if key not in CORE_KEYS},
        )


def _emitted(name: str, spec: Any, pack: Any) -> tuple[int, ...]:
    """Codes each level of a stream can emit: its distinct codes, and at S0 of a pack with a
    silence floor and a padded level 0 the silence code's twin (silence.SilenceGate.keep_apart)."""
    sizes = list(spec.level_sizes())
    if name == "S" and pack.silence_floor_dbfs is not None and sizes[0] < spec.codebook_size:
        sizes[0] += 1
    return tuple(sizes)


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
) -> Header:
    """The header of a freshly tokenized stream: the input's fields (``bytes``, ``sha256``
    and ``duration_s`` are None for piped and live input, known only at its end) and the
    pack's (a runtime Pack)."""
    return Header(
        source=Source(name, bytes, sha256, decoder, format, sample_rate, channels, duration_s),
        pack=PackRef(pack.name, pack.manifest_sha256),
        frame_rate=pack.frame_rate,
        streams={
            n: StreamInfo(s.levels, s.codebook_size, tuple(f"{n}{i}" for i in range(s.levels)), _emitted(n, s, pack))
            for n, s in pack.streams.items()
        },
        measures=MEASURES,
    )


# --- stats -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenStats:
    """One token's figures over a stream: distinct codes, entropy in bits, share of frames
    that change it."""

    distinct: int
    entropy_bits: float
    change_rate: float

    def to_json(self) -> dict:
        return {"distinct": self.distinct, "entropy_bits": self.entropy_bits, "change_rate": self.change_rate}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TokenStats:
        return cls(obj["distinct"], obj["entropy_bits"], obj["change_rate"])


@dataclass(frozen=True)
class SourceIdentity:
    """What a piped input's header could not say yet, carried by its stats."""

    bytes: int | None
    sha256: str | None

    def to_json(self) -> dict:
        return {"bytes": self.bytes, "sha256": self.sha256}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> SourceIdentity:
        return cls(obj.get("bytes"), obj.get("sha256"))


@dataclass(frozen=True)
class Stats:
    """A stream's closing stats: frames, decoded seconds, NaN/Inf samples replaced, per-token
    figures, and for piped input the source's size and hash (``source``)."""

    frames: int
    duration_s: float | None
    nonfinite_samples: int | None
    tokens: Mapping[str, TokenStats]
    source: SourceIdentity | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys this NAT does not know, as read

    def to_json(self, lines: int | None = None) -> dict:
        """The stats object, keys in NAT's fixed order; ``lines`` (the writer's count of frame
        lines, ndjson.py) goes after ``frames``."""
        out: dict[str, Any] = {"type": "stats", "frames": self.frames}
        if lines is not None:
            out["lines"] = lines
        out["duration_s"] = self.duration_s
        out["nonfinite_samples"] = self.nonfinite_samples
        if self.source is not None:
            out["source"] = self.source.to_json()
        out["tokens"] = {name: t.to_json() for name, t in self.tokens.items()}
        out.update(self.extra)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Stats:
        """A stats line read back (``lines`` dropped). Raises KeyError, TypeError or
        ValueError when ``frames`` or a token's figures are missing or malformed."""
        source = obj.get("source")
        return cls(
            frames=obj["frames"],
            duration_s=obj.get("duration_s"),
            nonfinite_samples=obj.get("nonfinite_samples"),
            tokens={name: TokenStats.from_json(t) for name, t in (obj.get("tokens") or {}).items()},
            source=SourceIdentity.from_json(source) if isinstance(source, Mapping) else None,
            extra={key: value for key, value in obj.items() if key not in STATS_KEYS},
        )


class StatsCounter:
    """Per-token statistics over dense frames, for the closing stats."""

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

    def tokens(self) -> dict[str, TokenStats]:
        """Per token name: distinct codes, entropy in bits, share of frames that change it."""
        out = {}
        for key, counts in self.counts.items():
            total = sum(counts.values())
            entropy = -sum(c / total * math.log2(c / total) for c in sorted(counts.values()))
            out[key] = TokenStats(
                distinct=len(counts),
                entropy_bits=round(entropy + 0.0, 4),
                change_rate=round(self.changes.get(key, 0) / max(1, total - 1), 4),
            )
        return out


def make_stats(
    counter: StatsCounter,
    *,
    samples: int,
    sample_rate: int,
    nonfinite_samples: int,
    bytes: int | None = None,
    sha256: str | None = None,
) -> Stats:
    """The stats of a stream whose frames went through ``counter``: ``samples`` decoded at
    ``sample_rate`` (the duration, rounded to the microsecond), NaN/Inf samples replaced,
    and for piped input the ``bytes`` and ``sha256`` its header could not carry."""
    identity = SourceIdentity(bytes, sha256) if bytes is not None or sha256 is not None else None
    return Stats(
        frames=counter.frames,
        duration_s=round(samples / sample_rate, 6),
        nonfinite_samples=nonfinite_samples,
        tokens=counter.tokens(),
        source=identity,
    )

