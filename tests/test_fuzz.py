"""Property tests (issue #8): whatever bytes arrive, NAT either streams or raises its own
clean error; never another exception.

- stdin splitter: the parts joined with FS give back the input (minus one trailing FS), and
  audio files come back whole even when their bytes contain FS: WAV/AIFF by their declared
  length, compressed files and WAVs streamed with placeholder sizes by where the next file
  starts.
- decoding (soundfile or the raw fallback): ``InputError`` or finite float32 blocks.
- ONNX inspection: ``OnnxCheckError`` or a result; pack loading: ``PackError`` or a Pack.

A short run is part of the default suite; ``NAT_SLOW=1`` runs many more examples, and
``bench/fuzz.py`` runs a time-boxed mutation fuzzer over the same entry points.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import conv_encoder, run_nat, tone, wav_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neural_audio_tokenizer.runtime.inputs.audio import looks_like_audio, open_bytes
from neural_audio_tokenizer.errors import InputError, PackError
from neural_audio_tokenizer.runtime.onnx_check import OnnxCheckError, inspect_model
from neural_audio_tokenizer.runtime.pack import load_pack
from neural_audio_tokenizer.runtime.inputs.splitter import FS, split_parts

SLOW = bool(os.environ.get("NAT_SLOW"))


def examples(fast: int, slow: int = 5000) -> settings:
    return settings(
        max_examples=slow if SLOW else fast,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
    )


def _seeds() -> list[bytes]:
    """Small valid files of every container libsndfile reads, for mutation."""
    x = tone(0.25, 8000, channels=2)
    out = [wav_bytes(x, 8000, sub, fmt) for fmt, sub in [
        ("WAV", "PCM_16"), ("WAV", "FLOAT"), ("WAV", "ULAW"), ("AIFF", "PCM_24"), ("AU", "ALAW"),
        ("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III"), ("CAF", "PCM_16"), ("W64", "PCM_U8"),
    ]]
    out.append(wav_bytes(tone(0.25, 48000), 48000, "OPUS", "OGG"))
    return out


SEEDS = _seeds()


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None, splice: bytes) -> bytes:
    b = bytearray(data)
    for pos, value in edits:
        if b:
            b[pos % len(b)] = value
    if cut is not None and b:
        b = b[: cut % (len(b) + 1)]
    if splice and b:
        at = len(splice) * 7919 % len(b)
        b[at:at] = splice
    return bytes(b)


mutated_audio = st.builds(
    mutate,
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=12),
    st.none() | st.integers(0, 1 << 20),
    st.binary(max_size=16),
)


def drain(data: bytes, raw_rate: int = 16000) -> int:
    """Decode everything; return the sample count. Only InputError may escape."""
    source = open_bytes(data, "fuzz", raw_rate)
    n = 0
    for block in source.blocks():
        assert block.dtype == np.float32 and block.ndim == 1
        assert np.all(np.isfinite(block)) and np.all(np.abs(block) <= 1000)
        n += len(block)
    assert n > 0 and source.decoded == n
    return n


# --- the stdin splitter --------------------------------------------------------------------


def rejoins(data: bytes) -> bool:
    """The parts joined with FS are the input, less at most its one trailing FS."""
    joined = FS.join(split_parts(data))
    if data.endswith(FS):  # a terminator, or the last byte of a length-delimited container
        return joined in (data, data[:-1])
    return joined == data


@examples(300)
@given(st.binary(max_size=2048))
def test_split_any_bytes_rejoins_to_the_input(data):
    assert rejoins(data)


def test_a_wav_ending_in_an_fs_byte_keeps_it():
    wav = wav_bytes(np.full((100, 1), 0x1C1C / 32768, np.float32), 8000)
    assert wav.endswith(FS)
    assert split_parts(wav) == [wav]
    assert split_parts(wav + FS) == [wav]
    assert split_parts(wav + FS + wav) == [wav, wav]


riff_like = st.builds(
    lambda tag, size, body: tag + size.to_bytes(4, "little" if tag == b"RIFF" else "big") + body,
    st.sampled_from([b"RIFF", b"RIFX", b"FORM", b"RF64"]),
    st.integers(0, 0xFFFFFFFF) | st.integers(0, 64),
    st.binary(max_size=96),
)
part = st.binary(max_size=64) | riff_like | st.sampled_from([b"", FS, FS * 3])


@examples(300)
@given(st.lists(part, max_size=8), st.booleans())
def test_split_structured_bytes_rejoins_to_the_input(parts, trailing):
    data = FS.join(parts) + (FS if trailing else b"")
    assert rejoins(data)


wav_part = st.builds(
    lambda seconds, value, fmt: wav_bytes(np.full((seconds, 1), value, np.float32), 8000, "PCM_16", fmt),
    st.integers(1, 400),
    st.sampled_from([0.0, 0x1C1C / 32768, 0x1C00 / 32768, -0.5]),  # 0x1C1C: every data byte is FS
    st.sampled_from(["WAV", "AIFF"]),
)


@examples(100)
@given(st.lists(wav_part, min_size=1, max_size=5), st.booleans())
def test_split_returns_length_delimited_audio_whole(parts, trailing):
    data = FS.join(parts) + (FS if trailing else b"")
    assert split_parts(data) == parts


def streamed_wav(wav: bytes, riff_size: int, data_size: int) -> bytes:
    """The WAV as a program writing to a pipe emits it: RIFF and data sizes unknown, written
    as placeholders (ffmpeg: 0xFFFFFFFF twice; sox: 0x7FFFF024 and 0x7FFFF000)."""
    assert wav[36:40] == b"data"
    return wav[:4] + riff_size.to_bytes(4, "little") + wav[8:40] + data_size.to_bytes(4, "little") + wav[44:]


def _compressed() -> dict[str, bytes]:
    """About 1.5 s of noisy stereo in every compressed format libsndfile writes, and WAVs
    streamed with placeholder sizes: files full of FS bytes with no length to cut them by."""
    x = tone(1.5, 44100, channels=2) + np.random.default_rng(3).standard_normal((66150, 2)).astype(np.float32) * 0.05
    wav = wav_bytes(x, 44100)
    out = {
        "flac": wav_bytes(x, 44100, "PCM_16", "FLAC"),
        "ogg": wav_bytes(x, 44100, "VORBIS", "OGG"),
        "opus": wav_bytes(tone(1.5, 48000), 48000, "OPUS", "OGG"),
        "mp3": wav_bytes(x, 44100, "MPEG_LAYER_III", "MP3"),  # libsndfile writes no ID3 tag
        "mp3-id3": b"ID3\x03\x00\x00\x00\x00\x00\x0a" + bytes(10) + wav_bytes(x, 44100, "MPEG_LAYER_III", "MP3"),
        "wav-ffmpeg": streamed_wav(wav, 0xFFFFFFFF, 0xFFFFFFFF),
        "wav-sox": streamed_wav(wav, 0x7FFFF024, 0x7FFFF000),
    }
    for name, data in out.items():
        assert data.count(FS) >= 3, name  # the point: each holds FS bytes a blind split would cut at
    return out


COMPRESSED = _compressed()


@pytest.mark.parametrize("name", sorted(COMPRESSED))
def test_compressed_or_streamed_audio_alone_is_one_part(name):
    data = COMPRESSED[name]
    assert split_parts(data) == [data]
    # A trailing FS stays inside: decoders ignore it, while a dropped final byte that
    # happened to be 0x1C would break a FLAC's last frame.
    assert split_parts(data + FS) == [data + FS]
    assert open_bytes(data, "x").info.decoder == "soundfile"


def test_mpeg_frames_are_checked_not_just_their_sync_bits():
    mp3 = COMPRESSED["mp3"]
    assert split_parts(mp3 + FS + b"\xff\xfb\x90\x64 not a frame") == [mp3 + FS + b"\xff\xfb\x90\x64 not a frame"]
    assert split_parts(b"text" + FS + mp3) == [b"text", mp3]


@examples(60, 400)
@given(st.lists(st.sampled_from(sorted(COMPRESSED)) | st.sampled_from(["wav", "aiff"]), min_size=1, max_size=5), st.booleans())
def test_audio_files_joined_with_fs_come_back_whole(names, trailing):
    whole = {**COMPRESSED, "wav": wav_bytes(np.full((300, 1), 0x1C1C / 32768, np.float32), 8000), "aiff": wav_bytes(tone(0.2, 8000), 8000, "PCM_16", "AIFF")}
    files = [whole[n] for n in names]
    data = FS.join(files) + (FS if trailing else b"")
    got = split_parts(data)
    assert len(got) == len(files)
    for part, file in zip(got[:-1], files[:-1]):
        assert part == file
    assert got[-1] in (files[-1], files[-1] + FS)  # a trailing FS after a compressed file stays inside it


def test_a_long_flac_on_stdin_is_one_input(tiny_pack):
    """``cat song.flac | nat`` used to become hundreds of garbage inputs."""
    flac = COMPRESSED["flac"]
    piped = run_nat("--pack", str(tiny_pack), "-", input=flac + FS + COMPRESSED["wav-sox"], check=True)
    lines = [json.loads(x) for x in piped.stdout.splitlines()]
    headers = [x for x in lines if x.get("type") == "header"]
    assert [h["source"]["name"] for h in headers] == ["stdin", "stdin#2"]  # parts stream: named as they begin
    assert [h["source"]["format"].split("/")[0] for h in headers] == ["FLAC", "WAV"]
    assert abs(headers[0]["source"]["duration_s"] - 1.5) < 1e-9
    stats = [x for x in lines if x.get("type") == "stats"]
    assert [s["duration_s"] for s in stats] == [1.5, 1.5]
    assert not piped.stderr.strip()  # a placeholder size is not a truncation


# --- decoding ------------------------------------------------------------------------------


@examples(300)
@given(st.binary(max_size=4096), st.sampled_from([1000, 8000, 16000, 44100]))
def test_any_bytes_decode_or_fail_cleanly(data, raw_rate):
    try:
        drain(data, raw_rate)
    except InputError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("fuzz: ")


@examples(300)
@given(st.binary(min_size=1, max_size=4096).filter(lambda d: not looks_like_audio(d[:4])))
def test_raw_fallback_reads_every_byte(data):
    """Bytes no decoder claims (and without audio magic) become ceil(n/2) raw samples."""
    try:
        n = drain(data)
    except InputError:
        return  # libsndfile recognized some headerless format and then failed: allowed
    if open_bytes(data, "fuzz").info.decoder == "raw":
        assert n == (len(data) + 1) // 2


@examples(250)
@given(mutated_audio)
def test_damaged_audio_decodes_or_fails_cleanly(data):
    if not data:
        return
    try:
        drain(data)
    except InputError as exc:
        assert "\n" not in str(exc) and "0x" not in str(exc)


# --- ONNX inspection and pack loading ------------------------------------------------------

MODEL = conv_encoder(16000, 320, 400, 8, 1)


@examples(300)
@given(
    st.lists(st.tuples(st.integers(0, len(MODEL) - 1), st.integers(0, 255)), min_size=1, max_size=6),
    st.none() | st.integers(0, len(MODEL)),
)
def test_damaged_models_are_inspected_or_refused(edits, cut):
    data = mutate(MODEL, edits, cut, b"")
    try:
        inspect_model(data)
    except OnnxCheckError as exc:
        assert "\n" not in str(exc)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, prefix + (i,))


@pytest.fixture(scope="module")
def fuzz_pack(tiny_pack, tmp_path_factory) -> Path:
    return Path(shutil.copytree(tiny_pack, tmp_path_factory.mktemp("fuzz") / "pack"))


@examples(150, 2000)
@given(data=st.data())
def test_fuzzed_manifests_load_or_fail_cleanly(fuzz_pack, tiny_pack, data):
    manifest = json.loads((tiny_pack / "manifest.json").read_text())
    paths = list(_paths(manifest))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        value = data.draw(json_values)
        if not path:
            manifest = value
            break
        target = manifest
        try:
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            pass  # an earlier replacement removed this path
    (fuzz_pack / "manifest.json").write_text(json.dumps(manifest))
    try:
        load_pack(fuzz_pack)
    except PackError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("pack ")
