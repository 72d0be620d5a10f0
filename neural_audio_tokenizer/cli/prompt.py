"""``nat prompt INPUT``: a ready-to-paste LLM prompt, the original script's question followed
by the token stream, fitted to a token budget.

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

import sys

from ..errors import EXIT_OK, InputError, NatError
from ..runtime import formats
from ..runtime.reader import read_path
from ..runtime.records import LineOptions
from ..runtime.sinks import atomic_write
from ..runtime.stream import TokenStream
from . import command
from .budget import estimate_tokens, fit_stream

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


def question(stream: TokenStream) -> str:
    """The question, naming how long a line is and how many tokens each stream has."""
    header = stream.header
    line_s = header.get("fit", {}).get("line_s", round(1 / header["frame_rate"], 3))
    return QUESTION.format(line_s=formats.fmt_time(line_s), s=len(stream.s_names), a=len(stream.a_names))


def renderer(fmt: str):
    """(stream, line options) -> the stream's text, in ``fmt`` (ndjson or text)."""
    output = formats.get(fmt)

    def render(stream: TokenStream, options: LineOptions) -> str:
        return formats.render_text_of(output, stream, options)

    return render


def build_prompt(stream: TokenStream, budget: int, fmt: str = "ndjson") -> str:
    """The prompt text: question, blank line, the stream fitted to ``budget`` LLM tokens.

    ``stream``: one input's stream with all its frames known; ``fmt``: ndjson or text."""
    render = renderer(fmt)
    overhead = estimate_tokens(question(stream) + "\n")
    fit = fit_stream(stream, budget, render, overhead)
    if fit is None:
        first = TokenStream.complete(stream.header, list(stream.frames)[:1], stream.stats)
        need = estimate_tokens(render(first, LineOptions(0))) + overhead
        raise NatError(f"--budget {budget} is too small: the question, header and one frame alone need ~{need} tokens")
    return question(fit.stream) + "\n" + render(fit.stream, fit.options)


def _load_tokens(path: str) -> TokenStream:
    """The one stream of a NAT NDJSON file."""
    streams = read_path(path)
    if len(streams) != 1:
        raise NatError(f"{path}: holds {len(streams)} streams; nat prompt takes one")
    stream = streams[0]
    if stream.header.get("format") != "nat-tokens":
        raise NatError(f"{path}: a lam_audio_tokens file; nat prompt reads audio or NAT NDJSON (retokenize the audio)")
    if stream.error:
        raise InputError(f"{path}: holds an error record, not tokens ({stream.error})")
    if stream.stats is None:
        frames = list(stream.frames)
        stats = {"type": "stats", "frames": len(frames), "lines": 0, "duration_s": stream.header["source"].get("duration_s") or 0.0, "nonfinite_samples": 0, "tokens": {}}
        stream = TokenStream.complete(stream.header, frames, stats)
    return stream


def _tokenize(args) -> TokenStream:
    """The stream of an audio input, all frames computed (fitting needs them all)."""
    from ..runtime.tokenizer import Tokenizer  # onnxruntime and the decoders: only for audio

    tokenizer = Tokenizer.load(args.pack, device=args.device, threads=args.threads)
    if args.input == "-":
        return tokenizer.stream(sys.stdin.buffer.read(), "stdin", args.raw_rate).materialized()
    return tokenizer.stream(args.input, raw_rate=args.raw_rate).materialized()


def build_parser() -> command.Parser:
    p = command.parser(
        "nat prompt",
        "Print an LLM prompt: the question the original script asked, then the token stream, fitted to a token budget.",
        EPILOG,
        label="prompt: ",
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
    stream = _load_tokens(args.input) if args.input.lower().endswith(TOKEN_FILE_SUFFIXES) else _tokenize(args)
    text = build_prompt(stream, args.budget, args.format)
    if args.output and args.output != "-":
        atomic_write(args.output, text.encode("utf-8"))
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``nat prompt``."""
    return command.main(run, argv, "prompt: ")
