"""``--budget-report``: after each stream, on stderr, its estimated LLM tokens in the chosen
format and how much of it fits 8k, 32k and 128k contexts.

The report taps the stream twice without changing it: its frames on the way into the
format (to re-render the same frames with fewer levels: S0+A0 carry the most, each next
level refines), and the text actually written (to count exactly what was output).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator

from ..runtime import formats
from ..runtime.formats import OutputFormat
from ..runtime.records import Frame, LineOptions
from ..runtime.sinks import Sink
from ..runtime.stream import TokenStream
from . import budget
from .prompt import renderer


class BudgetReport:
    def __init__(self, output: OutputFormat, options: LineOptions, stream=None) -> None:
        self.output = output
        self.options = options
        self.stream = stream
        self.seen: TokenStream | None = None
        self.frames: list[Frame] = []
        self.chars = 0
        self.tokens = 0
        self.count = 0

    def tap(self, output: OutputFormat) -> OutputFormat:
        """``output`` with each stream's frames recorded on the way in."""
        render = output.render

        def recording(stream: TokenStream, options: LineOptions) -> Iterator:
            self.seen = stream
            return render(stream.with_frames(self._record(stream.frames)), options)

        return dataclasses.replace(output, render=recording)

    def _record(self, frames) -> Iterator[Frame]:
        for frame in frames:
            self.frames.append(frame)
            yield frame

    def wrap(self, sink: Sink) -> Sink:
        return _CountingSink(sink, self)

    def begin(self) -> None:
        self.seen, self.frames, self.chars, self.tokens, self.count = None, [], 0, 0, 0

    def count_line(self, text: str) -> None:
        self.chars += len(text)
        self.tokens += budget.estimate_tokens(text)
        self.count += 1

    def end(self) -> None:
        if self.seen is None or self.seen.stats is None:
            return  # an input that failed: nothing to report
        for text in self.report():
            print(f"nat: {text}", file=self.stream or sys.stderr)

    def report(self) -> list[str]:
        assert self.seen is not None
        stream = TokenStream.complete(self.seen.header, self.frames, self.seen.stats)
        header = stream.header
        fr = header.frame_rate
        frames = self.frames
        n = len(frames)
        name = header.source.name
        out = [f"budget {name} (--format {self.output.name}): {self.count:,} line{'' if self.count == 1 else 's'}, {self.chars:,} chars, ~{self.tokens:,} LLM tokens (estimate)"]
        s_all, a_all = (header.streams[k].levels for k in ("S", "A"))
        subsets = []
        for s_keep, a_keep in ((s_all, a_all), (max(1, s_all // 2), max(1, a_all // 2)), (1, 1)):
            if (s_keep, a_keep) not in [x[:2] for x in subsets]:
                subsets.append((s_keep, a_keep, self._costs(stream, s_keep, a_keep)))
        for label, size in budget.CONTEXTS:
            if self.tokens <= size:
                out.append(f"  {label} context: all {n:,} frames ({n / fr:g} s) fit with all {s_all + a_all} levels")
                continue
            parts = []
            for s_keep, a_keep, (overhead, per_frame) in subsets:
                fit = n if per_frame <= 0 else max(0, min(n, int((size - overhead) // per_frame)))
                levels = s_keep + a_keep
                names = " ".join(stream.s_names[:s_keep] + stream.a_names[:a_keep])
                what = "all" if fit == n else f"{fit:,} of {n:,}"
                parts.append(f"{what} frames ({fit / fr:g} s) with {levels} levels" + ("" if levels == s_all + a_all else f" ({names})"))
            line = f"  {label} context: " + "; ".join(parts)
            pooled = self._pooled(stream, size)
            if pooled:
                line += f"; whole stream at all levels: {pooled}"
            out.append(line)
        return out

    def _costs(self, stream: TokenStream, s_keep: int, a_keep: int) -> tuple[int, float]:
        """(tokens without frames, tokens per frame) of the stream cut to the first levels."""
        head = budget.level_header(stream.header, s_keep, a_keep)
        cut = budget.keep_levels(list(stream.frames), s_keep, a_keep)

        def tokens(frames: list[Frame]) -> int:
            part = TokenStream.complete(head, frames, stream.stats)
            return budget.estimate_tokens(formats.render_text_of(self.output, part, self.options))

        empty = tokens([])
        return empty, (tokens(cut) - empty) / max(1, len(cut))

    def _pooled(self, stream: TokenStream, size: int) -> str | None:
        if self.output.name not in ("ndjson", "text"):
            return None
        fit = budget.fit_stream(stream, size, renderer(self.output.name))
        if fit is None:
            return None
        how = f"pooled x{fit.pool}" + (" + RLE" if fit.rle else "") if fit.pool > 1 else ("RLE" if fit.rle else "as is")
        return f"{how} ({fit.frames:,} lines of {fit.pool / stream.frame_rate:g} s), as nat prompt --budget {size} does"


class _CountingSink(Sink):
    """Counts what is written, reports at the end of each input."""

    def __init__(self, inner: Sink, report: BudgetReport) -> None:
        self.inner = inner
        self.report = report

    def begin(self, name: str) -> None:
        self.report.begin()
        self.inner.begin(name)

    def line(self, obj) -> None:
        self.report.count_line(formats.to_text(obj))
        self.inner.line(obj)

    def end(self) -> None:
        self.inner.end()
        self.report.end()

    def close(self) -> None:
        self.inner.close()

    def abort(self) -> None:
        self.inner.abort()
