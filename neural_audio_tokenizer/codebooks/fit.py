"""Fit a stream's normalization and residual VQ codebooks from training features (numpy only).

Algorithm: residual VQ as in SoundStream (Zeghidour et al., 2021, Algorithm 1), each level
fitted offline by k-means on what the previous levels left over: k-means++ seeding
(Arthur & Vassilvitskii, "k-means++: the advantages of careful seeding", SODA 2007), then a
fixed number of Lloyd iterations.

Why these details:
- Reproducible bytes: a numpy ``Generator`` seeded by the caller drives every random choice,
  iterations are fixed (no tolerance test that a last-bit difference could flip), and sums
  accumulate in float64 in data order.
- Same arithmetic as the runtime: points are assigned with
  :func:`neural_audio_tokenizer.codebooks.quantize.quantize` itself (``||c||^2 - 2 r.c``,
  lowest index on ties), and each level's codebook is rounded as the pack stores
  it, *before* the next level's residual is taken, so later levels learn the residual the
  runtime will actually see.
- Empty clusters are re-seeded at the point farthest from its centroid (ties: lowest index),
  so a code that lost all its points comes back where the error is largest.
- Big inputs are subsampled to ``max_points`` rows by the same seeded generator: the cost
  stays bounded and codebooks of a few hundred codes need far fewer points.
- Rebuilds that agree: what a pack stores is snapped to a grid of ``2**-GRID_BITS`` of a
  standard deviation (:func:`snap_normalization`, :func:`snap_codebook`), much coarser than
  the last-bit differences two CPUs give the features, so a rebuild on another machine
  writes the same bytes unless a value lands within that noise of a grid boundary
  (docs/distribution.md, "Rebuilds"). The grid costs no accuracy worth measuring: the
  normalization is only a choice of affine map (codebooks are fitted after it), and each
  level's rounding is part of the residual the next level learns.
"""

from __future__ import annotations

import numpy as np

from .quantize import quantize

MAX_POINTS = 100_000
GRID_BITS = 6  # 1/64 of a standard deviation; figures in docs/distribution.md


def snap_normalization(table: np.ndarray, bits: int | None = GRID_BITS) -> np.ndarray:
    """[2, D] float32 on the grid: each std to ``bits`` significant bits, each mean to a
    multiple of a power of two between std/2**(bits+1) and std/2**bits. ``None``: unchanged."""
    t = np.asarray(table, dtype=np.float64)
    if bits is None:
        return t.astype(np.float32)
    mantissa, exponent = np.frexp(t[1])
    std = np.ldexp(np.round(np.ldexp(mantissa, bits)), exponent - bits)
    step = np.ldexp(1.0, np.frexp(std)[1] - 1 - bits)
    return np.stack([np.round(t[0] / step) * step, std]).astype(np.float32)


def snap_codebook(book: np.ndarray, bits: int | None = GRID_BITS) -> np.ndarray:
    """Codes (in normalized units) as float32 multiples of ``2**-bits``. ``None``: float32 only."""
    b = np.asarray(book, dtype=np.float64)
    return (b if bits is None else np.round(b * 2.0**bits) / 2.0**bits).astype(np.float32)


def _sig(value: float, digits: int = 4) -> float:
    """A report figure to ``digits`` significant digits, so last-bit noise stays out of manifests."""
    return float(f"{value:.{digits - 1}e}")


def fit_normalization(features: np.ndarray, grid_bits: int | None = GRID_BITS) -> np.ndarray:
    """[2, D] float32: per-dimension mean, then std, snapped to the grid (snap_normalization).
    A constant dimension would get a huge scale that turns rounding noise into features, so
    std is floored at 1e-3 of the median std (and 1e-8)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"fit_normalization needs features [frames >= 2, dim], got shape {x.shape}")
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    floor = max(1e-8, 1e-3 * float(np.median(std)))
    return snap_normalization(np.stack([mean, np.maximum(std, floor)]), grid_bits)


def apply_normalization(features: np.ndarray, normalization: np.ndarray) -> np.ndarray:
    """``(x - mean) * (1 / std)`` in float64 from the float32 table: the runtime's arithmetic
    (pack.py keeps ``scale = 1 / std``), so training sees what tokenization will."""
    table = np.asarray(normalization, dtype=np.float32).astype(np.float64)
    return (np.asarray(features, dtype=np.float64) - table[0]) * (1.0 / table[1])


def _assign(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    return quantize(points, centroids[None])[:, 0]


def _kmeans_pp(points: np.ndarray, codes: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: each next centre drawn with probability proportional to D(x)^2."""
    n = points.shape[0]
    chosen = [int(rng.integers(n))]
    d2 = np.sum((points - points[chosen[0]]) ** 2, axis=1)
    for _ in range(1, codes):
        total = float(d2.sum())
        if total > 0.0:
            pick = int(np.searchsorted(np.cumsum(d2), rng.random() * total, side="right"))
            pick = min(pick, n - 1)  # rounding of the last cumsum entry
        else:  # every point already sits on a centre: fewer distinct points than codes
            pick = int(rng.integers(n))
        chosen.append(pick)
        d2 = np.minimum(d2, np.sum((points - points[pick]) ** 2, axis=1))
    return points[chosen].copy()


def _lloyd(points: np.ndarray, centroids: np.ndarray, iterations: int) -> tuple[np.ndarray, int]:
    """Fixed Lloyd iterations with deterministic re-seeding of empty clusters.

    Returns (centroids, re-seeds done)."""
    centroids = centroids.copy()
    codes, dim = centroids.shape
    reseeds = 0
    for _ in range(iterations):
        labels = _assign(points, centroids)
        sums = np.zeros((codes, dim))
        np.add.at(sums, labels, points)  # unbuffered, in data order: deterministic float64 sums
        counts = np.bincount(labels, minlength=codes)
        used = counts > 0
        centroids[used] = sums[used] / counts[used, None]
        if used.all():
            continue
        error = np.sum((points - centroids[labels]) ** 2, axis=1)
        for code in np.flatnonzero(~used):
            far = int(np.argmax(error))  # first maximum: ties go to the lowest index
            if error[far] <= 0.0:
                break  # every point is reproduced exactly; nothing left to gain
            centroids[code] = points[far]
            error[far] = 0.0  # the next empty code takes the next-worst point
            reseeds += 1
    return centroids, reseeds


def fit_rvq(
    features: np.ndarray,
    levels: int,
    codes: int,
    seed: int,
    iterations: int = 25,
    max_points: int = MAX_POINTS,
    grid_bits: int | None = GRID_BITS,
) -> tuple[np.ndarray, list[dict]]:
    """Residual k-means codebooks [levels, codes, D] float32 on the grid (snap_codebook), and
    a report per level (figures to 4 significant digits):
    ``mse`` (mean squared residual per dimension after the level), ``perplexity`` (exp of the
    code-usage entropy; ``codes`` means uniform use), ``dead_codes`` (codes no training
    point chooses) and ``reseeds`` (empty clusters re-seeded during Lloyd)."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"fit_rvq needs features [frames, dim], got shape {x.shape}")
    if levels < 1 or codes < 2 or iterations < 1:
        raise ValueError("fit_rvq needs levels >= 1, codes >= 2, iterations >= 1")
    if x.shape[0] < codes:
        raise ValueError(f"fit_rvq: {codes} codes need at least {codes} training frames, got {x.shape[0]}; add training audio or use fewer codes")
    if not np.all(np.isfinite(x)):
        raise ValueError("fit_rvq: features contain NaN or infinite values")
    rng = np.random.default_rng(seed)
    if x.shape[0] > max_points:
        x = x[np.sort(rng.choice(x.shape[0], size=max_points, replace=False))]

    residual = x.copy()
    books = np.empty((levels, codes, x.shape[1]), dtype=np.float32)
    report = []
    for level in range(levels):
        centroids, reseeds = _lloyd(residual, _kmeans_pp(residual, codes, rng), iterations)
        books[level] = snap_codebook(centroids, grid_bits)
        book = books[level].astype(np.float64)  # the codebook as the pack stores it
        labels = _assign(residual, book)
        residual -= book[labels]
        usage = np.bincount(labels, minlength=codes) / labels.size
        nonzero = usage[usage > 0]
        report.append(
            {
                "level": level,
                "mse": _sig(float(np.mean(residual**2))),
                "perplexity": _sig(float(np.exp(-np.sum(nonzero * np.log(nonzero))))),
                "dead_codes": int(np.sum(usage == 0)),
                "reseeds": reseeds,
            }
        )
    return books, report
