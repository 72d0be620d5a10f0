"""Frames and the line encodings an NDJSON stream carries them in: dense, delta, run-length.

A frame line has exactly the original script's shape, ``{"t":1.2,"kf":true,"S0":23,...,"A3":9}``:
``t`` is the frame's start in seconds (frame k at k / frame_rate, rounded to the ms) and
``kf`` appears only on keyframes. The compact encodings keep that shape:

- ``delta``: a non-keyframe line carries only the tokens that changed since the previous
  frame (``{"t":1.4,"A2":5}``; ``{"t":1.4}`` when nothing changed).
- ``rle``: consecutive identical frames become one line with ``"n"``, the run length.
  A run never swallows a keyframe: keyframes always start a line with every token.

After the tokens a line carries the frame's measures, where the stream has them:
``"dB"``, its level (dBFS, whole dB), and ``"hits"``, its percussive hits
(runtime/silence.py). They are part of the frame as tokens are: delta leaves them out when
unchanged, and a run is of frames equal in tokens *and* measures, so :func:`expand` gives
back every frame's own values.

:func:`expand` rebuilds the dense frames from any of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

@dataclass(frozen=True, slots=True)
class Frame:
    """One pack frame: its index, start time (s) and codes per stream level."""

    index: int
    t: float
    S: tuple[int, ...]
    A: tuple[int, ...]
    level: int | None = None  # dBFS, whole dB (None: not measured, e.g. read from an older file)
    hits: int | None = None  # percussive hits in the frame

    def tokens(self) -> dict[str, int]:
        """Codes by token name, ``{"S0": .., ..., "A3": ..}``: S levels, then A levels."""
        out = {f"S{i}": c for i, c in enumerate(self.S)}
        out.update({f"A{i}": c for i, c in enumerate(self.A)})
        return out

    def measures(self) -> dict[str, int]:
        """The measures a line carries after the tokens: ``{"dB": .., "hits": ..}`` (those measured)."""
        return {k: v for k, v in ((LEVEL_KEY, self.level), (HITS_KEY, self.hits)) if v is not None}

    def values(self, measures: bool = True) -> dict[str, int]:
        """What a dense line says of the frame: the tokens, then (``measures``) the measures."""
        return {**self.tokens(), **self.measures()} if measures else self.tokens()


LEVEL_KEY, HITS_KEY = "dB", "hits"
MEASURE_KEYS = (LEVEL_KEY, HITS_KEY)


LEVEL_MIN_DB = -99  # the level of digital silence and of anything quieter


def level_db(power: float) -> int:
    """A frame's level: ``10 * log10(mean(x^2))`` dBFS rounded half up to a whole dB, at
    least LEVEL_MIN_DB (a full-scale square wave is 0, a full-scale sine -3)."""
    if power <= 0.0:
        return LEVEL_MIN_DB
    return max(LEVEL_MIN_DB, math.floor(10.0 * math.log10(power) + 0.5))


@dataclass(frozen=True)
class LineOptions:
    """How frames become lines. The defaults are the dense stream an LLM reads best."""

    keyframe_interval_s: float = 5.0  # <= 0: only the first frame is a keyframe
    delta: bool = False
    rle: bool = False
    measures: bool = True  # each frame's level (dB) and hits, where measured

    @property
    def mode(self) -> str:
        """The header's name for this encoding: dense, delta, rle or delta+rle."""
        return "+".join(m for m, on in (("delta", self.delta), ("rle", self.rle)) if on) or "dense"

    def keyframe_every(self, frame_rate: int) -> int:
        """Frames between keyframes (0: never after the first)."""
        if self.keyframe_interval_s <= 0:
            return 0
        return max(1, round(self.keyframe_interval_s * frame_rate))


def frame_time(index: int, frame_rate: int) -> float:
    """Frame ``index``'s start in seconds, rounded to the ms."""
    return round(index / frame_rate, 3)


@dataclass(frozen=True, slots=True)
class Run:
    """Consecutive identical frames that one line (or one event) stands for."""

    frame: Frame  # the first of them
    keyframe: bool
    n: int = 1


def runs(frames: Iterable[Frame], frame_rate: int, options: LineOptions) -> Iterator[Run]:
    """Frames grouped as lines: with ``rle``, consecutive identical frames form one run that
    never swallows a keyframe; without, each frame is its own run.

    A run is yielded as soon as it is final. If the frame source fails mid-stream, the
    pending run is still yielded before the error propagates, so every frame computed is
    written."""
    every = options.keyframe_every(frame_rate)
    pending: Run | None = None
    iterator = iter(frames)
    while True:
        try:
            frame = next(iterator)
        except StopIteration:
            break
        except Exception:
            if pending is not None:
                yield pending
            raise
        keyframe = frame.index == 0 or (every > 0 and frame.index % every == 0)
        if pending is not None and not keyframe and frame.values(options.measures) == pending.frame.values(options.measures):
            pending = Run(pending.frame, pending.keyframe, pending.n + 1)
            continue
        if pending is not None:
            yield pending
        pending = Run(frame, keyframe)
        if not options.rle:
            yield pending
            pending = None
    if pending is not None:
        yield pending


def frame_lines(frames: Iterable[Frame], frame_rate: int, options: LineOptions) -> Iterator[dict]:
    """Frames as NDJSON line objects (not yet JSON) under ``options``, each yielded as soon
    as it is final (with ``rle``: when its run ends)."""
    previous: dict[str, int] | None = None
    for run in runs(frames, frame_rate, options):
        tokens = run.frame.values(options.measures)
        line: dict = {"t": run.frame.t}
        if run.keyframe:
            line["kf"] = True
        if run.n > 1:
            line["n"] = run.n
        if options.delta and not run.keyframe and previous is not None:
            line.update({k: v for k, v in tokens.items() if previous.get(k) != v})
        else:
            line.update(tokens)
        previous = tokens
        yield line


def expand(lines: Iterable[dict], frame_rate: int) -> Iterator[dict[str, int | float]]:
    """Dense frames ``{"t":..,"S0":..,..,"dB":..}`` from frame lines in any encoding (dense/delta/rle)."""
    state: dict[str, int] = {}
    for line in lines:
        start = round(line["t"] * frame_rate)  # t is k / frame_rate rounded to the ms: exact
        state.update({k: int(v) for k, v in line.items() if _is_token(k) or k in MEASURE_KEYS})
        for i in range(int(line.get("n", 1))):
            frame: dict[str, int | float] = {"t": frame_time(start + i, frame_rate)}
            frame.update(state)
            yield frame


def _is_token(key: str) -> bool:
    return len(key) >= 2 and key[0] in "SA" and key[1:].isdigit()
