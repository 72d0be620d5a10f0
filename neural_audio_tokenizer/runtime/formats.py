"""Output formats for a token stream: NAT NDJSON, a compact text form, the original script's
text forms and its ``lam_audio_tokens`` v1.5 NDJSON.

Every format renders the same thing, a :class:`~.stream.TokenStream` (header, dense frames,
stats) under :class:`~.records.LineOptions`, so a format is a pure function of the stream:
same input bytes and pack give byte-identical output in every format. Formats are
pull-based generators, so ``ndjson``, ``text`` and ``lam`` stream as chunks finish; the
original script's three text forms lay tokens out level by level or as one long line, so
they wait for the end.

A new format is one render function here and one REGISTRY entry (docs/architecture.md).

- ``ndjson``: NAT NDJSON v1 (docs/ndjson.md), in the chosen encoding (dense/delta/RLE).
- ``text``: one line per frame, ``0.2 S 23 92 45 101 A 48 192 129 9``, after a one-line
  ``#`` legend; ``--delta`` prints ``.`` for an unchanged token, ``--rle`` appends ``x3``
  to a line standing for 3 identical frames; ``# end ...`` closes each stream. About half
  the LLM tokens of dense NDJSON.
- ``hierarchical`` / ``interleaved`` / ``structured``: the original script's text dumps, one line per
  input (``[SEMANTIC] S0_n ... [ACOUSTIC] A0_n ...``; ``S_n A_n ...``;
  ``[T0][SEM:S0:n,...][AC:A0:n,...] [T1]...``), always dense.
- ``lam``: the original script's event NDJSON (header/frame/tokens/end events), so tools written for
  the original script keep working; its end event holds no wall-clock figures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Union

from .glossary import legend_lines, ranked_entries
from .ndjson import dumps, lines
from .records import Frame, LineOptions, Run, runs
from .stream import TokenStream

FORMATS = ("ndjson", "text", "hierarchical", "interleaved", "structured", "lam")
ORIGINAL_TEXT = ("hierarchical", "interleaved", "structured")

# A rendered line: a dict is an NDJSON object (the sink serializes it), a str is text with its newline.
Out = Union[str, dict]


def fmt_time(t: float) -> str:
    """Seconds as short as exact: 0 -> '0', 1.2 -> '1.2', 12.345 -> '12.345'."""
    text = repr(float(t))
    return text[:-2] if text.endswith(".0") else text


# --- ndjson -------------------------------------------------------------------------------


def render_ndjson(stream: TokenStream, options: LineOptions) -> Iterator[Out]:
    """NAT NDJSON v1 in the encoding ``options`` choose (ndjson.lines)."""
    yield from lines(stream, options)


# --- text ---------------------------------------------------------------------------------


def text_legend(stream: TokenStream, options: LineOptions) -> str:
    """The ``#`` line that opens a stream in the text format."""
    header = stream.header
    src = header.source
    pack = header.pack.name if header.pack is not None else "?"
    measured = header.measures is not None and options.measures
    parts = [
        f"# {src.name}",
        "streamed" if src.duration_s is None else f"{fmt_time(round(float(src.duration_s), 3))} s",  # piped: known at the end
        f"pack {pack}",
        f"{header.frame_rate} frames/s",
        "line: t S " + " ".join(stream.s_names) + " A " + " ".join(stream.a_names)
        + (" dB LEVEL hits HITS" if measured else "")
        + " (t start s; S semantic: musical content; A acoustic: timbre; level 0 coarsest;"
        " equal numbers at a level = similar sound"
        + ("".join(f"; {k}: {v}" for k, v in header.measures.items()) if measured else "")
        + ("; . = unchanged" if options.delta else "")
        + ("; xN = N identical frames" if options.rle else "")
        + ")",
    ]
    fit = header.fit
    if fit and fit.get("pool", 1) > 1:
        parts.append(f"each line pools {fit['pool']} frames ({fmt_time(fit.get('line_s', 0))} s): most common token per level")
    return " | ".join(parts) + "\n"


def text_frame(run: Run, previous: Frame | None, options: LineOptions) -> str:
    """One line: ``0.2 S 23 92 45 101 A 48 192 129 9 dB -23 hits 1``; with delta ``.`` for an
    unchanged value, with a run of several frames `` xN``."""
    frame = run.frame
    delta = options.delta and not run.keyframe and previous is not None

    def codes(now: tuple[int, ...], before: tuple[int, ...] | None) -> str:
        return " ".join("." if delta and before is not None and c == b else str(c) for c, b in zip(now, before or now))

    s = codes(frame.S, previous.S if previous else None)
    a = codes(frame.A, previous.A if previous else None)
    measures = ""
    if options.measures and frame.level is not None:
        level = "." if delta and previous.level == frame.level else str(frame.level)
        hits = "." if delta and previous.hits == frame.hits else str(frame.hits)
        measures = f" dB {level} hits {hits}"
    more = f" x{run.n}" if run.n > 1 else ""
    return f"{fmt_time(frame.t)} S {s} A {a}{measures}{more}\n"


def render_text(stream: TokenStream, options: LineOptions) -> Iterator[Out]:
    """The compact text form: a ``#`` legend (and the glossary's, when the header has one),
    one line per frame line, ``# end``."""
    yield text_legend(stream, options)
    glossary = stream.header.glossary
    if glossary is not None:  # nat --glossary: a file's frames are known by now (runtime/glossary.annotate)
        frames = None if stream.header.source.sha256 is None else list(stream.frames)  # a stream still coming is never held
        if frames is not None:
            stream = stream.with_frames(frames)
        for line in legend_lines(ranked_entries(glossary, frames)):
            yield f"# {line}\n"
    previous: Frame | None = None
    for run in runs(stream.frames, stream.frame_rate, options):
        yield text_frame(run, previous, options)
        previous = run.frame
    end = stream.stats
    if end is not None:
        yield f"# end {stream.header.source.name}: {end.frames} frames, {fmt_time(end.duration_s)} s\n"


# --- the original script's text dumps -----------------------------------------------------


def render_hierarchical(stream: TokenStream, options: LineOptions) -> Iterator[Out]:  # noqa: ARG001
    """``[SEMANTIC] S0_n ... [ACOUSTIC] A0_n ...``: every level's codes in a row, on one line."""
    frames = list(stream.frames)
    words = ["[SEMANTIC]"]
    for i, name in enumerate(stream.s_names):
        words += [f"{name}_{f.S[i]}" for f in frames]
    words.append("[ACOUSTIC]")
    for i, name in enumerate(stream.a_names):
        words += [f"{name}_{f.A[i]}" for f in frames]
    yield " ".join(words) + "\n"


def render_interleaved(stream: TokenStream, options: LineOptions) -> Iterator[Out]:  # noqa: ARG001
    """``S_n A_n ...``: the original script's alternation of the level-by-level flattened streams."""
    # The original script flattened each stream level by level, then alternated S and A:
    # pair i is level i // frames of both streams at frame i % frames.
    frames = list(stream.frames)
    s_flat = [f.S[i] for i in range(len(stream.s_names)) for f in frames]
    a_flat = [f.A[i] for i in range(len(stream.a_names)) for f in frames]
    words = []
    for i in range(max(len(s_flat), len(a_flat))):
        if i < len(s_flat):
            words.append(f"S_{s_flat[i]}")
        if i < len(a_flat):
            words.append(f"A_{a_flat[i]}")
    yield " ".join(words) + "\n"


def render_structured(stream: TokenStream, options: LineOptions) -> Iterator[Out]:  # noqa: ARG001
    """``[T0][SEM:S0:n,...][AC:A0:n,...] [T1]...``: every frame, dense, on one line."""
    s_names, a_names = stream.s_names, stream.a_names
    segments = [
        f"[T{k}][SEM:" + ",".join(f"{n}:{f.S[i]}" for i, n in enumerate(s_names)) + "][AC:" + ",".join(f"{n}:{f.A[i]}" for i, n in enumerate(a_names)) + "]"
        for k, f in enumerate(stream.frames)
    ]
    yield " ".join(segments) + "\n"


# --- lam_audio_tokens v1.5 ----------------------------------------------------------------

LAM_LEGEND = (
    "S* are semantic tokens (musical content), A* acoustic tokens (timbre, texture); "
    "level 0 is the coarsest; equal numbers at a level mean similar sound"
)


def lam_header(stream: TokenStream, rle: bool) -> dict:
    """The original script's header event for ``stream``."""
    header = stream.header
    s_names, a_names = stream.s_names, stream.a_names
    src = header.source
    pack = header.pack
    fr = header.frame_rate
    sizes = {k: header.streams[k].codebook_size for k in ("S", "A")}
    model_id = f"nat-{pack.name if pack is not None else 'pack'}"
    layers = [{"name": n, "type": "semantic", "vocab": sizes["S"], "encoding": "rle" if rle else "dense"} for n in s_names]
    layers += [{"name": n, "type": "acoustic", "vocab": sizes["A"], "encoding": "dense"} for n in a_names]
    sr = int(src.sample_rate or 0)
    return {
        "event": "header",
        "format_version": "1.5",
        "schema": "lam_audio_tokens",
        "model_id": model_id,
        "codebook_id": f"{model_id}-cb-{sizes['S']}",
        "sr": sr,
        "hop": round(sr / fr),
        "hop_ms": round(1000 / fr, 3),
        "frames_per_second": fr,
        "encoding_mode": "rle" if rle else "dense",
        "time_units": "ms",
        "start_ts": 0.0,
        "layers": layers,
        "legend": LAM_LEGEND,
        "duration_seconds": None if src.duration_s is None else round(float(src.duration_s), 3),
        "audio_sha256": src.sha256,
        "metadata": {
            "file_path": src.name,
            "processing_sample_rate": sr,
            "generator": "nat",
            "pack": pack.name if pack is not None else None,
            "pack_manifest_sha256": pack.manifest_sha256 if pack is not None else None,
        },
    }


def render_lam(stream: TokenStream, options: LineOptions) -> Iterator[Out]:
    """Frames -> lam events. With ``--rle`` the semantic layers are run-length coded as the
    original script did (a ``tokens`` event only when some layer changes, carrying the
    changed S levels and all A levels as ``A_dense``; keyframes are dense ``frame``
    events); each event's ``dur`` covers every frame until the next event."""
    s_names = stream.s_names
    frame_ms = 1000 / stream.frame_rate
    rle = options.rle
    yield lam_header(stream, rle)
    previous: Frame | None = None
    count = 0
    for run in runs(stream.frames, stream.frame_rate, LineOptions(options.keyframe_interval_s, rle=rle, measures=False)):
        frame = run.frame
        count += run.n
        base = {"fi": frame.index, "ts": round(frame.index * frame_ms, 3), "dur": round(run.n * frame_ms, 3)}
        if not rle or run.keyframe or previous is None:
            event = {"event": "frame", **base, "S": list(frame.S), "A": list(frame.A)}
            if rle:
                event["is_keyframe"] = True
        else:
            event = {"event": "tokens", **base}
            event.update({name: c for name, c, before in zip(s_names, frame.S, previous.S) if c != before})
            event["A_dense"] = list(frame.A)
        previous = frame
        yield event
    end = stream.stats
    event = {"event": "end", "frames": count}
    if end is not None:
        written = end.to_json()
        event["stats"] = {
            "frames": written["frames"],
            "duration_seconds": written["duration_s"],
            "nonfinite_samples": written["nonfinite_samples"],
            "tokens": written["tokens"],
        }
        if end.source is not None:  # piped input: the size and hash its header could not carry
            event["stats"]["source"] = written["source"]
    yield event


# --- registry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputFormat:
    """A format: how to render a stream, what an error record looks like, its file suffix."""

    name: str
    suffix: str
    render: Callable[[TokenStream, LineOptions], Iterator[Out]]

    def error(self, record: dict) -> Out:
        """The format's form of an error record (ndjson.error_record)."""
        if self.name == "ndjson":
            return record
        if self.name == "lam":
            return {"event": "error", "source": record["source"], "error": record["error"], "message": record["message"]}
        return f"# error: {record['message']}\n"


REGISTRY = {
    "ndjson": OutputFormat("ndjson", ".ndjson", render_ndjson),
    "text": OutputFormat("text", ".txt", render_text),
    "hierarchical": OutputFormat("hierarchical", ".txt", render_hierarchical),
    "interleaved": OutputFormat("interleaved", ".txt", render_interleaved),
    "structured": OutputFormat("structured", ".txt", render_structured),
    "lam": OutputFormat("lam", ".ndjson", render_lam),
}


def get(name: str) -> OutputFormat:
    """The format called ``name`` (one of FORMATS)."""
    return REGISTRY[name]


def to_text(out: Out) -> str:
    """A rendered line as the exact text written (NDJSON lines serialized canonically)."""
    return out if isinstance(out, str) else dumps(out)


def render_text_of(fmt: OutputFormat, stream: TokenStream, options: LineOptions) -> str:
    """The whole output of one stream as text (budget estimates, files of --all-outputs)."""
    return "".join(to_text(o) for o in fmt.render(stream, options))
