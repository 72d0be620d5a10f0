"""Rebuilds that agree: features that differ only in their last bits fit to the same bytes.

Two CPUs of different classes give an encoder's float32 outputs that differ by a unit or two
in the last place (measured about 3e-7 relative on the tiny pack's recipe). The features
here are the tiny pack's own: its committed ONNX encoders run through the runtime's
pipeline on the corpus its recipe synthesizes (tests/data/make_tiny_pack.py), so no torch
is needed. Each trial moves every float32 feature by -2..+2 units in the last place.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DATA, tone

from neural_audio_tokenizer.codebooks.fit import GRID_BITS, apply_normalization, fit_normalization, fit_rvq
from neural_audio_tokenizer.export.pack_writer import npy_bytes

TRIALS = 12


@pytest.fixture(scope="module")
def features() -> dict[str, np.ndarray]:
    from neural_audio_tokenizer.export.collect import collect_features, ort_runner
    from neural_audio_tokenizer.runtime.inputs.audio import from_array
    from neural_audio_tokenizer.runtime.features import pipeline_for
    from neural_audio_tokenizer.runtime.pack import load_pack

    pack = load_pack(DATA / "tiny_pack")
    pipeline = pipeline_for(pack)
    run = ort_runner({n: (e.model_bytes, e.input, list(e.outputs)) for n, e in pack.encoders.items()}, threads=1)
    # make_tiny_pack.make_corpus's training clips (clip 2 is held out for verification)
    sources = [from_array(tone(3.0, 22050, freq=150.0 * (1 + 0.45 * i), seed=20 + i)[:, 0], 22050) for i in (0, 1, 3, 4)]
    feats = collect_features(pipeline, run, sources)
    assert feats["S"].shape == (60, 32)  # the frames the tiny pack's provenance records
    return {s: x.astype(np.float32) for s, x in feats.items()}  # the encoders' precision


def last_bits(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x`` with every float32 moved by -2..+2 units in the last place."""
    moved = x.view(np.int32) + rng.integers(-2, 3, x.shape).astype(np.int32)
    return moved.view(np.float32)


def pack_files(x: np.ndarray, grid_bits: int | None) -> tuple[bytes, bytes]:
    """The normalization and codebook files a build writes for these features (the recipe's 4 x 16)."""
    norm = fit_normalization(x.astype(np.float64), grid_bits=grid_bits)
    books, _ = fit_rvq(apply_normalization(x.astype(np.float64), norm), 4, 16, seed=0, grid_bits=grid_bits)
    return npy_bytes(norm), npy_bytes(books)


def test_last_bit_noise_gives_the_same_files(features):
    rng = np.random.default_rng(2026)
    for stream, x in features.items():
        want = pack_files(x, GRID_BITS)
        for _ in range(TRIALS):
            y = last_bits(x, rng)
            assert np.max(np.abs(y / x - 1)) < 3e-7  # as small as the cross-CPU differences
            assert pack_files(y, GRID_BITS) == want, stream


def test_without_the_grid_the_same_noise_changes_the_files(features):
    """The control: the unsnapped fit turns the same noise into different bytes every time."""
    rng = np.random.default_rng(2026)
    for x in features.values():
        want = pack_files(x, None)
        for _ in range(3):
            norm, books = pack_files(last_bits(x, rng), None)
            assert norm != want[0] and books != want[1]


def test_grid_values_are_exact_and_cost_little(features):
    step = 2.0**-GRID_BITS
    for x in features.values():
        x = x.astype(np.float64)
        books, report = fit_rvq(apply_normalization(x, fit_normalization(x)), 4, 16, seed=0)
        assert np.all(books.astype(np.float64) / step == np.round(books.astype(np.float64) / step))
        _, exact = fit_rvq(apply_normalization(x, fit_normalization(x, grid_bits=None)), 4, 16, seed=0, grid_bits=None)
        # k-means may take another path, but the result is as good; the grid's own error
        # (uniform, step^2 / 12 per dimension) is a fraction of a percent of what is left
        assert report[-1]["mse"] == pytest.approx(exact[-1]["mse"], rel=0.05)
        assert step**2 / 12 < 0.01 * report[-1]["mse"]
