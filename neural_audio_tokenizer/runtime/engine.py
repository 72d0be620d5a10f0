"""The streaming engine: one input's mono blocks in, its Frames out, as soon as each is final.

    level meter, silence floor -> resample -> chunk -> encode -> pool -> quantize -> Frames

Files, pipes and pushed audio all run through it: ``Tokenizer.stream`` pushes every decoded
block of a file and finishes; piped input pushes blocks as its bytes decode; a
:class:`~.live.LiveStream` feeds one from its own worker thread, so ``push()`` never waits
for an encoder. The chunk policy (:class:`~.features.Chunking`) decides where chunks start,
never how the samples arrive, so the same samples give the same frames whichever way they
come: fixed chunks with context for files, chunks of whatever whole frames are in for live
input to a pack whose encoders declare a receptive field (docs/pack-format.md), which the
receptive field makes equal to the file's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol

import numpy as np

from .features import ChunkFeatures, FeaturePipeline, Segment
from .records import Frame
from .silence import SilenceGate


class Model(Protocol):
    """What an engine needs of its tokenizer: the encoders, the silence floor, and features -> Frames."""

    silence: SilenceGate

    def run_encoder(self, encoder: str, waveform: np.ndarray) -> Mapping[str, np.ndarray]: ...

    def chunk_frames(self, chunk: ChunkFeatures, silent: np.ndarray | None, measured: tuple[list[int], list[int]] | None) -> list[Frame]: ...


class Engine:
    """One input through the pipeline. Either push blocks (:meth:`push`, then :meth:`finish`)
    or hand it all of them (:meth:`run`, which may batch chunks and run encoders in parallel).

    ``split``: a pushed block's frames that the silence floor has decided move on at once,
    the rest of the block waits (pushed blocks may be long); a file's blocks move whole."""

    def __init__(self, model: Model, pipeline: FeaturePipeline, sample_rate: int, split: bool = False, batch: int = 1, workers: int = 1) -> None:
        self._model = model
        self.pipeline = pipeline
        self.sample_rate = sample_rate
        self.batch, self.workers = batch, workers
        self._cutter = pipeline.cutter(sample_rate)
        self._gate = model.silence.push_gate(sample_rate, split)

    @property
    def samples(self) -> int:
        """Mono input samples that have reached the chunker (all pushed ones, after finish)."""
        return self._cutter.samples

    def push(self, mono: np.ndarray) -> list[Frame]:
        """Add mono float32 samples; the frames they made final, in order (often none)."""
        return self._encoded(self._cut(mono))

    def finish(self) -> list[Frame]:
        """The input ended: the remaining frames."""
        return self._encoded(self._cut_rest())

    def run(self, blocks: Iterable[np.ndarray]) -> Iterator[Frame]:
        """Every frame of an input given as ``blocks``, in order, as each chunk is done."""
        for features in self.pipeline.features(self._chunks(blocks), self._model.run_encoder, self.batch, self.workers):
            yield from self._frames(features)

    def _chunks(self, blocks: Iterable[np.ndarray]) -> Iterator[dict[str, Segment]]:
        for block in blocks:
            yield from self._cut(block)
        yield from self._cut_rest()

    def _cut(self, block: np.ndarray) -> list[dict[str, Segment]]:
        """The chunks ``block`` lets be cut, once the meter has decided its frames (under a silence floor, silent ones zeroed)."""
        gated = self._gate.push(block)
        return [chunk for b in gated for chunk in self._cutter.push(b)]

    def _cut_rest(self) -> list[dict[str, Segment]]:
        return [chunk for b in self._gate.finish() for chunk in self._cutter.push(b)] + self._cutter.finish()

    def _encoded(self, chunks: list[dict[str, Segment]]) -> list[Frame]:
        return [frame for chunk in chunks for features in self.pipeline.encode([chunk], self._model.run_encoder) for frame in self._frames(features)]

    def _frames(self, chunk: ChunkFeatures) -> list[Frame]:
        first, n = chunk.first_frame, chunk.n_frames
        return self._model.chunk_frames(chunk, self._gate.silent(first, n), self._gate.measured(first, n))
