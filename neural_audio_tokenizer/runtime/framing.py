"""Cut an encoder-rate sample stream into fixed chunks, and pool encoder frames to pack frames.

Whole-file attention does not scale (its memory grows with the square of the length:
docs/performance.md), so audio goes through the encoder in chunks: a *core* of
``window_s`` seconds whose frames are kept, with ``context_s`` seconds of real audio on each
side so the core's frames see what surrounds them. Chunk ``j``'s core starts at
``j * window_s`` regardless of how the audio arrived, so the same file gives the same
chunks every run; memory is bounded by one chunk, not by the file.

Time alignment: the runtime only assumes that encoder frame ``i`` of a segment starting at
sample ``s0`` belongs to time ``s0 + i*hop`` and needs samples up to ``s0 + i*hop + window``.
Where inside that span a frame is centred is the encoder's business (the built-in DSP
encoder pads internally so its frame ``i`` is centred mid-hop; HF conv stacks start at
``i*hop``). Pack frame ``k`` is the mean of encoder frames ``k*R .. k*R + R - 1`` with
``R = sample_rate / (frame_rate * hop)``, so it starts at ``k / frame_rate`` seconds for
every encoder and every input sample rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grid:
    """One encoder's view of the pack's frame grid and chunking, in encoder samples."""

    sample_rate: int
    hop: int
    window: int
    frame_samples: int  # samples per pack frame
    core_frames: int  # pack frames per chunk core
    context_samples: int

    @classmethod
    def create(
        cls, sample_rate: int, hop: int, window: int, frame_rate: int, window_s: float, context_s: float
    ) -> Grid:
        """An encoder's grid from its rate, hop and window and the pack's frame rate and chunking."""
        return cls(
            sample_rate=sample_rate,
            hop=hop,
            window=window,
            frame_samples=sample_rate // frame_rate,
            core_frames=round(window_s * frame_rate),
            context_samples=round(context_s * sample_rate),
        )

    @property
    def per_frame(self) -> int:
        """Encoder frames pooled into one pack frame (R)."""
        return self.frame_samples // self.hop

    @property
    def core_samples(self) -> int:
        return self.core_frames * self.frame_samples


@dataclass(frozen=True)
class Segment:
    """Audio an encoder runs on for one chunk, and which of its frames to keep."""

    chunk: int
    first_frame: int  # global index of the first pack frame this chunk yields
    n_frames: int  # pack frames this chunk yields
    samples: np.ndarray  # real audio, float32, 1-D
    length: int  # samples to feed: ``samples`` then zeros (only at the end of the input)
    skip: int  # encoder frames before the first kept one


class Chunker:
    """Accumulates one encoder's sample stream and hands out ready segments in order."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self._buffer = np.empty(0, dtype=np.float32)
        self._buffer_start = 0  # stream index of _buffer[0]
        self._next_chunk = 0

    @property
    def _total(self) -> int:
        return self._buffer_start + len(self._buffer)

    def push(self, samples: np.ndarray) -> list[Segment]:
        """Add samples; return every chunk whose core and right context are now complete."""
        if len(samples):
            self._buffer = np.concatenate([self._buffer, samples.astype(np.float32, copy=False)])
        g = self.grid
        ready = []
        # One extra pack frame of margin: a chunk is only cut early when the input surely
        # extends past it, so an early cut and an end-of-input cut can never disagree.
        while self._total >= (self._next_chunk + 1) * g.core_samples + g.context_samples + g.frame_samples:
            ready.append(self._cut(self._next_chunk, g.core_frames, end_of_input=False))
        return ready

    def finish(self, n_frames: int) -> list[Segment]:
        """The input ended: cut the remaining chunks so that exactly ``n_frames`` frames result."""
        out = []
        while self._next_chunk * self.grid.core_frames < n_frames:
            j = self._next_chunk
            out.append(self._cut(j, min(self.grid.core_frames, n_frames - j * self.grid.core_frames), True))
        return out

    def _cut(self, j: int, n_frames: int, end_of_input: bool) -> Segment:
        g = self.grid
        core_start = j * g.core_samples
        start = max(0, core_start - g.context_samples)
        skip = (core_start - start) // g.hop
        end = min(self._total, core_start + g.core_samples + g.context_samples)
        needed = (skip + n_frames * g.per_frame - 1) * g.hop + g.window
        samples = self._buffer[start - self._buffer_start : max(start, end) - self._buffer_start]
        segment = Segment(j, j * g.core_frames, n_frames, samples, max(needed, len(samples)), skip)
        self._next_chunk = j + 1
        keep_from = max(0, self._next_chunk * g.core_samples - g.context_samples)
        if keep_from > self._buffer_start:
            self._buffer = self._buffer[keep_from - self._buffer_start :].copy()
            self._buffer_start = keep_from
        assert end_of_input or len(samples) >= needed
        return segment


def pool(frames: np.ndarray, segment: Segment, per_frame: int, pooling: str) -> np.ndarray:
    """Pack-frame features [n_frames, dim'] (float64) from encoder frames [frames, dim]."""
    stop = segment.skip + segment.n_frames * per_frame
    if frames.ndim != 2 or frames.shape[0] < stop:
        raise ValueError(f"encoder returned {frames.shape[0] if frames.ndim == 2 else frames.shape} frames, needs {stop}")
    kept = frames[segment.skip : stop].astype(np.float64).reshape(segment.n_frames, per_frame, -1)
    mean = kept.mean(axis=1)
    if pooling == "mean":
        return mean
    return np.concatenate([mean, kept.std(axis=1)], axis=1)  # "mean_std"
