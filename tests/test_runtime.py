"""The runtime end to end on the tiny test pack: framing, encodings, determinism, inputs."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, run_nat, tone, wav_bytes

from neural_audio_tokenizer import Tokenizer
from neural_audio_tokenizer.runtime.inputs.audio import from_array
from neural_audio_tokenizer.runtime.ndjson import dumps
from neural_audio_tokenizer.runtime.ndjson import lines as ndjson_lines
from neural_audio_tokenizer.runtime.records import LineOptions, expand

SCHEMA = json.loads((REPO / "neural_audio_tokenizer" / "schema" / "ndjson-v1.schema.json").read_text())


def validate(lines: list[dict]) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(SCHEMA)
    for line in lines:
        validator.validate(line)


@pytest.fixture(scope="module")
def tok(tiny_pack) -> Tokenizer:
    return Tokenizer.load(tiny_pack, threads=1)


def ndjson(tok: Tokenizer, samples: np.ndarray, sr: int, options: LineOptions = LineOptions()) -> list[dict]:
    return list(ndjson_lines(tok.stream(from_array(samples, sr, "clip")), options))


MODES = [
    LineOptions(),
    LineOptions(delta=True),
    LineOptions(rle=True),
    LineOptions(delta=True, rle=True),
    LineOptions(keyframe_interval_s=1.0, delta=True),
    LineOptions(keyframe_interval_s=0, delta=True, rle=True),
]


@pytest.mark.parametrize("options", MODES, ids=lambda o: f"{o.mode}-kf{o.keyframe_interval_s}")
def test_every_mode_validates_and_expands_to_the_dense_stream(tok, options):
    # Half the clip is silence, so runs of identical frames exist for RLE to merge.
    x = tone(6.0, 22050)
    x[len(x) // 2 :] = 0
    dense = ndjson(tok, x, 22050)
    lines = ndjson(tok, x, 22050, options)
    validate(lines)
    assert lines[0]["type"] == "header" and lines[-1]["type"] == "stats"
    assert lines[0]["encoding"]["mode"] == options.mode
    rebuilt = list(expand(lines[1:-1], tok.frame_rate))
    assert rebuilt == [{k: v for k, v in f.items() if k != "kf"} for f in dense[1:-1]]
    assert lines[-1]["lines"] == len(lines) - 2
    if options.rle:
        assert len(lines) < len(dense), "silence should collapse into runs"
        assert any("n" in line for line in lines[1:-1])
    if options.delta:
        assert sum(len(line) for line in lines) < sum(len(line) for line in dense)


def test_dense_frames_have_the_original_shape_and_exact_times(tok):
    lines = ndjson(tok, tone(3.1, 44100), 44100)
    frames = lines[1:-1]
    assert len(frames) == 16  # ceil(3.1 s * 5 Hz)
    assert [f["t"] for f in frames] == [round(k * 0.2, 3) for k in range(16)]
    assert list(frames[0]) == ["t", "kf", "S0", "S1", "S2", "S3", "A0", "A1", "A2", "A3", "dB", "hits"]
    assert "kf" not in frames[1]
    assert all(0 <= f[k] < 16 for f in frames for k in f if k not in ("t", "kf", "dB", "hits"))


def test_keyframes_follow_the_interval(tok):
    frames = ndjson(tok, tone(6.0, 16000), 16000, LineOptions(keyframe_interval_s=2.0))[1:-1]
    assert [i for i, f in enumerate(frames) if f.get("kf")] == [0, 10, 20]


@pytest.mark.parametrize("sr", [8000, 11025, 16000, 22050, 44100, 48000, 96000])
def test_any_input_rate_gives_the_same_grid(tok, sr):
    lines = ndjson(tok, tone(2.5, sr), sr)
    assert lines[0]["source"]["sample_rate"] == sr
    assert lines[-1]["frames"] == 13
    assert lines[-2]["t"] == 2.4


def test_tokens_do_not_depend_much_on_input_rate(tok):
    # Same signal at 44.1 and 48 kHz: resampling differs slightly, most tokens agree.
    a = [f["A0"] for f in ndjson(tok, tone(4, 44100), 44100)[1:-1]]
    b = [f["A0"] for f in ndjson(tok, tone(4, 48000), 48000)[1:-1]]
    assert np.mean(np.array(a) == np.array(b)) > 0.5


@pytest.mark.parametrize("channels", [2, 6])
def test_multichannel_is_mixed_to_mono(tok, channels):
    x = tone(2.0, 22050, channels=channels)
    lines = ndjson(tok, x, 22050)
    mono = ndjson(tok, x.mean(axis=1, dtype=np.float64).astype(np.float32), 22050)
    assert lines[0]["source"]["channels"] == channels
    assert lines[1:] == mono[1:]


def test_chunk_boundaries_do_not_depend_on_how_audio_arrives(tok, tmp_path):
    # The tiny pack has 2 s chunks: 9 s spans several chunks and a partial one.
    x = tone(9.05, 44100, channels=2)
    path = tmp_path / "x.wav"
    sf.write(path, x, 44100, subtype="FLOAT")
    from_file = [f for f in tok.encode(path)]
    from_bytes = [f for f in tok.encode(path.read_bytes(), name="x")]
    from_memory = [f for f in tok.encode((sf.read(path, dtype="float32")[0], 44100))]
    assert from_file == from_bytes == from_memory
    assert len(from_file) == 46


def test_shorter_than_one_frame_gives_one_frame(tok):
    lines = ndjson(tok, tone(0.01, 22050), 22050)
    assert lines[-1]["frames"] == 1 and lines[1]["t"] == 0.0
    single = ndjson(tok, np.array([0.5], dtype=np.float32), 22050)
    assert single[-1]["frames"] == 1


def test_nonfinite_samples_are_zeroed_and_counted(tok):
    x = tone(1.0, 22050)
    x[100:110] = np.nan
    x[200] = np.inf
    lines = ndjson(tok, x, 22050)
    assert lines[-1]["nonfinite_samples"] == 11
    validate(lines)


def test_threads_sharing_one_tokenizer_agree(tok):
    clips = [tone(3.0, 22050, freq=200 + 50 * i, seed=i) for i in range(8)]
    expected = [list(tok.encode((c, 22050))) for c in clips]
    results: list = [None] * 8

    def work(i):
        results[i] = list(tok.encode((clips[i], 22050)))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == expected


def test_batched_chunks_give_the_same_tokens(tiny_pack, tok):
    # The CUDA path runs several chunks per call; on the CPU the result must not change.
    x = tone(11.3, 44100)  # 6 chunks of the tiny pack's 2 s, the last one short
    batched = Tokenizer.load(tiny_pack, threads=1, batch=4)
    assert list(batched.encode((x, 44100))) == list(tok.encode((x, 44100)))


def test_one_and_two_threads_give_identical_bytes(tiny_pack):
    x = tone(5.0, 32000, channels=2)
    one = "".join(map(dumps, ndjson(Tokenizer.load(tiny_pack, threads=1), x, 32000)))
    two = "".join(map(dumps, ndjson(Tokenizer.load(tiny_pack, threads=2), x, 32000)))
    assert one == two


# --- the CLI, in fresh processes ---------------------------------------------------------


@pytest.fixture(scope="module")
def clip_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "clip.wav"
    sf.write(path, tone(4.0, 44100, channels=2), 44100)
    return path


def test_two_processes_give_byte_identical_output(tiny_pack, clip_wav):
    a = run_nat("--pack", str(tiny_pack), str(clip_wav), check=True).stdout
    b = run_nat("--pack", str(tiny_pack), "--threads", "1", str(clip_wav), check=True).stdout
    assert a == b and a.count(b"\n") == 22
    header = json.loads(a.splitlines()[0])
    assert header["source"]["name"] == "clip.wav"  # absolute path reduced to its name
    assert str(clip_wav.parent) not in a.decode()


def test_stdin_with_three_files_one_full_of_fs_bytes(tiny_pack):
    fs_heavy = np.full((8000, 1), 0x1C1C / 32768.0, dtype=np.float32)  # every byte of the data is 0x1C
    fs_wav = wav_bytes(fs_heavy, 16000)
    assert fs_wav.count(b"\x1c") > 15000
    a = wav_bytes(tone(1.0, 16000), 16000)
    b = wav_bytes(tone(1.5, 22050, channels=2), 22050, fmt="AIFF")  # FORM header: length-delimited too
    piped = a + b"\x1c" + fs_wav + b"\x1c" + b
    proc = run_nat("--pack", str(tiny_pack), input=piped, check=True)
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    headers = [line for line in lines if line.get("type") == "header"]
    # parts stream: the first is named before anyone knows that others follow
    assert [h["source"]["name"] for h in headers] == ["stdin", "stdin#2", "stdin#3"]
    # WAVs stream (their size is in the stats line), the AIFF is read whole
    assert [h["source"]["bytes"] for h in headers] == [None, None, len(b)]
    assert [line.get("source", {}).get("bytes") for line in lines if line.get("type") == "stats"] == [len(a), len(fs_wav), None]
    assert [line["frames"] for line in lines if line.get("type") == "stats"] == [5, 3, 8]
    validate(lines)


def test_undecodable_bytes_are_read_as_raw_pcm(tiny_pack):
    data = bytes(b for b in range(32, 256) if b != 0x1C) * 45 + b"\x07"  # odd length, no known magic, no FS
    proc = run_nat("--pack", str(tiny_pack), "--raw-rate", "8000", input=data, check=True)
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert lines[0]["source"]["decoder"] == "raw" and lines[0]["source"]["format"] == "s16le"
    assert lines[0]["source"]["sample_rate"] == 8000
    assert lines[-1]["duration_s"] == round((len(data) + 1) // 2 / 8000, 6)


def test_empty_input_is_a_clean_error(tiny_pack, tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    proc = run_nat("--pack", str(tiny_pack), str(empty))
    assert proc.returncode == 1
    assert proc.stderr.decode().strip() == "nat: empty.wav: empty input (0 bytes)"
    assert json.loads(proc.stdout) == {"type": "error", "source": "empty.wav", "error": "input", "message": "empty.wav: empty input (0 bytes)"}
    proc = run_nat("--pack", str(tiny_pack), input=b"")
    assert proc.returncode == 1 and b"Traceback" not in proc.stderr


def test_a_bad_input_does_not_lose_the_others(tiny_pack, clip_wav, tmp_path):
    out = tmp_path / "out"
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "clip.wav").write_bytes(clip_wav.read_bytes())
    proc = run_nat("--pack", str(tiny_pack), "--output-dir", str(out), str(clip_wav), str(tmp_path / "missing.wav"), str(sub / "clip.wav"))
    assert proc.returncode == 1
    assert "missing.wav: no such file" in proc.stderr.decode()
    assert sorted(p.name for p in out.iterdir()) == ["clip-2.ndjson", "clip.ndjson", "missing.ndjson"]
    assert (out / "clip.ndjson").read_bytes() == (out / "clip-2.ndjson").read_bytes()
    single = run_nat("--pack", str(tiny_pack), str(clip_wav), check=True).stdout
    assert (out / "clip.ndjson").read_bytes() == single


def test_output_file_and_usage_errors(tiny_pack, clip_wav, tmp_path):
    target = tmp_path / "all.ndjson"
    run_nat("--pack", str(tiny_pack), "-o", str(target), str(clip_wav), str(clip_wav), check=True)
    assert target.read_bytes().count(b'"type":"header"') == 2
    assert run_nat("--pack", str(tmp_path / "nope"), str(clip_wav)).returncode == 2
    bad = run_nat("--keyframe-interval", "x", str(clip_wav))
    assert bad.returncode == 2 and bad.stderr.count(b"\n") == 1


def test_runtime_never_imports_torch(tiny_pack, clip_wav):
    code = (
        "import sys, io, contextlib\n"
        "from neural_audio_tokenizer.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    main(['--pack', {str(tiny_pack)!r}, {str(clip_wav)!r}, '-o', '/dev/null'])\n"
        "import neural_audio_tokenizer.runtime.tokenizer, neural_audio_tokenizer.codebooks\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'optimum'))\n"
        "assert not bad, bad\n"
        "print('clean')\n"
    )
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.strip() == b"clean"


def test_frames_computed_before_a_failure_are_all_written():
    from neural_audio_tokenizer.runtime.records import Frame, frame_lines

    def frames():
        for i in range(3):
            yield Frame(i, i / 5, (1, 2, 3, 4), (5, 6, 7, 8))
        raise RuntimeError("decoder broke")

    for options in (LineOptions(), LineOptions(rle=True), LineOptions(delta=True, rle=True)):
        got = []
        with pytest.raises(RuntimeError):
            for line in frame_lines(frames(), 5, options):
                got.append(line)
        assert sum(line.get("n", 1) for line in got) == 3, options


def test_output_files_get_ordinary_permissions(tiny_pack, clip_wav, tmp_path):
    import os
    import stat

    out = tmp_path / "perm"
    run_nat("--pack", str(tiny_pack), "--output-dir", str(out), str(clip_wav), check=True)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((out / "clip.ndjson").stat().st_mode) == 0o666 & ~mask
