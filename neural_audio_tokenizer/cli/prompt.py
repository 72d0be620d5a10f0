"""``nat prompt INPUT``: a ready-to-paste LLM prompt, the original script's question followed
by the token stream, fitted to a token budget.

The stream keeps its header (legend included: the LLM needs it to read the numbers) and
stats line. When the dense stream is over budget, runs of identical frames are merged
(RLE), then consecutive frames are pooled by the smallest whole factor that fits (see
budget.py); the header's ``fit`` object says what was done, e.g.
``"fit":{"pool":3,"line_s":0.6,"rle":true,"budget":30000,"estimated_tokens":29411}``.
The budget counts the whole prompt, question included, with budget.estimate_tokens.

``--glossary`` adds a legend after the question: one sentence saying the glossary describes
the pack's fit corpus, not this recording, then one line per level-0 code of the fitted
stream (``S0 7 = D major (D A F#), tonal``; ``A0 60 = organ 79 %, no drums; bright, tonal,
steady, high register``), the most frequent first. The legend is counted in the budget, and entries go
before frames do: the frames are fitted as if the legend had no entries, then as many
entries as the rest of the budget holds are added (``fit`` records ``glossary_entries`` of
``glossary_codes``); when not one entry fits, the legend is left out, heading and all.

INPUT is an audio file ('-': stdin), or a NAT NDJSON file (``.ndjson``/``.jsonl``) already
tokenized, which is then only re-fitted.
"""

from __future__ import annotations

import sys

from ..errors import EXIT_OK, InputError, NatError
from ..runtime import formats
from ..runtime.header import FORMAT, Stats
from ..runtime.reader import read_path
from ..runtime.records import LineOptions
from ..runtime.sinks import atomic_write
from ..runtime.stream import TokenStream
from . import command
from ..runtime.glossary import Glossary, from_header, legend_lines, ranked_entries
from .budget import Fit, estimate_tokens, fit_stream

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
  nat prompt song.flac --glossary               # with a legend of what the codes measured
"""


def question(stream: TokenStream) -> str:
    """The question, naming how long a line is and how many tokens each stream has."""
    header = stream.header
    line_s = (header.fit or {}).get("line_s", round(1 / header.frame_rate, 3))
    return QUESTION.format(line_s=formats.fmt_time(line_s), s=len(stream.s_names), a=len(stream.a_names))


def renderer(fmt: str):
    """(stream, line options) -> the stream's text, in ``fmt`` (ndjson or text)."""
    output = formats.get(fmt)

    def render(stream: TokenStream, options: LineOptions) -> str:
        return formats.render_text_of(output, stream, options)

    return render


def build_prompt(stream: TokenStream, budget: int, fmt: str = "ndjson", glossary: Glossary | None = None) -> str:
    """The prompt text: question, (the glossary legend,) blank line, the stream fitted to
    ``budget`` LLM tokens.

    ``stream``: one input's stream with all its frames known; ``fmt``: ndjson or text;
    ``glossary``: the pack's glossary, for the legend (entries go before frames do)."""
    render = renderer(fmt)
    if glossary is not None:  # the legend replaces a header glossary the token file may carry
        stream = stream.with_frames(stream.frames, stream.header.without_annotation("glossary"))
    overhead = estimate_tokens(question(stream) + ("".join(line + "\n" for line in legend_lines([])) if glossary else "") + "\n")  # room for the heading
    fit = fit_stream(stream, budget, render, overhead)
    if fit is None:
        first = TokenStream.complete(stream.header, list(stream.frames)[:1], stream.stats)
        need = estimate_tokens(render(first, LineOptions(0))) + overhead
        raise NatError(f"--budget {budget} is too small: the question, header and one frame alone need ~{need} tokens")
    if glossary is None:
        return question(fit.stream) + "\n" + render(fit.stream, fit.options)
    return _with_legend(fit, glossary, budget, render)


def _legend(entries: list[str]) -> str:
    """The legend's lines; none when no entry fits (a heading over nothing tells the reader nothing)."""
    return "".join(line + "\n" for line in legend_lines(entries)) if entries else ""


def _with_legend(fit: Fit, glossary: Glossary, budget: int, render) -> str:
    """The prompt with as many legend entries (most frequent codes first) as ``budget`` holds
    beside the fitted frames; ``fit`` in the header records how many."""
    frames = list(fit.stream.frames)
    entries = ranked_entries(glossary.for_frames(frames), frames)
    fit_info = dict(fit.stream.header.fit or {})

    def text(k: int) -> tuple[str, int]:
        info = {**fit_info, "glossary_entries": k, "glossary_codes": len(entries)}
        for _ in range(3):  # the estimate is printed inside the header: settle its digits
            stream = fit.stream.with_frames(frames, fit.stream.header.with_annotation("fit", info))
            out = question(stream) + _legend(entries[:k]) + "\n" + render(stream, fit.options)
            tokens = estimate_tokens(out)
            if info["estimated_tokens"] == tokens:
                break
            info = {**info, "estimated_tokens": tokens}
        return out, tokens

    low, high = 0, len(entries)  # the most entries that fit: bisection (each entry costs > 0 tokens)
    while low < high:
        mid = (low + high + 1) // 2
        if text(mid)[1] <= budget:
            low = mid
        else:
            high = mid - 1
    return text(low)[0]


def _load_tokens(path: str) -> TokenStream:
    """The one stream of a NAT NDJSON file."""
    streams = read_path(path)
    if len(streams) != 1:
        raise NatError(f"{path}: holds {len(streams)} streams; nat prompt takes one")
    stream = streams[0]
    if stream.header.format != FORMAT:
        raise NatError(f"{path}: a lam_audio_tokens file; nat prompt reads audio or NAT NDJSON (retokenize the audio)")
    if stream.error:
        raise InputError(f"{path}: holds an error record, not tokens ({stream.error})")
    if stream.stats is None:
        frames = list(stream.frames)
        stats = Stats(frames=len(frames), duration_s=stream.header.source.duration_s or 0.0, nonfinite_samples=0, tokens={})
        stream = TokenStream.complete(stream.header, frames, stats)
    return stream


def _tokenize(args) -> tuple[TokenStream, Glossary | None]:
    """The stream of an audio input, all frames computed (fitting needs them all), and its
    pack's glossary when ``--glossary`` asks for it."""
    from ..runtime.tokenizer import Tokenizer  # onnxruntime and the decoders: only for audio

    tokenizer = Tokenizer.load(args.pack, device=args.device, threads=args.threads)
    glossary = _pack_glossary(tokenizer.pack) if args.glossary else None
    if args.input == "-":
        source = tokenizer.open(sys.stdin.buffer.read(), "stdin", args.raw_rate)
    else:
        source = tokenizer.open(args.input, raw_rate=args.raw_rate)
    stream = tokenizer.stream(source).materialized()
    for note in source.warnings():  # as nat says them: raw-PCM fallback, truncation, NaN samples
        print(f"nat prompt: {stream.name}: warning: {note}", file=sys.stderr)
    return stream, glossary


def _pack_glossary(pack) -> Glossary:
    if pack.glossary is None:
        raise NatError(f"--glossary: pack {pack.name!r} has no glossary (nat-export glossary PACK --corpus DIR writes one)")
    return pack.glossary


def _file_glossary(args, stream: TokenStream) -> Glossary:
    """A token file's glossary: its header's (nat --glossary), else its pack's, if that pack
    is installed and is the very pack that made the tokens (same manifest hash)."""
    if stream.header.glossary is not None:
        return from_header(stream.header, f"{args.input} glossary")
    from ..packs import resolve_pack
    from ..runtime.pack import load_pack

    made_by = stream.header.pack
    pack = load_pack(resolve_pack(args.pack or (made_by.name if made_by is not None else None)))
    if made_by is None or pack.manifest_sha256 != made_by.manifest_sha256:
        raise NatError(f"--glossary: {args.input} was made by another pack than {pack.name!r} (manifest_sha256 differs); retokenize, or give the pack that made it with --pack")
    return _pack_glossary(pack)


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
    p.add_argument("--glossary", action="store_true", help="add a legend of what the pack's glossary says about the level-0 codes (counted in the budget)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the prompt to FILE (default: stdout)")
    return p


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.budget < 1:
        raise NatError("--budget must be a positive number of tokens")
    if args.input.lower().endswith(TOKEN_FILE_SUFFIXES):
        stream = _load_tokens(args.input)
        glossary = _file_glossary(args, stream) if args.glossary else None
    else:
        stream, glossary = _tokenize(args)
    text = build_prompt(stream, args.budget, args.format, glossary)
    if args.output and args.output != "-":
        atomic_write(args.output, text.encode("utf-8"))
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``nat prompt``."""
    return command.main(run, argv, "prompt: ")
