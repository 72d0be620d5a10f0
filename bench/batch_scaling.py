"""How ``nat batch`` scales with worker processes: audio-seconds per second, 1 vs 2 workers.

    python bench/batch_scaling.py                 # the built-in pack
    python bench/batch_scaling.py PACK_DIR        # any pack folder (or name)
    python bench/batch_scaling.py --json --workers 1,2,4 --files 24 --seconds 20

Each run is the real CLI in a fresh process (``nat batch LIB --out OUT --workers N``), timed
wall-clock from start to exit, so worker start-up and pack loading count: that is what a
user waits for. The library is synthetic (tones with noise and a beat, 44.1 kHz stereo
FLAC), written once; every run starts from an empty output folder. The outputs of all
runs are checked byte-identical, as the workers promise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


def make_library(folder: Path, files: int, seconds: float, sr: int = 44100) -> float:
    rng = np.random.default_rng(0)
    for i in range(files):
        t = np.arange(int(seconds * sr)) / sr
        sig = 0.3 * np.sin(2 * np.pi * (110 + 37 * i) * t * (1 + 0.2 * (t % 2.0))) + 0.05 * rng.standard_normal(len(t))
        sig *= 0.6 + 0.4 * (np.sin(2 * np.pi * 2 * t) > 0)
        path = folder / f"disc{i % 3}" / f"{i:03d}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, np.stack([sig, 0.9 * sig], axis=1).astype(np.float32), sr, subtype="PCM_16")
    return files * seconds


def digest(out: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(out.rglob("*.ndjson")):
        h.update(p.relative_to(out).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def run(lib: Path, out: Path, workers: int, pack: str) -> float:
    cmd = [sys.executable, "-m", "neural_audio_tokenizer", "batch", str(lib), "--out", str(out), "--workers", str(workers), "--pack", pack, "-q"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"batch_scaling: nat batch --workers {workers} exited {proc.returncode}: {proc.stderr.strip()}")
    return elapsed


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pack", nargs="?", default=None, help="pack folder or name (default: the built-in pack)")
    p.add_argument("--workers", default="1,2", help="worker counts to compare (default: 1,2)")
    p.add_argument("--files", type=int, default=16, help="files in the synthetic library (default: 16)")
    p.add_argument("--seconds", type=float, default=20.0, help="seconds of audio per file (default: 20)")
    p.add_argument("--repeat", type=int, default=1, help="runs per worker count; the fastest counts (default: 1)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = p.parse_args()
    pack = args.pack
    if pack is None:
        builtin = REPO / "neural_audio_tokenizer" / "packs" / "builtin"
        if not (builtin / "manifest.json").is_file():
            sys.exit("batch_scaling: the built-in pack is not there yet; pass a pack folder (e.g. one written by tests/conftest.py write_tiny_pack)")
        pack = "builtin"
    counts = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory(prefix="nat-bench-") as tmp:
        lib = Path(tmp) / "lib"
        audio = make_library(lib, args.files, args.seconds)
        results, digests = [], set()
        for w in counts:
            best = float("inf")
            for k in range(args.repeat):
                out = Path(tmp) / f"out-{w}-{k}"
                best = min(best, run(lib, out, w, pack))
                digests.add(digest(out))
            results.append({"workers": w, "seconds": round(best, 3), "audio_s_per_s": round(audio / best, 2), "files_per_s": round(args.files / best, 3)})
    base = results[0]["audio_s_per_s"]
    for r in results:
        r["scaling"] = round(r["audio_s_per_s"] / base, 3)
    report = {
        "pack": pack,
        "load_average": [round(x, 2) for x in os.getloadavg()],  # other work on the machine skews wall times
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "files": args.files,
        "audio_s": audio,
        "identical_outputs": len(digests) == 1,
        "runs": results,
    }
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"nat batch on {args.files} files x {args.seconds:g} s ({audio:g} s of audio), pack {pack}, {report['cores']} cores, load average {report['load_average'][0]}")
    for r in results:
        print(f"  {r['workers']:>2} worker(s): {r['seconds']:7.2f} s  {r['audio_s_per_s']:8.1f} audio-s/s  {r['files_per_s']:6.2f} files/s  x{r['scaling']:.2f}")
    if len(results) > 1:
        print(f"scaling {results[0]['workers']} -> {results[-1]['workers']} workers: x{results[-1]['scaling']:.2f} (ideal x{results[-1]['workers'] / results[0]['workers']:g})")
    print("outputs identical across worker counts:", report["identical_outputs"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
