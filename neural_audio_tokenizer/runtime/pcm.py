"""PCM bytes -> samples as the bytes arrive: raw s16le (``--raw``) and WAV/RF64 read from a pipe.

libsndfile needs to seek to read a WAV it is handed, so a pipe cannot stream through it;
these decoders read the header themselves and turn the sample bytes into float32 with
libsndfile's own arithmetic (integers times a power of two, floats cast), so a streamed WAV
gives the very samples, and tokens, of the same file read by path. What they do not read
(RIFX, compressed WAV subtypes, every other container) is decoded whole at the end of its
part instead (runtime/piped.py).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .audio import MAX_CHANNELS, MAX_RATE, MIN_RATE, AudioSource, SourceInfo, mono_of, _open_binary, block_size, display_name, read_error, sha256_file

# WAV sample widths and their names in libsndfile's subtype list.
_INT_SUBTYPES = {1: "PCM_U8", 2: "PCM_16", 3: "PCM_24", 4: "PCM_32"}
_FLOAT_SUBTYPES = {4: "FLOAT", 8: "DOUBLE"}
_PCM_TAG, _FLOAT_TAG, _EXTENSIBLE_TAG = 1, 3, 0xFFFE
_HEADER_LIMIT = 1 << 20  # a WAV header larger than this is not what a live encoder writes


@dataclass(frozen=True)
class PcmFormat:
    """How interleaved sample bytes are laid out."""

    sample_rate: int
    channels: int
    width: int  # bytes per sample
    is_float: bool
    label: str  # the header's ``format``: "s16le", "WAV/PCM_16", "RF64/FLOAT", ...
    pad_partial: bool  # a partial last frame is zero-padded (raw) or dropped (WAV, as libsndfile)

    @property
    def frame_bytes(self) -> int:
        return self.width * self.channels


def raw_format(sample_rate: int, channels: int, name: str) -> PcmFormat:
    """Signed 16-bit little-endian interleaved PCM (``--raw``)."""
    check_layout(sample_rate, channels, name)
    return PcmFormat(sample_rate, channels, 2, False, "s16le", pad_partial=True)


def check_layout(sample_rate: object, channels: object, name: str) -> None:
    """InputError unless the rate and channel count are ones NAT reads."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or not MIN_RATE <= sample_rate <= MAX_RATE:
        raise InputError(f"{name}: sample rate {sample_rate!r} outside {MIN_RATE}-{MAX_RATE} Hz")
    if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or not 1 <= channels <= MAX_CHANNELS:
        raise InputError(f"{name}: {channels!r} channels (NAT reads 1-{MAX_CHANNELS})")


def to_float(data: bytes, fmt: PcmFormat) -> np.ndarray:
    """Whole frames of sample bytes -> float32 [frames, channels], as libsndfile converts them."""
    w = fmt.width
    if fmt.is_float:
        x = np.frombuffer(data, dtype="<f4" if w == 4 else "<f8").astype(np.float32)
    elif w == 1:
        x = (np.frombuffer(data, dtype=np.uint8).astype(np.int32) - 128).astype(np.float32) * np.float32(1 / 128)
    elif w == 2:
        x = np.frombuffer(data, dtype="<i2").astype(np.float32) / np.float32(32768.0)
    elif w == 3:
        b = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = (b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)  # libsndfile's 24 -> 32-bit left shift
        x = v.astype(np.float32) * np.float32(2.0**-31)
    else:
        x = np.frombuffer(data, dtype="<i4").astype(np.float32) * np.float32(2.0**-31)
    return x.reshape(-1, fmt.channels)


class PcmDecoder:
    """Sample bytes in pieces of any size -> float32 [frames, channels] blocks.

    ``limit``: bytes of sample data the header declares (None: until the input ends)."""

    def __init__(self, fmt: PcmFormat, limit: int | None = None) -> None:
        self.format = fmt
        self._limit = limit
        self._rest = b""
        self.trailing = 0  # bytes of a partial last frame (padded or dropped at the end)
        self.missing = 0

    def feed(self, data: bytes) -> np.ndarray:
        """Frames completed by ``data`` (possibly none)."""
        if self._limit is not None:
            data = data[: max(0, self._limit)]
            self._limit -= len(data)
        data = self._rest + data
        whole = len(data) - len(data) % self.format.frame_bytes
        self._rest = data[whole:]
        return to_float(data[:whole], self.format)

    def finish(self) -> np.ndarray:
        """The input ended: a partial last frame, zero-padded for raw PCM, dropped for WAV."""
        rest, self._rest = self._rest, b""
        self.trailing = len(rest)
        self.missing = max(0, self._limit or 0)  # declared data bytes that never came
        if not rest or not self.format.pad_partial:
            return to_float(b"", self.format)
        return to_float(rest + b"\x00" * (self.format.frame_bytes - len(rest)), self.format)


@dataclass(frozen=True)
class WavHeader:
    """What a streamed WAV/RF64 header says: the layout and how many data bytes follow."""

    format: PcmFormat
    data_offset: int
    data_bytes: int | None  # None: a placeholder size (written by an encoder on a pipe)


class UnsupportedWav(Exception):
    """A WAV this module does not stream (the caller decodes it whole instead)."""


# Data sizes an encoder writing to a pipe leaves in place of the real one: read to the end.
# (A size of 0 is taken at its word, as libsndfile takes it: no samples.)
_PLACEHOLDERS = (0xFFFFFFFF, 0x7FFFF000)


def parse_wav_header(head: bytes, eof: bool) -> WavHeader | None:
    """The header of a RIFF/RF64 WAVE at the start of ``head``; None while more bytes are needed.

    Raises UnsupportedWav for a layout decoded whole instead (RIFX, compressed subtypes,
    a data chunk before fmt, a header over 1 MB)."""
    if len(head) < 12:
        if eof:
            raise UnsupportedWav("short")
        return None
    container = head[:4]
    if container not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        raise UnsupportedWav("not RIFF/RF64 WAVE")
    pos, fmt, ds64_data = 12, None, None
    while True:
        if pos + 8 > len(head):
            if eof or pos > _HEADER_LIMIT:
                raise UnsupportedWav("no data chunk")
            return None
        cid, size = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
        if cid == b"data":
            if fmt is None:
                raise UnsupportedWav("data before fmt")
            if container == b"RF64" and size == 0xFFFFFFFF:
                size = ds64_data
            known = None if size is None or size in _PLACEHOLDERS else size
            return WavHeader(fmt, pos + 8, known)
        end = pos + 8 + size + (size & 1)
        if end > len(head):
            if eof or end > _HEADER_LIMIT:
                raise UnsupportedWav("header chunk past the data")
            return None
        body = head[pos + 8 : pos + 8 + size]
        if cid == b"ds64" and len(body) >= 16:
            ds64_data = struct.unpack("<Q", body[8:16])[0]
        elif cid == b"fmt ":
            fmt = _fmt_chunk(body, "RF64" if container == b"RF64" else "WAV")
        pos = end


def _fmt_chunk(body: bytes, container: str) -> PcmFormat:
    if len(body) < 16:
        raise UnsupportedWav("short fmt chunk")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == _EXTENSIBLE_TAG:
        if len(body) < 40:
            raise UnsupportedWav("short extensible fmt chunk")
        tag = struct.unpack("<H", body[24:26])[0]  # the subformat GUID starts with the format tag
        container = "WAVEX" if container == "WAV" else container
    if bits % 8 or not 1 <= channels <= MAX_CHANNELS or not MIN_RATE <= rate <= MAX_RATE:
        raise UnsupportedWav("layout")
    width = bits // 8
    if tag == _PCM_TAG and width in _INT_SUBTYPES:
        return PcmFormat(rate, channels, width, False, f"{container}/{_INT_SUBTYPES[width]}", pad_partial=False)
    if tag == _FLOAT_TAG and width in _FLOAT_SUBTYPES:
        return PcmFormat(rate, channels, width, True, f"{container}/{_FLOAT_SUBTYPES[width]}", pad_partial=False)
    raise UnsupportedWav(f"format tag {tag}")


def open_raw_path(path: str, sample_rate: int, channels: int = 1, name: str | None = None) -> AudioSource:
    """A regular file read as raw s16le PCM (``--raw``): no format detection, every byte a
    sample byte. Its header is whole (size and sha256 are read first, as for any file)."""
    name = display_name(path) if name is None else name
    check_layout(sample_rate, channels, name)
    try:
        size, digest = sha256_file(path)
        handle = _open_binary(path)
    except OSError as exc:
        raise read_error(name, exc) from None
    if size == 0:
        handle.close()
        raise InputError(f"{name}: empty input (0 bytes)")
    fmt = raw_format(sample_rate, channels, name)
    frames = -(-size // fmt.frame_bytes)
    info = SourceInfo(name, size, digest, "raw", fmt.label, int(sample_rate), int(channels), round(frames / sample_rate, 6))

    def blocks() -> Iterator[np.ndarray]:
        decoder = PcmDecoder(fmt)
        try:
            while data := handle.read(2 * channels * block_size(sample_rate)):
                block = decoder.feed(data)
                if len(block):
                    yield mono_of(block)
            block = decoder.finish()
            if len(block):
                yield mono_of(block)
        except OSError as exc:
            raise InputError(f"{name}: cannot read ({exc.strerror or exc})") from None
        finally:
            handle.close()

    return AudioSource(info, blocks(), declared_raw=True)
