"""Live input (issue #13): how soon a frame's line follows its audio, and memory on endless stdin.

``latency``: feeds ``nat --raw`` raw 16-bit PCM on stdin at the pace of a sound card (blocks
of ``--block-ms`` every ``--block-ms``, or ``--speed`` times faster), timestamps each block
as it is written and each frame line as it comes out, and reports per frame the time from
the arrival of the block holding its last sample to its line: median and worst, over the
frames whose line came before the input ended (the end of input flushes the last ones).

``rss``: pipes ``--minutes`` of raw PCM into ``nat --raw`` as fast as it reads, output to
/dev/null, and reports the child's peak resident memory (``wait4`` rusage): bounded by the
chunk, not the input, so an hour peaks where a minute does.

    python bench/live.py latency --pack builtin --seconds 60
    python bench/live.py latency --pack tests/data/tiny_pack --seconds 60
    python bench/live.py rss --minutes 1 && python bench/live.py rss --minutes 60
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

RATE = 16000


def signal_block(k: int, n: int, rng: np.random.Generator) -> bytes:
    """Block ``k`` of a gliding tone in noise: n samples of s16le."""
    t = (np.arange(n) + k * n) / RATE
    x = 0.3 * np.sin(2 * np.pi * (220 + 110 * np.sin(0.3 * t)) * t) + 0.03 * rng.standard_normal(n)
    return np.round(x * 32767).astype("<i2").tobytes()


def nat_command(pack: str) -> list[str]:
    return [sys.executable, "-m", "neural_audio_tokenizer", "--raw", "--raw-rate", str(RATE), "--pack", pack, "-q"]


def latency(pack: str, seconds: float, block_ms: int, speed: float) -> dict:
    proc = subprocess.Popen(nat_command(pack), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    block = RATE * block_ms // 1000
    arrivals: list[float] = []
    lines: list[tuple[float, dict]] = []
    ended = [0.0]

    def read() -> None:
        for raw in proc.stdout:
            lines.append((time.monotonic(), json.loads(raw)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    header_wait = time.monotonic()
    rng = np.random.default_rng(0)
    # let nat start (imports, pack load) before the clock of the "sound card" starts
    proc.stdin.write(signal_block(0, block, rng))
    proc.stdin.flush()
    arrivals.append(time.monotonic())
    while not lines and time.monotonic() - header_wait < 120:
        time.sleep(0.01)
    start = time.monotonic() - block_ms / 1000 / speed
    for k in range(1, int(seconds * 1000 / block_ms)):
        due = start + k * block_ms / 1000 / speed
        time.sleep(max(0.0, due - time.monotonic()))
        proc.stdin.write(signal_block(k, block, rng))
        proc.stdin.flush()
        arrivals.append(time.monotonic())
    ended[0] = time.monotonic()
    proc.stdin.close()
    proc.wait(timeout=600)
    reader.join(timeout=60)
    frame_rate = lines[0][1]["frame_rate"]
    delays = []
    for when, obj in lines:
        if "t" not in obj or when > ended[0]:
            continue
        k = round(obj["t"] * frame_rate)
        last_sample = (k + 1) * RATE // frame_rate - 1
        delays.append(when - arrivals[min(last_sample // block, len(arrivals) - 1)])
    return {
        "pack": pack,
        "seconds": seconds,
        "block_ms": block_ms,
        "speed": speed,
        "frames_measured": len(delays),
        "median_s": round(statistics.median(delays), 3),
        "worst_s": round(max(delays), 3),
    }


def rss(pack: str, minutes: float) -> dict:
    started = time.monotonic()
    proc = subprocess.Popen(nat_command(pack), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    rng = np.random.default_rng(0)
    block = RATE * 10
    for k in range(int(minutes * 6)):  # ten seconds at a time
        proc.stdin.write(signal_block(k, block, rng))
    proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    return {"pack": pack, "minutes": minutes, "rc": os.waitstatus_to_exitcode(status), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "wall_s": round(time.monotonic() - started, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--pack", default="builtin")
    lat.add_argument("--seconds", type=float, default=60)
    lat.add_argument("--block-ms", type=int, default=50)
    lat.add_argument("--speed", type=float, default=1.0)
    mem = sub.add_parser("rss")
    mem.add_argument("--pack", default="builtin")
    mem.add_argument("--minutes", type=float, default=1)
    args = p.parse_args()
    result = latency(args.pack, args.seconds, args.block_ms, args.speed) if args.what == "latency" else rss(args.pack, args.minutes)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
