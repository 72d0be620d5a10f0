"""Each frame's measures: its level (``dB``) and its drum-like hits, beside the tokens.

Deterministic like the tokens, moved by a gain change where the tokens are not, carried by
every line encoding, the text format, the reader, ``nat diff`` and ``nat prompt``'s pooling.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_nat, tone, wav_bytes

from neural_audio_tokenizer.cli.budget import pool_frames
from neural_audio_tokenizer.runtime.reader import read_streams
from neural_audio_tokenizer.runtime.records import LEVEL_MIN_DB, Frame, LineOptions, level_db
from neural_audio_tokenizer.runtime.silence import HitCounter, LevelMeter
from neural_audio_tokenizer.runtime.tokenizer import Tokenizer

SR = 22050


@pytest.fixture(scope="module")
def builtin() -> Tokenizer:
    return Tokenizer.load(threads=1)


def drum_loop(seconds: float, sr: int = SR, bpm: float = 120.0, seed: int = 1) -> np.ndarray:
    """A held organ-like chord with a hi-hat (a 30 ms burst of white noise) on every beat."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = sum(0.1 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6))
    burst = rng.standard_normal(int(0.03 * sr)) * np.exp(-np.arange(int(0.03 * sr)) / (0.006 * sr)) * 0.3
    for start in np.arange(0.05, seconds - 0.05, 60.0 / bpm):
        i = int(start * sr)
        x[i : i + len(burst)] += burst
    return x.astype(np.float32)


def test_levels_are_dbfs_of_each_frame():
    assert level_db(1.0) == 0 and level_db(0.5) == -3 and level_db(0.0) == LEVEL_MIN_DB and level_db(1e-30) == LEVEL_MIN_DB
    t = np.arange(SR) / SR
    meter = LevelMeter(SR, 5, None)
    meter.push(np.sin(2 * np.pi * 440 * t).astype(np.float32))  # full-scale sine: -3 dBFS
    meter.push(np.zeros(SR, np.float32))
    meter.push(0.01 * np.sign(np.sin(2 * np.pi * 100 * t)).astype(np.float32))  # square at 0.01: -40 dBFS
    meter.finish()
    assert meter.levels == [-3] * 5 + [LEVEL_MIN_DB] * 5 + [-40] * 5
    assert meter.silent == [False] * 15  # no floor: nothing gated


def test_the_meter_gives_the_same_figures_however_the_samples_arrive():
    x = drum_loop(3.0)
    whole = LevelMeter(SR, 5, -70.0)
    whole.push(x)
    whole.finish()
    pieces = LevelMeter(SR, 5, -70.0)
    rng = np.random.default_rng(3)
    i = 0
    while i < len(x):
        n = int(rng.integers(1, 5000))
        pieces.push(x[i : i + n])
        i += n
    pieces.finish()
    assert (pieces.levels, pieces.hits, pieces.silent) == (whole.levels, whole.hits, whole.silent)


def test_hits_come_from_noisy_attacks_not_from_held_or_plucked_tones():
    counter = HitCounter(SR)
    drums = [counter.count(f) for f in np.split(drum_loop(4.0), 20)]
    assert sum(h > 0 for h in drums) >= 8  # a hit every 0.5 s: in about every other frame
    assert 6 <= sum(drums) <= 10
    counter = HitCounter(SR)
    t = np.arange(4 * SR) / SR
    phase = t % 0.5
    plucks = (0.3 * np.sin(2 * np.pi * 330 * t) * np.minimum(1.0, phase / 0.005) * np.exp(-phase * 8)).astype(np.float32)  # struck every 0.5 s
    assert sum(counter.count(f) for f in np.split(plucks, 20)) == 0


def test_a_gain_change_moves_the_level_and_not_the_tokens(builtin):
    x = tone(6.0, SR)[:, 0]
    loud = list(builtin.encode((x, SR)))
    soft = list(builtin.encode((x * np.float32(0.5), SR)))  # -6.02 dB, exactly representable
    assert all(a.level - b.level in (5, 6, 7) for a, b in zip(loud, soft))
    same = sum((a.S, a.A) == (b.S, b.A) for a, b in zip(loud, soft))
    assert same >= 0.9 * len(loud)  # the tokens are built to ignore gain (docs/quality.md has the measured share)
    again = list(builtin.encode((x, SR)))
    assert again == loud  # deterministic, measures included


def test_sounding_frames_never_take_the_s0_code_of_silence(builtin):
    """Loud white noise has the flat chroma digital silence has; it must not read as a pause."""
    rng = np.random.default_rng(0)
    noise = (0.3 * rng.standard_normal(5 * SR)).astype(np.float32)
    x = np.concatenate([noise, np.zeros(2 * SR, np.float32), noise])
    frames = list(builtin.encode((x, SR)))
    quiet = int(builtin.silence.codes["S"][0])
    sounding = [f for f in frames if f.level > -60]
    silent = [f for f in frames if f.level == LEVEL_MIN_DB]
    assert sounding and silent and all(f.S[0] == quiet for f in silent)
    assert not any(f.S[0] == quiet for f in sounding)
    book = builtin.pack.streams["S"].codebooks[0]
    twin = {f.S[0] for f in sounding if np.array_equal(book[f.S[0]], book[quiet])}
    assert twin and len(twin) == 1 and twin.pop() >= 64  # the silence code's copy in the padded codebook: same vector, another number


def test_without_a_twin_a_sounding_frame_takes_the_nearest_other_code(builtin):
    gate = builtin.silence
    quiet = int(gate.codes["S"][0])
    book = np.eye(quiet + 2)  # every code distinct: the silence code has no copy
    codes = {"S": np.array([[quiet, 0], [quiet, 0]]), "A": np.zeros((2, 2), int)}
    seen = []

    def requantize(rows, excluded):
        seen.append((rows.tolist(), excluded.tolist()))
        return np.array([[quiet + 1, 5]])

    out = gate.keep_apart(np.array([True, False]), codes, book, requantize)
    assert seen == [([False, True], [quiet])] and out["S"].tolist() == [[quiet, 0], [quiet + 1, 5]]


def test_measures_in_every_encoding_and_without_them(tmp_path):
    wav = tmp_path / "loop.wav"
    wav.write_bytes(wav_bytes(drum_loop(4.0), SR))
    dense = run_nat(str(wav), check=True).stdout.decode()
    header, *frames, stats = [json.loads(x) for x in dense.splitlines()]
    assert set(header["measures"]) == {"dB", "hits"} and all(isinstance(f["dB"], int) and f["hits"] >= 0 for f in frames)
    assert header["streams"]["S"]["codebook_sizes"] == [65, 128, 256, 256]  # S0: 64 codes and the silence code's twin
    assert header["streams"]["A"]["codebook_sizes"] == [64, 128, 256, 256]
    want = read_streams(dense.splitlines(), "dense")[0].frames
    assert [f.level for f in want] == [f["dB"] for f in frames] and any(f.hits for f in want)
    for flags in (["--delta"], ["--rle"], ["--delta", "--rle"]):
        text = run_nat(str(wav), *flags, check=True).stdout.decode()
        assert read_streams(text.splitlines(), "x")[0].frames == want, flags
    bare = run_nat(str(wav), "--no-measures", check=True).stdout.decode()
    assert "measures" not in bare and '"dB"' not in bare and '"hits"' not in bare
    assert [(f.S, f.A) for f in read_streams(bare.splitlines(), "bare")[0].frames] == [(f.S, f.A) for f in want]
    text = run_nat(str(wav), "--format", "text", check=True).stdout.decode().splitlines()
    assert "dB LEVEL hits HITS" in text[0] and text[1].split()[11:] == ["dB", str(want[0].level), "hits", str(want[0].hits)]


def test_rle_keeps_each_frames_measures():
    frames = [Frame(k, k / 5, (1, 2), (3, 4), -20 if k < 3 else -30, 0) for k in range(6)]
    from neural_audio_tokenizer.runtime.records import expand, frame_lines

    lines = list(frame_lines(frames, 5, LineOptions(0, rle=True)))
    assert [x.get("n", 1) for x in lines] == [3, 3]  # same tokens, a new level: a new run
    assert [f["dB"] for f in expand(lines, 5)] == [-20] * 3 + [-30] * 3
    assert len(list(frame_lines(frames, 5, LineOptions(0, rle=True, measures=False)))) == 1


def test_pooling_for_a_budget_takes_the_mean_power_and_sums_hits():
    frames = [Frame(0, 0.0, (1,), (1,), -10, 1), Frame(1, 0.2, (1,), (1,), -99, 0), Frame(2, 0.4, (2,), (1,), -20, 2)]
    pooled = pool_frames(frames, 3, 5)
    assert pooled[0].level == level_db((10**-1 + 10**-9.9 + 10**-2) / 3) == -14 and pooled[0].hits == 3
    assert pool_frames([Frame(0, 0.0, (1,), (1,))], 1, 5)[0].level is None


def test_the_prompt_carries_the_measures_at_any_budget(tmp_path):
    wav = tmp_path / "loop.wav"
    wav.write_bytes(wav_bytes(drum_loop(20.0), SR))
    for budget in ("30000", "1500"):
        out = run_nat("prompt", str(wav), "--format", "text", "--budget", budget, check=True).stdout.decode()
        rows = [line.split() for line in out.splitlines() if line[:1].isdigit() and " S " in line]
        assert rows and all("dB" in r and r[r.index("dB") + 2] == "hits" for r in rows), budget


def test_the_schema_takes_measures_and_refuses_bad_ones():
    jsonschema = pytest.importorskip("jsonschema")
    from conftest import REPO

    schema = json.loads((REPO / "neural_audio_tokenizer" / "schema" / "ndjson-v1.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    frame = {"t": 0.2, "S0": 1, "S1": 2, "S2": 3, "S3": 4, "A0": 5, "A1": 6, "A2": 7, "A3": 8}
    validator.validate({**frame, "dB": -23, "hits": 2})
    validator.validate(frame)  # a stream without measures stays valid
    for bad in ({"dB": "loud"}, {"dB": -120}, {"hits": -1}, {"hits": 1.5}):
        assert not validator.is_valid({**frame, **bad}), bad


def test_the_readmes_example_lines_are_what_nat_writes_for_the_example():
    """README's first frame lines are real output (they once showed codes the built-in pack cannot emit)."""
    from conftest import REPO

    readme = (REPO / "README.md").read_text()
    shown = [json.loads(line) for line in readme.split("```json\n", 1)[1].split("```", 1)[0].splitlines() if line.startswith('{"t"')]
    written = [json.loads(line) for line in run_nat("examples/demo.ogg", check=True).stdout.decode().splitlines()[1 : 1 + len(shown)]]
    assert len(shown) == 2 and shown == written
