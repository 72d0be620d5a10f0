"""``nat [options] INPUT...``: tokenize audio files or piped stdin (see ``nat --help``, docs/errors.md).

Nothing but NDJSON goes to stdout; messages go to stderr, one line each. Exit codes:
0 all inputs tokenized, 1 some inputs failed (the others were written), 2 usage, pack or
device error, 3 output not writable, 130 Ctrl-C, 141 stdout closed early, 143 SIGTERM,
70 internal error (a bug; NAT_DEBUG=1 shows the traceback).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import stat
import sys
from collections.abc import Iterator

from .. import __version__
from ..errors import EXIT_INPUT_FAILED, EXIT_OK, InputError, NatError
from ..runtime.inputs.item import Input
from ..runtime.inputs.audio import display_name
from ..runtime.inputs.limits import MAX_CHANNELS, MAX_RATE, MIN_RATE, RAW_RATE
from ..runtime.formats import FORMATS, OutputFormat, get
from ..runtime.glossary import Glossary, annotate
from ..runtime.ndjson import error_record
from ..runtime.records import LineOptions
from ..runtime.sinks import DirectorySink, FileSink, Sink, StreamSink
from ..runtime.inputs.splitter import split_parts
from . import command
from .progress import Progress, configure_logging

DESCRIPTION = """\
Turn music and sound into timestamped tokens an LLM can read: per frame, four semantic
tokens S0-S3 (musical content) and four acoustic tokens A0-A3 (timbre). The default output
is NDJSON: a header line, one line per frame, a statistics line. Same input bytes and same
pack give byte-identical output, in every format.

other commands:
  nat diff GOLDEN NEW      compare token files (CI regression checks)
  nat prompt INPUT         an LLM prompt with the stream fitted to a token budget
  nat packs [--verify]     list the installed packs (and check them)
  nat packs pull SOURCE    install a published pack (hf:OWNER/REPO, https://..., archive)
  nat batch DIR --out OUT  tokenize a whole library with worker processes
  (nat COMMAND --help for each)
"""

EPILOG = """\
examples:
  nat song.flac > song.ndjson
  nat --delta --rle a.wav b.mp3 --output-dir tokens/
  nat --format text song.flac                   # compact lines for pasting into a chat
  nat --all-outputs --output-dir report/ *.wav  # pictures, metrics and a report per input
  cat a.wav <(printf '\\x1c') b.wav | nat        # several files on stdin, separated by 0x1C
  arecord -f S16_LE -r 16000 -c 1 | nat --raw --raw-rate 16000   # live: lines while it records
stdout carries only the requested output (NDJSON unless --format says otherwise); messages,
progress bars and reports go to stderr.
exit codes: 0 ok, 1 some inputs failed, 2 usage/pack/device error, 3 output not writable,
            70 internal error, 130 interrupted, 141 stdout closed early, 143 terminated
"""


def build_parser() -> argparse.ArgumentParser:
    p = command.parser("nat", DESCRIPTION, EPILOG)
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="audio files; '-' or none for stdin")
    p.add_argument("--pack", default=None, metavar="NAME|PATH", help="pack name or folder (default: builtin; see nat packs)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"), help="execution device (default: cpu)")
    p.add_argument("--threads", type=int, default=0, metavar="N", help="onnxruntime threads per encoder call (default: one single-threaded call per core, chunks and encoders in parallel)")
    out = p.add_argument_group("output")
    out.add_argument("-o", "--output", metavar="FILE", help="write all streams to FILE (default: stdout)")
    out.add_argument("--output-dir", metavar="DIR", help="write one file per input into DIR (<name>.ndjson, or .txt for text formats)")
    out.add_argument(
        "--format",
        choices=FORMATS,
        default="ndjson",
        help="ndjson (default); text: one compact line per frame; hierarchical, interleaved, structured: "
        "the original script's text dumps; lam: its lam_audio_tokens v1.5 NDJSON",
    )
    out.add_argument(
        "--all-outputs",
        action="store_true",
        help="with --output-dir: per input the token files (_tokens.ndjson/.json/.txt), a picture of waveform, "
        "spectrogram and tokens, token histograms, metrics.json and a Markdown report (needs matplotlib: the [viz] extra)",
    )
    out.add_argument(
        "--glossary",
        action="store_true",
        help="add what the pack's glossary says about each level-0 code that occurs (ndjson: a header 'glossary' "
        "object; text: '#' lines); each input is written once its last frame is known (docs/ndjson.md)",
    )
    out.add_argument("--budget-report", action="store_true", help="on stderr: estimated LLM tokens of the output and how much fits 8k/32k/128k contexts")
    enc = p.add_argument_group("encoding")
    enc.add_argument("--keyframe-interval", type=float, default=5.0, metavar="S", help="seconds between keyframes (default: 5; 0: first frame only)")
    enc.add_argument("--delta", action="store_true", help="non-keyframe lines carry only changed tokens (ndjson, text)")
    enc.add_argument("--rle", action="store_true", help="runs of identical frames become one line with n (ndjson, text; lam: run-length semantic layers)")
    enc.add_argument("--no-measures", action="store_true", help="leave out each frame's level (dB) and drum hits (ndjson, text): tokens only")
    inp = p.add_argument_group("input")
    inp.add_argument("--raw-rate", type=int, default=RAW_RATE, metavar="HZ", help=f"sample rate for undecodable input read as raw s16le PCM, and for --raw (default: {RAW_RATE})")
    inp.add_argument(
        "--raw",
        action="store_true",
        help="the input is raw signed 16-bit little-endian PCM (at --raw-rate, --raw-channels interleaved): no format "
        "detection, no splitting of stdin at 0x1C bytes; stdin and FIFOs stream (lines while the audio arrives)",
    )
    inp.add_argument("--raw-channels", type=int, default=None, metavar="N", help="interleaved channels of --raw input (default: 1)")
    inp.add_argument(
        "--resample",
        type=int,
        nargs="?",
        const=22050,
        default=None,
        metavar="HZ",
        help="analysis rate of the audio pictured by --all-outputs (bare flag: 22050). Tokens never change: "
        "each encoder resamples to the rate it was trained at, so without --all-outputs this does nothing",
    )
    msg = p.add_argument_group("messages")
    msg.add_argument("-q", "--quiet", action="store_true", help="no messages or progress bars on stderr, only errors")
    msg.add_argument("--log-level", default="warning", type=str.lower, choices=("debug", "info", "warning", "warn", "error"), help="stderr verbosity (default: warning)")
    msg.add_argument("-v", "--verbose", action="store_true", help="same as --log-level info")
    compat = p.add_argument_group("accepted for compatibility with the original script")
    compat.add_argument("--deterministic", action="store_true", help="no effect: NAT is always deterministic")
    compat.add_argument("--compat-fallback", action="store_true", help="use the built-in pack (NAT has no random-token mode)")
    p.add_argument("--version", action="version", version=f"nat {__version__}")
    return p


def _normalize_argv(argv: list[str]) -> list[str]:
    """A bare ``--resample`` before an input must not swallow the input as its HZ."""
    out = []
    for i, arg in enumerate(argv):
        if arg == "--resample" and (i + 1 == len(argv) or not argv[i + 1].isdigit()):
            arg = "--resample=22050"
        out.append(arg)
    return out


def _stdin_items(quiet: bool) -> list[Input]:
    """stdin read whole (--all-outputs), its parts named as the streamed ones are (:func:`_piped_items`)."""
    stdin = sys.stdin.buffer if sys.stdin is not None else None
    if stdin is None:
        return [Input("stdin", data=b"")]
    if sys.stdin.isatty() and not quiet:
        print("nat: reading audio from the terminal; end with Ctrl-D (or run: nat FILE)", file=sys.stderr)
    data = stdin.read()
    parts = split_parts(data)
    if not parts:
        return [Input("stdin", data=b"")]
    return [Input("stdin" if k == 1 else f"stdin#{k}", data=part) for k, part in enumerate(parts, 1)]


def _items(inputs: list[str], quiet: bool) -> list[Input]:
    items: list[Input] = []
    if not inputs:
        return _stdin_items(quiet)
    for arg in inputs:
        if arg == "-":
            items.extend(_stdin_items(quiet))
        else:
            items.append(Input(display_name(arg), path=arg))
    return items


def _piped_items(inputs: list[str], quiet: bool, raw: tuple[int, int] | None) -> Iterator:
    """The inputs, stdin and FIFOs as they arrive: stdin split at FS bytes on the fly (not
    with --raw), its first part named ``stdin``, later ones ``stdin#2``, ``stdin#3``...: a
    part's header is written before anyone knows whether another part follows."""
    from ..runtime.inputs.piped import PipedParts, read_chunks

    for arg in inputs or ["-"]:
        if arg == "-":
            stdin = sys.stdin.buffer if sys.stdin is not None else None
            if stdin is None:
                yield Input("stdin", data=b"")
                continue
            if sys.stdin.isatty() and not quiet:
                print("nat: reading audio from the terminal; end with Ctrl-D (or run: nat FILE)", file=sys.stderr)
            count = 0
            for count, part in enumerate(PipedParts(read_chunks(stdin), split=raw is None).parts(), 1):
                yield Input("stdin" if count == 1 else f"stdin#{count}", part=part, raw=raw)
            if not count:
                yield Input("stdin", data=b"")
            continue
        name = display_name(arg)
        try:
            st = os.stat(arg)
        except OSError:
            st = None
        if st is None or stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode):
            yield Input(name, path=arg, raw=raw if st is not None and stat.S_ISREG(st.st_mode) else None)
            continue
        try:  # a FIFO or device (``nat <(sox ...)``): one part, streamed
            handle = open(arg, "rb")  # noqa: SIM115
        except OSError:
            yield Input(name, path=arg)  # open_path reports why
            continue
        with handle:
            parts = list(itertools.islice(PipedParts(read_chunks(handle, name), split=False).parts(), 1))
            yield Input(name, part=parts[0], raw=raw) if parts else Input(name, data=b"")


def _any_pipe(inputs: list[str]) -> bool:
    """Whether stdin or a FIFO/device is among the inputs (read only as the items are reached)."""
    for arg in inputs or ["-"]:
        if arg == "-":
            return True
        try:
            mode = os.stat(arg).st_mode
        except OSError:
            continue
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            return True
    return False


def _all_one_chunk(items: list[Input], window_s: float) -> bool:
    """Whether every input is at most one chunk long, by its header. Then one encoder call
    at a time on every core beats one single-threaded call per core, which would leave a
    core idle with no next chunk to start (docs/performance.md, lever 2). Tokens are the
    same either way; only the schedule changes."""
    if not items:
        return False
    for item in items:
        seconds = item.seconds()
        if seconds is None or seconds > window_s:
            return False
    return True


def _make_sink(args: argparse.Namespace) -> Sink:
    if args.output and args.output_dir:
        raise NatError("use either -o FILE or --output-dir DIR, not both")
    if args.output_dir:
        return DirectorySink(args.output_dir, suffix=get(args.format).suffix)
    if args.output and args.output != "-":
        return FileSink(args.output)
    return StreamSink(sys.stdout.buffer)


def tokenize_items(
    tokenizer,
    items: list[Input],
    sink: Sink,
    options: LineOptions,
    raw_rate: int,
    quiet: bool = False,
    output: OutputFormat | None = None,
    progress: Progress | None = None,
    glossary: Glossary | None = None,
) -> tuple[int, int]:
    """Tokenize every item into ``sink``; a failing item never stops the others. (ok, failed).

    ``tokenizer``: a runtime Tokenizer; ``options``: how frames become lines; ``raw_rate``:
    the rate of input read as raw PCM; ``quiet``: no warnings; ``output``: the format
    (default: NAT NDJSON); ``progress``: bars on a terminal (default: none); ``glossary``:
    annotate each stream's header with the entries of the codes it uses (runtime/glossary.py)."""
    output = output or get("ndjson")
    progress = progress or Progress(False)
    ok = failed = 0
    for item in progress.inputs(items):
        sink.begin(item.name)
        try:
            source = item.open(raw_rate)
            with progress.file(source):
                stream = tokenizer.stream(source)
                for line in output.render(annotate(stream, glossary) if glossary else stream, options):
                    sink.line(line)
            warnings = source.warnings
            ok += 1
            for note in [] if quiet else warnings():  # raw fallback, NaN, truncation
                print(f"nat: {item.name}: warning: {note}", file=sys.stderr)
        except InputError as exc:
            failed += 1
            print(f"nat: {exc}", file=sys.stderr)
            sink.line(output.error(error_record(item.name, exc)))
        sink.end()
    return ok, failed


def run(argv: list[str]) -> int:
    """``nat [options] INPUT...``: tokenize the inputs; the exit code (docs/errors.md)."""
    args = build_parser().parse_args(_normalize_argv(argv))
    configure_logging(args.log_level, args.quiet, args.verbose)
    _check_combinations(args)
    options = LineOptions(args.keyframe_interval, args.delta, args.rle, measures=not args.no_measures)
    progress = Progress.for_stderr(args.quiet)
    from ..packs import resolve_pack
    from ..runtime.pack import load_pack
    from ..runtime.session import SessionOptions, cores, resolve_device  # onnxruntime: only to tokenize
    from ..runtime.tokenizer import Tokenizer

    pack = load_pack(resolve_pack("builtin" if args.compat_fallback else args.pack))
    if args.glossary and pack.glossary is None:
        raise NatError(f"--glossary: pack {pack.name!r} has no glossary (nat-export glossary PACK --corpus DIR writes one)")
    glossary = pack.glossary if args.glossary else None
    device = resolve_device(args.device)  # a device error before stdin is read
    raw = (args.raw_rate, args.raw_channels or 1) if args.raw else None
    if args.all_outputs:
        items = _items(args.inputs, args.quiet)
    else:  # stdin and FIFOs stream; a FIFO cannot be probed without losing its bytes
        items = _piped_items(args.inputs, args.quiet, raw)
        if not _any_pipe(args.inputs):
            items = list(items)
    # CUDA runs one call at a time whatever the inputs (session.parallelism): no probing there
    threads = args.threads or (cores() if device == "cpu" and isinstance(items, list) and _all_one_chunk(items, pack.window_s) else 0)
    tokenizer = Tokenizer(pack, SessionOptions(args.device, threads, spinning=True))
    del pack  # the tokenizer keeps what it needs; this copy holds the models' bytes
    if args.all_outputs:
        from .report.outputs import write_all_outputs

        ok, failed = write_all_outputs(tokenizer, items, args.output_dir, options, args.format, args.raw_rate, args.resample, progress)
        return _summary(ok, failed, args, items)
    output = get(args.format)
    sink = _make_sink(args)
    if args.budget_report:
        from .budget_report import BudgetReport

        report = BudgetReport(output, options)
        sink, output = report.wrap(sink), report.tap(output)
    try:
        ok, failed = tokenize_items(tokenizer, items, sink, options, args.raw_rate, quiet=args.quiet, output=output, progress=progress, glossary=glossary)
        sink.close()
    except BaseException:
        sink.abort()
        raise
    return _summary(ok, failed, args, items)


def _summary(ok: int, failed: int, args: argparse.Namespace, items) -> int:
    if failed and not args.quiet and ok + failed > 1:
        print(f"nat: {ok} of {ok + failed} inputs tokenized, {failed} failed", file=sys.stderr)
    return EXIT_INPUT_FAILED if failed else EXIT_OK


def _check_combinations(args: argparse.Namespace) -> None:
    """Usage errors that argparse cannot see, reported before any work starts."""
    log = logging.getLogger("nat")
    if args.threads < 0:
        raise NatError("--threads must be >= 0")
    if args.raw_channels is not None and not args.raw:
        raise NatError("--raw-channels describes --raw input: add --raw")
    if args.raw_channels is not None and not 1 <= args.raw_channels <= MAX_CHANNELS:
        raise NatError(f"--raw-channels {args.raw_channels}: expected 1-{MAX_CHANNELS}")
    if args.raw and not MIN_RATE <= args.raw_rate <= MAX_RATE:
        raise NatError(f"--raw-rate {args.raw_rate}: expected a rate between {MIN_RATE} and {MAX_RATE} Hz")
    if args.raw and args.all_outputs:
        raise NatError("--raw streams its input; --all-outputs reads whole files: use one or the other")
    if args.compat_fallback and args.pack not in (None, "builtin"):
        raise NatError("--compat-fallback uses the built-in pack; it cannot be combined with --pack")
    if args.resample is not None and not MIN_RATE <= args.resample <= MAX_RATE:
        raise NatError(f"--resample {args.resample}: expected a rate between {MIN_RATE} and {MAX_RATE} Hz")
    if args.all_outputs:
        if not args.output_dir:
            raise NatError("--all-outputs writes several files per input: add --output-dir DIR")
        if args.output:
            raise NatError("--all-outputs writes into --output-dir; drop -o")
        from .report.viz import require_matplotlib

        require_matplotlib()
        if args.budget_report:
            log.warning("--budget-report reports streams written to stdout, -o or --output-dir; --all-outputs has none")
    elif args.resample is not None:
        log.info("--resample only changes the audio pictured by --all-outputs; tokens are the same either way")
    if args.glossary and (args.format not in ("ndjson", "text") or args.all_outputs):
        raise NatError("--glossary applies to --format ndjson and text, without --all-outputs")
    if args.format in ("hierarchical", "interleaved", "structured") and (args.delta or args.rle):
        log.warning("--delta/--rle do not apply to --format %s (it always lists every token)", args.format)
    if args.format == "lam" and args.delta:
        log.warning("--delta does not apply to --format lam (use --rle)")
