"""Bad input (issue #8): each case gives one clear stderr line and a documented exit code,
and never disturbs the other inputs of the same run. docs/errors.md lists what users see.

Most cases run through one ``nat`` process (fast) and are compared, input by input, with
in-process runs of the same files; cases that need special set-up (FIFO, permissions,
stdin, output errors) have their own tests.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import signal
import struct
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, as_streamed, run_nat, tone, wav_bytes

from neural_audio_tokenizer import Tokenizer
from neural_audio_tokenizer.cli import main as cli
from neural_audio_tokenizer.runtime import sinks
from neural_audio_tokenizer.runtime.inputs import audio, stderr_guard
from neural_audio_tokenizer.errors import InputError
from neural_audio_tokenizer.runtime.ndjson import dumps, error_record
from neural_audio_tokenizer.runtime.ndjson import lines as ndjson_lines

ERR, OK = "error", "ok"
RAW = r"no audio format recognized; read as raw 16-bit PCM at 16000 Hz \(see --raw-rate\)"
TRUNCATED = r".*\(truncated\?\)"


def bad_inputs() -> dict[str, tuple[bytes, tuple]]:
    """name -> (bytes, expectation). Expectation: (ERR, message regex) or
    (OK, frames or None, warning regex or None)."""
    x = tone(3.0, 22050)
    w = wav_bytes(x, 22050)
    flac = wav_bytes(tone(6.0, 22050), 22050, "PCM_16", "FLAC")
    mp3 = wav_bytes(x, 22050, "MPEG_LAYER_III", "MP3")
    ogg = wav_bytes(x, 22050, "VORBIS", "OGG")
    aiff = wav_bytes(x, 22050, "PCM_16", "AIFF")

    def patched(data: bytes, *edits: tuple[int, bytes]) -> bytes:
        b = bytearray(data)
        for at, value in edits:
            b[at : at + len(value)] = value
        return bytes(b)

    comm = aiff.find(b"COMM")
    c: dict[str, tuple[bytes, tuple]] = {
        "empty.wav": (b"", (ERR, r"empty input \(0 bytes\)")),
        # truncated containers: cut inside the header, or in the middle of the audio data
        "wav-cut-header.wav": (w[:30], (ERR, r"not decodable audio \(Error in WAV file\. No 'data' chunk marker\)")),
        "wav-cut-at-data.wav": (w[:44], (ERR, r"no audio samples")),
        "wav-cut-mid.wav": (w[: len(w) // 2], (OK, 8, r"header declares 132300 bytes of audio data, the file holds 66128 \(truncated\?\)")),
        "flac-cut-header.flac": (flac[:30], (ERR, r"not decodable audio \(.+\)")),
        "flac-cut-mid.flac": (flac[: len(flac) * 2 // 3], (ERR, r"decoding failed at 3\.000 s \(flac decoder lost sync\)")),
        "mp3-cut-header.mp3": (mp3[:30], (ERR, r"not decodable audio \(unrecognized or damaged data\)")),
        "mp3-cut-mid.mp3": (mp3[: len(mp3) // 2], (OK, 8, r"decoded 1\.439 s of the 3\.000 s its header declares \(truncated\?\)")),
        "ogg-cut-header.ogg": (ogg[:30], (ERR, r"not decodable audio \(.+\)")),
        "ogg-cut-mid.ogg": (ogg[: len(ogg) // 2], (OK, None, r"the stream ends without an end-of-stream marker \(truncated\?\)")),
        # lying headers
        "claims-4gib.wav": (patched(w, (4, struct.pack("<I", 0xFFFFFFE8)), (40, struct.pack("<I", 0xFFFFFFC4))), (OK, 15, r"header declares 4294967236 bytes" + TRUNCATED)),
        "streamed.wav": (patched(w, (4, b"\xff" * 4), (40, b"\xff" * 4)), (OK, 15, None)),  # placeholder sizes: normal
        "chunk-past-end.wav": (patched(w, (16, struct.pack("<I", 0xFFFFFF00))), (ERR, r"not decodable audio \(.*Short 'fmt ' chunk\)")),
        "list-past-end.wav": (patched(w, (36, b"LIST" + struct.pack("<I", 0x7FFFFF00))), (ERR, r"not decodable audio \(.*No 'data' chunk marker\)")),
        "zero-rate.aiff": (patched(aiff, (comm + 16, bytes(10))), (ERR, r"unsupported sample rate \d+ Hz \(NAT reads 1000-768000 Hz, 1-256 channels\)")),
        "zero-channels.wav": (patched(w, (22, b"\0\0")), (ERR, r"not decodable audio \(Channel count is zero\)")),
        # float content
        "silence.wav": (wav_bytes(np.zeros((44100, 1), np.float32), 22050), (OK, 10, None)),
        "dc.wav": (wav_bytes(np.full((44100, 1), 0.5, np.float32), 22050), (OK, 10, None)),
        # lengths around the tiny pack's 0.2 s frame and 2 s chunk
        "single-sample.wav": (wav_bytes(np.full((1, 1), 0.5, np.float32), 22050), (OK, 1, None)),
        "shorter-than-a-frame.wav": (wav_bytes(tone(0.01, 22050), 22050), (OK, 1, None)),
        "one-chunk.wav": (wav_bytes(tone(2.0, 22050), 22050), (OK, 10, None)),
        "one-chunk-plus-one.wav": (wav_bytes(tone(2.0 + 1 / 22050, 22050), 22050), (OK, 11, None)),
        # rates, channels, encodings
        "rate-1k.wav": (wav_bytes(tone(2.0, 1000, freq=200), 1000), (OK, 10, None)),
        "rate-384k.wav": (wav_bytes(tone(2.0, 384000), 384000), (OK, 10, None)),
        "channels-32.wav": (wav_bytes(tone(2.0, 16000, channels=32), 16000), (OK, 10, None)),
        "u8.wav": (wav_bytes(x, 22050, "PCM_U8"), (OK, 15, None)),
        "pcm24.wav": (wav_bytes(x, 22050, "PCM_24"), (OK, 15, None)),
        "alaw.wav": (wav_bytes(x, 22050, "ALAW"), (OK, 15, None)),
        "ulaw.au": (wav_bytes(x, 22050, "ULAW", "AU"), (OK, 15, None)),
        # not audio at all: tokenized as raw PCM, as the original script promised, with a warning
        "doc.pdf": (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n" * 40, (OK, None, RAW)),
        "image.png": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, (OK, None, RAW)),
        "random.bin": (b"\x00" + np.random.default_rng(3).bytes(10000), (OK, 2, RAW)),  # odd length: 5001 samples
        "notes.txt": (b"hello world\n" * 100, (OK, 1, RAW)),
        "zeros.bin": (bytes(1 << 20), (OK, 164, RAW)),
    }
    for label, value, warning in [
        ("nan", np.nan, r"100 NaN or infinite samples replaced by silence"),
        ("posinf", np.inf, r"100 NaN or infinite samples replaced by silence"),
        ("neginf", -np.inf, r"100 NaN or infinite samples replaced by silence"),
        ("denormal", 1e-40, None),
        ("huge", 1e30, r"100 samples beyond \+-1000 \(full scale is 1\) clipped"),
    ]:
        y = x.copy()
        y[1000:1100] = value
        c[f"float-{label}.wav"] = (wav_bytes(y, 22050, "FLOAT"), (OK, 15, warning))
    return c


CASES = bad_inputs()


@pytest.fixture(scope="module")
def tok(tiny_pack) -> Tokenizer:
    return Tokenizer.load(tiny_pack, threads=1)


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad")
    for name, (data, _) in CASES.items():
        (folder / name).write_bytes(data)
    (folder / "a-directory").mkdir()
    return folder


def expected_stream(tok: Tokenizer, path: Path) -> str:
    """What `nat` must write for this input alone: its lines, or an error record."""
    lines = []
    try:
        for line in ndjson_lines(tok.stream(audio.open_path(str(path)))):
            lines.append(dumps(line))
    except InputError as exc:
        lines.append(dumps(error_record(path.name, exc)))
    return "".join(lines)


def test_every_bad_input_in_process(tok, case_dir):
    for name, (_, expect) in CASES.items():
        path = case_dir / name
        if expect[0] == ERR:
            with pytest.raises(InputError) as info:
                list(ndjson_lines(tok.stream(audio.open_path(str(path)))))
            assert re.fullmatch(f"{re.escape(name)}: {expect[1]}", str(info.value)), (name, str(info.value))
            continue
        source = audio.open_path(str(path))
        lines = list(ndjson_lines(tok.stream(source)))
        frames, warning = expect[1], expect[2]
        stats = lines[-1]
        assert stats["type"] == "stats", name
        if frames is not None:
            assert stats["frames"] == frames, (name, stats["frames"])
        notes = source.warnings()
        assert len(notes) == (warning is not None), (name, notes)
        if warning:
            assert re.fullmatch(warning, notes[0]), (name, notes)
        for line in lines[1:-1]:  # every token finite and in range: NaN never reaches the codes
            assert all(0 <= v < 16 for k, v in line.items() if k[0] in "SA"), name


def test_bad_inputs_in_one_run_give_one_line_each_and_leave_the_others_intact(tok, tiny_pack, case_dir, tmp_path):
    names = list(CASES) + ["a-directory", "missing.wav"]
    out = tmp_path / "out"
    proc = run_nat("--pack", str(tiny_pack), "--threads", "1", "--output-dir", str(out), *[str(case_dir / n) for n in names])
    assert proc.returncode == 1
    err = proc.stderr.decode().splitlines()
    errors = [n for n, (_, e) in CASES.items() if e[0] == ERR] + ["a-directory", "missing.wav"]
    warned = [n for n, (_, e) in CASES.items() if e[0] == OK and e[2]]
    # exactly: one line per error, one per warning, the summary; nothing from C libraries
    assert len(err) == len(errors) + len(warned) + 1, "\n".join(err)
    assert err[-1] == f"nat: {len(names) - len(errors)} of {len(names)} inputs tokenized, {len(errors)} failed"
    for name in errors:
        mine = [line for line in err if line.startswith(f"nat: {name}: ")]
        assert len(mine) == 1 and "warning" not in mine[0], (name, mine)
        if name in CASES:
            assert re.fullmatch(f"nat: {re.escape(name)}: {CASES[name][1][1]}", mine[0]), mine
    assert f"nat: a-directory: is a directory" in err
    assert f"nat: missing.wav: no such file" in err
    for name in warned:
        mine = [line for line in err if line.startswith(f"nat: {name}: ")]
        assert len(mine) == 1 and re.fullmatch(f"nat: {re.escape(name)}: warning: {CASES[name][1][2]}", mine[0]), (name, mine)
    # every input has its file, byte-identical to tokenizing it alone
    for name in CASES:
        stem = name.rsplit(".", 1)[0]
        assert (out / f"{stem}.ndjson").read_text() == expected_stream(tok, case_dir / name), name
    assert json.loads((out / "a-directory.ndjson").read_text())["message"] == "a-directory: is a directory"
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]


def test_a_mid_stream_decode_failure_keeps_the_frames_before_it(case_dir, tmp_path, tiny_pack):
    proc = run_nat("--pack", str(tiny_pack), "--threads", "1", str(case_dir / "flac-cut-mid.flac"))
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert proc.returncode == 1
    assert lines[0]["type"] == "header" and lines[-1]["type"] == "error"
    frames = lines[1:-1]
    # 3 s decoded before the failure: the first 2 s chunk was encoded and written (its last
    # frame may still be held by the line encoder when the error arrives)
    assert len(frames) >= 9 and [f["t"] for f in frames] == [round(0.2 * k, 3) for k in range(len(frames))]
    assert "stats" not in {line.get("type") for line in lines}


def test_raw_rate_outside_range_is_an_input_error(tiny_pack, case_dir):
    proc = run_nat("--pack", str(tiny_pack), "--raw-rate", "5", str(case_dir / "notes.txt"))
    assert proc.returncode == 1
    assert proc.stderr.decode() == "nat: notes.txt: raw rate 5 Hz outside 1000-768000\n"


def test_quiet_drops_warnings_but_not_errors(tiny_pack, case_dir):
    proc = run_nat("--pack", str(tiny_pack), "-q", str(case_dir / "notes.txt"), str(case_dir / "empty.wav"))
    assert proc.returncode == 1
    assert proc.stderr.decode() == "nat: empty.wav: empty input (0 bytes)\n"


# --- stdin -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("piped", "stderr"),
    [
        (b"", ["nat: stdin: empty input (0 bytes)"]),
        (b"\x1c", ["nat: stdin: empty input (0 bytes)"]),  # one trailing FS terminates the (empty) input
        (b"\x1c\x1c\x1c", ["nat: stdin: empty input (0 bytes)"] + [f"nat: stdin#{k}: empty input (0 bytes)" for k in (2, 3)] + ["nat: 0 of 3 inputs tokenized, 3 failed"]),
    ],
    ids=["empty", "one-fs", "only-fs"],
)
def test_empty_stdin(tiny_pack, piped, stderr):
    proc = run_nat("--pack", str(tiny_pack), input=piped)
    assert proc.returncode == 1
    assert proc.stderr.decode().splitlines() == stderr
    assert all(json.loads(x)["type"] == "error" for x in proc.stdout.splitlines())


def test_empty_fs_parts_fail_alone(tok, tiny_pack):
    a = wav_bytes(tone(1.0, 16000), 16000)
    b = wav_bytes(tone(1.2, 22050, seed=2), 22050)
    proc = run_nat("--pack", str(tiny_pack), "--threads", "1", input=a + b"\x1c\x1c" + b + b"\x1c")
    assert proc.returncode == 1
    assert proc.stderr.decode().splitlines() == ["nat: stdin#2: empty input (0 bytes)", "nat: 2 of 3 inputs tokenized, 1 failed"]
    got = [json.loads(x) for x in proc.stdout.splitlines()]
    want = list(ndjson_lines(tok.stream(audio.open_bytes(a, "stdin"))))
    want.append({"type": "error", "source": "stdin#2", "error": "input", "message": "stdin#2: empty input (0 bytes)"})
    want += list(ndjson_lines(tok.stream(audio.open_bytes(b, "stdin#3"))))
    assert got == as_streamed(want)  # the WAVs stream: size and hash move to the stats line


# --- paths -------------------------------------------------------------------------------


def test_fifo_is_read_whole(tok, tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    data = wav_bytes(tone(1.0, 16000), 16000)

    def writer():
        with open(fifo, "wb") as f:
            f.write(data)

    t = threading.Thread(target=writer)
    t.start()
    lines = list(ndjson_lines(tok.stream(audio.open_path(str(fifo)))))
    t.join()
    assert lines[0]["source"]["bytes"] == len(data) and lines[-1]["frames"] == 5


def test_permission_denied_in_process(monkeypatch, tmp_path):
    target = tmp_path / "locked.wav"
    target.write_bytes(wav_bytes(tone(0.5, 16000), 16000))

    def deny(path):
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(audio, "_open_binary", deny)
    with pytest.raises(InputError, match=r"^locked\.wav: permission denied$"):
        audio.open_path(str(target))


def _without_root_privileges():
    """preexec_fn: as root, drop the capabilities that bypass file permissions (DAC), so a
    chmod 000 file is really unreadable; the process keeps uid 0 and reaches the venv."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, dropped from the bounding set
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _run_unprivileged(*args: str):
    import subprocess

    try:
        return subprocess.run(
            [sys.executable, "-m", "neural_audio_tokenizer", *args],
            capture_output=True,
            cwd=REPO,
            timeout=120,
            preexec_fn=_without_root_privileges,
        )
    except subprocess.SubprocessError as exc:  # no CAP_SETPCAP (containers vary)
        pytest.skip(f"cannot drop DAC capabilities here: {exc}")


@pytest.mark.skipif(sys.platform != "linux", reason="uses Linux capabilities when run as root")
def test_permission_denied_for_real(tiny_pack, tmp_path):
    locked = tmp_path / "locked.wav"
    locked.write_bytes(wav_bytes(tone(0.5, 16000), 16000))
    locked.chmod(0)
    ok = tmp_path / "ok.wav"
    ok.write_bytes(wav_bytes(tone(0.5, 16000), 16000))
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    proc = _run_unprivileged("--pack", str(tiny_pack), "--threads", "1", str(locked), str(ok))
    assert proc.returncode == 1
    assert proc.stderr.decode().splitlines() == ["nat: locked.wav: permission denied", "nat: 1 of 2 inputs tokenized, 1 failed"]
    proc = _run_unprivileged("--pack", str(tiny_pack), "--output-dir", str(readonly / "out"), str(ok))
    assert proc.returncode == 3 and proc.stdout == b""
    assert proc.stderr.decode() == f"nat: --output-dir {readonly / 'out'}: Permission denied\n"
    proc = _run_unprivileged("--pack", str(tiny_pack), "-o", str(readonly / "all.ndjson"), str(ok))
    assert proc.returncode == 3
    assert proc.stderr.decode() == f"nat: cannot write in {readonly}: Permission denied\n"
    assert list(readonly.iterdir()) == []


# --- output errors -----------------------------------------------------------------------


def test_output_dir_that_cannot_exist(tiny_pack, tmp_path):
    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav_bytes(tone(0.5, 16000), 16000))
    proc = run_nat("--pack", str(tiny_pack), "--output-dir", str(clip / "sub"), str(clip))
    assert proc.returncode == 3 and proc.stdout == b""
    assert proc.stderr.decode() == f"nat: --output-dir {clip / 'sub'}: Not a directory\n"


def test_disk_full_on_a_device_and_on_stdout(tiny_pack, tmp_path):
    import subprocess

    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav_bytes(tone(0.5, 16000), 16000))
    proc = run_nat("--pack", str(tiny_pack), "-o", "/dev/full", str(clip))
    assert proc.returncode == 3
    assert proc.stderr.decode() == "nat: cannot write /dev/full: No space left on device\n"
    assert Path("/dev/full").is_char_device()  # written in place, never replaced by a file
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([sys.executable, "-m", "neural_audio_tokenizer", "--pack", str(tiny_pack), str(clip)], stdout=full, stderr=subprocess.PIPE, cwd=REPO, timeout=120)
    assert proc.returncode == 3
    assert proc.stderr.decode() == "nat: cannot write to stdout: No space left on device\n"


def test_devices_are_written_in_place(tiny_pack, tmp_path):
    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav_bytes(tone(0.5, 16000), 16000))
    proc = run_nat("--pack", str(tiny_pack), "-o", "/dev/null", str(clip))
    assert proc.returncode == 0
    assert Path("/dev/null").is_char_device()
    assert not [p for p in Path("/dev").iterdir() if p.name.endswith(".part")]
    # anything under /dev is written in place, even a /dev/null some other program broke
    assert all(sinks._is_special(Path(p)) for p in ("/dev/null", "/dev/stdout", "/dev/no-such-device"))
    assert not sinks._is_special(tmp_path / "x.ndjson")


@pytest.fixture
def cli_in_process(monkeypatch):
    """cli.main() in this process, with its process-wide settings put back afterwards."""
    monkeypatch.setattr(stderr_guard, "_enabled", False)
    previous = signal.getsignal(signal.SIGTERM)
    yield cli.main
    signal.signal(signal.SIGTERM, previous)
    stderr_guard.enable(False)


def test_disk_full_in_output_dir_leaves_no_part_files(cli_in_process, tiny_pack, tmp_path, monkeypatch, capsys):
    clips = []
    for k in range(3):
        clips.append(tmp_path / f"c{k}.wav")
        clips[-1].write_bytes(wav_bytes(tone(1.0, 16000, seed=k), 16000))
    real_fdopen = os.fdopen
    opened = []

    class FillsUp:
        """The third file's writes fail as on a full disk."""

        def __init__(self, fd, mode):
            self.inner = real_fdopen(fd, mode)
            opened.append(self)
            self.full = len(opened) == 3

        def write(self, data):
            if self.full:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.inner.write(data)

        def __getattr__(self, name):
            return getattr(self.inner, name)

    monkeypatch.setattr(sinks.os, "fdopen", FillsUp)
    out = tmp_path / "out"
    rc = cli_in_process(["--pack", str(tiny_pack), "--threads", "1", "--output-dir", str(out), *map(str, clips)])
    assert rc == 3
    assert capsys.readouterr().err == "nat: cannot write c2.ndjson: No space left on device\n"
    assert sorted(p.name for p in out.iterdir()) == ["c0.ndjson", "c1.ndjson"]  # complete ones stay
    assert json.loads((out / "c1.ndjson").read_text().splitlines()[-1])["type"] == "stats"


def test_a_failure_at_run_time_is_one_line_not_a_traceback(cli_in_process, tiny_pack, tmp_path, monkeypatch, capsys):
    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav_bytes(tone(0.5, 16000), 16000))

    def broken(*args, **kwargs):
        raise RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : Got invalid dimensions\nsecond line")

    monkeypatch.setattr("neural_audio_tokenizer.runtime.tokenizer.run_session", broken)
    monkeypatch.delenv("NAT_DEBUG", raising=False)
    rc = cli_in_process(["--pack", str(tiny_pack), "-o", str(tmp_path / "x.ndjson"), str(clip)])
    assert rc == 70
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("nat: internal error: RuntimeError: [ONNXRuntimeError]")
    assert "NAT_DEBUG=1" in err
    assert not list(tmp_path.glob("*.ndjson")) and not list(tmp_path.glob(".*.part"))


def test_decoder_chatter_never_reaches_stderr(tiny_pack, case_dir):
    # libmpg123 prints "Note: ..." lines straight to fd 2 for damaged MP3 data
    garbage = b"\xff\xfb" + bytes(b for b in np.random.default_rng(5).bytes(4000) if b != 0x1C)  # one stdin part
    proc = run_nat("--pack", str(tiny_pack), str(case_dir / "mp3-cut-header.mp3"), "-", input=garbage)
    assert proc.returncode == 1
    lines = proc.stderr.decode().splitlines()
    assert all(line.startswith("nat: ") for line in lines), lines
    assert len(lines) == 3


def test_stderr_guard_restores_fd2():
    stderr_guard.enable(True)
    try:
        before = os.fstat(2)
        with stderr_guard.quiet(), stderr_guard.quiet():
            assert os.fstat(2).st_rdev == os.stat(os.devnull).st_rdev
        after = os.fstat(2)
        assert (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino)
    finally:
        stderr_guard.enable(False)


def test_messages_name_no_absolute_path_and_no_memory_address(tmp_path):
    bad = tmp_path / "deep" / "bad.wav"
    bad.parent.mkdir()
    bad.write_bytes(b"RIFF" + bytes(40))
    with pytest.raises(InputError) as info:
        audio.open_path(str(bad))
    assert str(tmp_path) not in str(info.value) and "0x" not in str(info.value)
    with pytest.raises(InputError) as info:
        audio.open_bytes(b"RIFF" + bytes(40), "x")
    assert "0x" not in str(info.value) and "BytesIO" not in str(info.value)


def test_docs_list_every_exit_code():
    text = (REPO / "docs" / "errors.md").read_text()
    from neural_audio_tokenizer import errors

    for name in dir(errors):
        if name.startswith("EXIT_"):
            assert f"| {getattr(errors, name)} |" in text, name
