"""Live input: samples pushed as they are recorded, frames read back as soon as they are final.

The model is sherpa-onnx's streaming API: create a stream, accept waveform, read what is
ready. ``Tokenizer.live(sample_rate, channels)`` returns a :class:`LiveStream`; an app
calls ``push(samples)`` from its audio callback with blocks of any size. ``push`` only
checks, copies and queues the block: a worker thread the stream owns mixes it to mono and
runs the streaming engine (runtime/engine.py), so an audio callback never waits for an encoder,
whatever the pack. Frames are read with ``read()`` (or come back from ``push``) as soon as
the worker has them, and ``close()`` returns the rest. They are the frames
``Tokenizer.encode`` gives for the whole recording (tests/test_live.py).

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
import queue
import threading
import weakref
from collections import deque
from typing import Any

import numpy as np

from ..errors import InputError
from .inputs.audio import Damage, mono_of
from .features import Chunking
from .header import Header, Stats, StatsCounter, make_header, make_stats
from .inputs.limits import check_layout
from .records import Frame


def flexible(pack: Any) -> bool:
    """Whether every encoder the pack's streams use declares its receptive field."""
    return all(pack.encoders[s.encoder].receptive_field_s is not None for s in pack.streams.values())


def live_chunking(pack: Any) -> Chunking:
    """How live input is cut: by frame, with the encoders' receptive field as context, where
    every encoder declares one; else the pack's own chunks, each cut as soon as its core and
    context are in."""
    if not flexible(pack):
        return Chunking(pack.window_s, pack.context_s, by_frame=False, margin_frames=0)
    encoders = [pack.encoders[n] for n in {s.encoder for s in pack.streams.values()}]
    fr = pack.frame_rate
    # >= one frame: a chunk cut before the input ends must stay a whole chunk at its end
    frames = max(1, math.ceil(max(e.receptive_field_s for e in encoders) * fr - 1e-9))
    for e in encoders:  # and at least what the first encoder frame needs, as the loader asks of context_s
        while round(frames / fr * e.sample_rate) < e.window - e.hop:
            frames += 1
    return Chunking(pack.window_s, frames / fr, by_frame=True)


_END = None  # the queue's end-of-input marker


class _Worker:
    """The thread that runs a LiveStream's engine on the queued blocks. It holds no reference
    to its stream, so a stream dropped without close() is collected, and its worker told to stop."""

    def __init__(self, engine: Any, name: str, channels: int) -> None:
        self.engine = engine
        self.channels = channels
        self._rest = np.zeros(0, dtype=np.float32)  # an interleaved block's partial last frame
        self.damage = Damage()
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.ready: deque[Frame] = deque()
        self.cond = threading.Condition()
        self.queued = self.done = 0  # blocks handed over, blocks finished
        self.error: BaseException | None = None
        self.counter = StatsCounter()
        self.thread = threading.Thread(target=self._work, name=f"nat-live {name}", daemon=True)

    def put(self, block: np.ndarray | None) -> None:
        with self.cond:
            self.queued += 1
        self.queue.put(block)
        if self.thread.ident is None:  # started by the first block
            self.thread.start()

    def _work(self) -> None:
        while True:
            block = self.queue.get()
            try:
                frames = self.engine.finish() if block is _END else self.engine.push(self._mono(block))
            except BaseException as exc:  # noqa: BLE001 - handed to the producer's next call
                with self.cond:
                    self.error = exc
                    self.cond.notify_all()
                return
            with self.cond:
                self.ready.extend(self.counter.add(f) for f in frames)
                self.done += 1
                self.cond.notify_all()
            if block is _END:
                return

    def _mono(self, arr: np.ndarray) -> np.ndarray:
        """A pushed block (checked by LiveStream.push) as mono float32, repaired as AudioSource.blocks does."""
        arr = arr.astype(np.float32) / np.float32(32768.0) if arr.dtype == np.int16 else arr.astype(np.float32, copy=False)
        if arr.ndim == 1:
            if self.channels > 1:  # interleaved: keep a partial frame for the next block
                arr = np.concatenate([self._rest, arr]) if len(self._rest) else arr
                whole = len(arr) - len(arr) % self.channels
                self._rest = arr[whole:].copy()
                arr = arr[:whole]
            arr = arr.reshape(-1, self.channels)
        block = mono_of(arr) if len(arr) else np.zeros(0, dtype=np.float32)
        return self.damage.repaired(block)


class LiveStream:
    """One live input: push sample blocks, read the frames (see the module docstring).

    ``header`` is the stream's :class:`~.header.Header`; ``bytes``, ``sha256`` and
    ``duration_s`` of its source are None (docs/ndjson.md, "Live and piped input").
    ``stats`` (a :class:`~.header.Stats`) is known after :meth:`close`. One producer
    pushes at a time; several streams may run at once on one Tokenizer, from different
    threads. An encoder failure in the worker is raised by the
    next push, read, wait or close."""

    def __init__(self, tokenizer: Any, sample_rate: int, channels: int = 1, name: str = "live") -> None:
        check_layout(sample_rate, channels, name)
        self.name = name
        self.sample_rate, self.channels = int(sample_rate), int(channels)
        self._worker = _Worker(tokenizer.engine(self.sample_rate, live=True), name, self.channels)
        weakref.finalize(self, self._worker.queue.put, _END)  # dropped unclosed: the worker ends too
        self._closed = False
        self.header: Header = make_header(tokenizer.pack, name=name, decoder="live", format="float32", sample_rate=self.sample_rate, channels=self.channels)
        self.stats: Stats | None = None

    def push(self, samples: Any) -> list[Frame]:
        """Queue a block: float32/float64 in [-1, 1] or int16 (scaled by 1/32768, as raw PCM),
        either [n, channels] or 1-D with channels interleaved (a block may end mid-frame).
        Returns at once, with the frames that are ready by now (see :meth:`read`): it only
        checks and copies the block; mixing, repair and the encoders run on the worker."""
        if self._closed:
            raise InputError(f"{self.name}: push after close")
        block = self._checked(samples)
        ready = self.read()  # before the hand-over: then the worker, woken by it, never holds up this call
        self._worker.put(block)
        return ready

    def read(self) -> list[Frame]:
        """The frames made final since the last read, in order (often none); never waits."""
        w = self._worker
        if not w.ready and w.error is None:  # nothing new: no lock to take (an audio callback's common case)
            return []
        with w.cond:
            self._raise(w)
            frames = list(w.ready)
            w.ready.clear()
        return frames

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every block pushed so far has gone through the encoders (False on timeout)."""
        w = self._worker
        with w.cond:
            done = w.cond.wait_for(lambda: w.done >= w.queued or w.error is not None, timeout)
            self._raise(w)
            return done

    def close(self) -> list[Frame]:
        """End of input: wait for the worker, return the remaining frames; ``stats`` is set.
        A partial interleaved frame is dropped."""
        if self._closed:
            return self.read()
        self._closed = True
        w = self._worker
        w.put(_END)
        w.thread.join()
        frames = self.read()
        self.stats = make_stats(w.counter, samples=w.engine.samples, sample_rate=self.sample_rate, nonfinite_samples=self.nonfinite)
        return frames

    @property
    def samples(self) -> int:
        """Mono samples through the engine so far."""
        return self._worker.engine.samples

    @staticmethod
    def _raise(worker: _Worker) -> None:
        if worker.error is not None:
            raise worker.error

    def _checked(self, samples: Any) -> np.ndarray:
        """A copy of ``samples`` (the caller may reuse its buffer once push returns), or InputError."""
        arr = np.array(samples)
        if arr.dtype != np.int16 and arr.dtype.kind != "f":
            raise InputError(f"{self.name}: samples must be float32, float64 or int16, not {arr.dtype}")
        if not (arr.ndim == 1 or (arr.ndim == 2 and arr.shape[1] == self.channels)):
            raise InputError(f"{self.name}: expected [samples, {self.channels}] or interleaved samples, got shape {np.shape(samples)}")
        return arr

    @property
    def nonfinite(self) -> int:
        """NaN/Inf samples replaced by silence so far (through the worker)."""
        return self._worker.damage.nonfinite

    @property
    def clipped(self) -> int:
        """Samples beyond +-MAX_AMPLITUDE clipped so far (through the worker)."""
        return self._worker.damage.clipped
