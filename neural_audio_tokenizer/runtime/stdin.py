"""Split piped stdin into inputs at the ASCII file separator (FS, 0x1C), without breaking audio.

The original script split blindly on 0x1C and so cut any audio whose bytes contain it: a 16-bit WAV, a
FLAC or an MP3 holds an FS byte every few hundred bytes (``cat song.flac | nat`` became
hundreds of garbage inputs). A part therefore ends where its own format says it ends:

- a RIFF/RIFX/RF64 or AIFF (FORM) header declaring a length that ends exactly at the end of
  the data or at an FS byte: that length;
- any other part that starts like audio (FLAC, Ogg, MP3, a WAV streamed with a placeholder
  size as ``sox ... -t wav -`` or ``ffmpeg -f wav -`` write it): at the next FS that is
  followed by the start of another audio file (strong magic bytes, or two consecutive valid
  MPEG frame headers), else at the end of the data. Decoders ignore the bytes after their
  stream ends, so a trailing FS stays inside such a part (dropping a final byte that happens
  to be 0x1C would break the file);
- a part that does not start like audio (raw PCM, text): at the next FS, as the original script did.

One trailing FS after a part that ends at an FS boundary is a terminator, not an empty part,
unless a container header declares it as its own last byte (a WAV whose final sample byte
is 0x1C, piped alone).

Invariants (property-tested in tests/test_fuzz.py): ``FS.join(split_parts(data))`` equals
``data``, or ``data`` without its one trailing FS (the terminator); and audio files of every
kind joined with FS come back whole, whatever bytes they hold.
"""

from __future__ import annotations

import re
import struct

from .audio import AUDIO_MAGIC

FS = b"\x1c"

# Magic bytes strong enough to mark the start of a file after an FS inside compressed data
# (4 bytes; ID3's 3 only with a real major version after them): a false split would need
# these exact bytes right after a 0x1C byte.
_STRONG_MAGIC = tuple(m for m in AUDIO_MAGIC if len(m) >= 4)
_NEXT_FILE = re.compile(rb"\x1c(?=" + b"|".join(map(re.escape, _STRONG_MAGIC)) + rb"|ID3[\x02-\x04]|\xff[\xe0-\xff])")

# MPEG audio frame lengths (ISO 11172-3 / 13818-3): kbit/s by [MPEG-1?][layer][index].
_BITRATES = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_SAMPLE_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mpeg_frame(data: bytes, pos: int) -> tuple[int, int] | None:
    """(frame length, header key) of a valid MPEG audio frame header at ``pos``, else None."""
    if pos + 4 > len(data) or data[pos] != 0xFF or data[pos + 1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (data[pos + 1] >> 3) & 3, (data[pos + 1] >> 1) & 3
    rate_index, sr_index, padding = data[pos + 2] >> 4, (data[pos + 2] >> 2) & 3, (data[pos + 2] >> 1) & 1
    if version == 1 or layer_bits == 0 or rate_index in (0, 15) or sr_index == 3:
        return None  # reserved values, or free format (no length to check)
    layer, mpeg1 = 4 - layer_bits, version == 3
    bitrate = _BITRATES[(mpeg1, layer)][rate_index] * 1000
    sample_rate = _SAMPLE_RATES[version][sr_index]
    if layer == 1:
        length = (12 * bitrate // sample_rate + padding) * 4
    else:
        length = (144 if layer == 2 or mpeg1 else 72) * bitrate // sample_rate + padding
    return length, (data[pos + 1] & 0xFE, sr_index)


def _mpeg_starts_at(data: bytes, pos: int) -> bool:
    """Two consecutive frame headers of the same stream: what decoders themselves look for."""
    first = _mpeg_frame(data, pos)
    if first is None:
        return False
    second = _mpeg_frame(data, pos + first[0])
    return second is not None and second[1] == first[1]


def _audio_starts_at(data: bytes, pos: int) -> bool:
    head = data[pos : pos + 5]
    if head.startswith(_STRONG_MAGIC):
        return True
    if head[:3] == b"ID3" and len(head) == 5 and head[3] in (2, 3, 4) and head[4] != 0xFF:
        return True
    return _mpeg_starts_at(data, pos)


def _declared_length(data: bytes, start: int) -> int | None:
    """Total bytes the container header at ``start`` declares, or None if it declares none."""
    head = data[start : start + 28]
    if head[:4] in (b"RIFF", b"FORM", b"RIFX") and len(head) >= 8:
        fmt = "<I" if head[:4] == b"RIFF" else ">I"
        size = struct.unpack(fmt, head[4:8])[0]
        return None if size in (0, 0xFFFFFFFF) else 8 + size
    if head[:4] == b"RF64" and len(head) >= 28 and head[12:16] == b"ds64":
        return 8 + struct.unpack("<Q", head[20:28])[0]  # real RIFF size lives in the ds64 chunk
    return None


def _next_file(data: bytes, start: int) -> int:
    """Index of the next FS that starts another audio file, or the end of the data."""
    for match in _NEXT_FILE.finditer(data, start):
        if _audio_starts_at(data, match.start() + 1):
            return match.start()
    return len(data)


def _part_end(data: bytes, pos: int) -> int:
    """Where the part starting at ``pos`` ends (an FS byte, or the end of the data)."""
    end = len(data)
    declared = _declared_length(data, pos)
    if declared is not None:
        candidate = pos + declared
        if candidate == end or (candidate < end and data[candidate : candidate + 1] == FS):
            return candidate
    if _audio_starts_at(data, pos):
        return _next_file(data, pos + 1)  # never a trailing FS: another file follows it
    found = data.find(FS, pos)
    return end if found < 0 else found


def split_parts(data: bytes) -> list[bytes]:
    """The inputs in ``data``, in order; empty parts are kept (and reported by the caller)."""
    if not data:
        return []
    parts = []
    pos = 0
    end = len(data)
    while True:
        stop = _part_end(data, pos)
        parts.append(data[pos:stop])
        if stop >= end:
            return parts
        pos = stop + 1  # skip the FS
        if pos == end:  # one trailing FS terminates the last part
            return parts
