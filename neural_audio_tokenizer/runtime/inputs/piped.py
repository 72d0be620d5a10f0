"""Piped input (stdin, a FIFO) tokenized as its bytes arrive: lines while the sound still plays.

A pipe is read with whatever each read returns (``os.read``), never waiting for a full
block, and goes through three stages, each holding a bounded amount:

1. :class:`~.splitter.PartSplitter` cuts it into parts exactly as ``stdin.split_parts``
   would (not for ``--raw`` or a FIFO given as a path: one part, 0x1C bytes are samples);
2. each part is decoded as it arrives where its format allows: raw s16le (``--raw``) and
   WAV/RF64 with real or placeholder sizes (runtime/pcm.py). Any other part (FLAC, Ogg,
   MP3, AIFF, RIFX, compressed WAV, raw PCM without ``--raw``) is gathered whole and decoded
   at its end: libsndfile reads those formats only from a seekable file;
3. the tokenizer pushes the decoded samples into the streaming engine with live chunking
   (runtime/engine.py: short chunks where the pack allows), so frames come out a context's
   length after their audio. The encoders run on the reading thread: a pipe that writes
   faster than they run simply waits, which bounds memory.

A streamed part's header cannot hold what is known only at its end: ``bytes``, ``sha256``
and ``duration_s`` are null there and its stats line carries ``source: {bytes, sha256}``
(and, as always, the decoded ``duration_s``). docs/ndjson.md, "Live and piped input".
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from ...errors import InputError
from .audio import AudioSource, Damage, mono_of, open_bytes
from .limits import read_error
from .pcm import PcmDecoder, PcmFormat, raw_format
from .riff import UnsupportedWav, parse_wav_header
from .splitter import PartEvent, PartSplitter

READ_SIZE = 1 << 16  # most bytes per read; a read returns what the pipe holds, never waits for more


def read_chunks(fileobj: BinaryIO, name: str = "stdin") -> Iterator[bytes]:
    """The bytes of a pipe or file as they arrive (empty pieces never; the end when it closes)."""
    try:
        fd: int | None = fileobj.fileno()
    except (OSError, ValueError, AttributeError):  # an in-memory stream: no descriptor
        fd = None
    while True:
        try:
            data = os.read(fd, READ_SIZE) if fd is not None else fileobj.read1(READ_SIZE)
        except OSError as exc:
            raise read_error(name, exc) from None
        if not data:
            return
        yield data


class PipedParts:
    """The parts of piped bytes, one at a time: iterate :meth:`parts`; each part is an
    iterator of its bytes, read (or left and skipped) before the next part starts."""

    def __init__(self, chunks: Iterator[bytes], split: bool) -> None:
        self._chunks = chunks
        self._splitter = PartSplitter() if split else None
        self._events: deque[PartEvent] = deque()
        self._eof = False
        self._started = False  # unsplit input: whether its one part has begun

    def _fill(self) -> bool:
        """Read until an event is queued; False once the input is over."""
        while not self._events:
            if self._eof:
                return False
            data = next(self._chunks, None)
            if data is None:
                self._eof = True
                if self._splitter is not None:
                    self._events.extend(self._splitter.close())
                elif self._started:
                    self._events.append(PartEvent("end"))
            elif self._splitter is not None:
                self._events.extend(self._splitter.feed(data))
            else:
                if not self._started:
                    self._started = True
                    self._events.append(PartEvent("begin"))
                self._events.append(PartEvent("data", data))
        return True

    def parts(self) -> Iterator[Iterator[bytes]]:
        """Each part's byte iterator, in order."""
        while self._fill():
            event = self._events.popleft()
            assert event.kind == "begin", event.kind
            part = self._part()
            yield part
            for _ in part:  # what the consumer left of it (after a decoding error)
                pass

    def _part(self) -> Iterator[bytes]:
        while self._fill():
            event = self._events.popleft()
            if event.kind == "end":
                return
            yield event.data


class PipedSource:
    """One part being read: a streamed one (``format`` set) or one gathered whole (``source``)."""

    def __init__(self, name: str, part: Iterator[bytes], raw: tuple[int, int] | None, raw_rate: int) -> None:
        self.name = name
        self._part = part
        self._hash = hashlib.sha256()
        self.bytes = 0
        self.trailing = 0
        self.missing = 0
        self.format: PcmFormat | None = None
        self.source: AudioSource | None = None  # for a part decoded whole
        self.samples = 0  # mono samples delivered so far
        self.damage = Damage()
        self._head = b""
        self._ended = False
        self._limit: int | None = None
        self._limit_declared: int | None = None  # a streamed WAV's data size, for the truncation note
        if raw is not None:
            self.format = raw_format(raw[0], raw[1], name)
            return
        head = self._take(12)
        if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
            try:
                while (wav := parse_wav_header(self._head, self._ended)) is None:
                    self._take(len(self._head) + 4096)
                self.format, self._limit = wav.format, wav.data_bytes
                self._limit_declared = wav.data_bytes
                self._head = self._head[wav.data_offset :]
                return
            except UnsupportedWav:
                pass
        data = self._head + b"".join(self._rest())
        self.source = open_bytes(data, name, raw_rate)

    def _take(self, n: int) -> bytes:
        """Read until the head holds ``n`` bytes or the part ends."""
        while len(self._head) < n and not self._ended:
            data = next(self._part, None)
            if data is None:
                self._ended = True
                break
            self._count(data)
            self._head += data
        return self._head

    def _count(self, data: bytes) -> None:
        self._hash.update(data)
        self.bytes += len(data)

    def _rest(self) -> Iterator[bytes]:
        if self._ended:
            return
        for data in self._part:
            self._count(data)
            yield data

    def blocks(self) -> Iterator[np.ndarray]:
        """Mono float32 blocks of a streamed part, as its bytes arrive (NaN/Inf zeroed and
        absurd amplitudes clipped, counted, as AudioSource.blocks does)."""
        for block in self._decoded():
            if len(block):
                mono = self.damage.repaired(mono_of(block))
                self.samples += len(mono)
                yield mono

    def _decoded(self) -> Iterator[np.ndarray]:
        decoder = PcmDecoder(self.format, self._limit)
        if self._head:
            yield decoder.feed(self._head)
            self._head = b""
        for data in self._rest():
            yield decoder.feed(data)
        yield decoder.finish()
        self.trailing, self.missing = decoder.trailing, decoder.missing

    def check_end(self) -> None:
        """After the last block: InputError if the part held no bytes or no samples."""
        if self.bytes == 0:
            raise InputError(f"{self.name}: empty input (0 bytes)")
        if self.samples == 0:
            raise InputError(f"{self.name}: no audio samples")

    def warnings(self) -> list[str]:
        """One-line notes for the user about this part, once it has been read to the end."""
        if self.source is not None:
            return self.source.warnings()
        notes = []
        if self.missing and self._limit_declared is not None:
            held = self._limit_declared - self.missing
            notes.append(f"header declares {self._limit_declared} bytes of audio data, the input held {held} (truncated?)")
        elif self.trailing and not self.format.pad_partial:
            notes.append(f"ends mid-sample: the last {self.trailing} bytes (a partial sample frame) were dropped")
        return notes + self.damage.notes()

    def identity(self) -> dict:
        """The stats line's ``source``: what the header could not say yet."""
        return {"bytes": self.bytes, "sha256": self._hash.hexdigest()}
