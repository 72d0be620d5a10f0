"""``nat --all-outputs --output-dir DIR INPUT...``: per input, the token files the original script wrote
plus pictures, metrics and a short Markdown report that embeds them.

For an input ``song.flac`` the folder gets:

- ``song_tokens.ndjson`` (NAT NDJSON in the chosen encoding; lam events with ``--format lam``),
  ``song_tokens.json`` (one JSON document: header, columns of times and codes, stats),
  ``song_tokens.txt`` (the chosen text format, else the compact ``text`` form)
- ``song_overview.png`` (waveform, log-mel spectrogram, token rows on one time axis),
  ``song_histograms.png`` (code counts per level)
- ``song_metrics.json`` (per level: distinct codes, entropy, change rate, run lengths)
- ``song_report.md`` (the above in one page)

Every file is written under a temporary name and renamed when complete. Inputs that fail
leave their error record in ``<name>_tokens.ndjson`` and a line on stderr; the others are
still written. Nothing is written to stdout.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from ...errors import InputError
from ...runtime import formats
from ...runtime.header import Header
from ...runtime.ndjson import dumps, error_record
from ...runtime.ndjson import lines as ndjson_lines
from ...runtime.records import LineOptions
from ...runtime.sinks import DirectorySink, atomic_write
from ...runtime.stream import TokenStream
from ..progress import observe
from . import viz
from .metrics import stream_metrics
from .spectrum import Analyzer

log = logging.getLogger("nat")


def write_file(path: Path, data: bytes) -> None:
    atomic_write(path, data)
    log.info("wrote %s", path)


def tokens_json(stream: TokenStream, header: dict, stats: dict | None) -> bytes:
    """One JSON document: the header and stats as written (``header``, ``stats``: the NDJSON
    objects), times and codes in columns."""
    frames = list(stream.frames)
    columns = {n: [f.S[i] for f in frames] for i, n in enumerate(stream.s_names)}
    columns.update({n: [f.A[i] for f in frames] for i, n in enumerate(stream.a_names)})
    doc = {"header": header, "frames": len(frames), "t": [f.t for f in frames], "tokens": columns, "stats": stats}
    return (json.dumps(doc, separators=(",", ":"), ensure_ascii=True) + "\n").encode("ascii")


def markdown(header: Header, metrics: dict, files: dict[str, str]) -> str:
    src = header.source
    ch = {1: "mono", 2: "stereo"}.get(src.channels, f"{src.channels} channels")
    pack = header.pack.name if header.pack is not None else "?"
    lines = [
        f"# {src.name}",
        "",
        f"{metrics['duration_s']:g} s, {src.sample_rate} Hz {ch}, {src.format} · pack `{pack}`"
        f" ({header.frame_rate} frames/s) · {metrics['frames']} frames",
        "",
        f"![waveform, spectrogram and tokens of {src.name}]({files['overview']})",
        "",
        "Top to bottom: the waveform, a log-mel spectrogram and the token levels on the same time axis.",
        "Token colours stand for codes (same colour, same token); S levels describe musical content,",
        "A levels timbre; level 0 is the coarsest.",
        "",
        "## Token levels",
        "",
        "| level | distinct codes | entropy (bits) | change rate | mean run (s) | longest run (s) | most common |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, m in metrics["levels"].items():
        top = ", ".join(f"{c} ({n})" for c, n in m["top_codes"][:3])
        lines.append(
            f"| {name} | {m['distinct']} | {m['entropy_bits']:.2f} | {m['change_rate']:.2f} | {m['runs']['mean_s']:g} | {m['runs']['max_s']:g} | {top} |"
        )
    lines += [
        "",
        f"![token histograms of {src.name}]({files['histograms']})",
        "",
        "## Files",
        "",
        *[f"- [`{name}`]({name})" for name in files.values() if not name.endswith(".md")],
        "",
    ]
    return "\n".join(lines)


def write_input(folder: Path, stem: str, stream: TokenStream, analysis, fmt_name: str, options: LineOptions) -> None:
    """All files for one tokenized input (``stream``: its frames all known)."""
    header = stream.header
    fr = header.frame_rate
    frames = list(stream.frames)
    names = stream.s_names + stream.a_names
    files = {
        "ndjson": f"{stem}_tokens.ndjson",
        "json": f"{stem}_tokens.json",
        "txt": f"{stem}_tokens.txt",
        "overview": f"{stem}_overview.png",
        "histograms": f"{stem}_histograms.png",
        "metrics": f"{stem}_metrics.json",
        "report": f"{stem}_report.md",
    }
    written = list(ndjson_lines(stream, options))
    complete = TokenStream.complete(header, frames, stream.stats)
    if fmt_name == "lam":
        token_text = formats.render_text_of(formats.get("lam"), stream, options)
    else:
        token_text = "".join(map(dumps, written))
    write_file(folder / files["ndjson"], token_text.encode("ascii"))
    # as written: the header with its encoding, the stats with their line count
    write_file(folder / files["json"], tokens_json(complete, written[0], written[-1]))
    txt_format = fmt_name if fmt_name in ("text", *formats.ORIGINAL_TEXT) else "text"
    write_file(folder / files["txt"], formats.render_text_of(formats.get(txt_format), stream, options).encode("utf-8"))
    title = f"{header.source.name} · pack {header.pack.name if header.pack is not None else '?'}"
    write_file(folder / files["overview"], viz.overview_png(title, analysis, frames, names, fr))
    sizes = {"S": header.streams["S"].codebook_size, "A": header.streams["A"].codebook_size}
    write_file(folder / files["histograms"], viz.histograms_png(header.source.name, frames, names, sizes))
    metrics = stream_metrics(complete)
    write_file(folder / files["metrics"], (json.dumps(metrics, indent=2) + "\n").encode("ascii"))
    write_file(folder / files["report"], markdown(header, metrics, files).encode("utf-8"))


def write_all_outputs(tokenizer, items, folder: str, options: LineOptions, fmt_name: str, raw_rate: int, analysis_rate: int | None, progress) -> tuple[int, int]:
    """Tokenize each input and write its files; a failing input never stops the others."""
    namer = DirectorySink(folder, suffix="")
    root = Path(folder)
    ok = failed = 0
    for item in progress.inputs(items):
        stem = namer.output_name(item.name)
        try:
            source = item.open(raw_rate)
            analyzer = Analyzer(source.info.sample_rate, analysis_rate)
            observe(source, analyzer.push)
            with progress.file(source):
                stream = tokenizer.stream(source).materialized()
            write_input(root, stem, stream, analyzer.finish(), fmt_name, options)
            ok += 1
            for note in getattr(source, "warnings", list)():  # raw fallback, NaN, truncation
                log.warning("%s: warning: %s", item.name, note)
        except InputError as exc:
            failed += 1
            print(f"nat: {exc}", file=sys.stderr)
            record = formats.get(fmt_name if fmt_name == "lam" else "ndjson").error(error_record(item.name, exc))
            write_file(root / f"{stem}_tokens.ndjson", dumps(record).encode("ascii"))
    return ok, failed

