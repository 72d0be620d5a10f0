"""RIFF/RF64 headers: the one reader of the sizes a WAV (or AIFF) header declares.

Used where bytes arrive before any decoder sees them: the FS splitter asks how long a
container says it is (:func:`declared_length`), the streamed-WAV decoder reads the layout
and the data size (:func:`parse_wav_header`), and the file decoder asks whether a short data
chunk is a real truncation or a size an encoder never filled in (:data:`PLACEHOLDER_SIZES`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .limits import channels_ok, rate_ok
from .pcm import PcmFormat

# Sizes an encoder writing to a pipe leaves in place of the real one (it cannot seek back):
# 0xFFFFFFFF (ffmpeg), 0x7FFFF000 (sox, seen in `sox in.raw -t wav - | xxd`). A data size of
# 0 is taken at its word, as libsndfile takes it (no samples); a RIFF size of 0 says nothing.
PLACEHOLDER_SIZES = (0xFFFFFFFF, 0x7FFFF000)

# WAV sample widths and their names in libsndfile's subtype list.
_INT_SUBTYPES = {1: "PCM_U8", 2: "PCM_16", 3: "PCM_24", 4: "PCM_32"}
_FLOAT_SUBTYPES = {4: "FLOAT", 8: "DOUBLE"}
_PCM_TAG, _FLOAT_TAG, _EXTENSIBLE_TAG = 1, 3, 0xFFFE
_HEADER_LIMIT = 1 << 20  # a WAV header larger than this is not what a live encoder writes


def declared_length(data: bytes, start: int = 0) -> int | None:
    """Total bytes the RIFF/RIFX/AIFF/RF64 header at ``start`` declares, or None if it declares none."""
    head = data[start : start + 28]
    if head[:4] in (b"RIFF", b"FORM", b"RIFX") and len(head) >= 8:
        size = struct.unpack("<I" if head[:4] == b"RIFF" else ">I", head[4:8])[0]
        return None if size == 0 or size in PLACEHOLDER_SIZES else 8 + size
    if head[:4] == b"RF64" and len(head) >= 28 and head[12:16] == b"ds64":
        return 8 + struct.unpack("<Q", head[20:28])[0]  # the real RIFF size lives in the ds64 chunk
    return None


@dataclass(frozen=True)
class WavHeader:
    """What a streamed WAV/RF64 header says: the layout and how many data bytes follow."""

    format: PcmFormat
    data_offset: int
    data_bytes: int | None  # None: a placeholder size (written by an encoder on a pipe)


class UnsupportedWav(Exception):
    """A WAV this module does not stream (the caller decodes it whole instead)."""


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
            known = None if size is None or size in PLACEHOLDER_SIZES else size
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
    if bits % 8 or not channels_ok(channels) or not rate_ok(rate):
        raise UnsupportedWav("layout")
    width = bits // 8
    if tag == _PCM_TAG and width in _INT_SUBTYPES:
        return PcmFormat(rate, channels, width, False, f"{container}/{_INT_SUBTYPES[width]}", pad_partial=False)
    if tag == _FLOAT_TAG and width in _FLOAT_SUBTYPES:
        return PcmFormat(rate, channels, width, True, f"{container}/{_FLOAT_SUBTYPES[width]}", pad_partial=False)
    raise UnsupportedWav(f"format tag {tag}")


