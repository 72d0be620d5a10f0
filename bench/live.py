"""Live input: how long push() holds an audio callback, how soon a frame follows its audio, and memory on endless stdin.

``push``: the push API in-process (``Tokenizer.live``), as a desktop app's audio callback
uses it: ``--seconds`` of audio pushed in ``--block-ms`` blocks at real-time pace. Reports
each push() call's time (median, worst), all push() calls together against ``encode()`` of
the same samples (measured in the same run, same process), the lag from a frame's last
sample's push to the frame being readable (median, worst, over frames ready before the
input ended), and whether the tokens equal encode()'s.

``latency``: feeds ``nat --raw`` raw 16-bit PCM on stdin at the pace of a sound card (blocks
of ``--block-ms`` every ``--block-ms``, or ``--speed`` times faster), timestamps each block
as it is written and each frame line as it comes out, and reports per frame the time from
the arrival of the block holding its last sample to its line: median and worst, over the
frames whose line came before the input ended (the end of input flushes the last ones).

``rss``: pipes ``--minutes`` of raw PCM into ``nat --raw`` as fast as it reads, output to
/dev/null, and reports the child's peak resident memory (``wait4`` rusage): bounded by the
chunk, not the input, so an hour peaks where a minute does.

    python bench/live.py push --pack builtin --seconds 20
    python bench/live.py push --pack tests/data/tiny_pack --seconds 20
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


def push(pack: str, seconds: float, block_ms: int, speed: float) -> dict:
    from neural_audio_tokenizer.runtime.tokenizer import Tokenizer

    tok = Tokenizer.load(pack)
    block = RATE * block_ms // 1000
    rng = np.random.default_rng(0)
    n_blocks = int(seconds * 1000 / block_ms)
    x = np.concatenate([np.frombuffer(signal_block(k, block, rng), "<i2") for k in range(n_blocks)]).astype(np.float32) / 32768
    started = time.perf_counter()
    want = list(tok.encode((x, RATE)))
    encode_s = time.perf_counter() - started

    live = tok.live(RATE)
    ready_at: dict[int, float] = {}
    got: list = []
    stop = threading.Event()

    def note(frames: list) -> None:
        now = time.monotonic()
        for f in frames:
            ready_at[f.index] = now
        got.extend(frames)

    read = getattr(live, "read", list)  # NAT before the engine had none: push returned the frames

    def poll() -> None:  # what an app's UI thread does: read what is ready, now and then
        while not stop.is_set():
            note(read())
            time.sleep(0.002)

    reader = threading.Thread(target=poll, daemon=True)
    reader.start()
    calls, arrivals = [], []
    start = time.monotonic()
    for k in range(n_blocks):
        due = start + k * block_ms / 1000 / speed
        time.sleep(max(0.0, due - time.monotonic()))
        t0 = time.perf_counter()
        frames = live.push(x[k * block : (k + 1) * block])
        calls.append(time.perf_counter() - t0)
        arrivals.append(time.monotonic())
        note(frames)
    ended = time.monotonic()
    stop.set()
    reader.join()
    note(live.close())
    rate = tok.frame_rate
    lags = [ready_at[f.index] - arrivals[min(((f.index + 1) * RATE // rate - 1) // block, n_blocks - 1)] for f in got if ready_at[f.index] <= ended]
    got.sort(key=lambda f: f.index)
    return {
        "pack": pack,
        "seconds": seconds,
        "block_ms": block_ms,
        "speed": speed,
        "push_median_ms": round(statistics.median(calls) * 1000, 3),
        "push_worst_ms": round(max(calls) * 1000, 3),
        "push_total_s": round(sum(calls), 4),
        "encode_s": round(encode_s, 3),
        "push_share_of_encode": round(sum(calls) / encode_s, 4),
        "frames_measured": len(lags),
        "lag_median_s": round(statistics.median(lags), 3) if lags else None,
        "lag_worst_s": round(max(lags), 3) if lags else None,
        "tokens_equal_encode": got == want,
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


def machine() -> str:
    """The CPU model and its widest vector units, from lscpu (figures differ 3x between machines)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    flags = set(fields.get("Flags", "").split())
    vector = [f for f in ("avx512f", "avx512_bf16", "avx512_vnni", "avx2", "fma") if f in flags]
    return f"{fields.get('Model name', '?').strip()}, {os.cpu_count()} CPUs, {' '.join(vector)}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--pack", default="builtin")
    lat.add_argument("--seconds", type=float, default=60)
    lat.add_argument("--block-ms", type=int, default=50)
    lat.add_argument("--speed", type=float, default=1.0)
    api = sub.add_parser("push")
    api.add_argument("--pack", default="builtin")
    api.add_argument("--seconds", type=float, default=20)
    api.add_argument("--block-ms", type=int, default=100)
    api.add_argument("--speed", type=float, default=1.0)
    mem = sub.add_parser("rss")
    mem.add_argument("--pack", default="builtin")
    mem.add_argument("--minutes", type=float, default=1)
    args = p.parse_args()
    if args.what == "rss":
        result = rss(args.pack, args.minutes)
    else:
        result = (latency if args.what == "latency" else push)(args.pack, args.seconds, args.block_ms, args.speed)
    result["machine"] = machine()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
