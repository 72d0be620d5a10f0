"""nat --all-outputs: token files, pictures, metrics and a Markdown report per input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, run_nat, tone

from neural_audio_tokenizer.cli.report.metrics import level_metrics, runs
from neural_audio_tokenizer.cli.report.spectrum import Analyzer

FILES = ["_histograms.png", "_metrics.json", "_overview.png", "_report.md", "_tokens.json", "_tokens.ndjson", "_tokens.txt"]
NAMES = ["S0", "S1", "S2", "S3", "A0", "A1", "A2", "A3"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("report")
    x = tone(8.0, 44100, channels=2)
    x[len(x) // 2 :] = 0  # sound, then silence from 4 s: both pictures and tokens must show it at 4 s
    sf.write(d / "clip.wav", x, 44100)
    sf.write(d / "other.flac", tone(3.0, 22050, freq=220, seed=5), 22050)
    return d


@pytest.fixture(scope="module")
def report(tiny_pack, clips) -> Path:
    pytest.importorskip("matplotlib")
    out = clips / "out"
    proc = run_nat("--pack", str(tiny_pack), "--all-outputs", "--output-dir", str(out), str(clips / "clip.wav"), str(clips / "other.flac"))
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == b"" and proc.stderr == b""
    return out


def test_every_file_is_written_per_input(report):
    assert sorted(p.name for p in report.iterdir()) == sorted([f"clip{s}" for s in FILES] + [f"other{s}" for s in FILES])


def test_token_files_match_the_plain_stream(tiny_pack, clips, report):
    plain = run_nat("--pack", str(tiny_pack), str(clips / "clip.wav"), check=True).stdout
    assert (report / "clip_tokens.ndjson").read_bytes() == plain
    lines = [json.loads(x) for x in plain.splitlines()]
    doc = json.loads((report / "clip_tokens.json").read_text())
    assert doc["header"] == lines[0] and doc["stats"] == lines[-1] and doc["frames"] == 40
    assert doc["t"] == [f["t"] for f in lines[1:-1]]
    for name in NAMES:
        assert doc["tokens"][name] == [f[name] for f in lines[1:-1]]
    txt = (report / "clip_tokens.txt").read_text().splitlines()
    assert txt[0].startswith("# clip.wav | 8 s |") and len(txt) == 42


def test_metrics_agree_with_the_stats_line(report):
    lines = [json.loads(x) for x in (report / "clip_tokens.ndjson").read_text().splitlines()]
    stats = lines[-1]["tokens"]
    metrics = json.loads((report / "clip_metrics.json").read_text())
    assert metrics["frames"] == 40 and metrics["frame_rate"] == 5 and metrics["source"]["name"] == "clip.wav"
    for name in NAMES:
        m = metrics["levels"][name]
        for key in ("distinct", "entropy_bits", "change_rate"):
            assert m[key] == stats[name][key], (name, key)
        values = [f[name] for f in lines[1:-1]]
        assert m["runs"]["count"] == len(runs(values)) and m["runs"]["max_s"] >= 4.0  # the silent half is one run
        assert sum(c for _, c in m["top_codes"]) <= 40


def test_markdown_report_embeds_the_pictures(report):
    text = (report / "clip_report.md").read_text()
    assert text.startswith("# clip.wav\n")
    assert "](clip_overview.png)" in text and "](clip_histograms.png)" in text
    assert "| S0 |" in text and "| A3 |" in text
    for name in ("clip_tokens.ndjson", "clip_tokens.json", "clip_tokens.txt", "clip_metrics.json"):
        assert f"]({name})" in text


def load_png(path: Path) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(path)[:, :, :3]


def test_overview_png_shows_tokens_aligned_with_the_audio(report):
    img = load_png(report / "clip_overview.png")
    h, w, _ = img.shape
    assert (w, h) == (1400, 800)
    assert img.std() > 0.1  # not blank
    x0, x1 = int(0.1 * w), int(0.95 * w)
    tokens = img[int(0.6 * h) : int(0.9 * h), x0:x1]
    colours = {tuple(c) for c in (tokens.reshape(-1, 3) * 255).astype(int)}
    assert len(colours) >= 12, "the token rows should show many codes in many colours"
    spec = img[int(0.27 * h) : int(0.47 * h), x0:x1]
    # Where the audio goes silent the spectrogram turns black, and there every token row holds one code.
    dark = spec.mean(axis=(0, 2)) < 0.05
    first_dark = int(np.argmax(dark))
    assert dark[first_dark:].all() and 0.3 < first_dark / len(dark) < 0.7
    last = tokens[:, -1:, :]
    steady = np.all(np.abs(tokens - last).sum(axis=2) < 0.02, axis=0)
    first_steady = int(np.argmax(steady))
    assert steady[first_steady:].all()
    assert abs(first_steady - first_dark) <= 0.02 * len(dark), (first_steady, first_dark)


def test_histogram_png(report):
    img = load_png(report / "clip_histograms.png")
    assert img.shape[0] > 400 and img.shape[1] > 1000 and img.std() > 0.05


def test_outputs_are_deterministic(tiny_pack, clips, report, tmp_path):
    again = tmp_path / "again"
    run_nat("--pack", str(tiny_pack), "--all-outputs", "--output-dir", str(again), str(clips / "clip.wav"), str(clips / "other.flac"), check=True)
    for path in report.iterdir():
        assert (again / path.name).read_bytes() == path.read_bytes(), path.name


def test_resample_changes_only_the_pictures(tiny_pack, clips, report, tmp_path):
    low = tmp_path / "low"
    run_nat("--pack", str(tiny_pack), "--all-outputs", "--resample", "8000", "--output-dir", str(low), str(clips / "clip.wav"), check=True)
    assert (low / "clip_tokens.ndjson").read_bytes() == (report / "clip_tokens.ndjson").read_bytes()
    assert (low / "clip_overview.png").read_bytes() != (report / "clip_overview.png").read_bytes()


def test_lam_and_text_formats_shape_the_token_files(tiny_pack, clips, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "lam"
    run_nat("--pack", str(tiny_pack), "--all-outputs", "--format", "lam", "--output-dir", str(out), str(clips / "other.flac"), check=True)
    assert json.loads((out / "other_tokens.ndjson").read_text().splitlines()[0])["schema"] == "lam_audio_tokens"
    assert (out / "other_tokens.txt").read_text().startswith("# other.flac")
    out = tmp_path / "hier"
    run_nat("--pack", str(tiny_pack), "--all-outputs", "--format", "hierarchical", "--output-dir", str(out), str(clips / "other.flac"), check=True)
    assert (out / "other_tokens.txt").read_text().startswith("[SEMANTIC] S0_")


def test_a_failing_input_leaves_its_error_and_the_others(tiny_pack, clips, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    proc = run_nat("--pack", str(tiny_pack), "--all-outputs", "--output-dir", str(out), str(clips / "missing.wav"), str(clips / "other.flac"))
    assert proc.returncode == 1
    assert proc.stderr.decode().splitlines()[0] == "nat: missing.wav: no such file"
    assert json.loads((out / "missing_tokens.ndjson").read_text())["type"] == "error"
    assert (out / "other_overview.png").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_usage_errors(tiny_pack, clips):
    proc = run_nat("--pack", str(tiny_pack), "--all-outputs", str(clips / "clip.wav"))
    assert proc.returncode == 2 and proc.stderr.decode() == "nat: --all-outputs writes several files per input: add --output-dir DIR\n"


def test_without_matplotlib_a_one_line_hint(tiny_pack, clips, tmp_path):
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'matplotlib':\n"
        "            raise ImportError('No module named ' + repr(name))\n"
        "sys.meta_path.insert(0, Block())\n"
        "from neural_audio_tokenizer.cli.main import main\n"
        f"sys.exit(main(['--pack', {str(tiny_pack)!r}, '--all-outputs', '--output-dir', {str(tmp_path / 'o')!r}, {str(clips / 'clip.wav')!r}]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.decode() == "nat: pictures need matplotlib: pip install 'neural-audio-tokenizer[viz]' (or pip install matplotlib)\n"
    assert not (tmp_path / "o").exists()


def test_spectrum_of_a_tone_peaks_at_its_frequency_and_time():
    sr = 44100
    t = np.arange(3 * sr) / sr
    x = np.where(t < 1.5, 0.5 * np.sin(2 * np.pi * 1000 * t), 0).astype(np.float32)
    analyzer = Analyzer(sr)
    for start in range(0, len(x), 65536):
        analyzer.push(x[start : start + 65536])
    a = analyzer.finish()
    assert a.rate == 22050 and a.duration_s == pytest.approx(3.0, abs=1e-3)
    assert a.mel_db.shape[1] == int(np.ceil(3.0 * 22050 / a.hop))
    from neural_audio_tokenizer.cli.report.spectrum import hz_to_mel

    expected = hz_to_mel(1000) / hz_to_mel(11025) * 65 - 1
    loud = a.mel_db[:, : int(1.4 / a.frame_s)]
    assert abs(np.median(loud.argmax(axis=0)) - expected) <= 1.5
    quiet_from = int(round(1.6 / a.frame_s))
    assert a.mel_db[:, quiet_from:].max() <= -79  # silence is the floor, from the right frame on
    assert np.abs(a.env_max[int(2 / a.frame_s) :]).max() == 0


def test_level_metrics_runs():
    m = level_metrics([1, 1, 1, 2, 2, 1], 5)
    assert m["distinct"] == 2 and m["change_rate"] == 0.4
    assert m["runs"] == {"count": 3, "mean_frames": 2.0, "median_frames": 2.0, "max_frames": 3, "mean_s": 0.4, "max_s": 0.6}
    assert m["top_codes"] == [[1, 4], [2, 2]]


def test_parts_on_stdin_are_named_as_when_streamed(tiny_pack, clips, tmp_path):
    """--all-outputs reads stdin whole, yet names its parts like the streamed path does:
    stdin, stdin#2, ... (they used to be stdin#1, stdin#2 here)."""
    pytest.importorskip("matplotlib")
    piped = (clips / "clip.wav").read_bytes() + b"\x1c" + (clips / "clip.wav").read_bytes()
    streamed = run_nat("--pack", str(tiny_pack), input=piped, check=True).stdout
    streamed_names = [json.loads(x)["source"]["name"] for x in streamed.splitlines() if x.startswith(b'{"type":"header"')]
    out = tmp_path / "out"
    run_nat("--pack", str(tiny_pack), "--all-outputs", "--output-dir", str(out), input=piped, check=True)
    names = sorted(json.loads(p.read_text().splitlines()[0])["source"]["name"] for p in out.glob("*_tokens.ndjson"))
    assert streamed_names == names == ["stdin", "stdin#2"]
