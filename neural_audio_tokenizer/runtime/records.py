"""Frames and the line encodings an NDJSON stream carries them in: dense, delta, run-length.

A frame line has exactly the original script's shape, ``{"t":1.2,"kf":true,"S0":23,...,"A3":9}``:
``t`` is the frame's start in seconds (frame k at k / frame_rate, rounded to the ms) and
``kf`` appears only on keyframes. The compact encodings keep that shape:

- ``delta``: a non-keyframe line carries only the tokens that changed since the previous
  frame (``{"t":1.4,"A2":5}``; ``{"t":1.4}`` when nothing changed).
- ``rle``: consecutive identical frames become one line with ``"n"``, the run length.
  A run never swallows a keyframe: keyframes always start a line with every token.

:func:`expand` rebuilds the dense frames from any of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

@dataclass(frozen=True, slots=True)
class Frame:
    """One pack frame: its index, start time (s) and codes per stream level."""

    index: int
    t: float
    S: tuple[int, ...]
    A: tuple[int, ...]

    def tokens(self) -> dict[str, int]:
        """Codes by token name, ``{"S0": .., ..., "A3": ..}``: S levels, then A levels."""
        out = {f"S{i}": c for i, c in enumerate(self.S)}
        out.update({f"A{i}": c for i, c in enumerate(self.A)})
        return out


@dataclass(frozen=True)
class LineOptions:
    """How frames become lines. The defaults are the dense stream an LLM reads best."""

    keyframe_interval_s: float = 5.0  # <= 0: only the first frame is a keyframe
    delta: bool = False
    rle: bool = False

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
        if pending is not None and not keyframe and (frame.S, frame.A) == (pending.frame.S, pending.frame.A):
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
        tokens = run.frame.tokens()
        line: dict = {"t": run.frame.t}
        if run.keyframe:
            line["kf"] = True
        if run.n > 1:
            line["n"] = run.n
        if options.delta and not run.keyframe and previous is not None:
            line.update({k: v for k, v in tokens.items() if previous[k] != v})
        else:
            line.update(tokens)
        previous = tokens
        yield line


def expand(lines: Iterable[dict], frame_rate: int) -> Iterator[dict[str, int | float]]:
    """Dense frames ``{"t":..,"S0":..,..}`` from frame lines in any encoding (dense/delta/rle)."""
    state: dict[str, int] = {}
    for line in lines:
        start = round(line["t"] * frame_rate)  # t is k / frame_rate rounded to the ms: exact
        state.update({k: int(v) for k, v in line.items() if _is_token(k)})
        for i in range(int(line.get("n", 1))):
            frame: dict[str, int | float] = {"t": frame_time(start + i, frame_rate)}
            frame.update(state)
            yield frame


def _is_token(key: str) -> bool:
    return len(key) >= 2 and key[0] in "SA" and key[1:].isdigit()
