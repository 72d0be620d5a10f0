"""``nat --all-outputs --output-dir DIR INPUT...``: per input, the token files the seed wrote
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
from collections.abc import Sequence
from pathlib import Path

from . import formats
from .errors import InputError
from .ndjson import dumps, error_record, stream_lines
from .budget import dense_frames
from .records import Frame, LineOptions
from .sinks import DirectorySink, _AtomicFile

log = logging.getLogger("nat")


def write_file(path: Path, data: bytes) -> None:
    out = _AtomicFile(path)
    out.write(data)
    out.commit()
    log.info("wrote %s", path)


def tokens_json(header: dict, frames: Sequence[Frame], stats: dict) -> bytes:
    s_names, a_names = formats.level_names(header)
    columns = {n: [f.S[i] for f in frames] for i, n in enumerate(s_names)}
    columns.update({n: [f.A[i] for f in frames] for i, n in enumerate(a_names)})
    doc = {"header": header, "frames": len(frames), "t": [f.t for f in frames], "tokens": columns, "stats": stats}
    return (json.dumps(doc, separators=(",", ":"), ensure_ascii=True) + "\n").encode("ascii")


def markdown(stem: str, header: dict, metrics: dict, files: dict[str, str]) -> str:
    src = header["source"]
    ch = {1: "mono", 2: "stereo"}.get(src["channels"], f"{src['channels']} channels")
    lines = [
        f"# {src['name']}",
        "",
        f"{metrics['duration_s']:g} s, {src['sample_rate']} Hz {ch}, {src['format']} · pack `{header['pack']['name']}`"
        f" ({header['frame_rate']} frames/s) · {metrics['frames']} frames",
        "",
        f"![waveform, spectrogram and tokens of {src['name']}]({files['overview']})",
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
        f"![token histograms of {src['name']}]({files['histograms']})",
        "",
        "## Files",
        "",
        *[f"- [`{name}`]({name})" for name in files.values() if not name.endswith(".md")],
        "",
    ]
    return "\n".join(lines)


def write_input(folder: Path, stem: str, lines: list[dict], analysis, fmt_name: str, options: LineOptions) -> None:
    """All files for one tokenized input (``lines``: its NDJSON line objects under ``options``)."""
    from . import viz
    from .metrics import stream_metrics

    header, stats = lines[0], lines[-1]
    fr = header["frame_rate"]
    frames = dense_frames(lines)
    s_names, a_names = formats.level_names(header)
    names = s_names + a_names
    files = {
        "ndjson": f"{stem}_tokens.ndjson",
        "json": f"{stem}_tokens.json",
        "txt": f"{stem}_tokens.txt",
        "overview": f"{stem}_overview.png",
        "histograms": f"{stem}_histograms.png",
        "metrics": f"{stem}_metrics.json",
        "report": f"{stem}_report.md",
    }
    if fmt_name == "lam":
        ndjson_text = formats.render_text_of(formats.get("lam"), _dense_lines(lines, frames, options), options)
    else:
        ndjson_text = "".join(dumps(line) for line in lines)
    write_file(folder / files["ndjson"], ndjson_text.encode("ascii"))
    write_file(folder / files["json"], tokens_json(header, frames, stats))
    txt_format = fmt_name if fmt_name in ("text", *formats.SEED_TEXT) else "text"
    txt_lines = lines if txt_format == "text" else _dense_lines(lines, frames, options)
    write_file(folder / files["txt"], formats.render_text_of(formats.get(txt_format), txt_lines, options).encode("utf-8"))
    title = f"{header['source']['name']} · pack {header['pack']['name']}"
    write_file(folder / files["overview"], viz.overview_png(title, analysis, frames, names, fr))
    sizes = {"S": header["streams"]["S"]["codebook_size"], "A": header["streams"]["A"]["codebook_size"]}
    write_file(folder / files["histograms"], viz.histograms_png(header["source"]["name"], frames, names, sizes))
    metrics = stream_metrics(header, frames, stats)
    write_file(folder / files["metrics"], (json.dumps(metrics, indent=2) + "\n").encode("ascii"))
    write_file(folder / files["report"], markdown(stem, header, metrics, files).encode("utf-8"))


def _dense_lines(lines: list[dict], frames: list[Frame], options: LineOptions) -> list[dict]:
    """The stream with dense frame lines (keyframes marked), whatever ``lines`` were encoded as."""
    from .records import frame_lines

    header, stats = lines[0], lines[-1]
    dense = list(frame_lines(frames, header["frame_rate"], LineOptions(options.keyframe_interval_s)))
    return [header, *dense, stats]


def write_all_outputs(tokenizer, items, folder: str, options: LineOptions, fmt_name: str, raw_rate: int, analysis_rate: int | None, progress) -> tuple[int, int]:
    """Tokenize each input and write its files; a failing input never stops the others."""
    from .progress import observe
    from .spectrum import Analyzer

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
                lines = list(stream_lines(tokenizer, source, options))
            write_input(root, stem, lines, analyzer.finish(), fmt_name, options)
            ok += 1
            for note in getattr(source, "warnings", list)():  # raw fallback, NaN, truncation
                log.warning("%s: warning: %s", item.name, note)
        except InputError as exc:
            failed += 1
            print(f"nat: {exc}", file=sys.stderr)
            record = formats.get(fmt_name if fmt_name == "lam" else "ndjson").error(error_record(item.name, exc))
            write_file(root / f"{stem}_tokens.ndjson", dumps(record).encode("ascii"))
    return ok, failed

