"""``nat-export eval``: the command line of the evaluation (no torch needed).

    nat-export eval [PACK] [--quick] [--json]                 rendered clips (evaluation/rendered.py)
    nat-export eval [PACK] --audio DIR [--max-seconds S]      a folder of music (evaluation/music.py)
    python -m neural_audio_tokenizer.evaluation ...           the same command

Exit codes: 0 ok; 1 a goal missed with --require-goals; 2 usage, pack or corpus error, or a
missing optional dependency (mido, the fluidsynth program, the GM soundfont). Errors are one
line on stderr (``nat-export eval: ...``), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import music, rendered

EXIT_OK, EXIT_GOALS, EXIT_USAGE = 0, 1, 2
PROG = "nat-export eval"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Token quality of a pack: stability under gain/resampling/codec/noise/shift changes, "
        "instrument and melody distinctness, codebook utilization (docs/quality.md). No torch needed.",
    )
    parser.add_argument("pack", nargs="?", default="builtin", help="pack name or folder (default: builtin)")
    parser.add_argument("--quick", action="store_true", help="the small CI set (under a minute) instead of the full set")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of tables")
    parser.add_argument("--workers", type=int, default=2, help="clips rendered and tokenized at once (default 2)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"], help="onnxruntime device for the pack's encoders (default cpu)")
    parser.add_argument("--require-goals", action="store_true", help="exit 1 when a goal (issue #7; with --audio issue #12's) is missed")
    parser.add_argument("--audio", metavar="DIR", help="evaluate on the music in DIR instead of rendered clips: the same changes, label-free distinctness, change rates (evaluation/music.py)")
    parser.add_argument("--max-seconds", type=float, metavar="S", help="with --audio: only the first S seconds of each file")
    parser.add_argument("--max-files", type=int, metavar="N", help="with --audio: only the first N files (sorted by path)")
    args = parser.parse_args(argv)
    try:
        return _main_audio(args) if args.audio else _main_rendered(args)
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if not top or top == "neural_audio_tokenizer":
            raise  # a module of NAT itself missing is a broken install, not an optional dependency
        print(f"{PROG}: needs the Python package {top!r}, which is not installed (pip install {top})", file=sys.stderr)
        return EXIT_USAGE


def _main_rendered(args: argparse.Namespace) -> int:
    """Rendered clips: evaluation/rendered.py."""
    from ..errors import NatError
    from ..export.corpus import CorpusError  # the renderer's error (imported here: evaluation sits below export)

    log = (lambda m: None) if args.json else (lambda m: print(f"{PROG}: {m}", file=sys.stderr, flush=True))
    try:
        from ..packs import resolve_pack

        pack = resolve_pack(args.pack)
        spec = rendered.QUICK if args.quick else rendered.FULL
        log(f"rendering the {spec.name} evaluation set (seed {rendered.EVAL_SEED})")
        eval_set = rendered.build_set(spec, args.workers)
        result = rendered.evaluate(pack, eval_set, args.workers, log, args.device)
    except (CorpusError, NatError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _report(args, result, rendered.format_report)


def _main_audio(args: argparse.Namespace) -> int:
    """``--audio DIR``: evaluation/music.py, with this command's output and exit codes."""
    from ..errors import NatError

    log = (lambda m: None) if args.json else (lambda m: print(f"{PROG}: {m}", file=sys.stderr, flush=True))
    if (args.max_seconds is not None and args.max_seconds <= 0) or (args.max_files is not None and args.max_files <= 0):
        print(f"{PROG}: --max-seconds and --max-files must be positive", file=sys.stderr)
        return EXIT_USAGE
    try:
        from ..packs import resolve_pack

        result = music.evaluate_folder(resolve_pack(args.pack), args.audio, args.max_seconds, args.max_files, args.workers, log, args.device)
    except (music.AudioEvalError, NatError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _report(args, result, music.format_report)


def _report(args: argparse.Namespace, result: dict, format_report) -> int:
    """Print ``result`` (JSON or the Markdown report); the exit code under --require-goals."""
    print(json.dumps(result, indent=1) if args.json else format_report(result), end="" if not args.json else "\n")
    if args.require_goals and not all(g["met"] for g in result["goals"]):
        return EXIT_GOALS
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
