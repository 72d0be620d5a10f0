"""PCM bytes -> float32 samples, as the bytes arrive: the one raw PCM decoder.

Raw s16le (``--raw``, and input no decoder recognizes) and the sample bytes of a WAV/RF64
read from a pipe (riff.py reads its header) are turned into float32 with libsndfile's own
arithmetic (integers times a power of two, floats cast), so a streamed WAV gives the very
samples, and tokens, of the same file read by path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from .limits import check_layout

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


def raw_blocks(read: Callable[[int], bytes], fmt: PcmFormat, block: int) -> Iterator[np.ndarray]:
    """Float32 [frames, channels] blocks of up to ``block`` frames from a byte reader, until it
    returns nothing (the partial last frame as ``fmt`` says)."""
    decoder = PcmDecoder(fmt)
    while data := read(fmt.frame_bytes * block):
        samples = decoder.feed(data)
        if len(samples):
            yield samples
    samples = decoder.finish()
    if len(samples):
        yield samples
