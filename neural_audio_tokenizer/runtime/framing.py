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
    """Accumulates one encoder's sample stream and cuts it into segments on the pack's frame grid.

    One cut, two policies (:class:`Chunking`): ``fixed`` chunks of ``core_frames`` whose
    core starts at ``j * window_s`` (any encoder; files), or ``by frame``: whatever whole
    frames are in, up to a core's worth (encoders that declare a receptive field, whose
    frames do not depend on where a chunk starts; live input)."""

    def __init__(self, grid: Grid, by_frame: bool = False, margin_frames: int = 0) -> None:
        self.grid = grid
        self.by_frame = by_frame
        self.margin = margin_frames * grid.frame_samples
        self._buffer = np.empty(0, dtype=np.float32)
        self._buffer_start = 0  # stream index of _buffer[0]
        self.next_frame = 0  # first frame not cut yet
        self._next_chunk = 0

    @property
    def _total(self) -> int:
        return self._buffer_start + len(self._buffer)

    def add(self, samples: np.ndarray) -> None:
        """Append encoder-rate samples."""
        if len(samples):
            self._buffer = np.concatenate([self._buffer, samples.astype(np.float32, copy=False)])

    def ready(self) -> int:
        """Frames past ``next_frame`` that may be cut now (before the input ends): whole
        chunks whose core, right context and margin are in, or (by frame) whole frames
        whose right context is in."""
        g = self.grid
        if self.by_frame:
            return max(0, (self._total - g.context_samples) // g.frame_samples - self.next_frame)
        chunks = (self._total - g.context_samples - self.margin) // g.core_samples - self._next_chunk
        return max(0, chunks) * g.core_frames

    def cut(self, n_frames: int) -> Segment:
        """The segment of the next ``n_frames`` frames (what is in, zero-padded at the end of
        input). A fixed chunk always spans a whole core, so its last, shorter chunk sees the
        audio it would see mid-file."""
        g = self.grid
        span = n_frames if self.by_frame else g.core_frames
        core_start = self.next_frame * g.frame_samples
        start = max(0, core_start - g.context_samples)
        skip = (core_start - start) // g.hop
        end = min(self._total, core_start + span * g.frame_samples + g.context_samples)
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
