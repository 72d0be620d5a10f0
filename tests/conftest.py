"""Shared fixtures: a tiny hand-built pack (no export side needed) and synthesized audio.

The tiny pack's encoders are strided convolutions with seeded random weights: they test
plumbing (chunking, pooling, quantization, NDJSON), never token quality.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"


def conv_encoder(sample_rate: int, hop: int, window: int, dim: int, seed: int, outputs=("feat",)) -> bytes:
    """ONNX: waveform [B, T] -> each output [B, frames, dim], frames = (T - window) // hop + 1."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weight = (rng.standard_normal((dim, 1, window)) / np.sqrt(window)).astype(np.float32)
    nodes = [
        helper.make_node("Unsqueeze", ["waveform", "axis1"], ["x3"]),
        helper.make_node("Conv", ["x3", "w"], ["conv"], strides=[hop]),
        helper.make_node("Abs", ["conv"], ["mag"]),
        helper.make_node("Add", ["mag", "one"], ["mag1"]),
        helper.make_node("Log", ["mag1"], ["logmag"]),
        helper.make_node("Transpose", ["logmag"], ["frames"], perm=[0, 2, 1]),
    ]
    for i, name in enumerate(outputs):
        nodes.append(helper.make_node("Mul", ["frames", f"g{i}"], [name]))
    inits = [
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(weight, "w"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
    ] + [numpy_helper.from_array(np.array(float(i + 1), dtype=np.float32), f"g{i}") for i in range(len(outputs))]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", "samples"])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", "frames", dim]) for n in outputs],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _entry(folder: Path, name: str, data: bytes, shape=None) -> dict:
    (folder / name).write_bytes(data)
    entry = {"file": name, "sha256": hashlib.sha256(data).hexdigest()}
    if shape is not None:
        entry["shape"] = list(shape)
    return entry


def _npy(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr.astype("<f4"), allow_pickle=False)
    return buf.getvalue()


def write_tiny_pack(folder: Path, codes: int = 16, dim: int = 8, window_s: float = 2.0, context_s: float = 0.4) -> Path:
    """Two encoders at different rates (16 kHz and 22.05 kHz), 4 levels per stream, 5 Hz."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    encoders = {
        "fast": _entry(folder, "fast.onnx", conv_encoder(16000, 320, 400, dim, 1)),
        "slow": _entry(folder, "slow.onnx", conv_encoder(22050, 441, 882, dim, 2)),
    }
    encoders["fast"].update(input="waveform", sample_rate=16000, hop=320, window=400, input_normalization="zero_mean_unit_variance", outputs=["feat"])
    encoders["slow"].update(input="waveform", sample_rate=22050, hop=441, window=882, input_normalization="none", outputs=["feat"])
    streams = {}
    for name, enc in (("S", "slow"), ("A", "fast")):
        norm = np.stack([np.full(dim, 0.5), np.full(dim, 0.5)])
        books = rng.standard_normal((4, codes, dim)) * np.array([1.0, 0.5, 0.25, 0.125])[:, None, None]
        streams[name] = {
            "encoder": enc,
            "output": "feat",
            "pooling": "mean",
            "normalization": _entry(folder, f"{name}_normalization.npy", _npy(norm), norm.shape),
            "codebooks": _entry(folder, f"{name}_codebooks.npy", _npy(books), books.shape),
        }
    manifest = {
        "format": "nat-pack",
        "format_version": 1,
        "name": "tiny-test",
        "description": "seeded random convolutions: plumbing only",
        "frame_rate": 5,
        "chunking": {"window_s": window_s, "context_s": context_s},
        "encoders": encoders,
        "streams": streams,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return folder


@pytest.fixture(scope="session")
def tiny_pack(tmp_path_factory) -> Path:
    return write_tiny_pack(tmp_path_factory.mktemp("packs") / "tiny")


def tone(seconds: float, sr: int, freq: float = 440.0, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A tone with a little noise and a beat, so tokens change over time."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sr))) / sr
    sig = 0.4 * np.sin(2 * np.pi * freq * t * (1 + 0.5 * (t % 1.0))) + 0.05 * rng.standard_normal(len(t))
    sig *= 0.6 + 0.4 * (np.sin(2 * np.pi * 2 * t) > 0)
    out = np.stack([sig * (1 - 0.1 * c) for c in range(channels)], axis=1)
    return out.astype(np.float32)


def wav_bytes(samples: np.ndarray, sr: int, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def run_nat(*args: str, input: bytes | None = None, env=None, check: bool = False) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh process, as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "neural_audio_tokenizer", *args],
        input=input,
        capture_output=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"nat {' '.join(args)} exited {proc.returncode}: {proc.stderr.decode()}")
    return proc


def as_streamed(lines: list[dict]) -> list[dict]:
    """A WAV's NDJSON objects as a pipe gives them (runtime/inputs/piped.py): the header's bytes,
    sha256 and duration_s null and decoder ``stream``, the stats line's ``source`` holding
    the size and hash (docs/ndjson.md, "Live and piped input"). Other lines unchanged."""
    out, identity = [], None
    for line in lines:
        line = json.loads(json.dumps(line))
        if line.get("type") == "header" and line["source"]["decoder"] == "soundfile" and line["source"]["format"].startswith(("WAV", "RF64")):
            source = line["source"]
            identity = {"bytes": source["bytes"], "sha256": source["sha256"]}
            source.update(bytes=None, sha256=None, duration_s=None, decoder="stream")
        elif line.get("type") == "stats" and identity is not None:
            tokens = line.pop("tokens")
            line["source"], line["tokens"] = identity, tokens
            identity = None
        out.append(line)
    return out
