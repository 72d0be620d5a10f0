"""Time-boxed mutation fuzzing of what untrusted bytes reach first (issue #8).

Targets:
- ``decode``: ``audio.open_bytes`` + reading every block (libsndfile with all its formats,
  and the raw fallback). Allowed outcomes: finite float32 blocks, or ``InputError``.
- ``split``: ``stdin.split_parts``. Its parts joined with FS must give back the input (less
  at most one trailing FS), and FS-joined WAV/AIFF files must come back whole.
- ``onnx``: ``onnx_check.inspect_model``. Allowed: a result, or ``OnnxCheckError``.

Inputs are mutations (bit flips, byte sets, interesting 32-bit values, truncation,
insertion, duplication, splicing) of small valid files of every container libsndfile reads,
plus random bytes. The work runs in a child process that writes each decode input to
``<out>/current.bin`` first, so a crash in native code (which no exception handler can
catch) leaves its input behind; any unexpected exception is saved under ``<out>/``.

    python bench/fuzz.py --seconds 180          # default: 120 s over the three targets
    NAT_SLOW=1 python -m pytest tests/test_fuzz.py   # the hypothesis properties, many examples
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

INTERESTING = [0, 1, 2, 0x1C, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFF0]


def seeds() -> list[bytes]:
    import numpy as np
    from conftest import tone, wav_bytes

    x = tone(0.2, 8000, channels=2)
    out = []
    for fmt, sub in [
        ("WAV", "PCM_16"), ("WAV", "FLOAT"), ("WAV", "DOUBLE"), ("WAV", "ULAW"), ("WAV", "ALAW"), ("WAV", "PCM_U8"),
        ("WAV", "IMA_ADPCM"), ("WAV", "MS_ADPCM"), ("WAV", "GSM610"), ("AIFF", "PCM_24"), ("AIFF", "FLOAT"),
        ("AU", "ALAW"), ("CAF", "PCM_16"), ("W64", "PCM_U8"), ("RF64", "PCM_16"), ("FLAC", "PCM_16"),
        ("FLAC", "PCM_24"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III"), ("VOC", "PCM_16"), ("IRCAM", "PCM_16"),
        ("NIST", "PCM_16"), ("SVX", "PCM_16"), ("PAF", "PCM_16"), ("XI", "DPCM_16"), ("MAT5", "PCM_16"),
    ]:
        for samples in (x, x[:, :1]):  # some formats are mono only
            try:
                out.append(wav_bytes(samples, 8000, sub, fmt))
                break
            except Exception:  # noqa: BLE001 - not writable to memory by this libsndfile
                continue
    out.append(wav_bytes(tone(0.2, 48000), 48000, "OPUS", "OGG"))
    out.append(wav_bytes(np.full((400, 1), 0x1C1C / 32768, np.float32), 8000))
    return out


def mutate(rng: random.Random, pool: list[bytes]) -> bytes:
    b = bytearray(rng.choice(pool))
    for _ in range(rng.choice((1, 1, 2, 3, 5, 8))):
        op = rng.randrange(8)
        if not b:
            b = bytearray(rng.randbytes(rng.randrange(1, 64)))
        pos = rng.randrange(len(b))
        if op == 0:
            b[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            b[pos] = rng.randrange(256)
        elif op == 2 and pos + 4 <= len(b):
            b[pos : pos + 4] = rng.choice(INTERESTING).to_bytes(4, rng.choice(("little", "big")))
        elif op == 3:
            del b[rng.randrange(len(b)) :]
        elif op == 4:
            b[pos:pos] = rng.randbytes(rng.randrange(1, 32))
        elif op == 5:
            end = min(len(b), pos + rng.randrange(1, 256))
            b[pos:pos] = b[pos:end]
        elif op == 6:
            other = rng.choice(pool)
            b = b[:pos] + other[rng.randrange(len(other)) :]
        else:
            del b[pos : pos + rng.randrange(1, 64)]
    return bytes(b)


def fuzz_decode(data: bytes) -> str:
    import numpy as np

    from neural_audio_tokenizer.runtime.inputs.audio import open_bytes
    from neural_audio_tokenizer.errors import InputError

    try:
        source = open_bytes(data, "fuzz")
        for block in source.blocks():
            if block.dtype != np.float32 or not np.all(np.isfinite(block)):
                raise AssertionError("non-finite or non-float32 block")
        return source.info.decoder
    except InputError as exc:
        if "\n" in str(exc):
            raise AssertionError(f"multi-line message: {exc!r}") from None
        return "error"


def fuzz_split(rng: random.Random, pool: list[bytes], wavs: list[bytes]) -> str:
    from neural_audio_tokenizer.runtime.inputs.splitter import FS, split_parts

    if rng.random() < 0.5:
        parts = [rng.choice(wavs) for _ in range(rng.randrange(1, 5))]
        data = FS.join(parts) + (FS if rng.random() < 0.5 else b"")
        if split_parts(data) != parts:
            raise AssertionError("FS-joined WAV/AIFF files did not come back whole")
        return "whole"
    parts = [mutate(rng, pool) if rng.random() < 0.7 else rng.randbytes(rng.randrange(0, 40)) for _ in range(rng.randrange(1, 5))]
    data = FS.join(parts) + (FS if rng.random() < 0.5 else b"")
    joined = FS.join(split_parts(data))
    if not (joined == data or (data.endswith(FS) and joined == data[:-1])):
        raise AssertionError("parts joined with FS differ from the input")
    return "rejoined"


def fuzz_onnx(data: bytes) -> str:
    from neural_audio_tokenizer.runtime.onnx_check import OnnxCheckError, inspect_model

    try:
        inspect_model(data)
        return "ok"
    except OnnxCheckError:
        return "refused"


def worker(seconds: float, out: Path, seed: int) -> None:
    from conftest import conv_encoder

    from neural_audio_tokenizer.runtime.inputs import stderr_guard

    stderr_guard.enable()  # libmpg123's notes would flood the terminal
    rng = random.Random(seed)
    pool = seeds()
    wavs = [s for s in pool if s[:4] in (b"RIFF", b"FORM")]
    models = [conv_encoder(16000, 320, 400, 8, 1), conv_encoder(22050, 441, 882, 4, 2, outputs=("a", "b"))]
    counts: dict[str, dict[str, int]] = {"decode": {}, "split": {}, "onnx": {}}
    current = out / "current.bin"
    unexpected = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for _ in range(50):
            target = rng.choices(("decode", "split", "onnx"), weights=(6, 3, 1))[0]
            data = b""
            try:
                if target == "decode":
                    data = mutate(rng, pool) if rng.random() < 0.9 else rng.randbytes(rng.randrange(1, 4096))
                    current.write_bytes(data)
                    outcome = fuzz_decode(data)
                elif target == "split":
                    outcome = fuzz_split(rng, pool, wavs)
                else:
                    data = mutate(rng, models)
                    outcome = fuzz_onnx(data)
            except Exception:  # noqa: BLE001 - the finding itself
                unexpected += 1
                name = out / f"{target}-{hashlib.sha256(data).hexdigest()[:16]}"
                name.with_suffix(".bin").write_bytes(data)
                name.with_suffix(".txt").write_text(traceback.format_exc())
                outcome = "UNEXPECTED"
            counts[target][outcome] = counts[target].get(outcome, 0) + 1
    current.unlink(missing_ok=True)
    print(json.dumps({"counts": counts, "unexpected": unexpected}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default=str(REPO / "bench" / "fuzz-findings"), help="where findings go")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.worker:
        worker(args.seconds, out, args.seed)
        return
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", "--seconds", str(args.seconds), "--seed", str(args.seed), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        crash = out / "current.bin"
        print(f"worker died (exit {proc.returncode}); its last decode input is {crash}", file=sys.stderr)
        print(proc.stderr[-4000:], file=sys.stderr)
        raise SystemExit(1)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    total = sum(sum(c.values()) for c in report["counts"].values())
    print(f"{total} inputs in {time.monotonic() - start:.0f} s (seed {args.seed}); unexpected: {report['unexpected']}")
    for target, counts in report["counts"].items():
        print(f"  {target:6}: {sum(counts.values()):7d}  " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if report["unexpected"]:
        print(f"findings in {out}", file=sys.stderr)
        raise SystemExit(1)
    try:
        out.rmdir()  # nothing found: leave no empty folder behind
    except OSError:
        pass


if __name__ == "__main__":
    main()
