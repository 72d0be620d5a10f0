"""Piped bytes -> the inputs in them: split at the ASCII file separator (FS, 0x1C), never inside audio.

The original script split blindly on 0x1C and so cut any audio whose bytes contain it: a 16-bit WAV, a
FLAC or an MP3 holds an FS byte every few hundred bytes (``cat song.flac | nat`` became
hundreds of garbage inputs). A part therefore ends where its own format says it ends:

- a RIFF/RIFX/RF64 or AIFF (FORM) header declaring a length that ends exactly at the end of
  the data or at an FS byte: that length (riff.py reads it);
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

:class:`PartSplitter` applies these rules on the fly, as a pipe's bytes arrive: a microphone
or a radio stream that never ends must yield its first part's bytes long before its end. It
hands each byte to its part as soon as no later byte can change which part it belongs to:

- a part's kind is decided on its first 28 bytes (a RIFF/AIFF/RF64 size, the magic of an
  audio file), or fewer where the data ends sooner;
- a part that does not start like audio passes its bytes at once, up to the next FS;
- in a part that starts like audio an FS is held back only until the bytes after it settle
  whether another file starts there (at most one MPEG frame, ~2 KB);
- a container that declares its length ends there if an FS (or the end of the data)
  follows that length. Bytes before the first "FS + audio" inside it pass at once; from
  such an FS on, the bytes wait until the declared end shows which rule applies. Only that
  case (an FS and an audio file's magic inside a WAV's samples, before its declared end)
  holds more than a few KB, up to the declared length.

:func:`split_parts` is the same splitter over data held whole. Invariants (property-tested
in tests/test_fuzz.py and tests/test_live_split.py): ``FS.join(split_parts(data))`` equals
``data``, or ``data`` without its one trailing FS (the terminator); audio files of every
kind joined with FS come back whole, whatever bytes they hold; and bytes fed in pieces of
any size give the parts the whole data gives.
"""

from __future__ import annotations

from dataclasses import dataclass

from .audio import AUDIO_MAGIC
from .riff import declared_length

FS = b"\x1c"

# Magic bytes strong enough to mark the start of a file after an FS inside compressed data
# (4 bytes; ID3's 3 only with a real major version after them): a false split would need
# these exact bytes right after a 0x1C byte.
_STRONG_MAGIC = tuple(m for m in AUDIO_MAGIC if len(m) >= 4)

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


_KIND_BYTES = 28  # what declared_length and _audio_starts_at read at a part's start


@dataclass(frozen=True)
class PartEvent:
    """``begin`` (a part starts), ``data`` (the current part's next bytes) or ``end`` (it ended)."""

    kind: str
    data: bytes = b""


def _audio_start_known(buf: bytes | bytearray, pos: int, eof: bool) -> bool | None:
    """_audio_starts_at(buf, pos) once the bytes after ``pos`` decide it; None while they do not."""
    if eof:
        return _audio_starts_at(bytes(buf[pos : pos + 8192]), 0)
    have = len(buf) - pos
    if have < 5:
        return None
    head = bytes(buf[pos : pos + 5])
    if _audio_starts_at(head, 0):  # magic, ID3 (strong, no MPEG frame needed)
        return True
    first = _mpeg_frame(head, 0)
    if first is None:
        return False
    if have < first[0] + 4:
        return None  # the second frame header is not here yet
    return _audio_starts_at(bytes(buf[pos : pos + first[0] + 4]), 0)


class PartSplitter:
    """Feed bytes as they come; read back begin/data/end events (see the module docstring)."""

    def __init__(self) -> None:
        self._buf = bytearray()  # undelivered bytes; _buf[0] is at the current part's cursor
        self._in_part = False
        self._decided = False
        self._declared: int | None = None  # bytes left until the declared end, from _buf[0]
        self._audio = False
        self._scan = 0  # _buf[:_scan] holds no FS that ends the part
        self._held: int | None = None  # _buf index of the first FS that starts another file
        self._after_fs = False  # an FS ended the last part: a next byte starts a new part
        self._done = False

    def feed(self, data: bytes) -> list[PartEvent]:
        """Take the next bytes; the events they settle, in order."""
        self._buf += data
        return self._advance(eof=False)

    def close(self) -> list[PartEvent]:
        """The input ended: the remaining events."""
        events = self._advance(eof=True)
        self._done = True
        return events

    def _advance(self, eof: bool) -> list[PartEvent]:
        out: list[PartEvent] = []
        while True:
            if not self._in_part:
                if not self._buf:
                    return out
                out.append(PartEvent("begin"))
                self._in_part, self._decided, self._after_fs = True, False, False
                self._scan, self._held, self._declared = 0, None, None
            if not self._decided:
                if len(self._buf) < _KIND_BYTES and not eof:
                    return out
                head = bytes(self._buf[:_KIND_BYTES])
                self._declared = declared_length(head)
                audio = _audio_start_known(self._buf, 0, eof)
                if audio is None:
                    return out
                self._audio = audio or self._declared is not None
                self._decided = True
                self._scan = 1 if self._audio else 0  # split_parts looks for the next file from pos + 1
            stop = self._find_end(eof)
            if stop is None:
                self._deliver(out, self._safe(), eof)
                return out
            if stop:
                out.append(PartEvent("data", bytes(self._buf[:stop])))
            out.append(PartEvent("end"))
            self._in_part = False
            if stop >= len(self._buf):  # the data ended with the part
                del self._buf[:]
                return out
            del self._buf[: stop + 1]  # the FS

    def _deliver(self, out: list[PartEvent], n: int, eof: bool) -> None:
        if n > 0:
            out.append(PartEvent("data", bytes(self._buf[:n])))
            del self._buf[:n]
            self._scan -= n
            if self._held is not None:
                self._held -= n
            if self._declared is not None:
                self._declared -= n

    def _safe(self) -> int:
        """Bytes at the front that belong to the current part whatever comes later."""
        n = self._scan if self._held is None else self._held
        if self._declared is not None:
            n = min(n, self._declared)
        return max(0, n)

    def _find_end(self, eof: bool) -> int | None:
        """Where the current part ends in _buf (an FS index, or len at the end of data), or None if not known yet."""
        buf = self._buf
        if self._declared is not None:
            d = self._declared
            if d == len(buf) and eof:
                return d
            if d < len(buf):
                if buf[d] == FS[0]:
                    return d
                self._declared = None  # the declared length does not hold: the audio rule decides
        if not self._audio:
            found = buf.find(FS, self._scan)
            if found >= 0:
                return found
            self._scan = len(buf)
            return len(buf) if eof else None
        if self._held is not None and self._declared is None:
            return self._held
        while True:
            found = buf.find(FS, self._scan)
            if found < 0:
                self._scan = len(buf)
                break
            starts = _audio_start_known(buf, found + 1, eof)
            if starts is None:
                self._scan = found
                return None
            if starts:
                if self._declared is None:
                    return found
                if self._held is None:
                    self._held = found  # wait for the declared end to settle it
            self._scan = found + 1
        if eof:
            if self._declared is not None:  # the data ended before the declared length
                self._declared = None
                return self._held if self._held is not None else len(buf)
            return len(buf)
        return None


def split_parts(data: bytes) -> list[bytes]:
    """The inputs in ``data``, in order; empty parts are kept (and reported by the caller)."""
    splitter = PartSplitter()
    parts: list[list[bytes]] = []
    for event in splitter.feed(data) + splitter.close():
        if event.kind == "begin":
            parts.append([])
        elif event.kind == "data":
            parts[-1].append(event.data)
    return [b"".join(p) for p in parts]
