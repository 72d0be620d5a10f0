"""The built-in recipe's robustness stage (issue #12): codec-noise weights from real music,
codebooks with fewer codes at the coarse levels, and training on sounding frames only.

Why (measured with bench/robust_levers.py, figures in docs/quality.md): a lossy codec moves
the built-in features by 0.1-2.5 % of their spread, but with 256 codes per level that was
enough to flip one A0 token in twenty and one A1 token in five on real music. Three things
helped both stability and distinctness, or traded well:

- *Codec-noise weights* (A only): each A dimension's normalization std is divided by
  ``w = (spread / codec noise)``, normalized to mean 1, where noise is the RMS feature change
  under an MP3 and an OGG Vorbis round trip of real music and spread the feature's std on
  it; dimensions a codec rewrites (the spread of the upper cepstra within a frame) count
  less. On S the same weighting cost melody identification and was not kept.
- *Codes per level* 64 / 128 / 256 / 256 for both streams: bigger cells at the levels an
  LLM reads first. The format keeps ``codes = 256`` at every level: a level with ``k`` codes
  repeats them cyclically (entry ``i`` = entry ``i % k``) and ties go to the lowest index, so
  entries ``k..255`` are never chosen.
- *Sounding frames only*: frames below the silence floor (runtime/silence.py) never reach
  the codebooks at run time, so the fit leaves them out too.

Real music: Debian's ``warzone2100-music`` and ``hedgewars-data`` packages (OGG Opus and
Vorbis), the files ``1::3`` of each folder (``nat-export eval --audio`` and the docs use
``0::3`` for evaluation), the first :data:`SECONDS` of each. Their versions go into the
provenance. Nothing is downloaded here: install the packages (CI does).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..codebooks.fit import apply_normalization, fit_rvq
from ..codebooks.quantize import quantize
from ..evaluation import music
from ..runtime.inputs.audio import AudioSource, from_array
from ..runtime.features import EncoderRun, FeaturePipeline
from ..runtime.silence import DEFAULT_FLOOR_DBFS, SilenceGate
from .corpus import CorpusError

MUSIC_PACKAGES = {"warzone2100-music": "/usr/share/games/warzone2100/music", "hedgewars-data": "/usr/share/games/hedgewars/Data/Music"}
INSTALL_HINT = "apt-get install warzone2100-music hedgewars-data"
SECONDS = 40.0  # excerpt of each real file used for the weights
CODECS = ("MP3 128 kbit/s", "OGG Vorbis")  # music.CHANGES rows whose noise the weights measure


def music_files(which: str = "fit") -> dict[str, list[Path]]:
    """{package: files}: ``fit`` = files 1::3 of each folder, ``eval`` = 0::3. CorpusError when absent."""
    out = {}
    for package, folder in MUSIC_PACKAGES.items():
        if not Path(folder).is_dir():
            raise CorpusError(f"real music for the built-in recipe is missing ({folder}); install it with: {INSTALL_HINT}")
        files = music.find_audio(folder)
        out[package] = files[1::3] if which == "fit" else files[0::3]
    return out


def package_versions() -> dict[str, str]:
    """Installed versions of MUSIC_PACKAGES (dpkg), for the provenance."""
    out = {}
    for package in MUSIC_PACKAGES:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True)
        out[package] = done.stdout.strip() if done.returncode == 0 else "unknown"
    return out


def sounding_features(pipeline: FeaturePipeline, run: EncoderRun, sources: Iterable[AudioSource]) -> dict[str, np.ndarray]:
    """Pooled features of every frame at or above the silence floor, through the runtime's gate."""
    gate = SilenceGate(DEFAULT_FLOOR_DBFS, pipeline.frame_rate)
    parts: dict[str, list[np.ndarray]] = {s: [] for s in pipeline.routes}
    for source in sources:
        metered = gate.meter(source)
        for chunk in pipeline.iter_chunks(metered, run):
            keep = ~metered.silent(chunk.first_frame, chunk.n_frames)
            for s, feats in chunk.streams.items():
                parts[s].append(feats[keep])
    return {s: np.concatenate(p).astype(np.float64) for s, p in parts.items()}


def codec_pairs(pipeline: FeaturePipeline, run: EncoderRun, files: Sequence[Path], seconds: float = SECONDS) -> tuple[dict, dict]:
    """({stream: features as decoded}, {stream: feature change under each codec}), frame k vs k."""
    base: dict[str, list[np.ndarray]] = {s: [] for s in pipeline.routes}
    change: dict[str, list[np.ndarray]] = {s: [] for s in pipeline.routes}
    for i, path in enumerate(files):
        x, rate = music.load(path, seconds)
        clean = sounding_features(pipeline, run, [from_array(x.mean(axis=1), rate, path.name)])
        for s in base:
            base[s].append(clean[s])
        for codec in CODECS:
            y, y_rate, _ = music.CHANGES[codec].change(x, rate, i)
            coded = sounding_features(pipeline, run, [from_array(y.mean(axis=1), y_rate, path.name)])
            for s in change:
                n = min(len(coded[s]), len(clean[s]))
                change[s].append(coded[s][:n] - clean[s][:n])
    return {s: np.concatenate(v) for s, v in base.items()}, {s: np.concatenate(v) for s, v in change.items()}


def noise_weights(clean: np.ndarray, change: np.ndarray, power: float = 1.0) -> np.ndarray:
    """Per dimension (spread / codec noise) ** power, normalized to mean 1, rounded to 4
    significant digits (the pack stores them inside a float32 std)."""
    w = (clean.std(axis=0) / np.maximum(change.std(axis=0), 1e-12)) ** power
    w = w / w.mean()
    return np.array([float(f"{v:.4g}") for v in w])


def fit_levels(features: np.ndarray, normalization: np.ndarray, codes: Sequence[int], seed: int, iterations: int) -> tuple[np.ndarray, list[dict]]:
    """Residual k-means with ``codes[level]`` codes per level, each level's book repeated
    cyclically to ``max(codes)`` entries (entries past ``codes[level]`` are never chosen)."""
    z = apply_normalization(features, normalization)
    size = max(codes)
    books = np.empty((len(codes), size, z.shape[1]), dtype=np.float32)
    report = []
    for level, k in enumerate(codes):
        book, rep = fit_rvq(z, 1, k, seed + level, iterations)
        books[level] = book[0][np.arange(size) % k]
        chosen = quantize(z, book.astype(np.float64))[:, 0]
        z = z - book[0].astype(np.float64)[chosen]
        report.append({**rep[0], "level": level, "codes": k})
    return books, report
