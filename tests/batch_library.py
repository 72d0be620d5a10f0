"""A small music library for the batch and Ray tests: 30 audio files, 6 of them bad, in
nested folders with repeated names, plus files ``nat batch`` must not pick up."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys
from pathlib import Path

from conftest import tone, wav_bytes

BAD = ["bad/empty.wav", "bad/garbage.wav", "bad/midway.flac", "bad/notes.wav", "bad/truncated.flac", "bad/truncated.wav"]
FAILING = {"bad/empty.wav", "bad/garbage.wav", "bad/midway.flac", "bad/truncated.flac"}  # the others decode (raw PCM, partial)


def make_library(root: Path) -> list[str]:
    """Write the library; returns its 30 audio files' relative paths in nat batch's order."""
    names = [
        "song.wav", "song.flac", "zz/last.wav", "Capital/Song.WAV",
        "artist1/album1/01 intro.wav", "artist1/album1/02 song.flac", "artist1/album1/song.wav",
        "artist1/album2/01 intro.wav", "artist1/album2/song.wav", "artist1/album2/song.ogg",
        "artist2/song.aiff", "artist2/song.wav", "artist2/live/disc1/song.wav",
        "artist2/live/disc1/track 1.flac", "artist2/live/disc2/song.wav",
        "various/\u00dcn\u00efcode \u00f1ame.wav", "various/a.wav", "various/b.wav", "various/c.flac",
        "various/d.ogg", "various/e.aiff", "various/f.wav", "various/deep/er/still/g.wav", "various/deep/h.flac",
    ]  # fmt: skip
    formats = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"), "aiff": ("AIFF", "PCM_16"), "ogg": ("OGG", "VORBIS")}
    rates = [8000, 16000, 22050, 32000, 44100, 48000]
    good = {}
    for i, rel in enumerate(names):
        fmt, subtype = formats[rel.rsplit(".", 1)[1].lower()]
        sr = rates[i % 6]
        good[rel] = wav_bytes(tone(0.6 + 0.15 * i, sr, freq=150 + 40 * i, channels=1 + i % 2, seed=i), sr, subtype, fmt)
    flac = wav_bytes(tone(8.0, 22050, seed=99), 22050, fmt="FLAC")
    wav = wav_bytes(tone(2.0, 16000, seed=98), 16000)
    files = dict(good)
    files["bad/empty.wav"] = b""
    files["bad/garbage.wav"] = b"RIFF" + bytes(range(256)) * 4  # looks like WAV, is not
    files["bad/midway.flac"] = flac[: int(len(flac) * 0.6)]  # fails after some frames
    files["bad/notes.wav"] = b"liner notes, not audio\n" * 200  # no magic: read as raw PCM
    files["bad/truncated.flac"] = flac[: len(flac) // 5]  # fails in the first block
    files["bad/truncated.wav"] = wav[: len(wav) // 3]  # header longer than the data
    assert len(files) == 30, len(files)
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    # Never inputs: not audio, hidden, or in a hidden folder.
    (root / "artist1" / "cover.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "artist2" / "._song.wav").write_bytes(b"\x00\x05\x16\x07")
    (root / ".trash").mkdir()
    (root / ".trash" / "old.wav").write_bytes(good["song.wav"])
    return sorted(files, key=lambda rel: rel.split("/"))


def nat_single(root: Path, rel: str, *args: str) -> tuple[int, bytes]:
    """``cd root && nat [args] rel``, in this process (a fresh CLI run each time, no spawn)."""
    from neural_audio_tokenizer.cli.main import main

    out = io.BytesIO()
    stdout = io.TextIOWrapper(out, encoding="ascii")
    cwd = os.getcwd()
    old, handler = sys.stdout, signal.getsignal(signal.SIGTERM)
    os.chdir(root)
    sys.stdout = stdout
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            code = main([*args, rel])
        stdout.flush()
    finally:
        sys.stdout = old
        signal.signal(signal.SIGTERM, handler)  # main() installs its own
        os.chdir(cwd)
    return code, out.getvalue()
