"""Bytes -> mono float32 waveform blocks, with a record of where they came from.

Decoding uses soundfile (libsndfile): one library reads WAV/RF64, FLAC, OGG/Vorbis/Opus,
MP3, AIFF and more, streams block by block (memory stays flat however long the file), and
ships as a self-contained wheel; no ffmpeg needed. Input that no decoder recognizes is
read as raw PCM (signed 16-bit little-endian mono at ``raw_rate``, 16 kHz by default), as
the seed promised for "arbitrary non-audio data"; the header says so. Input that *looks*
like a known format (by its magic bytes) but fails to decode is an error, not raw noise.

Blocks have a fixed size in source samples, so everything downstream (resampling, chunking)
sees the same sequence for the same bytes: the root of byte-identical output.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import soundfile as sf

from .errors import InputError

BLOCK = 1 << 16  # source samples per block
RAW_RATE = 16000
MIN_RATE, MAX_RATE = 1000, 768000
MAX_CHANNELS = 256
_HASH_BLOCK = 1 << 20

# Magic bytes of formats libsndfile reads; such input that fails to decode is reported as
# corrupt rather than tokenized as raw PCM.
_AUDIO_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"FORM", b"fLaC", b"OggS", b"ID3", b"caff", b".snd", b"wvpk")


@dataclass
class SourceInfo:
    """What the header says about an input."""

    name: str
    bytes: int
    sha256: str
    decoder: str  # "soundfile" | "raw" | "array"
    format: str  # e.g. "WAV/PCM_16", "MP3/MPEG_LAYER_III", "s16le"
    sample_rate: int
    channels: int
    duration_s: float


@dataclass
class AudioSource:
    """A decoded input: its info and a one-shot iterator of mono float32 blocks."""

    info: SourceInfo
    _blocks: Iterator[np.ndarray]
    decoded: int = 0  # mono samples delivered so far
    nonfinite: int = 0  # NaN/Inf samples replaced by 0 so far

    def blocks(self) -> Iterator[np.ndarray]:
        for block in self._blocks:
            bad = ~np.isfinite(block)
            if bad.any():  # NaN/Inf from float files would poison a whole chunk's features
                self.nonfinite += int(bad.sum())
                block = np.where(bad, np.float32(0), block)
            self.decoded += len(block)
            yield block


def display_name(path: str) -> str:
    """The name as given, but never an absolute path (it would differ between machines)."""
    return os.path.basename(path) if os.path.isabs(path) else path


def looks_like_audio(head: bytes) -> bool:
    if head.startswith(_AUDIO_MAGIC):
        return True
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0  # MPEG frame sync


def _mono(block: np.ndarray) -> np.ndarray:
    if block.shape[1] == 1:
        return np.ascontiguousarray(block[:, 0], dtype=np.float32)
    return block.mean(axis=1, dtype=np.float64).astype(np.float32)


def _soundfile_blocks(handle: sf.SoundFile, name: str, owned: BinaryIO | None) -> Iterator[np.ndarray]:
    try:
        while True:
            try:
                block = handle.read(BLOCK, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
                raise InputError(f"{name}: decoding failed mid-stream ({exc})") from None
            if not len(block):
                return
            yield _mono(block)
    finally:
        handle.close()
        if owned is not None:
            owned.close()


def _raw_blocks(read: callable, carry_odd: bool = True) -> Iterator[np.ndarray]:
    """s16le samples from a byte reader; an odd final byte becomes the low byte of one last sample."""
    while True:
        data = read(2 * BLOCK)
        if not data:
            return
        if len(data) % 2:
            more = read(1)
            data += more if more else b"\x00"
        yield (np.frombuffer(data, dtype="<i2").astype(np.float32) / np.float32(32768.0))


def _open_soundfile(fileobj: BinaryIO | str, name: str, size: int, digest: str, owned: BinaryIO | None) -> AudioSource:
    try:
        handle = sf.SoundFile(fileobj)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OverflowError) as exc:
        if owned is not None:
            owned.close()
        raise InputError(f"{name}: not decodable audio ({exc})") from None
    sr, ch = handle.samplerate, handle.channels
    if not MIN_RATE <= sr <= MAX_RATE or not 1 <= ch <= MAX_CHANNELS:
        handle.close()
        if owned is not None:
            owned.close()
        raise InputError(f"{name}: unsupported audio ({sr} Hz, {ch} channels; NAT reads {MIN_RATE}-{MAX_RATE} Hz, 1-{MAX_CHANNELS} channels)")
    frames = handle.frames if handle.frames and handle.frames > 0 else 0
    info = SourceInfo(name, size, digest, "soundfile", f"{handle.format}/{handle.subtype}", sr, ch, round(frames / sr, 6))
    return _checked(AudioSource(info, _soundfile_blocks(handle, name, owned)))


def _checked(source: AudioSource) -> AudioSource:
    """Decode the first block now, so an unreadable or empty input fails before any output."""
    blocks = source._blocks
    try:
        first = next(blocks)
    except StopIteration:
        raise InputError(f"{source.info.name}: no audio samples") from None

    def chained() -> Iterator[np.ndarray]:
        yield first
        yield from blocks

    source._blocks = chained()
    return source


def _raw_source(name: str, size: int, digest: str, read: callable, raw_rate: int, close: callable | None = None) -> AudioSource:
    if not MIN_RATE <= raw_rate <= MAX_RATE:
        raise InputError(f"{name}: raw rate {raw_rate} Hz outside {MIN_RATE}-{MAX_RATE}")
    samples = (size + 1) // 2
    info = SourceInfo(name, size, digest, "raw", "s16le", raw_rate, 1, round(samples / raw_rate, 6))

    def blocks() -> Iterator[np.ndarray]:
        try:
            yield from _raw_blocks(read)
        finally:
            if close is not None:
                close()

    return _checked(AudioSource(info, blocks()))


def open_bytes(data: bytes, name: str, raw_rate: int = RAW_RATE) -> AudioSource:
    """Decode audio held in memory (a stdin part, an upload)."""
    if not data:
        raise InputError(f"{name}: empty input (0 bytes)")
    digest = hashlib.sha256(data).hexdigest()
    if looks_like_audio(data[:4]):
        return _open_soundfile(io.BytesIO(data), name, len(data), digest, None)
    try:
        return _open_soundfile(io.BytesIO(data), name, len(data), digest, None)
    except InputError:
        return _raw_source(name, len(data), digest, io.BytesIO(data).read, raw_rate)


def _hash_file(path: str, name: str) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_BLOCK):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def open_path(path: str, raw_rate: int = RAW_RATE, name: str | None = None) -> AudioSource:
    """Decode a file, streaming; FIFOs and character devices are read into memory first.

    ``name`` (default: :func:`display_name` of ``path``) is what the header and error
    messages call the input; ``nat batch`` passes the path relative to the library root,
    so its output equals ``nat REL`` run from that root."""
    name = display_name(path) if name is None else name
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{name}: is a directory")
        if not stat.S_ISREG(st.st_mode):  # FIFO, /dev/stdin, ...: not seekable, read it whole
            with open(path, "rb") as f:
                return open_bytes(f.read(), name, raw_rate)
        size, digest = _hash_file(path, name)
        if size == 0:
            raise InputError(f"{name}: empty input (0 bytes)")
        handle = open(path, "rb")
    except FileNotFoundError:
        raise InputError(f"{name}: no such file") from None
    except PermissionError:
        raise InputError(f"{name}: permission denied") from None
    except IsADirectoryError:
        raise InputError(f"{name}: is a directory") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot read ({exc.strerror or exc})") from None
    head = handle.read(4)
    handle.seek(0)
    try:
        return _open_soundfile(handle, name, size, digest, handle)
    except InputError:
        if looks_like_audio(head):
            raise
    handle = open(path, "rb")
    return _raw_source(name, size, digest, handle.read, raw_rate, handle.close)


def from_array(samples: np.ndarray, sample_rate: int, name: str = "array") -> AudioSource:
    """Wrap a waveform already in memory: [samples] or [samples, channels]."""
    arr = np.asarray(samples)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or not 1 <= arr.shape[1] <= MAX_CHANNELS:
        raise InputError(f"{name}: expected [samples] or [samples, channels], got shape {np.shape(samples)}")
    if not isinstance(sample_rate, (int, np.integer)) or not MIN_RATE <= sample_rate <= MAX_RATE:
        raise InputError(f"{name}: sample rate {sample_rate!r} outside {MIN_RATE}-{MAX_RATE} Hz")
    if arr.shape[0] == 0:
        raise InputError(f"{name}: no audio samples")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    digest = hashlib.sha256(arr.astype("<f4").tobytes()).hexdigest()
    sr = int(sample_rate)
    info = SourceInfo(name, arr.nbytes, digest, "array", "float32", sr, arr.shape[1], round(arr.shape[0] / sr, 6))

    def blocks() -> Iterator[np.ndarray]:
        for start in range(0, arr.shape[0], BLOCK):
            yield _mono(arr[start : start + BLOCK])

    return AudioSource(info, blocks())
