"""Memory stays flat and output streams, however long the input (issue #8).

Writes a 1-minute and a 1-hour WAV to disk block by block (the bench itself never holds
the hour in memory), runs ``nat`` on each in a child process, and reports the child's peak
resident memory (``wait4`` rusage, the same number ``/usr/bin/time -v`` prints), wall time,
and when the first frame line arrived (streaming: long before the end).

    python bench/hour.py                    # tiny test pack, 44.1 kHz mono
    python bench/hour.py --pack builtin --rate 48000 --channels 2 --keep /tmp/nat-hour

Needs the test extras (onnx) only to build the tiny pack when no --pack is given.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
BLOCK_S = 10


def write_wav(path: Path, seconds: int, rate: int, channels: int) -> None:
    """A tone with a slow sweep and some noise, written ten seconds at a time."""
    rng = np.random.default_rng(0)
    t = np.arange(BLOCK_S * rate) / rate
    with sf.SoundFile(path, "w", rate, channels, "PCM_16") as f:
        for k in range(seconds // BLOCK_S):
            freq = 110 * 2 ** ((k % 48) / 12)
            sig = 0.3 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(len(t))
            f.write(np.repeat(sig[:, None], channels, axis=1).astype(np.float32))


def run(nat: list[str], path: Path) -> dict:
    start = time.monotonic()
    proc = subprocess.Popen(nat + [str(path)], stdout=subprocess.PIPE, cwd=REPO)
    first = None
    lines = 0
    for line in proc.stdout:
        lines += 1
        if first is None and line.startswith(b'{"t"'):
            first = time.monotonic() - start
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"nat exited {proc.returncode} on {path}")
    return {"wall_s": wall, "first_frame_s": first, "lines": lines, "peak_rss_mb": usage.ru_maxrss / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pack", help="pack name or folder (default: the tiny test pack)")
    p.add_argument("--rate", type=int, default=44100)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="nat --threads (default 1)")
    p.add_argument("--keep", metavar="DIR", help="write the WAVs here and keep them")
    args = p.parse_args()

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="nat-hour-"))
    work.mkdir(parents=True, exist_ok=True)
    pack = args.pack
    if pack is None:
        sys.path.insert(0, str(REPO / "tests"))
        from conftest import write_tiny_pack

        pack = str(write_tiny_pack(work / "tiny-pack"))
    nat = [sys.executable, "-m", "neural_audio_tokenizer", "--pack", pack, "--threads", str(args.threads)]
    results = {}
    try:
        for label, seconds in (("1 min", 60), ("1 h", 3600)):
            path = work / f"{seconds}s.wav"
            if not path.exists():
                t0 = time.monotonic()
                write_wav(path, seconds, args.rate, args.channels)
                print(f"wrote {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.monotonic() - t0:.1f} s", flush=True)
            results[label] = r = run(nat, path)
            print(
                f"{label:>5}: peak RSS {r['peak_rss_mb']:7.1f} MB   wall {r['wall_s']:7.1f} s   "
                f"first frame after {r['first_frame_s']:.2f} s   {r['lines']} lines",
                flush=True,
            )
    finally:
        if not args.keep:
            for f in work.glob("*.wav"):
                f.unlink()
    ratio = results["1 h"]["peak_rss_mb"] / results["1 min"]["peak_rss_mb"]
    print(f"peak RSS 1 h / 1 min = {ratio:.2f} ({args.rate} Hz, {args.channels} ch, pack {Path(pack).name})")


if __name__ == "__main__":
    main()
