"""stdin.split_parts, on the fly: the parts of piped input as its bytes arrive.

:func:`stdin.split_parts` needs all of the data; a pipe that never ends (a microphone, a
radio stream) must yield its first part's bytes long before its end. :class:`PartSplitter`
takes the bytes in pieces of any size and hands each byte to its part as soon as no later
byte can change which part it belongs to, with exactly split_parts' rules (property-tested
against it in tests/test_live_split.py):

- a part's kind is decided on its first 28 bytes (a RIFF/AIFF/RF64 size, the magic of an
  audio file), or fewer where the data ends sooner;
- a part that does not start like audio ends at the next FS: its bytes pass at once;
- a part that starts like audio ends at the next FS followed by the start of another audio
  file; an FS is held back only until the bytes after it settle that (at most one MPEG
  frame, ~2 KB);
- a container that declares its length ends there if an FS (or the end of the data)
  follows that length. Bytes before the first "FS + audio" inside it pass at once; from
  such an FS on, the bytes wait until the declared end shows which rule applies. Only that
  case (an FS and an audio file's magic inside a WAV's samples, before its declared end)
  holds more than a few KB, up to the declared length.
"""

from __future__ import annotations

from dataclasses import dataclass

from .stdin import FS, _audio_starts_at, _declared_length, _mpeg_frame

_KIND_BYTES = 28  # what _declared_length and _audio_starts_at read at a part's start


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
                self._declared = _declared_length(head, 0)
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
