"""Live input: samples pushed as they are recorded, frames read back as soon as they are final.

The model is sherpa-onnx's streaming API: create a stream, accept waveform, read what is
ready. ``Tokenizer.live(sample_rate, channels)`` returns a :class:`LiveStream`; an app
calls ``push(samples)`` from its audio callback with blocks of any size and gets the
frames those samples completed, and ``close()`` at the end for the rest. The frames are the
ones ``Tokenizer.encode`` gives for the whole recording (tests/test_live.py).

Live chunking. A file goes through the encoders in ``window_s`` chunks (10 s for the
built-in pack): fine for a file, a 10 s wait for a microphone. When every encoder a pack
uses declares ``receptive_field_s`` (how far before a frame's start and after its end its
output depends on the audio; docs/pack-format.md), a frame's features are the same in any
segment that holds that much audio around it, so live input is cut into chunks of whatever
whole frames are in (one frame from a microphone, up to ``window_s`` from a fast pipe) with
that much context, rounded up to whole frames (segments keep starting on the pack's frame
grid, which the built-in encoder's 10 Hz chroma relies on). A pack without it (attention
over the chunk, per-chunk input normalization) keeps its own chunking: its frames come a
chunk plus its context after their audio.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from typing import Any

import numpy as np
import soxr

from ..errors import InputError
from .audio import _mono, repair
from .features import ChunkFeatures, EncoderRun, FeaturePipeline, build_pipeline, frame_count
from .framing import Chunker, Grid, Segment
from .pcm import check_layout
from .records import Frame
from .stream import StatsCounter, make_header


def flexible(pack: Any) -> bool:
    """Whether every encoder the pack's streams use declares its receptive field."""
    return all(pack.encoders[s.encoder].receptive_field_s is not None for s in pack.streams.values())


def live_chunking(pack: Any) -> tuple[float, float]:
    """(window_s, context_s) for live input: the encoders' receptive field as context where
    every encoder declares one (chunks are then cut from one frame up to ``window_s``),
    else the pack's chunking."""
    encoders = [pack.encoders[n] for n in {s.encoder for s in pack.streams.values()}]
    if not flexible(pack):
        return pack.window_s, pack.context_s
    fr = pack.frame_rate
    # >= one frame: a chunk cut before the input ends must stay a whole chunk at its end (LiveChunker)
    frames = max(1, math.ceil(max(e.receptive_field_s for e in encoders) * fr - 1e-9))
    for e in encoders:  # and at least what the first encoder frame needs, as the loader asks of context_s
        while round(frames / fr * e.sample_rate) < e.window - e.hop:
            frames += 1
    return pack.window_s, frames / fr


def live_pipeline(pack: Any) -> FeaturePipeline:
    """The FeaturePipeline of a pack for live input (see :func:`live_chunking`)."""
    window_s, context_s = live_chunking(pack)
    return build_pipeline(pack.encoders, pack.streams, pack.frame_rate, window_s, context_s)


class LiveChunker(Chunker):
    """A Chunker that cuts a chunk as soon as its core and right context are in.

    Chunker.push waits one frame more, a margin that costs live input 0.2 s and is not
    needed here: with context >= one frame, a resampled stream that has reached the end of
    chunk j's context implies an input long enough for chunk j's frames, so the early cut and
    the cut at the end of input are the same segment."""

    def push(self, samples: np.ndarray) -> list[Segment]:
        if len(samples):
            self._buffer = np.concatenate([self._buffer, samples.astype(np.float32, copy=False)])
        g = self.grid
        ready = []
        while self._total >= (self._next_chunk + 1) * g.core_samples + g.context_samples:
            ready.append(self._cut(self._next_chunk, g.core_frames, end_of_input=False))
        return ready


class FlexibleChunker(Chunker):
    """Cuts whatever whole frames are in (up to a core's worth), with the context on both
    sides: for encoders whose frames depend on no more than that context, chunk boundaries
    do not change features, so a frame need not wait for the rest of a fixed chunk."""

    def __init__(self, grid: Grid) -> None:
        super().__init__(grid)
        self.next_frame = 0  # first frame not cut yet

    def ready(self) -> int:
        """Frames past ``next_frame`` whose audio and right context are all in."""
        g = self.grid
        return max(0, (self._total - g.context_samples) // g.frame_samples - self.next_frame)

    def cut(self, n_frames: int) -> Segment:
        """The segment of the next ``n_frames`` frames (what is in, zero-padded at the end of input)."""
        g = self.grid
        core_start = self.next_frame * g.frame_samples
        start = max(0, core_start - g.context_samples)
        skip = (core_start - start) // g.hop
        end = min(self._total, core_start + n_frames * g.frame_samples + g.context_samples)
        needed = (skip + n_frames * g.per_frame - 1) * g.hop + g.window
        samples = self._buffer[start - self._buffer_start : max(start, end) - self._buffer_start]
        segment = Segment(self._next_chunk, self.next_frame, n_frames, samples, max(needed, len(samples)), skip)
        self._next_chunk += 1
        self.next_frame += n_frames
        keep_from = max(0, self.next_frame * g.frame_samples - g.context_samples)
        if keep_from > self._buffer_start:
            self._buffer = self._buffer[keep_from - self._buffer_start :].copy()
            self._buffer_start = keep_from
        return segment

    def add(self, samples: np.ndarray) -> None:
        if len(samples):
            self._buffer = np.concatenate([self._buffer, samples.astype(np.float32, copy=False)])


class LiveFeatures:
    """FeaturePipeline._ready and iter_chunks turned inside out: mono blocks pushed in,
    pooled chunk features out as soon as every encoder's segment of a chunk is cut."""

    def __init__(self, pipeline: FeaturePipeline, sample_rate: int, run: EncoderRun, flexible: bool = False) -> None:
        self.pipeline = pipeline
        self.sample_rate = sample_rate
        self._run = run
        self._flexible = flexible
        self._flex = {n: FlexibleChunker(g) for n, g in pipeline.grids.items()} if flexible else {}
        self._chunkers = {} if flexible else {n: LiveChunker(g) for n, g in pipeline.grids.items()}
        self._resamplers = {
            n: None if g.sample_rate == sample_rate else soxr.ResampleStream(sample_rate, g.sample_rate, 1, dtype="float32", quality="HQ")
            for n, g in pipeline.grids.items()
        }
        self._pending: dict[int, dict[str, Segment]] = {}
        self.samples = 0  # mono input samples pushed so far

    def push(self, mono: np.ndarray) -> list[ChunkFeatures]:
        """Add mono float32 samples; the chunks they completed."""
        self.samples += len(mono)
        if self._flexible:
            for name, chunker in self._flex.items():
                rs = self._resamplers[name]
                chunker.add(mono if rs is None else rs.resample_chunk(mono))
            return self._cut_flexible(min(c.ready() for c in self._flex.values()))
        for name, chunker in self._chunkers.items():
            rs = self._resamplers[name]
            for seg in chunker.push(mono if rs is None else rs.resample_chunk(mono)):
                self._pending.setdefault(seg.chunk, {})[name] = seg
        return self._encode(final=False)

    def finish(self) -> list[ChunkFeatures]:
        """The input ended: the remaining chunks (none for an empty input)."""
        n_frames = frame_count(self.samples, self.sample_rate, self.pipeline.frame_rate)
        if self._flexible:
            for name, chunker in self._flex.items():
                rs = self._resamplers[name]
                if rs is not None:
                    chunker.add(rs.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
            first = next(iter(self._flex.values())).next_frame
            return self._cut_flexible(n_frames - first)
        for name, chunker in self._chunkers.items():
            rs = self._resamplers[name]
            tail = [] if rs is None else chunker.push(rs.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
            for seg in tail + chunker.finish(n_frames):
                self._pending.setdefault(seg.chunk, {})[name] = seg
        return self._encode(final=True)

    def _cut_flexible(self, frames: int) -> list[ChunkFeatures]:
        """The next ``frames`` frames of every encoder, a core's worth at most per chunk."""
        out: list[ChunkFeatures] = []
        p = self.pipeline
        most = next(iter(p.grids.values())).core_frames
        while frames > 0:
            n = min(frames, most)
            chunks = [{name: c.cut(n) for name, c in self._flex.items()}]
            outputs = {name: p._run_encoder(name, chunks, self._run) for name in p.encoders}
            out.extend(p._pool(chunks, outputs))
            frames -= n
        return out

    def _encode(self, final: bool) -> list[ChunkFeatures]:
        out: list[ChunkFeatures] = []
        p = self.pipeline
        for chunks in p._complete(self._pending, 1, final):
            outputs = {name: p._run_encoder(name, chunks, self._run) for name in p.encoders}
            out.extend(p._pool(chunks, outputs))
        return out


class LiveStream:
    """One live input: push sample blocks, get the frames they completed (see the module docstring).

    ``header`` is the stream's header object; ``bytes``, ``sha256`` and ``duration_s`` of
    its source are null (docs/ndjson.md, "Live and piped input"). ``stats`` is known after
    :meth:`close`. Each LiveStream is used by one producer at a time (calls are serialized
    by a lock); several streams may run at once on one Tokenizer, from different threads."""

    def __init__(
        self, tokenizer: Any, sample_rate: int, channels: int = 1, name: str = "live", decoder: str = "live", format: str = "float32"
    ) -> None:
        check_layout(sample_rate, channels, name)
        self.name = name
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self._tokenizer = tokenizer
        self._features = LiveFeatures(tokenizer.live_pipeline, self.sample_rate, tokenizer._run, flexible(tokenizer.pack))
        self._gate = tokenizer.silence.push_gate(self.sample_rate)  # the silence floor, as for a file
        self._rest = np.zeros(0, dtype=np.float32)  # an interleaved block's partial last frame
        self._counter = StatsCounter()
        self._lock = threading.Lock()
        self._closed = False
        self.nonfinite = 0
        self.clipped = 0
        pack = tokenizer.pack
        self.header = make_header(
            {
                "name": name,
                "bytes": None,
                "sha256": None,
                "decoder": decoder,
                "format": format,
                "sample_rate": self.sample_rate,
                "channels": self.channels,
                "duration_s": None,
            },
            {"name": pack.name, "manifest_sha256": pack.manifest_sha256},
            pack.frame_rate,
            {n: (s.levels, s.codebook_size) for n, s in pack.streams.items()},
        )
        self.stats: dict | None = None

    def push(self, samples: Any) -> list[Frame]:
        """Add a block: float32/float64 in [-1, 1] or int16 (scaled by 1/32768, as raw PCM),
        either [n, channels] or 1-D with channels interleaved (a block may end mid-frame).
        Returns the frames now final, in order (often none: a frame waits for its context)."""
        with self._lock:
            if self._closed:
                raise InputError(f"{self.name}: push after close")
            return self._frames(self._feed(self._mono(samples)))

    def close(self) -> list[Frame]:
        """End of input: the remaining frames; ``stats`` is set. A partial interleaved frame is dropped."""
        with self._lock:
            if self._closed:
                return []
            self._closed = True
            held = [] if self._gate is None else [c for block in self._gate.finish() for c in self._features.push(block)]
            frames = self._frames(held + self._features.finish())
            self.stats = {
                "type": "stats",
                "frames": self._counter.frames,
                "duration_s": round(self._features.samples / self.sample_rate, 6),
                "nonfinite_samples": self.nonfinite,
                "tokens": self._counter.tokens(),
            }
            return frames

    @property
    def samples(self) -> int:
        """Mono samples pushed so far."""
        return self._features.samples

    def _feed(self, block: np.ndarray) -> list[ChunkFeatures]:
        """The chunks ``block`` completes; under a silence floor, once its frames are decided."""
        blocks = [block] if self._gate is None else self._gate.push(block)
        return [chunk for b in blocks for chunk in self._features.push(b)]

    def _frames(self, chunks: Iterable[ChunkFeatures]) -> list[Frame]:
        return [self._counter.add(f) for f in self._tokenizer.chunk_frames(chunks, self._gate)]

    def _mono(self, samples: Any) -> np.ndarray:
        arr = np.asarray(samples)
        if arr.dtype == np.int16:
            arr = arr.astype(np.float32) / np.float32(32768.0)
        elif arr.dtype.kind == "f":
            arr = arr.astype(np.float32, copy=False)
        else:
            raise InputError(f"{self.name}: samples must be float32, float64 or int16, not {arr.dtype}")
        if arr.ndim == 1:
            if self.channels > 1:  # interleaved: keep a partial frame for the next block
                arr = np.concatenate([self._rest, arr]) if len(self._rest) else arr
                whole = len(arr) - len(arr) % self.channels
                self._rest = arr[whole:].copy()
                arr = arr[:whole]
            arr = arr.reshape(-1, self.channels)
        if arr.ndim != 2 or arr.shape[1] != self.channels:
            raise InputError(f"{self.name}: expected [samples, {self.channels}] or interleaved samples, got shape {np.shape(samples)}")
        block = _mono(arr) if len(arr) else np.zeros(0, dtype=np.float32)
        block, nonfinite, clipped = repair(block)  # as AudioSource.blocks does
        self.nonfinite += nonfinite
        self.clipped += clipped
        return block
