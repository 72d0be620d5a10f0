"""The silence floor (runtime/silence.py): frames below it get the same tokens whatever the
noise below it is, for the built-in pack and the committed tiny neural pack (random
weights: these tests check the plumbing, i.e. that sub-floor noise cannot reach the tokens,
not token quality)."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from conftest import DATA, run_nat, wav_bytes
from neural_audio_tokenizer import Tokenizer
from neural_audio_tokenizer.packs import resolve_pack
from neural_audio_tokenizer.runtime.inputs.audio import from_array
from neural_audio_tokenizer.errors import PackError
from neural_audio_tokenizer.runtime.pack import load_pack
from neural_audio_tokenizer.runtime.silence import DEFAULT_FLOOR_DBFS, LevelMeter, parse_floor

SR = 44100
PACKS = {"builtin": None, "tiny-neural": DATA / "tiny_pack"}


def music(seconds: float = 3.0) -> np.ndarray:
    """A decaying two-note phrase (well above the floor until its last frame)."""
    t = np.arange(round(seconds * SR)) / SR
    x = 0.3 * np.sin(2 * np.pi * 440 * t) * np.exp(-t) + 0.1 * np.sin(2 * np.pi * 659.3 * t) * (t > 1.0)
    return x.astype(np.float32)


def quiet(kind: str, seconds: float) -> np.ndarray:
    """Sub-floor "silence" as media deliver it."""
    n = round(seconds * SR)
    rng = np.random.default_rng(7)
    if kind == "digital zero":
        return np.zeros(n, np.float32)
    if kind == "16-bit dither":  # TPDF, +-1 LSB: about -98 dBFS RMS
        return ((rng.random(n) - rng.random(n)) / 32768).astype(np.float32)
    if kind == "-90 dBFS noise":
        return (rng.standard_normal(n) * 10 ** (-90 / 20)).astype(np.float32)
    if kind == "MP3 silence":  # 16-bit dither through LAME at 128 kbit/s, decoded back
        buf = io.BytesIO()
        sf.write(buf, quiet("16-bit dither", seconds), SR, format="MP3", subtype="MPEG_LAYER_III", bitrate_mode="CONSTANT", compression_level=0.65)
        buf.seek(0)
        return sf.read(buf, dtype="float32")[0][:n]
    raise ValueError(kind)


KINDS = ("digital zero", "16-bit dither", "-90 dBFS noise", "MP3 silence")


def tokens(tok: Tokenizer, x: np.ndarray) -> np.ndarray:
    return np.array([f.S + f.A for f in tok.encode((x, SR))])


@pytest.fixture(scope="module", params=list(PACKS))
def tok(request) -> Tokenizer:
    return Tokenizer.load(PACKS[request.param])


def test_sub_floor_noise_never_reaches_the_tokens(tok):
    """Music, 4 s of each kind of silence, music again: every frame's tokens are the same
    whatever the silence is, and every silent frame carries the pack's silence codes."""
    phrase = music()
    streams = {k: tokens(tok, np.concatenate([phrase, quiet(k, 4.0), phrase])) for k in KINDS}
    reference = streams["digital zero"]
    for kind, got in streams.items():
        np.testing.assert_array_equal(got, reference, err_msg=kind)
    silence = np.concatenate([tok.silence.codes["S"], tok.silence.codes["A"]])
    pause = reference[15:35]  # frames 15..34 are the 4 s pause
    assert (pause == silence).all()
    assert not (reference[:14] == silence).all(axis=1).any(), "a sounding frame got the silence codes"


def test_every_silent_frame_is_the_same_line_so_rle_folds_a_pause(tmp_path):
    wav = tmp_path / "pause.wav"
    wav.write_bytes(wav_bytes(np.concatenate([music(), quiet("16-bit dither", 4.0), music()]), SR, subtype="FLOAT"))
    out = run_nat("--rle", "--keyframe-interval", "0", str(wav), check=True).stdout.decode().splitlines()
    frames = [json.loads(x) for x in out[1:-1]]
    runs = [f["n"] for f in frames if "n" in f]
    assert max(runs) >= 20, runs  # the 20 pause frames are one line (the last sounding frames may join)
    assert sum(f.get("n", 1) for f in frames) == 50


def test_without_a_floor_the_noise_decides_the_tokens(tmp_path):
    """The same test with the floor switched off in the manifest fails: the gate does the work."""
    pack = shutil.copytree(resolve_pack(None), tmp_path / "nofloor")
    manifest = json.loads((pack / "manifest.json").read_text())
    manifest["silence"] = {"floor_dbfs": None}
    (pack / "manifest.json").write_text(json.dumps(manifest))
    tok = Tokenizer.load(pack)
    assert tok.silence.floor_dbfs is None
    phrase = music()
    a = tokens(tok, np.concatenate([phrase, quiet("digital zero", 4.0)]))
    b = tokens(tok, np.concatenate([phrase, quiet("16-bit dither", 4.0)]))
    assert (a != b).any()


def test_manifest_field_is_optional_and_checked():
    assert parse_floor() == DEFAULT_FLOOR_DBFS == -70.0  # packs without the field (the committed tiny pack)
    assert load_pack(DATA / "tiny_pack").silence_floor_dbfs == DEFAULT_FLOOR_DBFS
    assert parse_floor({"floor_dbfs": -60}) == -60.0
    assert parse_floor({"floor_dbfs": None}) is None
    for bad in (None, [], {"floor": -60}, {"floor_dbfs": "loud"}, {"floor_dbfs": 3}, {"floor_dbfs": True}):
        with pytest.raises(PackError) as info:
            parse_floor(bad)
        assert "silence" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("rate", [44100, 8000, 44101])
def test_level_meter_decides_each_frame_once_whatever_the_blocks(rate):
    rng = np.random.default_rng(1)
    seconds = 2.3
    x = (rng.standard_normal(round(seconds * rate)) * 10 ** (-90 / 20)).astype(np.float32)
    x[round(0.5 * rate) : round(0.9 * rate)] = 0.1  # frames 2-4 loud (frame 2 and 4 partly)
    decisions = []
    for block in (65536, 1000, 7):
        meter = LevelMeter(rate, 5, DEFAULT_FLOOR_DBFS)
        for i in range(0, len(x), block):
            meter.push(x[i : i + block])
        meter.finish()
        decisions.append(meter.silent)
    assert decisions[0] == decisions[1] == decisions[2]
    assert len(decisions[0]) == -(-len(x) * 5 // rate)  # one decision per frame, the partial last one too
    assert decisions[0][:2] == [True, True] and decisions[0][2:5] == [False, False, False] and all(decisions[0][5:])


def test_a_near_silent_chunk_reaches_a_neural_encoder_as_zeros():
    """zero_mean_unit_variance would turn 16-bit dither into noise at -28 dB re unit variance
    (transformers' 1e-7 caps the gain at 70 dB); behind the floor the encoder gets zeros."""
    tok = Tokenizer.load(PACKS["tiny-neural"])
    seen: list[np.ndarray] = []

    def run(encoder: str, waveform: np.ndarray):
        seen.append(np.asarray(waveform))
        return tok.run_encoder(encoder, waveform)

    x = np.concatenate([music(), quiet("16-bit dither", 20.0)])
    ungated = from_array(x, SR, "x")
    list(tok.pipeline.iter_chunks(ungated, run))
    last_ungated = seen[-2:]
    seen.clear()
    list(tok.pipeline.iter_chunks(tok.silence.meter(from_array(x, SR, "x")), run))
    assert all(np.std(w) > 0.01 for w in last_ungated)  # without the gate: amplified dither
    assert all(not np.any(w) for w in seen[-2:])  # the last chunk (12-23 s) of both encoders: zeros
