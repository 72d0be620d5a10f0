"""write_pack (export/pack_writer.py) and collect_features (export/collect.py)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import conv_encoder, tone

from neural_audio_tokenizer import Tokenizer
from neural_audio_tokenizer.codebooks.fit import apply_normalization, fit_normalization, fit_rvq
from neural_audio_tokenizer.codebooks.quantize import quantize
from neural_audio_tokenizer.export.collect import collect_features, ort_runner
from neural_audio_tokenizer.runtime.features import build_pipeline
from neural_audio_tokenizer.export.pack_writer import write_pack
from neural_audio_tokenizer.runtime.inputs.audio import from_array
from neural_audio_tokenizer.runtime.pack import load_pack


def pack_args(codebooks=None) -> dict:
    rng = np.random.default_rng(0)
    model = conv_encoder(16000, 320, 400, 8, seed=1, outputs=("feat",))
    stream = {
        "encoder": "enc",
        "output": "feat",
        "pooling": "mean",
        "normalization": np.stack([np.zeros(8), np.ones(8)]),
        "projection": None,
        "codebooks": rng.standard_normal((2, 4, 8)) if codebooks is None else codebooks,
    }
    return dict(
        name="test",
        description="writer test",
        frame_rate=5,
        window_s=2.0,
        context_s=0.2,
        encoders={"enc": {"model_bytes": model, "input": "waveform", "sample_rate": 16000, "hop": 320, "window": 400, "input_normalization": "none", "outputs": ["feat"]}},
        streams={"A": dict(stream), "S": dict(stream)},
        provenance={"recipe": "test"},
    )


def test_written_pack_loads_and_is_byte_identical_twice(tmp_path):
    a = write_pack(tmp_path / "a", **pack_args())
    b = write_pack(tmp_path / "b", **pack_args())
    files = sorted(p.name for p in a.iterdir())
    assert files == ["A_codebooks.npy", "A_normalization.npy", "S_codebooks.npy", "S_normalization.npy", "enc.onnx", "manifest.json"]
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    text = (a / "manifest.json").read_text()
    assert text.endswith("}\n") and list(load_pack(a).manifest) == [
        "format", "format_version", "name", "description", "frame_rate", "chunking", "silence", "encoders", "streams", "provenance", "verification"
    ]
    assert list(load_pack(a).manifest["streams"]) == ["S", "A"]  # fixed order whatever the caller's
    assert load_pack(a).manifest["silence"]["floor_dbfs"] == load_pack(a).silence_floor_dbfs == -70.0


def test_rewrite_replaces_and_failure_leaves_nothing_behind(tmp_path):
    out = write_pack(tmp_path / "p", **pack_args())
    (out / "stale.txt").write_text("old")
    write_pack(out, **pack_args())
    assert not (out / "stale.txt").exists()
    with pytest.raises(ValueError, match="finite"):
        write_pack(tmp_path / "bad", **pack_args(codebooks=np.full((2, 4, 8), np.nan)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p"]  # no temp folders, no half pack


def test_collect_features_fit_and_write_round_trip(tmp_path):
    """Features through the runtime pipeline -> fit -> pack -> the runtime's codes match."""
    args = pack_args()
    pipeline = build_pipeline(args["encoders"], args["streams"], 5, 2.0, 0.2)
    enc = args["encoders"]["enc"]
    run = ort_runner({"enc": (enc["model_bytes"], "waveform", enc["outputs"])}, threads=1)
    sources = [from_array(tone(3.0, 16000, freq=f, seed=i), 16000) for i, f in enumerate((220.0, 440.0, 660.0))]
    feats = collect_features(pipeline, run, sources)
    assert feats["S"].shape == (45, 8) and feats["S"].dtype == np.float64
    for s in ("S", "A"):
        norm = fit_normalization(feats[s])
        books, _ = fit_rvq(apply_normalization(feats[s], norm), 2, 8, seed=0, iterations=5)
        args["streams"][s] = {**args["streams"][s], "normalization": norm, "codebooks": books}
    pack = load_pack(write_pack(tmp_path / "fitted", **args))
    tok = Tokenizer(pack)
    frames = list(tok.encode((tone(3.0, 16000, freq=220.0, seed=0), 16000)))

    def fitted(s: str, rows=slice(None), exclude=None) -> np.ndarray:  # the first source's 15 frames, quantized the fit's way
        table = args["streams"][s]
        return quantize(apply_normalization(feats[s][:15][rows], table["normalization"]), table["codebooks"].astype(np.float64), exclude=exclude)

    book = args["streams"]["S"]["codebooks"][0]
    want = tok.silence.keep_apart(np.zeros(15, bool), {s: fitted(s) for s in ("S", "A")}, book, lambda rows, ex: fitted("S", rows, ex))
    for s in ("S", "A"):
        assert [list(getattr(f, s)) for f in frames] == want[s].tolist()
