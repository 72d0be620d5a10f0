"""nat on pipes: --raw, stdin and FIFOs streaming, FS-separated parts split on the fly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import REPO, run_nat, tone, wav_bytes
from test_runtime import validate

NAT = [sys.executable, "-m", "neural_audio_tokenizer"]
FS = b"\x1c"


def pcm16(seconds: float, sr: int = 16000, channels: int = 1, seed: int = 0) -> bytes:
    x = tone(seconds, sr, channels=channels, seed=seed, freq=300.0 + 50 * seed)
    return np.round(x * 32767).astype("<i2").tobytes()


def streams(stdout: bytes) -> list[list[dict]]:
    """The output's streams: each a header, its frame lines, then a stats or error line."""
    out: list[list[dict]] = []
    for line in stdout.decode().splitlines():
        obj = json.loads(line)
        if obj.get("type") == "header":
            out.append([])
        out[-1].append(obj)
    return out


def frames(stream: list[dict]) -> list[dict]:
    return [o for o in stream if "t" in o]


def test_raw_stdin_and_path_full_of_fs_bytes_are_one_equal_stream(tmp_path):
    data = bytearray(pcm16(6.0))
    data[1::7] = FS * len(data[1::7])  # sample bytes that are FS all over
    path = tmp_path / "fs.pcm"
    path.write_bytes(bytes(data))
    by_path = run_nat("--raw", "--raw-rate", "16000", str(path), check=True)
    piped = run_nat("--raw", "--raw-rate", "16000", input=bytes(data), check=True)
    [a], [b] = streams(by_path.stdout), streams(piped.stdout)
    assert len(frames(a)) == 30 and frames(a) == frames(b)
    assert b[0]["source"] | {"name": "fs.pcm", "bytes": len(data), "sha256": a[0]["source"]["sha256"], "duration_s": 6.0} == a[0]["source"]
    assert b[0]["source"]["sha256"] is None and b[-1]["source"] == {"bytes": len(data), "sha256": a[0]["source"]["sha256"]}
    assert b"warning" not in by_path.stderr + piped.stderr  # --raw is declared, not a fallback
    validate(a + b)


def test_raw_stereo_and_a_partial_last_sample(tmp_path):
    data = pcm16(3.0, 22050, channels=2) + b"\x01"  # ends mid-sample
    path = tmp_path / "st.pcm"
    path.write_bytes(data)
    args = ("--raw", "--raw-rate", "22050", "--raw-channels", "2")
    [a], [b] = streams(run_nat(*args, str(path), check=True).stdout), streams(run_nat(*args, input=data, check=True).stdout)
    # the partial frame is zero-padded into one more sample: 3 s and a sample make 16 frames
    assert a[0]["source"]["channels"] == 2 and frames(a) == frames(b) and len(frames(a)) == 16


WRITER = textwrap.dedent(
    """
    import os, sys, time
    data, go = open(sys.argv[1], "rb").read(), sys.argv[2]
    step = 3200  # 0.1 s of 16 kHz s16le
    for i in range(0, len(data), step):
        if i == 4 * 32000:  # 4 s written: wait until the reader has seen a frame (or give up)
            deadline = time.monotonic() + 240
            while not os.path.exists(go) and time.monotonic() < deadline:
                time.sleep(0.05)
        sys.stdout.buffer.write(data[i : i + step])
        sys.stdout.buffer.flush()
        time.sleep(0.02)  # a steady pace, 5x real time
    """
)


@pytest.mark.parametrize("kind", ["raw", "wav", "raw-glossary"])
def test_lines_come_while_the_writer_still_writes(tmp_path, kind):
    """... with --glossary too: a stream still coming gets the whole glossary up front."""
    pcm = pcm16(8.0, seed=1)
    if kind == "wav":  # as `sox -d -t wav -` writes it: placeholder sizes
        wav = wav_bytes(np.frombuffer(pcm, "<i2").astype(np.float32)[:, None] / 32768, 16000)
        wav = wav[:4] + (0x7FFFF024).to_bytes(4, "little") + wav[8:40] + (0x7FFFF000).to_bytes(4, "little") + wav[44:]
        data, args = wav, []
    else:
        data, args = pcm, ["--raw", "--raw-rate", "16000"] + (["--glossary"] if kind == "raw-glossary" else [])
    src, go = tmp_path / "in.bin", tmp_path / "go"
    src.write_bytes(data)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(src), str(go)], stdout=subprocess.PIPE)
    nat = subprocess.Popen([*NAT, *args], stdin=writer.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    writer.stdout.close()
    try:
        header = json.loads(nat.stdout.readline())
        first = json.loads(nat.stdout.readline())
        assert header["type"] == "header" and first["t"] == 0.0
        assert writer.poll() is None  # the first frame came before the writer finished
        if kind == "raw-glossary":
            from neural_audio_tokenizer.runtime.pack import load_pack
            from neural_audio_tokenizer.packs import resolve_pack

            assert len(header["glossary"]["A0"]) == len(load_pack(resolve_pack(None)).glossary.codes["A0"])
        go.touch()
        rest = nat.stdout.read()  # the same buffered reader: readline may hold lines already
        nat.wait(timeout=300)
        err = nat.stderr.read()
    finally:
        go.touch()
        writer.wait(timeout=300)
        if nat.poll() is None:
            nat.kill()
    assert nat.returncode == 0, err.decode()
    [piped] = streams(b"".join(map(dumps_line, [header, first])) + rest)
    path = tmp_path / ("in.wav" if kind == "wav" else "in.pcm")
    path.write_bytes(data)
    [by_path] = streams(run_nat(*args, str(path), check=True).stdout)
    assert frames(piped) == frames(by_path) and len(frames(piped)) == 40
    assert piped[-1]["source"]["sha256"] == by_path[0]["source"]["sha256"]


def dumps_line(obj: dict) -> bytes:
    return (json.dumps(obj, separators=(",", ":")) + "\n").encode()


def test_a_stalling_pipe_and_one_closed_early(tmp_path):
    pcm = pcm16(5.0, seed=2)
    script = textwrap.dedent(
        """
        import sys, time
        data = open(sys.argv[1], "rb").read()
        sys.stdout.buffer.write(data[:50001]); sys.stdout.buffer.flush()  # ends mid-sample, then stalls
        time.sleep(1.5)
        sys.stdout.buffer.write(data[50001:100000]); sys.stdout.buffer.flush()
        sys.exit(0)  # closes early: the rest never comes
        """
    )
    src = tmp_path / "in.pcm"
    src.write_bytes(pcm)
    writer = subprocess.Popen([sys.executable, "-c", script, str(src)], stdout=subprocess.PIPE)
    nat = subprocess.run([*NAT, "--raw", "--raw-rate", "16000"], stdin=writer.stdout, capture_output=True, cwd=REPO, timeout=300)
    writer.stdout.close()
    writer.wait(timeout=60)
    assert nat.returncode == 0, nat.stderr.decode()
    (tmp_path / "part.pcm").write_bytes(pcm[:100000])
    [by_path] = streams(run_nat("--raw", "--raw-rate", "16000", str(tmp_path / "part.pcm"), check=True).stdout)
    [piped] = streams(nat.stdout)
    assert frames(piped) == frames(by_path) and piped[-1]["duration_s"] == 3.125


def test_fs_separated_parts_split_on_the_fly(tmp_path):
    a = wav_bytes(tone(2.0, 16000, seed=3), 16000)
    b = wav_bytes(tone(1.4, 22050, seed=4), 22050, "FLOAT")
    flac = wav_bytes(tone(1.0, 44100, seed=5), 44100, "PCM_16", "FLAC")
    out = run_nat(input=a + FS + b + FS + flac + FS)
    assert out.returncode == 0, out.stderr.decode()
    got = streams(out.stdout)
    assert [s[0]["source"]["name"] for s in got] == ["stdin", "stdin#2", "stdin#3"]
    for stream, data, name in zip(got, (a, b, flac), "abc"):
        (tmp_path / f"{name}.x").write_bytes(data)
        [want] = streams(run_nat(str(tmp_path / f"{name}.x"), check=True).stdout)
        assert frames(stream) == frames(want)
    assert got[0][0]["source"]["sha256"] is None and got[0][-1]["source"]["bytes"] == len(a)
    assert got[2][0]["source"]["decoder"] == "soundfile"  # FLAC cannot stream: read whole, full header
    validate([line for s in got for line in s])


def test_a_fifo_given_as_a_path_streams(tmp_path):
    data = pcm16(3.0, seed=6)
    fifo = tmp_path / "live.fifo"
    os.mkfifo(fifo)
    nat = subprocess.Popen([*NAT, "--raw", "--raw-rate", "16000", str(fifo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    with open(fifo, "wb") as f:
        f.write(data)
    out, err = nat.communicate(timeout=300)
    assert nat.returncode == 0, err.decode()
    [piped] = streams(out)
    (tmp_path / "x.pcm").write_bytes(data)
    [by_path] = streams(run_nat("--raw", "--raw-rate", "16000", str(tmp_path / "x.pcm"), check=True).stdout)
    assert piped[0]["source"]["name"] == "live.fifo" and frames(piped) == frames(by_path)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--raw-channels", "2"], "add --raw"), (["--raw", "--raw-channels", "0"], "expected 1-256"), (["--raw", "--raw-rate", "5"], "--raw-rate 5")],
)
def test_raw_usage_errors_are_one_line(args, message):
    out = run_nat(*args, input=b"\x00\x01")
    assert out.returncode == 2 and message in out.stderr.decode() and out.stderr.decode().count("\n") == 1


def test_empty_stdin_with_raw_is_one_error_line():
    out = run_nat("--raw", input=b"")
    assert out.returncode == 1 and b"empty input" in out.stderr
    assert json.loads(out.stdout)["type"] == "error"


@pytest.mark.parametrize("fmt", ["ndjson", "lam"])
def test_diff_and_readers_find_a_piped_source_by_its_stats(tmp_path, fmt):
    from neural_audio_tokenizer.runtime.reader import read_path

    a, b = wav_bytes(tone(2.0, 16000, seed=7), 16000), wav_bytes(tone(2.0, 16000, seed=8), 16000)
    (tmp_path / "a.wav").write_bytes(a)
    golden, piped_a, piped_b = tmp_path / f"golden.{fmt}", tmp_path / f"a.{fmt}", tmp_path / f"b.{fmt}"
    golden.write_bytes(run_nat("--format", fmt, str(tmp_path / "a.wav"), check=True).stdout)
    piped_a.write_bytes(run_nat("--format", fmt, input=a, check=True).stdout)
    piped_b.write_bytes(run_nat("--format", fmt, input=b, check=True).stdout)
    [g], [p] = read_path(str(golden)), read_path(str(piped_a))
    assert p.header.source.sha256 is None or fmt == "lam"
    assert p.source.sha256 == g.source.sha256 and list(p.frames) == list(g.frames)
    assert run_nat("diff", str(golden), str(piped_a)).returncode == 0
    differ = run_nat("diff", str(golden), str(piped_b))
    assert differ.returncode != 0 and b"source sha256 differs" in differ.stdout + differ.stderr


ENDLESS = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    t = np.arange(1600) / 16000
    block = np.round(0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2").tobytes()
    while True:  # 0.1 s blocks, 5x real time, forever
        sys.stdout.buffer.write(block)
        sys.stdout.buffer.flush()
        time.sleep(0.02)
    """
)


@pytest.mark.parametrize(("how", "code"), [("SIGTERM", 143), ("SIGINT", 130), ("closed stdout", 141)])
def test_an_endless_pipe_ends_on_a_whole_line(how, code):
    import signal

    writer = subprocess.Popen([sys.executable, "-c", ENDLESS], stdout=subprocess.PIPE)
    nat = subprocess.Popen([*NAT, "--raw", "--raw-rate", "16000"], stdin=writer.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    writer.stdout.close()
    try:
        got = [nat.stdout.readline() for _ in range(6)]  # the header and five frames: it keeps producing
        assert all(line.endswith(b"\n") for line in got)
        if how == "closed stdout":
            nat.stdout.close()
            rest = b""
        else:
            nat.send_signal(signal.SIGTERM if how == "SIGTERM" else signal.SIGINT)
            rest = nat.stdout.read()
        nat.wait(timeout=120)
    finally:
        writer.kill()
        writer.wait(timeout=60)
        if nat.poll() is None:
            nat.kill()
    assert nat.returncode == code
    lines = b"".join(got) + rest
    assert lines.endswith(b"\n") and all(json.loads(x) for x in lines.splitlines())
    assert nat.stderr.read().count(b"\n") <= 1  # one line at most, never a traceback
