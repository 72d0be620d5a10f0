"""Codebook fitting (codebooks/fit.py): reproducible bytes, the runtime's assignment, dead codes."""

from __future__ import annotations

import numpy as np
import pytest

from neural_audio_tokenizer.codebooks.fit import _lloyd, apply_normalization, fit_normalization, fit_rvq
from neural_audio_tokenizer.codebooks.quantize import quantize


def clustered(n: int = 2000, dim: int = 6, seed: int = 3) -> np.ndarray:
    """Gaussian blobs at several scales, so every RVQ level has structure to find."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((12, dim)) * 4.0
    return centres[rng.integers(0, 12, n)] + rng.standard_normal((n, dim))


def test_same_input_and_seed_give_identical_bytes():
    x = clustered()
    a, report_a = fit_rvq(x, levels=3, codes=16, seed=5, iterations=10)
    b, report_b = fit_rvq(x.copy(), levels=3, codes=16, seed=5, iterations=10)
    assert a.dtype == np.float32 and a.shape == (3, 16, x.shape[1])
    assert a.tobytes() == b.tobytes()
    assert report_a == report_b
    c, _ = fit_rvq(x, levels=3, codes=16, seed=6, iterations=10)
    assert c.tobytes() != a.tobytes()  # the seed does matter


def test_error_decreases_level_by_level():
    _, report = fit_rvq(clustered(), levels=4, codes=16, seed=0, iterations=15)
    mse = [r["mse"] for r in report]
    assert all(later < earlier for earlier, later in zip(mse, mse[1:])), mse
    assert all(r["dead_codes"] == 0 and 1.0 < r["perplexity"] <= 16.0 for r in report)


def test_fit_assignment_agrees_with_runtime_quantize():
    """The report's numbers are about the codes the runtime will emit: recompute them with
    codebooks.quantize on the training data and get the same per-level error and usage."""
    x = clustered(seed=11)
    books, report = fit_rvq(x, levels=3, codes=16, seed=2, iterations=10)
    codes = quantize(x, books.astype(np.float64))
    residual = x.copy()
    for level, entry in enumerate(report):
        residual -= books[level].astype(np.float64)[codes[:, level]]
        assert np.mean(residual**2) == pytest.approx(entry["mse"], rel=5e-4)  # the report keeps 4 significant digits
        assert int(np.sum(np.bincount(codes[:, level], minlength=16) == 0)) == entry["dead_codes"]


def test_empty_clusters_are_reseeded():
    """Centroids started far from all data get no points; Lloyd must move them onto data."""
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.standard_normal((300, 2)), rng.standard_normal((300, 2)) + 8.0])
    start = np.array([[0.0, 0.0], [8.0, 8.0], [1e3, 1e3], [-1e3, 1e3], [1e3, -1e3], [-1e3, -1e3]])
    centroids, reseeds = _lloyd(points, start, iterations=10)
    assert reseeds >= 4
    used = np.bincount(quantize(points, centroids[None])[:, 0], minlength=6)
    assert np.all(used > 0), used
    assert np.all(np.abs(centroids) < 20)


def test_degenerate_data_fewer_distinct_points_than_codes():
    """Three distinct points, eight codes: no crash, exact reconstruction, dead codes reported."""
    x = np.repeat(np.eye(3) * 2.0, 40, axis=0)
    books, report = fit_rvq(x, levels=2, codes=8, seed=0, iterations=5)
    assert np.all(np.isfinite(books))
    assert report[0]["mse"] == 0.0
    assert report[0]["dead_codes"] == 5
    assert report[0]["perplexity"] == pytest.approx(3.0)


def test_too_few_frames_is_a_clear_error():
    with pytest.raises(ValueError, match="256 codes need at least 256 training frames, got 100"):
        fit_rvq(np.zeros((100, 4)), levels=1, codes=256, seed=0)


def test_large_inputs_are_subsampled_deterministically():
    x = clustered(n=3000)
    a, _ = fit_rvq(x, levels=1, codes=8, seed=1, iterations=5, max_points=500)
    b, _ = fit_rvq(x, levels=1, codes=8, seed=1, iterations=5, max_points=500)
    assert a.tobytes() == b.tobytes()


def test_normalization_floor_and_runtime_arithmetic():
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.standard_normal(500) * 3 + 1, np.full(500, 7.0)])  # one constant dimension
    norm = fit_normalization(x)
    assert norm.dtype == np.float32 and norm.shape == (2, 2) and np.all(norm[1] > 0)
    z = apply_normalization(x, norm)
    assert np.all(np.isfinite(z)) and np.allclose(z[:, 1], 0.0)
    assert z[:, 0].std() == pytest.approx(1.0, rel=2**-7 + 1e-5)  # std keeps GRID_BITS significant bits
