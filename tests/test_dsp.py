"""The built-in pack's DSP encoder (export/dsp.py) and the committed pack built from it."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from neural_audio_tokenizer.export import dsp
from neural_audio_tokenizer.packs import BUILTIN_DIR
from neural_audio_tokenizer.runtime.pack import load_pack, sha256_bytes

PACK = BUILTIN_DIR / "builtin"


@pytest.fixture(scope="module")
def encoder() -> dsp.DspEncoder:
    return dsp.build_dsp_encoder()


@pytest.fixture(scope="module")
def session(encoder) -> ort.InferenceSession:
    return ort.InferenceSession(encoder.model_bytes, providers=["CPUExecutionProvider"])


def run(session, waveform: np.ndarray) -> dict[str, np.ndarray]:
    x = np.asarray(waveform, dtype=np.float32)
    outs = session.run(["semantic", "acoustic"], {"waveform": x[None] if x.ndim == 1 else x})
    return dict(zip(["semantic", "acoustic"], outs))


def music(seconds: float, seed: int = 0) -> np.ndarray:
    """Harmonic notes changing every 0.25 s, with a little noise: something with timbre and pitch."""
    rng = np.random.default_rng(seed)
    n = round(seconds * dsp.SAMPLE_RATE)
    t = np.arange(n) / dsp.SAMPLE_RATE
    f0 = rng.choice([220.0, 261.6, 329.6, 392.0], size=int(seconds * 4) + 1)[(t * 4).astype(int)]
    x = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6))
    return (0.2 * x + 0.01 * rng.standard_normal(n)).astype(np.float32)


def test_graph_is_valid_small_and_deterministic(encoder):
    model = onnx.load_model_from_string(encoder.model_bytes)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17 and model.ir_version == 8
    assert len(encoder.model_bytes) < 2 * 1024 * 1024
    assert dsp.build_dsp_encoder().model_bytes == encoder.model_bytes
    assert encoder.window - encoder.hop <= dsp.SAMPLE_RATE  # fits the built-in pack's 1 s context


@pytest.mark.parametrize("extra", [0, 1, 440, 441, 442, 22050 * 3 + 17, 22050 * 12])
def test_frame_count_contract(session, encoder, extra):
    n = encoder.window + extra
    out = run(session, np.random.default_rng(extra).standard_normal(n) * 0.1)
    frames = (n - encoder.window) // encoder.hop + 1
    for name, dim in encoder.dims.items():
        assert out[name].shape == (1, frames, dim), name
        assert out[name].dtype == np.float32 and np.all(np.isfinite(out[name]))


def test_silence_and_extremes_are_finite(session, encoder):
    n = encoder.window + 100 * encoder.hop
    for x in (np.zeros(n), np.full(n, 1e-30), np.ones(n), np.sign(np.sin(np.arange(n) * 0.3))):
        for name, value in run(session, x).items():
            assert np.all(np.isfinite(value)), name
    silent = run(session, np.zeros(n))
    assert np.ptp(silent["acoustic"], axis=1).max() == 0.0  # constant: silence has one look


def test_batch_rows_are_independent(session):
    a, b = music(3.0, 1), music(3.0, 2)
    both = run(session, np.stack([a, b]))
    for name in ("semantic", "acoustic"):
        np.testing.assert_allclose(both[name][0], run(session, a)[name][0], atol=1e-5)
        np.testing.assert_allclose(both[name][1], run(session, b)[name][0], atol=1e-5)


def test_gain_invariance(session):
    x = music(4.0)
    base = run(session, x)
    for gain in (0.5, 1.41):  # -6 dB, +3 dB
        scaled = run(session, x * gain)
        for name in ("semantic", "acoustic"):
            scale = np.abs(base[name]).max()
            assert np.abs(scaled[name] - base[name]).max() < 1e-3 * scale, (name, gain)


def test_acoustic_matches_a_numpy_reference(session, encoder):
    """The graph computes what the docstring says: STFT, mel, level division, log, DCT; and
    the level envelope, log(level / local level + ENVELOPE_FLOOR)."""
    x = music(2.0, seed=4).astype(np.float64)
    got = run(session, x)["acoustic"][0]
    h = dsp.LEVEL_FRAMES // 2
    span = dsp.N_FFT_ACOUSTIC + (dsp.LEVEL_FRAMES - 1) * dsp.HOP
    padded = np.concatenate([np.zeros(span // 2 - dsp.CENTRE), x])
    window, mel_fb, kernel = dsp.hann(dsp.N_FFT_ACOUSTIC), dsp.mel_filterbank(), dsp.smoothing_kernel(dsp.LEVEL_FRAMES)

    def mel(j: int) -> np.ndarray:
        seg = padded[j * dsp.HOP : j * dsp.HOP + dsp.N_FFT_ACOUSTIC] * window
        return (np.abs(np.fft.rfft(seg)) ** 2) @ mel_fb

    for i in (0, 7, got.shape[0] - 1):
        local = sum(k * mel(i + m).mean() for m, k in enumerate(kernel))
        m = mel(i + h)
        ref = max(m.mean(), dsp.QUIET * local)
        want = np.log(m / (ref + dsp.TINY) + dsp.FLOOR) @ dsp.dct_matrix()
        np.testing.assert_allclose(got[i, : dsp.N_CEPSTRA], want, rtol=1e-3, atol=2e-3 * np.abs(want).max())
        envelope = np.log(m.mean() / (local + dsp.TINY) + dsp.ENVELOPE_FLOOR)
        np.testing.assert_allclose(got[i, dsp.N_CEPSTRA], envelope, rtol=1e-3, atol=2e-3)


def test_chroma_matches_a_numpy_reference(session, encoder):
    """Semantic: 4096-point magnitude chroma every CHROMA_HOP samples, Hann-smoothed over
    SMOOTH_FRAMES chroma frames, raised to CHROMA_POWER, L1-normalized, each chroma frame repeated for the
    CHROMA_REPEAT encoder frames it stands for (centred on the middle one's centre)."""
    x = music(3.0, seed=5).astype(np.float64)
    got = run(session, x)["semantic"][0]
    span = dsp.N_FFT_CHROMA + (dsp.SMOOTH_FRAMES - 1) * dsp.CHROMA_HOP
    padded = np.concatenate([np.zeros(span // 2 - dsp.CHROMA_CENTRE), x])
    window, fb, kernel = dsp.hann(dsp.N_FFT_CHROMA), dsp.chroma_filterbank(), dsp.smoothing_kernel()

    def chroma(q: int) -> np.ndarray:
        seg = padded[q * dsp.CHROMA_HOP : q * dsp.CHROMA_HOP + dsp.N_FFT_CHROMA] * window
        return np.abs(np.fft.rfft(seg)) @ fb

    assert got.shape[0] > 3 * dsp.CHROMA_REPEAT
    for i in (0, 4, 5, 13, got.shape[0] - 1):
        j = i // dsp.CHROMA_REPEAT
        smooth = sum(k * chroma(j + m) for m, k in enumerate(kernel)) ** dsp.CHROMA_POWER
        want = smooth / (smooth.sum() + dsp.TINY_CHROMA)
        np.testing.assert_allclose(got[i], want, rtol=1e-3, atol=1e-4)
    # chroma frame j stands for encoder frames 5j..5j+4: equal inside a group, not across
    assert np.array_equal(got[5], got[9]) and not np.array_equal(got[4], got[5])


def test_chunks_give_the_whole_file_features():
    """Chunks start on pack frames (multiples of CHROMA_HOP), so the chunked pipeline sees the
    same 10 Hz chroma grid as one pass over the whole file: features agree to float rounding
    (the 1 s context covers every branch's reach)."""
    from neural_audio_tokenizer.export.collect import ort_runner
    from neural_audio_tokenizer.runtime.features import build_pipeline
    from neural_audio_tokenizer.runtime.inputs.audio import from_array

    pack = load_pack(PACK)
    enc = pack.encoders["dsp"]
    x = music(23.0, seed=6)
    encoders = {"dsp": {"sample_rate": enc.sample_rate, "hop": enc.hop, "window": enc.window}}
    streams = {name: {"encoder": "dsp", "output": st.output, "pooling": "mean"} for name, st in pack.streams.items()}
    pipeline = build_pipeline(encoders, streams, pack.frame_rate, pack.window_s, pack.context_s)
    run_dsp = ort_runner({"dsp": (enc.model_bytes, "waveform", ["semantic", "acoustic"])}, threads=1)
    chunks = list(pipeline.iter_chunks(from_array(x, dsp.SAMPLE_RATE, "music"), run_dsp))
    assert len(chunks) == 3
    whole = run_dsp("dsp", np.concatenate([x, np.zeros(enc.window, np.float32)])[None])
    per = dsp.SAMPLE_RATE // (pack.frame_rate * dsp.HOP)
    for name, st in pack.streams.items():
        chunked = np.concatenate([c.streams[name] for c in chunks])
        pooled = whole[st.output][0, : chunked.shape[0] * per].astype(np.float64).reshape(chunked.shape[0], per, -1).mean(axis=1)
        np.testing.assert_allclose(chunked, pooled, atol=2e-5, err_msg=name)


def test_frames_are_centred_mid_hop(session, encoder):
    """A noise burst at sample p disturbs most the frame whose centre i*hop + CENTRE is nearest p."""
    n = 80000
    t = np.arange(n) / dsp.SAMPLE_RATE
    for p in (40000, 40500, 41000):
        x = 0.1 * np.sin(2 * np.pi * 440 * t)
        x[p - 220 : p + 221] += 0.3 * np.random.default_rng(0).standard_normal(441)
        acoustic = run(session, x)["acoustic"][0]
        disturbance = np.abs(acoustic - np.median(acoustic, axis=0)).sum(axis=1)
        nearest = round((p - dsp.CENTRE) / dsp.HOP)
        assert disturbance.argmax() == nearest, p


def test_builtin_pack_loads_and_verifies():
    pack = load_pack(PACK)  # checks every sha256, header, shape and finiteness
    manifest = json.loads((PACK / "manifest.json").read_text())
    for entry in manifest["encoders"].values():
        assert sha256_bytes((PACK / entry["file"]).read_bytes()) == entry["sha256"]
    assert pack.frame_rate == 5 and pack.window_s == 10.0 and pack.context_s == 1.0
    assert pack.streams["S"].codebooks.shape == (4, 256, dsp.OUTPUT_DIMS["semantic"])  # pooled by mean
    assert pack.streams["A"].codebooks.shape == (4, 256, 2 * dsp.OUTPUT_DIMS["acoustic"])  # mean and std
    assert sum(p.stat().st_size for p in PACK.iterdir()) < 2 * 1024 * 1024


def test_builtin_pack_encoder_is_this_code(encoder):
    """The committed dsp.onnx is what export/dsp.py builds: change one, rebuild the other
    (python -m neural_audio_tokenizer.export.builtin --out neural_audio_tokenizer/packs/builtin)."""
    pack = load_pack(PACK)
    assert pack.encoders["dsp"].model_bytes == encoder.model_bytes
    assert pack.encoders["dsp"].window == encoder.window and pack.encoders["dsp"].hop == encoder.hop


def test_runtime_reproduces_the_recipe_probe_codes():
    """The recipe recorded the codes its own arithmetic gives for a synthetic probe; the
    runtime Tokenizer must emit exactly those."""
    from neural_audio_tokenizer import Tokenizer
    from neural_audio_tokenizer.export.builtin import probe_signal

    probe = load_pack(PACK).manifest["verification"]["probe"]
    signal = probe_signal()
    assert sha256_bytes(signal.astype("<f4").tobytes()) == probe["sha256"]
    frames = list(Tokenizer.load(PACK, threads=1).encode((signal, dsp.SAMPLE_RATE)))
    assert [list(f.S) for f in frames] == probe["codes"]["S"]
    assert [list(f.A) for f in frames] == probe["codes"]["A"]


def test_builtin_pack_codes_per_level_and_silence_floor():
    """64 / 128 / 256 / 256 codes per level (export/codec_noise.py: a smaller level repeats its
    codes, which are never chosen), and the silence floor recorded in the manifest."""
    from neural_audio_tokenizer.export.builtin import CODES
    from neural_audio_tokenizer.evaluation.measures import reachable_codes

    pack = load_pack(PACK)
    assert pack.manifest["silence"]["floor_dbfs"] == pack.silence_floor_dbfs == -70.0
    for name, stream in pack.streams.items():
        assert [reachable_codes(book) for book in stream.codebooks] == list(CODES[name])


def test_smaller_levels_repeat_their_codes_and_never_choose_a_repeat():
    from neural_audio_tokenizer.codebooks.quantize import quantize
    from neural_audio_tokenizer.export.codec_noise import fit_levels

    x = np.random.default_rng(0).standard_normal((600, 4))
    books, report = fit_levels(x, np.stack([np.zeros(4), np.ones(4)]).astype(np.float32), (8, 16), seed=0, iterations=5)
    assert books.shape == (2, 16, 4) and [r["codes"] for r in report] == [8, 16]
    np.testing.assert_array_equal(books[0, 8:], books[0, :8])
    codes = quantize(x, books.astype(np.float64))
    assert codes[:, 0].max() < 8 and len(np.unique(codes[:, 0])) == 8


def test_receptive_field_is_declared_and_holds(session):
    """The manifest's receptive_field_s is what export/dsp.py computes, and it is true: audio
    changed anywhere farther than that from a pack frame leaves the frame's features alone,
    while a change just inside it moves them (so the figure is not loose either)."""
    manifest = json.loads((PACK / "manifest.json").read_text())
    declared = manifest["encoders"]["dsp"]["receptive_field_s"]
    assert declared == dsp.receptive_field_s()
    frame = dsp.SAMPLE_RATE // 5  # samples per pack frame
    per = frame // dsp.HOP
    reach = int(declared * dsp.SAMPLE_RATE)
    x = music(8.0, seed=9)
    k = 20  # pack frame 20: 4.0-4.2 s
    lo, hi = k * frame - reach, (k + 1) * frame + reach

    def frame_features(wave: np.ndarray) -> np.ndarray:
        out = run(session, wave)
        return np.concatenate([out[name][0, k * per : (k + 1) * per] for name in ("semantic", "acoustic")], axis=1)

    base = frame_features(x)
    noise = np.random.default_rng(1).standard_normal(len(x)).astype(np.float32) * 0.5
    outside = x.copy()
    outside[: lo - 1] = noise[: lo - 1]
    outside[hi + 1 :] = noise[hi + 1 :]
    np.testing.assert_allclose(frame_features(outside), base, rtol=1e-5, atol=1e-6)
    inside = x.copy()
    margin = int(0.05 * dsp.SAMPLE_RATE)
    inside[hi - margin : hi] = noise[hi - margin : hi]
    assert np.abs(frame_features(inside) - base).max() > 1e-4  # 100x the tolerance outside: the edge's Hann weight is small
