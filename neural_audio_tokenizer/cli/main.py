"""``nat``: the entry point of every command. ``nat INPUT...`` tokenizes (cli/nat.py);
``nat diff|prompt|packs|batch|export ...`` runs that tool, importing only what it needs
(``nat diff`` loads neither onnxruntime nor a decoder).

Whatever a command raises ends here as one line on stderr and a documented exit code
(docs/errors.md): NatError -> its code, BrokenPipe -> 141 quietly, Ctrl-C -> 130,
SIGTERM -> 143 (after writing out the whole lines already made), anything else -> 70.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
import threading

from ..errors import EXIT_BROKEN_PIPE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_TERMINATED, NatError, OutputError
from ..runtime.inputs import stderr_guard

SUBCOMMANDS = {  # name -> module with main(argv)
    "diff": "neural_audio_tokenizer.cli.diff",
    "batch": "neural_audio_tokenizer.cli.batch.main",
    "prompt": "neural_audio_tokenizer.cli.prompt",
    "packs": "neural_audio_tokenizer.cli.packs",
    "export": "neural_audio_tokenizer.export.cli",
}


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so files are cleaned up like on Ctrl-C."""


def _on_sigterm(signum, frame):  # noqa: ARG001
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    """Run ``nat`` with ``argv`` (default: the process's arguments); the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if threading_main():
        signal.signal(signal.SIGTERM, _on_sigterm)
    stderr_guard.enable()  # decoders' C libraries must not add lines to stderr
    try:
        if argv and argv[0] in SUBCOMMANDS:
            try:
                module = importlib.import_module(SUBCOMMANDS[argv[0]])
            except ImportError as exc:
                hint = " (pip install 'neural-audio-tokenizer[export]')" if argv[0] == "export" else ""
                raise NatError(f"'nat {argv[0]}' is not available: {exc}{hint}") from None
            return int(module.main(argv[1:]) or 0)
        from .nat import run

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
