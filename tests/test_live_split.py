"""The streaming splitter (runtime/splitter.py) agrees with stdin.split_parts on every input,
however the bytes arrive, and lets a part's bytes go before the input ends."""

from __future__ import annotations

import numpy as np
from conftest import wav_bytes
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz import COMPRESSED, examples, part, wav_part

from neural_audio_tokenizer.runtime.inputs.splitter import PartSplitter
from neural_audio_tokenizer.runtime.inputs.splitter import FS, split_parts


def streamed_split(data: bytes, cuts: list[int]) -> list[bytes]:
    """The parts as PartSplitter gives them when ``data`` arrives cut at ``cuts``."""
    splitter = PartSplitter()
    events = []
    pos = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts) + [len(data)]:
        events += splitter.feed(data[pos:cut])
        pos = max(pos, cut)
    events += splitter.close()
    parts: list[bytearray] = []
    open_part = False
    for event in events:
        if event.kind == "begin":
            assert not open_part
            parts.append(bytearray())
            open_part = True
        elif event.kind == "data":
            assert open_part and event.data
            parts[-1] += event.data
        else:
            assert open_part
            open_part = False
    assert not open_part
    return [bytes(p) for p in parts]


cuts = st.lists(st.integers(0, 1 << 16), max_size=12)
byte_runs = st.lists(st.binary(max_size=64) | st.sampled_from([FS, FS * 2, b"RIFF", b"ID3\x03\x00", b"\xff\xfb\x90\x64"]), max_size=12).map(b"".join)


@examples(400)
@given(byte_runs, cuts)
def test_streamed_split_equals_split_parts_on_any_bytes(data, where):
    assert streamed_split(data, where) == split_parts(data)


@examples(300)
@given(st.lists(part, max_size=8), st.booleans(), cuts)
def test_streamed_split_equals_split_parts_on_container_like_parts(parts, trailing, where):
    data = FS.join(parts) + (FS if trailing else b"")
    assert streamed_split(data, where) == split_parts(data)


@examples(100)
@given(st.lists(wav_part, min_size=1, max_size=4), st.booleans(), cuts)
def test_streamed_split_equals_split_parts_on_wavs_full_of_fs(parts, trailing, where):
    data = FS.join(parts) + (FS if trailing else b"")
    assert streamed_split(data, where) == split_parts(data)


@examples(60)
@given(st.lists(st.sampled_from(sorted(COMPRESSED)), min_size=1, max_size=4), st.booleans(), cuts)
def test_streamed_split_equals_split_parts_on_compressed_and_streamed_audio(names, trailing, where):
    data = FS.join(COMPRESSED[n] for n in names) + (FS if trailing else b"")
    assert streamed_split(data, where) == split_parts(data)


def test_a_wav_with_an_fs_and_audio_magic_inside_its_declared_length():
    """The one held-back case: FS + RIFF inside a WAV's samples, settled at its declared end."""
    body = wav_bytes(np.full((400, 1), 0x1C1C / 32768, np.float32), 8000)
    inner = body[:100] + FS + b"RIFF" + body[105:]
    for tail in (b"", FS + b"raw", b"x" + FS + b"raw"):
        data = inner + tail
        assert streamed_split(data, [7, 101, 300, 799]) == split_parts(data)


def test_bytes_go_out_before_the_input_ends():
    splitter = PartSplitter()
    raw = bytes(range(256)) * 4  # no audio magic: a raw part, ending at the next FS
    events = splitter.feed(raw.replace(FS, b"\x00"))
    assert [e.kind for e in events] == ["begin", "data"] and len(events[1].data) == len(raw)
    wav = COMPRESSED["wav-ffmpeg"]  # placeholder sizes: ends only at another file or the end
    splitter = PartSplitter()
    got = sum(len(e.data) for e in splitter.feed(wav))
    assert got >= len(wav) - 4096  # all but an FS still waiting for the bytes after it
    assert sum(len(e.data) for e in splitter.close()) == len(wav) - got
