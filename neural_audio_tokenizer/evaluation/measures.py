"""Measures on token arrays, shared by the rendered set (evaluation/rendered.py) and the
folder of music (evaluation/music.py): per-clip token histograms and nearest neighbours,
mutual information, codebook utilization, the half-finds-half test, change rates.

Tokens are ``[frames, levels S + levels A]`` int64 arrays, as :func:`tokenize` makes them
with the public ``Tokenizer.encode``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def tokenize(tok, audio: np.ndarray, rate: int) -> np.ndarray:
    """[frames, levels S + levels A] int64."""
    frames = list(tok.encode((audio, rate), name="eval"))
    return np.array([f.S + f.A for f in frames], dtype=np.int64)


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def histograms(tokens: Sequence[np.ndarray], codes: int) -> np.ndarray:
    """[clips, codes]: each clip's token counts / frames, square-rooted (Hellinger embedding)."""
    return np.sqrt(np.stack([np.bincount(t, minlength=codes)[:codes] / max(1, len(t)) for t in tokens]))


def nn_accuracy(features: np.ndarray, labels: Sequence) -> float:
    """Leave-one-out nearest-neighbour accuracy (Euclidean; ties: the lowest index)."""
    x = np.asarray(features, dtype=np.float64)
    d = np.sum(x**2, axis=1)[:, None] + np.sum(x**2, axis=1)[None, :] - 2 * x @ x.T
    np.fill_diagonal(d, np.inf)
    nearest = np.argmin(d, axis=1)
    y = np.asarray(labels)
    return float(np.mean(y[nearest] == y))


def nn_chance(labels: Sequence) -> float:
    """Accuracy of a random neighbour: the share of other clips in a clip's class."""
    y = np.asarray(labels)
    return float(np.mean([(np.sum(y == v) - 1) / (len(y) - 1) for v in y]))


def entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-np.sum(p * np.log(p)))


def mutual_information(tokens: np.ndarray, labels: np.ndarray) -> float:
    """Plug-in I(T; Y) in nats from paired integer arrays."""
    _, t = np.unique(tokens, return_inverse=True)
    _, y = np.unique(labels, return_inverse=True)
    joint = np.bincount(t * (y.max() + 1) + y, minlength=(t.max() + 1) * (y.max() + 1)).reshape(t.max() + 1, y.max() + 1)
    return entropy(joint.sum(axis=1)) + entropy(joint.sum(axis=0)) - entropy(joint.ravel())


def reachable_codes(book: np.ndarray) -> int:
    """Codes a level can choose: its distinct entries (a level with fewer codes repeats them,
    export/codec_noise.py, and a repeat never wins: ties go to the lowest index)."""
    return int(len(np.unique(np.asarray(book), axis=0)))


def utilization(tokens: np.ndarray, codes: int) -> dict:
    counts = np.bincount(tokens, minlength=codes)
    used = int(np.sum(counts > 0))
    return {"codes": codes, "used": used, "dead": codes - used, "dead_share": (codes - used) / codes, "perplexity": float(np.exp(entropy(counts)))}


def halves_found(tokens: Sequence[np.ndarray], cols: Sequence[int], codes: Sequence[int]) -> float:
    """Share of half-files whose nearest other half is the other half of the same file: each
    file's first and second half ask, described by the concatenated per-level token
    histograms of ``cols`` (Hellinger, as the rendered set describes a clip)."""
    n = len(tokens)
    halves = [t[: len(t) // 2] for t in tokens] + [t[len(t) // 2 :] for t in tokens]
    x = np.concatenate([histograms([h[:, c] for h in halves], k) for c, k in zip(cols, codes)], axis=1)
    d = np.sum(x**2, axis=1)[:, None] + np.sum(x**2, axis=1)[None, :] - 2 * x @ x.T
    np.fill_diagonal(d, np.inf)
    nearest = np.argmin(d, axis=1)
    partner = np.concatenate([np.arange(n, 2 * n), np.arange(n)])
    return float(np.mean(nearest == partner))


def change_rates(tokens: Sequence[np.ndarray], names: Sequence[str], silence: np.ndarray | None) -> dict:
    """Per level: share of frames whose token differs from the previous frame's (all files
    pooled); the share --rle folds (every token unchanged); the share of silent frames."""
    changed = np.zeros(len(names))
    folded = pairs = silent = frames = 0
    for t in tokens:
        frames += len(t)
        if silence is not None:
            silent += int(np.all(t == silence, axis=1).sum())
        if len(t) < 2:
            continue
        diff = t[1:] != t[:-1]
        changed += diff.sum(axis=0)
        folded += int((~diff.any(axis=1)).sum())
        pairs += len(t) - 1
    return {
        "levels": {n: float(changed[i] / pairs) if pairs else 0.0 for i, n in enumerate(names)},
        "rle_folded": folded / pairs if pairs else 0.0,
        "silent": silent / frames if frames else 0.0,
    }


def machine() -> str:
    """The CPU model and core count, for the report (figures depend on the machine)."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores"
