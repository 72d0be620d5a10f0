"""Output formats for a token stream: NAT NDJSON, a compact text form, the seed's text forms
and the seed's ``lam_audio_tokens`` v1.5 NDJSON.

Every format renders the same thing, the line objects :func:`ndjson.stream_lines` yields
(header, frame lines, stats), so a format is a pure function of the stream: same input
bytes and pack give byte-identical output in every format. Formats are pull-based
generators, so ``ndjson``, ``text`` and ``lam`` stream as chunks finish; the seed's three
text forms lay tokens out level by level or as one long line, so they wait for the end.

- ``ndjson``: NAT NDJSON v1 (docs/ndjson.md), in the chosen encoding (dense/delta/RLE).
- ``text``: one line per frame, ``0.2 S 23 92 45 101 A 48 192 129 9``, after a one-line
  ``#`` legend; ``--delta`` prints ``.`` for an unchanged token, ``--rle`` appends ``x3``
  to a line standing for 3 identical frames; ``# end ...`` closes each stream. About half
  the LLM tokens of dense NDJSON.
- ``hierarchical`` / ``interleaved`` / ``structured``: the seed's text dumps, one line per
  input (``[SEMANTIC] S0_n ... [ACOUSTIC] A0_n ...``; ``S_n A_n ...``;
  ``[T0][SEM:S0:n,...][AC:A0:n,...] [T1]...``), always dense.
- ``lam``: the seed's event NDJSON (header/frame/tokens/end events), so tools written for
  the original script keep working; its end event holds no wall-clock figures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Union

from .records import LineOptions

FORMATS = ("ndjson", "text", "hierarchical", "interleaved", "structured", "lam")
SEED_TEXT = ("hierarchical", "interleaved", "structured")

# A rendered line: a dict is an NDJSON object (the sink serializes it), a str is text with its newline.
Out = Union[str, dict]


def level_names(header: dict) -> tuple[list[str], list[str]]:
    """The S and A token names a header declares, in level order."""
    streams = header.get("streams", {})
    return list(streams.get("S", {}).get("tokens", [])), list(streams.get("A", {}).get("tokens", []))


def split_stream(lines: Iterable[dict]) -> tuple[dict, Iterator[dict], Callable[[], dict | None]]:
    """(header, frame lines, stats()) from one stream's line objects; ``stats()`` is valid
    once the frame iterator is exhausted."""
    it = iter(lines)
    header = next(it)
    box: list[dict] = []

    def frames() -> Iterator[dict]:
        for line in it:
            if line.get("type") == "stats":
                box.append(line)
                return
            yield line

    return header, frames(), lambda: box[0] if box else None


def fmt_time(t: float) -> str:
    """Seconds as short as exact: 0 -> '0', 1.2 -> '1.2', 12.345 -> '12.345'."""
    text = repr(float(t))
    return text[:-2] if text.endswith(".0") else text


# --- ndjson -------------------------------------------------------------------------------


def render_ndjson(lines: Iterable[dict], options: LineOptions) -> Iterator[Out]:  # noqa: ARG001
    yield from lines


# --- text ---------------------------------------------------------------------------------


def text_legend(header: dict, options: LineOptions) -> str:
    s_names, a_names = level_names(header)
    src = header.get("source", {})
    pack = header.get("pack", {}).get("name", "?")
    parts = [
        f"# {src.get('name', 'input')}",
        f"{fmt_time(round(float(src.get('duration_s', 0.0)), 3))} s",
        f"pack {pack}",
        f"{header.get('frame_rate')} frames/s",
        "line: t S " + " ".join(s_names) + " A " + " ".join(a_names)
        + " (t start s; S semantic: musical content; A acoustic: timbre; level 0 coarsest;"
        " equal numbers at a level = similar sound"
        + ("; . = unchanged" if options.delta else "")
        + ("; xN = N identical frames" if options.rle else "")
        + ")",
    ]
    fit = header.get("fit")
    if fit and fit.get("pool", 1) > 1:
        parts.append(f"each line pools {fit['pool']} frames ({fmt_time(fit.get('line_s', 0))} s): most common token per level")
    return " | ".join(parts) + "\n"


def text_frame(line: dict, s_names: list[str], a_names: list[str]) -> str:
    s = " ".join(str(line[k]) if k in line else "." for k in s_names)
    a = " ".join(str(line[k]) if k in line else "." for k in a_names)
    run = f" x{line['n']}" if "n" in line else ""
    return f"{fmt_time(line['t'])} S {s} A {a}{run}\n"


def render_text(lines: Iterable[dict], options: LineOptions) -> Iterator[Out]:
    header, frames, stats = split_stream(lines)
    s_names, a_names = level_names(header)
    yield text_legend(header, options)
    for line in frames:
        yield text_frame(line, s_names, a_names)
    end = stats()
    if end is not None:
        yield f"# end {header.get('source', {}).get('name', 'input')}: {end['frames']} frames, {fmt_time(end['duration_s'])} s\n"


# --- the seed's text dumps ----------------------------------------------------------------


def _dense_columns(lines: Iterable[dict]) -> tuple[dict, list[str], list[str], list[dict]]:
    header, frames, _stats = split_stream(lines)
    s_names, a_names = level_names(header)
    rows = list(frames)  # reads through the stats line
    return header, s_names, a_names, rows


def render_hierarchical(lines: Iterable[dict], options: LineOptions) -> Iterator[Out]:  # noqa: ARG001
    _h, s_names, a_names, rows = _dense_columns(lines)
    words = ["[SEMANTIC]"]
    for name in s_names:
        words += [f"{name}_{row[name]}" for row in rows]
    words.append("[ACOUSTIC]")
    for name in a_names:
        words += [f"{name}_{row[name]}" for row in rows]
    yield " ".join(words) + "\n"


def render_interleaved(lines: Iterable[dict], options: LineOptions) -> Iterator[Out]:  # noqa: ARG001
    # The seed flattened each stream level by level, then alternated S and A: pair i is
    # level i // frames of both streams at frame i % frames.
    _h, s_names, a_names, rows = _dense_columns(lines)
    s_flat = [row[name] for name in s_names for row in rows]
    a_flat = [row[name] for name in a_names for row in rows]
    words = []
    for i in range(max(len(s_flat), len(a_flat))):
        if i < len(s_flat):
            words.append(f"S_{s_flat[i]}")
        if i < len(a_flat):
            words.append(f"A_{a_flat[i]}")
    yield " ".join(words) + "\n"


def render_structured(lines: Iterable[dict], options: LineOptions) -> Iterator[Out]:  # noqa: ARG001
    _h, s_names, a_names, rows = _dense_columns(lines)
    segments = [
        f"[T{i}][SEM:" + ",".join(f"{n}:{row[n]}" for n in s_names) + "][AC:" + ",".join(f"{n}:{row[n]}" for n in a_names) + "]"
        for i, row in enumerate(rows)
    ]
    yield " ".join(segments) + "\n"


# --- lam_audio_tokens v1.5 ----------------------------------------------------------------

LAM_LEGEND = (
    "S* are semantic tokens (musical content), A* acoustic tokens (timbre, texture); "
    "level 0 is the coarsest; equal numbers at a level mean similar sound"
)


def lam_header(header: dict, rle: bool) -> dict:
    s_names, a_names = level_names(header)
    src = header.get("source", {})
    pack = header.get("pack", {})
    fr = header["frame_rate"]
    sizes = {k: header["streams"][k]["codebook_size"] for k in ("S", "A")}
    model_id = f"nat-{pack.get('name', 'pack')}"
    layers = [{"name": n, "type": "semantic", "vocab": sizes["S"], "encoding": "rle" if rle else "dense"} for n in s_names]
    layers += [{"name": n, "type": "acoustic", "vocab": sizes["A"], "encoding": "dense"} for n in a_names]
    sr = int(src.get("sample_rate", 0))
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
        "duration_seconds": round(float(src.get("duration_s", 0.0)), 3),
        "audio_sha256": src.get("sha256"),
        "metadata": {
            "file_path": src.get("name"),
            "processing_sample_rate": sr,
            "generator": "nat",
            "pack": pack.get("name"),
            "pack_manifest_sha256": pack.get("manifest_sha256"),
        },
    }


def render_lam(lines: Iterable[dict], options: LineOptions) -> Iterator[Out]:
    """Dense frame lines (with ``kf``) -> lam events. With ``--rle`` the semantic layers are
    run-length coded as the seed did (a ``tokens`` event only when some layer changes,
    carrying the changed S levels and all A levels as ``A_dense``; keyframes are dense
    ``frame`` events); each event's ``dur`` covers every frame until the next event."""
    header, frames, stats = split_stream(lines)
    s_names, a_names = level_names(header)
    fr = header["frame_rate"]
    frame_ms = 1000 / fr
    rle = options.rle
    yield lam_header(header, rle)
    pending: tuple[dict, int] | None = None  # (event, frames it covers so far)
    previous: dict | None = None
    count = 0
    for line in frames:
        fi = round(line["t"] * fr)
        count += 1
        tokens = {k: line[k] for k in s_names + a_names}
        keyframe = bool(line.get("kf"))
        if rle and pending is not None and not keyframe and tokens == previous:
            pending = (pending[0], pending[1] + 1)
            continue
        if pending is not None:
            yield _lam_close(*pending, frame_ms)
        base = {"fi": fi, "ts": round(fi * frame_ms, 3), "dur": 0.0}
        if not rle or keyframe or previous is None:
            event = {"event": "frame", **base, "S": [line[k] for k in s_names], "A": [line[k] for k in a_names]}
            if rle:
                event["is_keyframe"] = True
        else:
            event = {"event": "tokens", **base}
            event.update({k: tokens[k] for k in s_names if tokens[k] != previous[k]})
            event["A_dense"] = [line[k] for k in a_names]
        pending = (event, 1)
        previous = tokens
    if pending is not None:
        yield _lam_close(*pending, frame_ms)
    end = stats()
    event = {"event": "end", "frames": count}
    if end is not None:
        event["stats"] = {
            "frames": end["frames"],
            "duration_seconds": end["duration_s"],
            "nonfinite_samples": end["nonfinite_samples"],
            "tokens": end["tokens"],
        }
    yield event


def _lam_close(event: dict, frames: int, frame_ms: float) -> dict:
    event["dur"] = round(frames * frame_ms, 3)
    return event


# --- registry -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputFormat:
    """A format: how to render a stream, what an error record looks like, its file suffix."""

    name: str
    suffix: str
    render: Callable[[Iterable[dict], LineOptions], Iterator[Out]]
    encodes_itself: bool  # True: wants dense frame lines (with kf) and applies options itself

    def stream_options(self, options: LineOptions) -> LineOptions:
        """The LineOptions ``stream_lines`` should produce for this format."""
        return LineOptions(options.keyframe_interval_s) if self.encodes_itself else options

    def error(self, record: dict) -> Out:
        if self.name == "ndjson":
            return record
        if self.name == "lam":
            return {"event": "error", "source": record["source"], "error": record["error"], "message": record["message"]}
        return f"# error: {record['message']}\n"


REGISTRY = {
    "ndjson": OutputFormat("ndjson", ".ndjson", render_ndjson, False),
    "text": OutputFormat("text", ".txt", render_text, False),
    "hierarchical": OutputFormat("hierarchical", ".txt", render_hierarchical, True),
    "interleaved": OutputFormat("interleaved", ".txt", render_interleaved, True),
    "structured": OutputFormat("structured", ".txt", render_structured, True),
    "lam": OutputFormat("lam", ".ndjson", render_lam, True),
}


def get(name: str) -> OutputFormat:
    return REGISTRY[name]


def to_text(out: Out) -> str:
    """A rendered line as the exact text written (NDJSON lines serialized canonically)."""
    if isinstance(out, str):
        return out
    from .ndjson import dumps

    return dumps(out)


def render_text_of(fmt: OutputFormat, lines: Iterable[dict], options: LineOptions) -> str:
    """The whole output of one stream as text (budget estimates, files of --all-outputs)."""
    return "".join(to_text(o) for o in fmt.render(lines, options))
