"""Records -> NDJSON v1 lines: header, frames, stats (docs/ndjson.md, schema/ndjson-v1.schema.json).

Byte-identical output for the same input bytes and pack is a promise, so serialization is
fixed: compact separators, ASCII only, keys in insertion order, floats via ``repr`` (exact
and platform-independent) after rounding, and nothing volatile: no wall time, host,
absolute path or provider in any line.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator

from .audio import AudioSource
from .records import Frame, LineOptions, frame_lines
from .tokenizer import Tokenizer

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


def dumps(obj: dict) -> str:
    """One canonical NDJSON line, newline included."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True, allow_nan=False) + "\n"


def header(tokenizer: Tokenizer, source: AudioSource, options: LineOptions) -> dict:
    info = source.info
    pack = tokenizer.pack
    streams = {
        name: {"levels": s.levels, "codebook_size": s.codebook_size, "tokens": [f"{name}{i}" for i in range(s.levels)]}
        for name, s in pack.streams.items()
    }
    encoding: dict = {"mode": options.mode, "keyframe_interval_s": options.keyframe_interval_s}
    return {
        "type": "header",
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "source": {
            "name": info.name,
            "bytes": info.bytes,
            "sha256": info.sha256,
            "decoder": info.decoder,
            "format": info.format,
            "sample_rate": info.sample_rate,
            "channels": info.channels,
            "duration_s": info.duration_s,
        },
        "pack": {"name": pack.name, "manifest_sha256": pack.manifest_sha256},
        "frame_rate": pack.frame_rate,
        "streams": streams,
        "encoding": encoding,
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
        tokens = frame.tokens()
        for key, value in tokens.items():
            self.counts.setdefault(key, Counter())[value] += 1
            if self._previous is not None and self._previous[key] != value:
                self.changes[key] = self.changes.get(key, 0) + 1
        self._previous = tokens
        self.frames += 1
        return frame

    def tokens(self) -> dict:
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


def stream_lines(tokenizer: Tokenizer, source: AudioSource, options: LineOptions = LineOptions()) -> Iterator[dict]:
    """Header, frame lines as chunks finish, then stats: one input's whole stream."""
    yield header(tokenizer, source, options)
    counter = StatsCounter()
    lines = 0
    for line in frame_lines(map(counter.add, tokenizer.frames(source)), tokenizer.frame_rate, options):
        lines += 1
        yield line
    yield {
        "type": "stats",
        "frames": counter.frames,
        "lines": lines,
        "duration_s": round(source.decoded / source.info.sample_rate, 6),
        "nonfinite_samples": source.nonfinite,
        "tokens": counter.tokens(),
    }


def error_record(name: str, error: Exception) -> dict:
    return {"type": "error", "source": name, "error": getattr(error, "kind", "error"), "message": str(error)}


def write_ndjson(tokenizer: Tokenizer, source: AudioSource, out, options: LineOptions = LineOptions()) -> None:
    """Write one input's stream to a text file object, flushing as lines are ready."""
    for line in stream_lines(tokenizer, source, options):
        out.write(dumps(line))
    out.flush()


def read_ndjson(lines: Iterable[str]) -> Iterator[dict]:
    """Parse NDJSON text lines (blank lines skipped)."""
    for text in lines:
        if text.strip():
            yield json.loads(text)
