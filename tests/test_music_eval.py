"""``nat-export eval PACK --audio DIR`` (evaluation/music.py) on a small generated folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from conftest import DATA
from neural_audio_tokenizer.evaluation import main as eval_cli
from neural_audio_tokenizer.evaluation import measures, music, perturbations

LEVELS = ["S0", "S1", "S2", "S3", "A0", "A1", "A2", "A3"]


def song(seconds: float, rate: int, root: float, seed: int, channels: int = 2) -> np.ndarray:
    """Two sections (a chord on ``root``, then a noisy arpeggio a fifth up) and a silent tail."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    half = t < seconds / 2
    chord = sum(np.sin(2 * np.pi * root * r * t) for r in (1, 1.26, 1.5)) / 3
    arp = np.sin(2 * np.pi * root * 1.5 * (1 + (np.floor(t * 4) % 3) / 4) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t) ** 2)
    x = 0.3 * np.where(half, chord, arp) + 0.01 * rng.standard_normal(len(t))
    x[t > seconds - 0.6] = 0.0  # the tail: digital silence
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("music")
    (root / "sub").mkdir()
    sf.write(root / "a.wav", song(5.0, 44100, 220.0, 1), 44100, subtype="PCM_16")
    sf.write(root / "sub" / "b.flac", song(4.0, 22050, 330.0, 2, channels=1), 22050)
    sf.write(root / "c.ogg", song(5.0, 48000, 185.0, 3), 48000, format="OGG", subtype="VORBIS")
    (root / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    (root / "notes.txt").write_text("not audio")
    return root


@pytest.fixture(scope="module")
def result(folder):
    return music.evaluate_folder(None, folder, workers=2)


def test_every_change_is_measured_and_well_formed(result):
    assert result["levels"] == LEVELS
    assert result["set"]["files"] == ["a.wav", "c.ogg", "b.flac"]  # sorted by path; broken.wav skipped
    assert [k["file"] for k in result["set"]["skipped"]] == ["broken.wav"]
    assert result["set"]["rates"] == [22050, 44100, 48000] and result["set"]["channels"] == [1, 2]
    rows = {r["change"]: r for r in result["stability"]}
    assert list(rows) == list(music.CHANGES)
    for r in rows.values():
        assert r["frames"] > 0 and set(r["agreement"]) == set(LEVELS)
        assert all(0.0 <= r["worst_clip"][k] <= v <= 1.0 for k, v in r["agreement"].items())
    assert 60 < rows["MP3 128 kbit/s"]["kbps"] < 200 and 30 < rows["OGG Vorbis"]["kbps"] < 250
    assert all(v == 1.0 for v in rows["mono mixdown"]["agreement"].values())  # the runtime mixes down the same way
    # The silence floor: dither where the reference has digital zero changes no token at all.
    assert all(v == 1.0 for v in rows["dither pad"]["agreement"].values())
    json.dumps(result)


def test_label_free_distinctness_and_change_rates(result):
    d = result["distinctness"]
    assert d["files"] == 3 and d["chance"] == pytest.approx(1 / 5)
    assert set(d["halves_found"]) == {"S", "A", "S+A", *LEVELS}
    assert all(0.0 <= v <= 1.0 for v in d["halves_found"].values())
    c = result["change_rate"]
    assert all(0.0 < v < 1.0 for v in c["levels"].values())
    assert 0.0 < c["silent"] < 0.2  # the 0.6 s tails: 3 of 5 s, 4 s, 5 s files' frames
    assert 0.0 < c["rle_folded"] < 1.0
    assert result["machine"] and result["goals"] and all({"goal", "value", "met"} <= set(g) for g in result["goals"])


def test_halves_found_on_known_tokens():
    # a's and b's halves share a code with each other and none with the other files; c's halves share none.
    a = np.array([[0], [0], [0], [1]])
    b = np.array([[5], [5], [5], [6]])
    c = np.array([[2], [2], [9], [9]])
    found = measures.halves_found([a, b, c], [0], [10])
    assert found == pytest.approx(4 / 6)  # a's and b's halves find each other, c's do not (a tie goes to the lowest index)


def test_report_and_cli(folder, capsys):
    assert eval_cli.main(["builtin", "--audio", str(folder), "--max-files", "1", "--max-seconds", "3"]) == eval_cli.EXIT_OK
    out = capsys.readouterr().out
    for heading in ("### Stability", "### Distinctness", "### Change rate", "### Goals"):
        assert heading in out
    assert "the first 3 s of each" in out and "cores" in out


@pytest.mark.parametrize("args", [["--audio", "/no/such/folder"], ["--audio", str(DATA / "tiny_pack")], ["--audio", ".", "--max-seconds", "0"]])
def test_cli_errors_are_one_line(args, capsys):
    assert eval_cli.main(["builtin", *args]) == eval_cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("nat-export eval: ") and len(err.strip().splitlines()) == 1


def test_long_stereo_vorbis_round_trip_is_written_in_blocks():
    """libsndfile 1.2 crashed writing 90 s of stereo Vorbis in one call; in 1 s blocks it works."""
    x = (np.random.default_rng(0).standard_normal((91 * 8000, 2)) * 0.1).astype(np.float32)
    y, kbps = perturbations.codec_round_trip(x, 8000, "OGG", "VORBIS", compression_level=0.6)
    assert y.shape == x.shape and kbps > 0


def test_real_music_codec_and_silence_stability():
    """The built-in pack on real recorded music (Debian packages, not committed): a few
    excerpts of the evaluation files keep level 0 through MP3 and OGG, and silence is silence."""
    from neural_audio_tokenizer.export import codec_noise

    try:
        files = codec_noise.music_files("eval")
    except codec_noise.CorpusError as exc:
        pytest.skip(str(exc))
    from neural_audio_tokenizer import Tokenizer

    tok = Tokenizer.load(None, threads=1)
    agree = {"MP3 128 kbit/s": [], "OGG Vorbis": [], "dither pad": []}
    for i, path in enumerate(fs[0] for fs in files.values()):
        r = music.measure_file(tok, path, i, 20.0)
        for change in agree:
            agree[change].append(r.compared[change][0])
    rate = {c: np.concatenate(v).mean(axis=0) for c, v in agree.items()}
    assert rate["dither pad"].min() == 1.0
    for codec in ("MP3 128 kbit/s", "OGG Vorbis"):
        assert rate[codec][0] >= 0.95 and rate[codec][4] >= 0.93, (codec, rate[codec])  # S0, A0


def test_builtin_recipe_without_the_music_packages_is_one_line(monkeypatch, tmp_path, capsys):
    from neural_audio_tokenizer.export import builtin, codec_noise

    monkeypatch.setattr(codec_noise, "MUSIC_PACKAGES", {"warzone2100-music": str(tmp_path / "absent")})
    assert builtin.main(["--out", str(tmp_path / "pack")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nat builtin: real music for the built-in recipe is missing") and "apt-get install" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "pack").exists()
