"""``nat``: tokenize audio files or piped stdin into NDJSON (see ``nat --help``, docs/errors.md).

Nothing but NDJSON goes to stdout; messages go to stderr, one line each. Exit codes:
0 all inputs tokenized, 1 some inputs failed (the others were written), 2 usage, pack or
device error, 3 output not writable, 130 Ctrl-C, 141 stdout closed early, 143 SIGTERM,
70 internal error (a bug; NAT_DEBUG=1 shows the traceback).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from dataclasses import dataclass

from .. import __version__
from .audio import RAW_RATE, AudioSource, open_bytes
from .errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INPUT_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    InputError,
    NatError,
    OutputError,
)
from .records import LineOptions
from .sinks import DirectorySink, FileSink, Sink, StreamSink
from .stdin import split_parts

SUBCOMMANDS = {
    "diff": "neural_audio_tokenizer.runtime.diff",
    "batch": "neural_audio_tokenizer.runtime.batch",
    "prompt": "neural_audio_tokenizer.runtime.prompt",
    "packs": "neural_audio_tokenizer.runtime.packs_cli",
    "export": "neural_audio_tokenizer.export.cli",
}

DESCRIPTION = """\
Turn music and sound into timestamped NDJSON tokens an LLM can read: per frame, four
semantic tokens S0-S3 (musical content) and four acoustic tokens A0-A3 (timbre).
The first line is a header, the last line statistics. Same input bytes and same pack
give byte-identical output.

other commands: nat diff | batch | prompt | packs   (nat COMMAND --help)
"""

EPILOG = """\
examples:
  nat song.flac > song.ndjson
  nat --delta --rle a.wav b.mp3 --output-dir tokens/
  cat a.wav <(printf '\\x1c') b.wav | nat        # several files on stdin, separated by 0x1C
exit codes: 0 ok, 1 some inputs failed, 2 usage/pack/device error, 3 output not writable,
            70 internal error, 130 interrupted, 141 stdout closed early, 143 terminated
"""


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so files are cleaned up like on Ctrl-C."""


@dataclass
class InputItem:
    name: str
    path: str | None = None
    data: bytes | None = None

    def open(self, raw_rate: int) -> AudioSource:
        from .audio import open_path

        if self.data is not None:
            return open_bytes(self.data, self.name, raw_rate)
        if self.path is None:
            raise InputError(f"{self.name}: empty input (0 bytes)")
        return open_path(self.path, raw_rate)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, no usage dump
        print(f"nat: {message} (see nat --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="nat",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="audio files; '-' or none for stdin")
    p.add_argument("--pack", default=None, metavar="NAME|PATH", help="pack name or folder (default: builtin)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"), help="execution device (default: cpu)")
    p.add_argument("--threads", type=int, default=0, metavar="N", help="CPU threads per encoder (default: all cores)")
    out = p.add_argument_group("output")
    out.add_argument("-o", "--output", metavar="FILE", help="write all streams to FILE (default: stdout)")
    out.add_argument("--output-dir", metavar="DIR", help="write one <name>.ndjson per input into DIR")
    enc = p.add_argument_group("encoding")
    enc.add_argument("--keyframe-interval", type=float, default=5.0, metavar="S", help="seconds between keyframes (default: 5; 0: first frame only)")
    enc.add_argument("--delta", action="store_true", help="non-keyframe lines carry only changed tokens")
    enc.add_argument("--rle", action="store_true", help="runs of identical frames become one line with n")
    inp = p.add_argument_group("input")
    inp.add_argument("--raw-rate", type=int, default=RAW_RATE, metavar="HZ", help=f"sample rate for undecodable input read as raw s16le PCM (default: {RAW_RATE})")
    p.add_argument("-q", "--quiet", action="store_true", help="no messages on stderr except errors")
    p.add_argument("--version", action="version", version=f"nat {__version__}")
    return p


def _stdin_items(quiet: bool) -> list[InputItem]:
    stdin = sys.stdin.buffer if sys.stdin is not None else None
    if stdin is None:
        return [InputItem("stdin#1", data=b"")]
    if sys.stdin.isatty() and not quiet:
        print("nat: reading audio from the terminal; end with Ctrl-D (or run: nat FILE)", file=sys.stderr)
    data = stdin.read()
    parts = split_parts(data)
    if not parts:
        return [InputItem("stdin", data=b"")]
    return [InputItem(f"stdin#{k}" if len(parts) > 1 else "stdin", data=part) for k, part in enumerate(parts, 1)]


def _items(inputs: list[str], quiet: bool) -> list[InputItem]:
    items: list[InputItem] = []
    if not inputs:
        return _stdin_items(quiet)
    for arg in inputs:
        if arg == "-":
            items.extend(_stdin_items(quiet))
        else:
            from .audio import display_name

            items.append(InputItem(display_name(arg), path=arg))
    return items


def _make_sink(args: argparse.Namespace) -> Sink:
    if args.output and args.output_dir:
        raise NatError("use either -o FILE or --output-dir DIR, not both")
    if args.output_dir:
        return DirectorySink(args.output_dir)
    if args.output and args.output != "-":
        return FileSink(args.output)
    return StreamSink(sys.stdout.buffer)


def tokenize_items(tokenizer, items: list[InputItem], sink: Sink, options: LineOptions, raw_rate: int, quiet: bool = False) -> tuple[int, int]:
    """Tokenize every item into ``sink``; a failing item never stops the others. (ok, failed)."""
    from .ndjson import error_record, stream_lines

    ok = failed = 0
    for item in items:
        sink.begin(item.name)
        try:
            source = item.open(raw_rate)
            for line in stream_lines(tokenizer, source, options):
                sink.line(line)
            ok += 1
            for note in [] if quiet else source.warnings():  # raw fallback, NaN, truncation
                print(f"nat: {item.name}: warning: {note}", file=sys.stderr)
        except InputError as exc:
            failed += 1
            print(f"nat: {exc}", file=sys.stderr)
            sink.line(error_record(item.name, exc))
        sink.end()
    return ok, failed


def _on_sigterm(signum, frame):  # noqa: ARG001
    raise Terminated()


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.threads < 0:
        raise NatError("--threads must be >= 0")
    options = LineOptions(args.keyframe_interval, args.delta, args.rle)
    from .tokenizer import Tokenizer

    tokenizer = Tokenizer.load(args.pack, device=args.device, threads=args.threads, spinning=True)
    items = _items(args.inputs, args.quiet)
    sink = _make_sink(args)
    try:
        ok, failed = tokenize_items(tokenizer, items, sink, options, args.raw_rate, quiet=args.quiet)
        sink.close()
    except BaseException:
        sink.abort()
        raise
    if failed and not args.quiet and len(items) > 1:
        print(f"nat: {ok} of {ok + failed} inputs tokenized, {failed} failed", file=sys.stderr)
    return EXIT_INPUT_FAILED if failed else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if threading_main():
        signal.signal(signal.SIGTERM, _on_sigterm)
    from . import stderr_guard

    stderr_guard.enable()  # decoders' C libraries must not add lines to stderr
    try:
        if argv and argv[0] in SUBCOMMANDS:
            import importlib

            try:
                module = importlib.import_module(SUBCOMMANDS[argv[0]])
            except ImportError as exc:
                hint = " (pip install 'neural-audio-tokenizer[export]')" if argv[0] == "export" else ""
                raise NatError(f"'nat {argv[0]}' is not available: {exc}{hint}") from None
            return int(module.main(argv[1:]) or 0)
        return run(argv)
    except NatError as exc:
        if isinstance(exc, OutputError):
            _silence_stdout()  # a failed stdout write may leave a partial line buffered
        print(f"nat: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        _finish_stdout()
        print("nat: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Terminated:
        _finish_stdout()
        print("nat: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except Exception as exc:  # a bug, or a pack model failing at run time: one line, no traceback
        if os.environ.get("NAT_DEBUG"):
            raise
        reason = " ".join(str(exc).split())[:300] or "no message"
        print(f"nat: internal error: {type(exc).__name__}: {reason} (NAT_DEBUG=1 shows the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _finish_stdout() -> None:
    """Interrupted: write out the whole lines still buffered (stdout holds only whole lines,
    so it then ends on one); if the reader is gone, drop them quietly."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError, KeyboardInterrupt, Terminated):  # a second signal: give up
        _silence_stdout()


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
