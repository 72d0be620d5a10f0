"""Faults (issue #8): closed pipes, signals mid-run, big batches with bad inputs mixed in,
threads sharing a Tokenizer. Nothing written is ever a half line or a half file, and
nothing good is lost because something else went wrong."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, as_streamed, run_nat, tone, wav_bytes

from neural_audio_tokenizer import Tokenizer
from neural_audio_tokenizer.runtime.inputs import audio
from neural_audio_tokenizer.errors import InputError
from neural_audio_tokenizer.runtime.ndjson import dumps, error_record
from neural_audio_tokenizer.runtime.ndjson import lines as ndjson_lines
from neural_audio_tokenizer.runtime.inputs.splitter import split_parts

NAT = [sys.executable, "-m", "neural_audio_tokenizer"]


@pytest.fixture(scope="module")
def tok(tiny_pack) -> Tokenizer:
    return Tokenizer.load(tiny_pack, threads=1)


@pytest.fixture(scope="module")
def long_wav(tmp_path_factory) -> Path:
    """One hour at 8 kHz (55 MB): tests interrupt it long before the end."""
    path = tmp_path_factory.mktemp("long") / "long.wav"
    block = tone(10.0, 8000)
    with sf.SoundFile(path, "w", 8000, 1, "PCM_16") as f:
        for _ in range(360):
            f.write(block)
    return path


def all_json_lines(data: bytes) -> list[dict]:
    assert data.endswith(b"\n"), data[-80:]
    return [json.loads(line) for line in data.splitlines()]


def test_head_closes_the_pipe_quietly(tiny_pack, long_wav):
    cmd = " ".join(NAT + ["--pack", str(tiny_pack), "--threads", "1", str(long_wav)])
    proc = subprocess.run(["bash", "-c", f'{cmd} | head -n 5; echo "nat=${{PIPESTATUS[0]}}" >&2'], capture_output=True, cwd=REPO, timeout=120)
    assert len(proc.stdout.splitlines()) == 5
    assert proc.stderr.decode() == "nat=141\n"  # nothing else: no BrokenPipeError, no traceback


@pytest.mark.parametrize(("sig", "code", "message"), [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_signal_mid_run_ends_stdout_on_a_whole_line(tiny_pack, long_wav, sig, code, message):
    proc = subprocess.Popen(NAT + ["--pack", str(tiny_pack), "--threads", "1", str(long_wav)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    first = b"".join(proc.stdout.readline() for _ in range(5))
    proc.send_signal(sig)
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert err.decode() == f"nat: {message}\n"
    lines = all_json_lines(first + rest)
    assert lines[0]["type"] == "header" and "stats" not in {line.get("type") for line in lines}
    assert 4 <= len(lines) < 18000


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_file_leaves_no_half_file(tiny_pack, long_wav, tmp_path, sig, code):
    short = []
    for k in range(2):
        short.append(tmp_path / f"short{k}.wav")
        short[-1].write_bytes(wav_bytes(tone(1.0, 16000, seed=k), 16000))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        NAT + ["--pack", str(tiny_pack), "--threads", "1", "--output-dir", str(out), str(short[0]), str(short[1]), str(long_wav), str(short[0])],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    deadline = time.monotonic() + 60
    while True:  # wait until the long file's temporary output has data in it
        parts = list(out.glob(".long.ndjson.*.part")) if out.exists() else []
        if parts and parts[0].stat().st_size > 0:
            break
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert sorted(p.name for p in out.iterdir()) == ["short0.ndjson", "short1.ndjson"]  # no long.ndjson, no .part
    for name in ("short0.ndjson", "short1.ndjson"):
        assert all_json_lines((out / name).read_bytes())[-1]["type"] == "stats"


# --- 200 inputs, 20 of them bad -----------------------------------------------------------


def _good_clip(k: int) -> bytes:
    channels = 2 if k % 7 == 0 else 1
    sr = (8000, 11025, 16000)[k % 3]
    return wav_bytes(tone(0.3 + 0.01 * (k % 5), sr, freq=150 + 13 * k, channels=channels, seed=k), sr)


def _bad_clip(k: int) -> bytes:
    good = wav_bytes(tone(0.3, 8000), 8000)
    return [b"", good[:30], b"RIFF" + bytes(60), good[:22] + b"\0\0" + good[24:], b"\xff\xfb\x90" + bytes(300)][k % 5]


def expected(tok: Tokenizer, open_source, name: str) -> str:
    try:
        return "".join(map(dumps, ndjson_lines(tok.stream(open_source()))))
    except InputError as exc:
        return dumps(error_record(name, exc))


def test_200_files_with_20_bad_ones(tok, tiny_pack, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    paths = []
    bad = set(range(3, 200, 10))  # 20 bad inputs, mixed in
    for k in range(200):
        path = folder / f"clip{k:03d}.wav"
        if k not in bad:
            path.write_bytes(_good_clip(k))
        elif k % 50 == 13:
            pass  # missing
        elif k % 50 == 43:
            path.mkdir()  # a directory
        else:
            path.write_bytes(_bad_clip(k))
        paths.append(path)
    out = tmp_path / "out"
    proc = run_nat("--pack", str(tiny_pack), "--threads", "1", "--output-dir", str(out), *map(str, paths))
    assert proc.returncode == 1
    err = proc.stderr.decode().splitlines()
    assert err[-1] == "nat: 180 of 200 inputs tokenized, 20 failed"
    assert sorted(line.split(":")[1].strip() for line in err[:-1]) == [f"clip{k:03d}.wav" for k in sorted(bad)]
    for k, path in enumerate(paths):
        written = (out / f"clip{k:03d}.ndjson").read_text()
        assert written == expected(tok, lambda: audio.open_path(str(path)), path.name), path.name
        assert (json.loads(written.splitlines()[-1])["type"] == "error") == (k in bad)
    # a few as separate processes, as a user would run them one by one
    for k in (0, 99, 199):
        alone = run_nat("--pack", str(tiny_pack), str(paths[k]), check=True).stdout
        assert alone == (out / f"clip{k:03d}.ndjson").read_bytes()


def test_200_stdin_parts_with_20_bad_ones(tok, tiny_pack):
    bad = set(range(5, 200, 10))
    parts = [_bad_clip(k) if k in bad else _good_clip(k) for k in range(200)]
    piped = b"\x1c".join(parts) + b"\x1c"
    assert split_parts(piped) == parts  # the container lengths keep FS bytes inside audio intact
    proc = run_nat("--pack", str(tiny_pack), "--threads", "1", input=piped)
    assert proc.returncode == 1
    err = proc.stderr.decode().splitlines()
    assert err[-1] == "nat: 180 of 200 inputs tokenized, 20 failed" and len(err) == 21
    names = ["stdin"] + [f"stdin#{k + 1}" for k in range(1, 200)]  # parts stream: named as they begin
    want = "".join(expected(tok, lambda d=data, n=name: audio.open_bytes(d, n), name) for name, data in zip(names, parts))
    # the WAVs stream: their size and hash move to the stats line
    assert [json.loads(x) for x in proc.stdout.splitlines()] == as_streamed([json.loads(x) for x in want.splitlines()])


# --- threads -------------------------------------------------------------------------------


def test_threads_sharing_a_tokenizer_with_mixed_inputs(tok, tmp_path):
    path = tmp_path / "file.flac"
    sf.write(path, tone(2.5, 44100, channels=2), 44100, format="FLAC")
    inputs = [
        ("path", lambda: tok.encode(path)),
        ("bytes", lambda: tok.encode(wav_bytes(tone(2.0, 22050, seed=3), 22050), name="b")),
        ("array", lambda: tok.encode((tone(3.0, 32000, seed=4), 32000))),
        ("raw", lambda: tok.encode(b"not audio at all, read as raw" * 300, name="r")),
        ("bad", lambda: tok.encode(b"RIFF" + bytes(40), name="bad")),
        ("nan", lambda: tok.encode((np.full(20000, np.nan, np.float32), 16000))),
    ]

    def result(make):
        try:
            return list(make())
        except InputError as exc:
            return str(exc)

    serial = {name: result(make) for name, make in inputs}
    assert serial["bad"].startswith("bad: not decodable audio")
    results: dict[int, dict] = {}

    def work(i: int) -> None:
        order = inputs[i % len(inputs) :] + inputs[: i % len(inputs)]
        results[i] = {name: result(make) for name, make in order for _ in range(2)}

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8
    assert all(r == serial for r in results.values())


# --- exceptions inside the decoder's callbacks ----------------------------------------------


@pytest.mark.parametrize(("raised", "expected"), [(KeyboardInterrupt, KeyboardInterrupt), (OSError, InputError)])
def test_an_exception_in_a_read_callback_is_not_taken_for_the_end_of_the_file(monkeypatch, raised, expected):
    """libsndfile reads through Python callbacks; cffi swallows what they raise and reports a
    short read. It must come back out: an interrupt stays an interrupt, an I/O error is an
    input error, and neither may look like a shorter, complete input."""
    data = wav_bytes(tone(5.0, 8000), 8000)
    calls = {"n": 0}
    real = audio._SeekGuard.readinto

    def flaky(self, buffer):
        calls["n"] += 1
        if calls["n"] == 20:
            raise raised(5, "Input/output error") if raised is OSError else raised()
        return real(self, buffer)

    monkeypatch.setattr(audio._SeekGuard, "readinto", flaky)
    source = audio.open_bytes(data, "clip")
    with pytest.raises(expected) as info:
        for _ in source.blocks():
            pass
    if expected is InputError:
        assert str(info.value).startswith("clip: decoding failed at ") and "Input/output error" in str(info.value)
    assert source.decoded < 40000
