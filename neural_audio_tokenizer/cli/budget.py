"""LLM token estimates, and fitting a stream into a token budget by pooling frames.

The estimate counts the pieces a GPT-style pre-tokenizer (the regular expression in front
of the cl100k/o200k byte-pair encoders) cuts text into: a run of letters with at most one
leading non-letter, a group of 1-3 digits, a run of punctuation, whitespace. Common pieces
are single tokens in those vocabularies, so the count tracks real tokenizers far better
than a flat chars/4 on NAT's output, which is mostly digits and punctuation: a dense NDJSON
frame line is 47 pieces (~1.7 characters each), the same frame in the ``text`` format 22,
while English prose runs ~5 characters per piece. It needs no vocabulary file and no
network; it is an estimate, not any one model's exact count.

Fitting (``nat prompt --budget``, ``--budget-report``): whole-number pooling factors merge
``p`` consecutive frames into one (the most common token per level; ties go to the token
seen first; the pooled frame starts at the group's first frame), then identical pooled
frames are run-length coded. The smallest factor that fits wins, so as much time
resolution as the budget allows survives.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..runtime.header import Header
from ..runtime.records import Frame, LineOptions, level_db
from ..runtime.stream import TokenStream

CONTEXTS = (("8k", 8192), ("32k", 32768), ("128k", 131072))

_PIECES = re.compile(
    r"'(?:[sdmt]|ll|ve|re)|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]{1,3}| ?[^\sA-Za-z0-9]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def estimate_tokens(text: str) -> int:
    """Estimated LLM tokens in ``text`` (see the module docstring for the method)."""
    return len(_PIECES.findall(text))


def pool_frames(frames: Sequence[Frame], factor: int, frame_rate: int) -> list[Frame]:
    """Merge each ``factor`` consecutive frames into one: per level the most common code
    (ties: the first seen), the level of the group's mean power, the hits summed, starting at
    the group's first frame's time."""
    if factor <= 1:
        return list(frames)
    out = []
    for g, start in enumerate(range(0, len(frames), factor)):
        group = frames[start : start + factor]
        s = tuple(_mode(f.S[i] for f in group) for i in range(len(group[0].S)))
        a = tuple(_mode(f.A[i] for f in group) for i in range(len(group[0].A)))
        levels = [f.level for f in group if f.level is not None]
        hits = [f.hits for f in group if f.hits is not None]
        level = level_db(sum(10.0 ** (v / 10.0) for v in levels) / len(levels)) if levels else None
        out.append(Frame(g, round(group[0].index / frame_rate, 3), s, a, level, sum(hits) if hits else None))
    return out


def _mode(values) -> int:
    return Counter(values).most_common(1)[0][0]  # Counter keeps first-seen order on ties


def keep_levels(frames: Sequence[Frame], s_levels: int, a_levels: int) -> list[Frame]:
    """The frames with only the first levels of each stream (coarse levels carry the most)."""
    return [dataclasses.replace(f, S=f.S[:s_levels], A=f.A[:a_levels]) for f in frames]


def level_header(header: Header, s_levels: int, a_levels: int) -> Header:
    """A header whose stream token lists match :func:`keep_levels`."""
    streams = {
        name: dataclasses.replace(header.streams[name], tokens=header.streams[name].tokens[:keep])
        for name, keep in (("S", s_levels), ("A", a_levels))
    }
    return dataclasses.replace(header, streams=streams)


@dataclass(frozen=True)
class Fit:
    pool: int
    rle: bool
    frames: int  # frame lines' frames after pooling
    estimated_tokens: int
    stream: TokenStream  # the fitted stream: header (with its "fit" annotation), pooled frames, stats
    options: LineOptions  # how it is written: no keyframes after the first, RLE or not


def fit_stream(
    stream: TokenStream,
    budget: int,
    render: Callable[[TokenStream, LineOptions], str],
    overhead: int = 0,
) -> Fit | None:
    """The finest version of ``stream`` (its frames all known) whose rendering, plus
    ``overhead`` tokens, fits ``budget``: dense, else RLE, else RLE over pooled frames
    (factor 2, 3, ...). None when even one pooled frame does not fit. ``render`` turns a
    stream into the final text."""
    frames = list(stream.frames)
    frame_rate = stream.frame_rate
    n = len(frames)

    def attempt(pool: int, rle: bool) -> Fit:
        pooled = pool_frames(frames, pool, frame_rate)
        options = LineOptions(0, rle=rle)

        def fitted(estimate: int) -> TokenStream:
            fit_info = {"pool": pool, "line_s": round(pool / frame_rate, 3), "rle": rle, "budget": budget, "estimated_tokens": estimate}
            return TokenStream.complete(stream.header.with_annotation("fit", fit_info), pooled, stream.stats)

        # The estimate is printed inside the header, so settle it (digits change length) in two passes.
        estimate = 0
        for _ in range(3):
            tokens = estimate_tokens(render(fitted(estimate), options)) + overhead
            if estimate == tokens:
                break
            estimate = tokens
        return Fit(pool, rle, len(pooled), tokens, fitted(tokens), options)

    for rle in (False, True):
        result = attempt(1, rle)
        if result.estimated_tokens <= budget:
            return result
    if n <= 1:
        return None
    # Doubling, then bisection between the last miss and the first hit.
    low, high = 1, 2
    while True:
        result = attempt(high, True)
        if result.estimated_tokens <= budget:
            best = result
            break
        if high >= n:
            return None
        low, high = high, min(n, high * 2)
    while high - low > 1:
        mid = (low + high) // 2
        result = attempt(mid, True)
        if result.estimated_tokens <= budget:
            best, high = result, mid
        else:
            low = mid
    return best
