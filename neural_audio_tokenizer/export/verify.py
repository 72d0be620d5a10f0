"""Compare a pack's runtime (onnxruntime) against the torch reference on real audio.

Two measurements, both recorded in the manifest and printed by ``nat-export verify``:

- encoder outputs: for every segment the runtime feeds an encoder, the exported ONNX graph
  and the torch module run on the very same waveform; max and mean absolute difference
  per output (measured ~6e-6 on full-size models, fp32);
- tokens: the runtime's own Tokenizer against the reference pipeline, agreement per stream
  and level (fraction of frames whose code is equal).

A pack passes when every level agrees on at least ``min_agreement`` of frames (99.9% for
fp32) and no output differs by more than ``max_feature_diff``. torch and onnxruntime share
the process, so both get few threads and onnxruntime does not spin (their idle workers
otherwise slowed each other 2-3x).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..runtime.inputs.audio import open_path
from ..runtime.pack import Pack
from ..runtime.session import SessionOptions, create_session, run_session
from ..runtime.tokenizer import Tokenizer
from .reference import ReferenceTokenizer, TorchRunner

MIN_AGREEMENT = 0.999
MAX_FEATURE_DIFF = 1e-3


@dataclass
class OutputDiff:
    max_abs: float = 0.0
    sum_abs: float = 0.0
    count: int = 0
    max_ref: float = 0.0

    def add(self, ref: np.ndarray, got: np.ndarray) -> None:
        diff = np.abs(ref.astype(np.float64) - got.astype(np.float64))
        self.max_abs = max(self.max_abs, float(diff.max(initial=0.0)))
        self.sum_abs += float(diff.sum())
        self.count += diff.size
        self.max_ref = max(self.max_ref, float(np.abs(ref).max(initial=0.0)))

    def summary(self) -> dict:
        return {"max_abs_diff": self.max_abs, "mean_abs_diff": self.sum_abs / max(1, self.count), "max_abs_value": self.max_ref}


class ComparingRunner:
    """Runs torch (the result used) and the pack's ONNX graph on each segment; records diffs."""

    def __init__(self, pack: Pack, torch_runner: TorchRunner, threads: int) -> None:
        self.pack = pack
        self.torch = torch_runner
        opts = SessionOptions("cpu", threads, spinning=False)
        self.sessions = {n: create_session(e.model_bytes, e.file, opts) for n, e in pack.encoders.items()}
        self.diffs = {n: {o: OutputDiff() for o in e.outputs} for n, e in pack.encoders.items()}

    def __call__(self, encoder: str, waveform: np.ndarray) -> dict[str, np.ndarray]:
        ref = self.torch(encoder, waveform)
        enc = self.pack.encoders[encoder]
        got = run_session(self.sessions[encoder], enc.input, list(enc.outputs), waveform)
        for name in enc.outputs:
            if ref[name].shape != got[name].shape:
                raise AssertionError(f"encoder {encoder!r} output {name!r}: onnx shape {got[name].shape} != torch {ref[name].shape}")
            self.diffs[encoder][name].add(ref[name], got[name])
        return ref


@dataclass
class Verification:
    clips: list[str]
    frames: int
    agreement: dict[str, float]  # "S0".."A3" -> fraction
    features: dict[str, dict[str, dict]]  # encoder -> output -> OutputDiff.summary()
    min_agreement: float = MIN_AGREEMENT
    max_feature_diff: float | None = MAX_FEATURE_DIFF  # None: measured, not gated (int8)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def worst_agreement(self) -> float:
        return min(self.agreement.values()) if self.agreement else 0.0

    @property
    def worst_feature_diff(self) -> float:
        return max((o["max_abs_diff"] for e in self.features.values() for o in e.values()), default=0.0)

    @property
    def passed(self) -> bool:
        return self.frames > 0 and self.worst_agreement >= self.min_agreement and self._features_ok

    @property
    def _features_ok(self) -> bool:
        return self.max_feature_diff is None or self.worst_feature_diff <= self.max_feature_diff

    def failure(self) -> str:
        if self.frames == 0:
            return "no frames to compare"
        if self.worst_agreement < self.min_agreement:
            token = min(self.agreement, key=self.agreement.get)
            return f"token agreement {self.worst_agreement:.4%} at {token} is below {self.min_agreement:.2%}"
        return f"encoder output differs by {self.worst_feature_diff:.3g} (limit {self.max_feature_diff:g})"

    def record(self) -> dict:
        """The manifest's ``verification`` object."""
        return {
            "reference": "torch fp32 (same LayerTaps modules as exported)",
            "runtime": "onnxruntime CPUExecutionProvider",
            "clips": self.clips,
            "frames": self.frames,
            "token_agreement": {k: round(v, 6) for k, v in self.agreement.items()},
            "min_token_agreement": round(self.worst_agreement, 6),
            "encoder_outputs": self.features,
            "thresholds": {"min_token_agreement": self.min_agreement, "max_abs_feature_diff": self.max_feature_diff},
            "passed": self.passed,
            **self.extra,
        }

    def lines(self) -> list[str]:
        """Human-readable report (``nat-export verify``)."""
        out = [f"clips: {len(self.clips)}, frames: {self.frames}"]
        for enc, outputs in self.features.items():
            for name, d in outputs.items():
                out.append(f"encoder {enc}.{name}: max abs diff {d['max_abs_diff']:.3g}, mean abs diff {d['mean_abs_diff']:.3g} (values up to {d['max_abs_value']:.3g})")
        out.append("token agreement: " + "  ".join(f"{k} {v:.4%}" for k, v in self.agreement.items()))
        verdict = "PASS" if self.passed else f"FAIL: {self.failure()}"
        limit = "not checked" if self.max_feature_diff is None else f"<= {self.max_feature_diff:g}"
        out.append(f"{verdict} (thresholds: agreement >= {self.min_agreement:.2%}, max abs diff {limit})")
        return out


def verify_pack(
    pack: Pack,
    clips: Sequence[str | os.PathLike],
    torch_runner: TorchRunner,
    *,
    threads: int = 2,
    min_agreement: float = MIN_AGREEMENT,
    max_feature_diff: float | None = MAX_FEATURE_DIFF,
    names: Mapping[str, str] | None = None,
) -> Verification:
    """Runtime vs torch reference on ``clips`` (paths); see module docstring."""
    tokenizer = Tokenizer(pack, SessionOptions("cpu", threads, spinning=False))
    comparing = ComparingRunner(pack, torch_runner, threads)
    reference = ReferenceTokenizer(pack, comparing)
    tokens = [f"{s}{i}" for s in ("S", "A") for i in range(pack.streams[s].levels)]
    equal = dict.fromkeys(tokens, 0)
    frames = 0
    for clip in clips:
        got = list(tokenizer.frames(open_path(os.fspath(clip))))
        want = list(reference.frames(open_path(os.fspath(clip))))
        if len(got) != len(want):
            raise AssertionError(f"{clip}: runtime gave {len(got)} frames, reference {len(want)}")
        for g, w in zip(got, want):
            gt, wt = g.tokens(), w.tokens()
            for k in tokens:
                equal[k] += gt[k] == wt[k]
        frames += len(got)
    agreement = {k: equal[k] / frames if frames else 0.0 for k in tokens}
    features = {e: {o: d.summary() for o, d in outs.items()} for e, outs in comparing.diffs.items()}
    shown = [(names or {}).get(os.fspath(c), os.path.basename(os.fspath(c))) for c in clips]
    return Verification(shown, frames, agreement, features, min_agreement, max_feature_diff)
