"""A token stream -> NDJSON v1 lines: header, frames, stats (docs/ndjson.md, schema/ndjson-v1.schema.json).

Byte-identical output for the same input bytes and pack is a promise, so serialization is
fixed: compact separators, ASCII only, keys in a fixed order, floats via ``repr`` (exact
and platform-independent) after rounding, and nothing volatile: no wall time, host,
absolute path or provider in any line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TextIO

from .header import Header, Stats
from .records import LineOptions, frame_lines
from .stream import TokenStream


def dumps(obj: dict) -> str:
    """One canonical NDJSON line, newline included."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True, allow_nan=False) + "\n"


def header_line(header: Header, options: LineOptions) -> dict:
    """The header object as written: ``header`` with the ``encoding`` that ``options`` give."""
    return header.to_json(encoding={"mode": options.mode, "keyframe_interval_s": options.keyframe_interval_s}, measures=options.measures)


def stats_line(stats: Stats, lines: int) -> dict:
    """The stats object as written: ``stats`` with the number of frame ``lines`` written."""
    return stats.to_json(lines=lines)


def lines(stream: TokenStream, options: LineOptions = LineOptions()) -> Iterator[dict]:
    """Header, frame lines as the frames come, then stats: the stream's NDJSON objects.

    The stats line follows only a stream that ended well; after a failure the frames
    computed before it are yielded and the error propagates."""
    yield header_line(stream.header, options)
    count = 0
    for line in frame_lines(stream.frames, stream.frame_rate, options):
        count += 1
        yield line
    stats = stream.stats
    if stats is not None:
        yield stats_line(stats, count)


def error_record(name: str, error: Exception) -> dict:
    """The line written in place of (or after the frames of) an input that failed.

    ``name``: the input's name as in its header; ``error``: the exception (its ``kind``,
    e.g. ``input``, and its one-line message)."""
    return {"type": "error", "source": name, "error": getattr(error, "kind", "error"), "message": str(error)}


def write_ndjson(stream: TokenStream, out: TextIO, options: LineOptions = LineOptions()) -> None:
    """Write one stream to a text file object, flushing as lines are ready."""
    for line in lines(stream, options):
        out.write(dumps(line))
    out.flush()
