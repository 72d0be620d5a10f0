"""``nat prompt INPUT``: a ready-to-paste LLM prompt, the seed's question followed by the
token stream, fitted to a token budget.

The stream keeps its header (legend included: the LLM needs it to read the numbers) and
stats line. When the dense stream is over budget, runs of identical frames are merged
(RLE), then consecutive frames are pooled by the smallest whole factor that fits (see
budget.py); the header's ``fit`` object says what was done, e.g.
``"fit":{"pool":3,"line_s":0.6,"rle":true,"budget":30000,"estimated_tokens":29411}``.
The budget counts the whole prompt, question included, with budget.estimate_tokens.

INPUT is an audio file ('-': stdin), or a NAT NDJSON file (``.ndjson``/``.jsonl``) already
tokenized, which is then only re-fitted.
"""

from __future__ import annotations

import argparse
import sys

from .errors import EXIT_OK, EXIT_USAGE, InputError, NatError
from .records import LineOptions

DEFAULT_BUDGET = 30000
TOKEN_FILE_SUFFIXES = (".ndjson", ".jsonl")

QUESTION = """\
Here's a stream of audio tokens from a musical recording. Each line is a {line_s}-second slice \
described by {s} semantic and {a} acoustic tokens. Please infer:
1. The type or genre of sound
2. What mood or emotion it conveys
3. Likely instruments
4. Imagery it evokes
5. How it evolves over time

You don't need to know what the tokens mean. Just guess.
"""

EPILOG = f"""\
The budget counts LLM tokens of the whole prompt, estimated from the text (about 1 token per
digit group or punctuation run; see the README). Over budget, identical frames are merged
(RLE), then frames are pooled 2, 3, ... at a time (most common token per level) until it fits;
the header's "fit" says what was done.
examples:
  nat prompt song.flac                          # fitted to {DEFAULT_BUDGET} tokens, NDJSON
  nat prompt song.flac --budget 8000 --format text | pbcopy
  nat prompt tokens/song.ndjson --budget 4000   # re-fit a stream tokenized earlier
"""


def question(header: dict) -> str:
    fit = header.get("fit", {})
    line_s = fit.get("line_s", round(1 / header["frame_rate"], 3))
    from .formats import fmt_time, level_names

    s_names, a_names = level_names(header)
    return QUESTION.format(line_s=fmt_time(line_s), s=len(s_names), a=len(a_names))


def renderer(fmt: str):
    """line objects -> the stream's text, in ``fmt`` (ndjson or text)."""
    from . import formats

    output = formats.get(fmt)

    def render(lines: list[dict]) -> str:
        rle = "rle" in lines[0].get("encoding", {}).get("mode", "")
        return formats.render_text_of(output, lines, LineOptions(0, rle=rle))

    return render


def build_prompt(header: dict, frames, stats: dict, budget: int, fmt: str = "ndjson") -> str:
    """The prompt text: question, blank line, the fitted stream."""
    from .budget import estimate_tokens, fit_stream

    render = renderer(fmt)
    overhead = estimate_tokens(question(header) + "\n")
    fit = fit_stream(header, frames, stats, budget, render, overhead)
    if fit is None:
        from .budget import stream_dicts

        smallest = stream_dicts(header, frames[:1], stats, LineOptions(0), header["frame_rate"])
        need = estimate_tokens(render(smallest)) + overhead
        raise NatError(f"--budget {budget} is too small: the question, header and one frame alone need ~{need} tokens")
    return question(fit.lines[0]) + "\n" + render(fit.lines)


def _load_tokens(path: str):
    """(header, frames, stats) from a NAT NDJSON file holding one stream."""
    from .reader import read_path

    streams = read_path(path)
    if len(streams) != 1:
        raise NatError(f"{path}: holds {len(streams)} streams; nat prompt takes one")
    stream = streams[0]
    if stream.kind != "nat":
        raise NatError(f"{path}: a lam_audio_tokens file; nat prompt reads audio or NAT NDJSON (retokenize the audio)")
    if stream.error:
        raise InputError(f"{path}: holds an error record, not tokens ({stream.error})")
    frames = stream.frame_objects()
    stats = stream.stats or {"type": "stats", "frames": len(frames), "lines": 0, "duration_s": stream.header["source"].get("duration_s", 0.0), "nonfinite_samples": 0, "tokens": {}}
    return stream.header, frames, stats


def _tokenize(args):
    from .audio import display_name, open_bytes, open_path
    from .ndjson import stream_lines
    from .records import expand
    from .reader import TokenStream
    from .tokenizer import Tokenizer

    tokenizer = Tokenizer.load(args.pack, device=args.device, threads=args.threads)
    if args.input == "-":
        source = open_bytes(sys.stdin.buffer.read(), "stdin", args.raw_rate)
    else:
        source = open_path(args.input, args.raw_rate)
    lines = list(stream_lines(tokenizer, source, LineOptions(0)))
    header, stats = lines[0], lines[-1]
    levels = list(header["streams"]["S"]["tokens"]) + list(header["streams"]["A"]["tokens"])
    fr = header["frame_rate"]
    stream = TokenStream("nat", display_name(args.input), fr, levels, None, "", None)
    for frame in expand(lines[1:-1], fr):
        stream.frames[round(frame["t"] * fr)] = tuple(frame[k] for k in levels)
    return header, stream.frame_objects(), stats


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        print(f"nat: prompt: {message} (see nat prompt --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="nat prompt",
        description="Print an LLM prompt: the question the seed asked, then the token stream, fitted to a token budget.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="INPUT", help="audio file ('-': stdin) or a NAT .ndjson/.jsonl token file")
    p.add_argument("--budget", type=int, default=DEFAULT_BUDGET, metavar="TOKENS", help=f"LLM tokens the whole prompt may use (default {DEFAULT_BUDGET})")
    p.add_argument("--format", choices=("ndjson", "text"), default="ndjson", help="stream as NDJSON (default) or the compact text form")
    p.add_argument("--pack", default=None, metavar="NAME|PATH", help="pack name or folder (default: builtin)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"), help="execution device (default: cpu)")
    p.add_argument("--threads", type=int, default=0, metavar="N", help="CPU threads per encoder (default: all cores)")
    p.add_argument("--raw-rate", type=int, default=16000, metavar="HZ", help="sample rate for undecodable input read as raw PCM")
    p.add_argument("-o", "--output", metavar="FILE", help="write the prompt to FILE (default: stdout)")
    return p


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.budget < 1:
        raise NatError("--budget must be a positive number of tokens")
    if args.input.lower().endswith(TOKEN_FILE_SUFFIXES):
        header, frames, stats = _load_tokens(args.input)
    else:
        header, frames, stats = _tokenize(args)
    text = build_prompt(header, frames, stats, args.budget, args.format)
    if args.output and args.output != "-":
        from pathlib import Path

        from .sinks import _AtomicFile

        out = _AtomicFile(Path(args.output))
        out.write(text.encode("utf-8"))
        out.commit()
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``nat prompt``."""
    try:
        return run(list(sys.argv[1:] if argv is None else argv))
    except NatError as exc:
        print(f"nat: prompt: {exc}", file=sys.stderr)
        return exc.exit_code
