"""Split piped stdin into inputs at the ASCII file separator (FS, 0x1C), without breaking audio.

The seed split blindly on 0x1C and so cut WAVs whose samples contain that byte. Here a part
that starts with a RIFF/RIFX/RF64 or AIFF (FORM) header is taken by the length its header
declares, when that length ends exactly at the end of the data or at an FS byte; otherwise
(a streamed WAV with a placeholder size, a lying header) the part ends at the next FS.
One trailing FS after the last part is a terminator, not an empty part, unless a container
header declares it as its own last byte (a WAV whose final sample byte is 0x1C, piped alone).

Invariants (property-tested in tests/test_fuzz.py): ``FS.join(split_parts(data))`` equals
``data``, or ``data`` without its one trailing FS (the terminator); and WAV/AIFF files joined
with FS come back whole, whatever bytes their samples hold.
"""

from __future__ import annotations

import struct

FS = b"\x1c"


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


def split_parts(data: bytes) -> list[bytes]:
    """The inputs in ``data``, in order; empty parts are kept (and reported by the caller)."""
    if not data:
        return []
    parts = []
    pos = 0
    end = len(data)
    while True:
        declared = _declared_length(data, pos)
        stop = None
        if declared is not None:
            candidate = pos + declared
            if candidate == end or (candidate < end and data[candidate : candidate + 1] == FS):
                stop = candidate
        if stop is None:
            found = data.find(FS, pos)
            stop = end if found < 0 else found
        parts.append(data[pos:stop])
        if stop >= end:
            return parts
        pos = stop + 1  # skip the FS
        if pos == end:  # one trailing FS terminates the last part
            return parts
