"""Token quality of packs, the full evaluation (issue #7): one command, tables or JSON.

Renders the evaluation clips once (evaluation/rendered.py: a corpus-style stability set and the
8-instrument x 12-tune instrument set, all with seeds the built-in pack's codebooks never
saw) and evaluates every pack on them: stability under gain, resampling, mixdown, MP3/OGG,
a 10 ms shift and 40 dB SNR noise; instrument/melody distinctness; codebook utilization.

    python bench/quality.py                            # built-in pack + the tiny test pack
    python bench/quality.py --pack builtin --pack packs/mert-w2v
    python bench/quality.py --json > quality.json
    python bench/quality.py --quick                    # the CI-sized set

Needs only the runtime, mido and FluidSynth with the GM soundfont (no torch). docs/quality.md
holds this command's output for the built-in pack and the tiny pack.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from neural_audio_tokenizer.evaluation import rendered  # noqa: E402

TINY = REPO / "tests" / "data" / "tiny_pack"
NOTES = {
    os.fspath(TINY): "Plumbing only: the tiny pack's encoders have random weights, so these numbers "
    "say nothing about token quality; they show that a two-encoder neural pack (24 and 16 kHz) "
    "goes through every measurement.",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", action="append", help="pack name or folder (repeatable; default: builtin and tests/data/tiny_pack)")
    parser.add_argument("--quick", action="store_true", help="the small CI set instead of the full set")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--workers", type=int, default=2, help="clips rendered and tokenized at once (default 2)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"], help="onnxruntime device for the packs' encoders (default cpu)")
    args = parser.parse_args(argv)
    packs = args.pack or ["builtin", os.fspath(TINY)]
    log = lambda m: print(f"bench/quality: {m}", file=sys.stderr, flush=True)  # noqa: E731

    spec = rendered.QUICK if args.quick else rendered.FULL
    started = time.monotonic()
    log(f"rendering the {spec.name} set")
    eval_set = rendered.build_set(spec, args.workers)
    results = []
    for pack in packs:
        log(f"evaluating {pack}")
        result = rendered.evaluate(pack, eval_set, args.workers, log, args.device)
        result["note"] = NOTES.get(os.fspath(pack), "")
        results.append(result)
    total = time.monotonic() - started
    machine = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(), "workers": args.workers}
    if args.json:
        print(json.dumps({"set": eval_set.describe(), "machine": machine, "total_s": round(total, 1), "packs": results}, indent=1))
        return 0
    for result in results:
        print(rendered.format_report(result))
        if result["note"]:
            print(f"> {result['note']}\n")
    print(f"Total {total:.0f} s (rendering {eval_set.render_s:.0f} s) on {machine['cpus']} CPUs, {args.workers} workers.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
