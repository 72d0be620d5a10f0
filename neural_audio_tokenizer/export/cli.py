"""``nat-export``: build packs from pretrained encoders, verify them, evaluate them.

Exit codes: 0 ok; 1 verification failed (build: no pack written); 2 usage, model, corpus
or pack error. Errors are one line on stderr (``nat-export: ...``), never a traceback.
This module imports torch only inside the commands, so ``--help`` works without it.
"""

from __future__ import annotations

import argparse
import sys

EXIT_OK, EXIT_VERIFY, EXIT_USAGE = 0, 1, 2

DESCRIPTION = "Build, verify and evaluate NAT packs (needs the [export] extra: torch, transformers, onnx)."
EPILOG = """\
examples:
  nat-export build --preset mert-w2v --out packs/mert-w2v
  nat-export build --preset mert --corpus my_music/ --codebook-size 512 --out packs/mine
  nat-export verify packs/mert-w2v song.flac
  nat-export publish packs/mert-w2v --out upload/ --repo you/mert-w2v   # docs/distribution.md
  nat-export glossary packs/mine --corpus my_music/ --out packs/mine-g  # what each code sounds like
exit codes: 0 ok, 1 verification failed (no pack written), 2 usage/model/corpus/pack error
"""


def _span(text: str) -> tuple[int, int]:
    from .onnx_export import parse_span

    try:
        return parse_span(text)
    except Exception as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    from .presets import DEFAULT, PRESETS

    parser = argparse.ArgumentParser(prog="nat-export", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    b = sub.add_parser("build", help="export encoders, fit codebooks, write a verified pack")
    b.add_argument("--preset", default=DEFAULT, choices=sorted(PRESETS), help=f"encoders and layers (default {DEFAULT}; docs/presets.md)")
    b.add_argument("--out", required=True, help="pack folder to write (must not exist unless --force)")
    b.add_argument("--corpus", nargs="+", metavar="DIR_OR_FILE", help="training/verification audio (default: the built-in rendered corpus)")
    b.add_argument("--name", help="pack name (default: the preset name)")
    b.add_argument("--semantic-model", metavar="ID_OR_PATH", help="model for S: Hugging Face id or local folder")
    b.add_argument("--acoustic-model", metavar="ID_OR_PATH", help="model for A: Hugging Face id or local folder")
    b.add_argument("--semantic-layers", type=_span, metavar="FIRST-LAST", help="hidden states averaged for S (0 = transformer input)")
    b.add_argument("--acoustic-layers", type=_span, metavar="FIRST-LAST", help="hidden states averaged for A")
    b.add_argument("--codebook-size", type=int, metavar="N", help="codes per level for both streams")
    b.add_argument("--s-codebook-size", type=int, metavar="N")
    b.add_argument("--a-codebook-size", type=int, metavar="N")
    b.add_argument("--frame-rate", type=int, metavar="HZ", help="pack frames per second (default 5)")
    b.add_argument("--seed", type=int, default=0, help="codebook fitting seed (default 0)")
    b.add_argument("--iterations", type=int, default=25, help="Lloyd iterations per level (default 25)")
    b.add_argument("--threads", type=int, default=0, help="onnxruntime threads for feature collection (default: one per core) and torch/onnxruntime threads for verification (default 2)")
    b.add_argument("--int8", action="store_true", help="int8 dynamic quantization of MatMul weights (not default; records measured agreement)")
    b.add_argument("--fp16", action="store_true", help="float16 weights for GPUs, normalization kept fp32 (not default; records measured agreement)")
    b.add_argument("--min-agreement", type=float, help="token agreement required (default 0.999; 0.90 with --int8 or --fp16)")
    b.add_argument("--no-glossary", action="store_true", help="skip the glossary (what each level-0 code's corpus frames measured; costs one more pass over the corpus)")
    b.add_argument("--force", action="store_true", help="replace an existing pack at --out")
    b.add_argument("--quiet", action="store_true", help="no progress messages")

    v = sub.add_parser("verify", help="compare a pack's runtime with the torch reference on audio")
    v.add_argument("pack", help="pack folder or name")
    v.add_argument("audio", nargs="+", help="audio files")
    v.add_argument("--semantic-model", metavar="ID_OR_PATH", help="model of the encoder S uses (default: from the manifest)")
    v.add_argument("--acoustic-model", metavar="ID_OR_PATH", help="model of the encoder A uses (default: from the manifest)")
    v.add_argument("--threads", type=int, default=2)
    v.add_argument("--min-agreement", type=float, help="default: the pack's recorded threshold, else 0.999")
    v.add_argument("--max-diff", type=float, help="largest encoder output difference allowed (default: the pack's recorded threshold, else 1e-3)")

    pub = sub.add_parser("publish", help="write a pack folder, a reproducible archive and a model card to upload (no torch needed)")
    pub.add_argument("pack", help="pack folder or name")
    pub.add_argument("--out", required=True, help="folder to write NAME/ and NAME.tar.gz into")
    pub.add_argument("--repo", metavar="OWNER/NAME", help="the Hugging Face repository it will be uploaded to (for the card's pull line)")
    pub.add_argument("--url", metavar="URL", help="the https:// URL the archive will be served from (for the card's pull line)")
    pub.add_argument("--force", action="store_true", help="replace NAME/ and NAME.tar.gz in --out")

    sub.add_parser("glossary", help="write a glossary of what each level-0 code's corpus frames measured into a pack (no torch needed)", add_help=False)

    e = sub.add_parser("eval", help="token quality report, no torch needed (neural_audio_tokenizer.evaluation)", add_help=False)
    e.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def _build(args) -> int:
    from pathlib import Path

    from .build import BuildOptions, build_pack
    from .presets import get_preset

    sizes = {"S": args.s_codebook_size or args.codebook_size, "A": args.a_codebook_size or args.codebook_size}
    preset = get_preset(
        args.preset,
        semantic_model=args.semantic_model,
        acoustic_model=args.acoustic_model,
        semantic_layers=args.semantic_layers,
        acoustic_layers=args.acoustic_layers,
        codebook_sizes=sizes,
        frame_rate=args.frame_rate,
    )
    log = (lambda msg: None) if args.quiet else (lambda msg: print(f"nat-export: {msg}", file=sys.stderr, flush=True))
    opts = BuildOptions(
        preset=preset,
        out=Path(args.out),
        corpus=args.corpus,
        name=args.name,
        seed=args.seed,
        iterations=args.iterations,
        threads=args.threads,
        int8=args.int8,
        fp16=args.fp16,
        min_agreement=args.min_agreement,
        force=args.force,
        glossary=not args.no_glossary,
    )
    build_pack(opts, log)
    return EXIT_OK


def _verify(args) -> int:
    from ..packs import resolve_pack
    from ..runtime.pack import load_pack
    from .reference import TorchRunner, torch_modules
    from .verify import MAX_FEATURE_DIFF, MIN_AGREEMENT, verify_pack

    pack = load_pack(resolve_pack(args.pack))
    models = {}
    if args.semantic_model:
        models[pack.streams["S"].encoder] = args.semantic_model
    if args.acoustic_model:
        enc = pack.streams["A"].encoder
        if enc in models and models[enc] != args.acoustic_model:
            from .models import ModelError

            raise ModelError(f"S and A share encoder {enc!r}; give one model for it")
        models[enc] = args.acoustic_model
    recorded = (pack.manifest.get("verification") or {}).get("thresholds") or {}
    min_agreement = args.min_agreement if args.min_agreement is not None else recorded.get("min_token_agreement", MIN_AGREEMENT)
    if args.max_diff is not None:
        max_diff = args.max_diff
    else:  # an int8 pack records null: differences are measured, not gated
        max_diff = recorded["max_abs_feature_diff"] if "max_abs_feature_diff" in recorded else MAX_FEATURE_DIFF
    runner = TorchRunner(torch_modules(pack, models), args.threads)
    result = verify_pack(pack, args.audio, runner, threads=args.threads, min_agreement=min_agreement, max_feature_diff=max_diff)
    for line in result.lines():
        print(line)
    return EXIT_OK if result.passed else EXIT_VERIFY


def _publish(args) -> int:
    from ..packs import resolve_pack
    from .publish import publish

    done = publish(resolve_pack(args.pack), args.out, repo=args.repo, url=args.url, force=args.force)
    print(f"{done.folder}/  (upload as a Hugging Face model repository)")
    print(f"{done.archive}  sha256 {done.archive_sha256}  (for a web server)")
    print(f"manifest sha256 {done.manifest_sha256}")
    for line in done.pull_lines:
        print(line)
    if not args.repo:
        print("nat-export: the card's hf: line names OWNER; give --repo OWNER/NAME to fill it in", file=sys.stderr)
    return EXIT_OK


def _eval(rest: list[str]) -> int:
    from ..evaluation.main import main as eval_main

    return int(eval_main(rest) or 0)


def _fail(message: str, code: int) -> int:
    print(f"nat-export: {message}", file=sys.stderr, flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "eval":  # everything after 'eval' belongs to the evaluation (torch-free)
        return _eval(argv[1:])
    if argv and argv[0] == "glossary":  # runtime only: works without torch
        from .glossary import main as glossary_main

        return glossary_main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args.command == "publish":  # runtime only: works without torch
        from ..errors import NatError

        try:
            return _publish(args)
        except NatError as exc:
            return _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            return _fail("interrupted", 130)
    try:
        import torch  # noqa: F401
    except ImportError:
        return _fail("needs torch: pip install 'neural-audio-tokenizer[export]'", EXIT_USAGE)
    from ..errors import NatError
    from .build import VerificationError

    try:
        return _build(args) if args.command == "build" else _verify(args)
    except VerificationError as exc:
        return _fail(str(exc), EXIT_VERIFY)
    except NatError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)


if __name__ == "__main__":
    sys.exit(main())
