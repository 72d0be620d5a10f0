"""Waveform -> pooled stream features, chunk by chunk, for any set of encoders.

This is the one place that resamples, chunks, normalizes encoder input and pools encoder
frames. The runtime runs it with onnxruntime sessions; the export side runs the very same
code with torch encoders (reference pipeline) and to collect codebook training features,
so all three see identical chunk boundaries and arithmetic. Only ``run`` differs.
"""

from __future__ import annotations

from collections import deque
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr

from .framing import Chunker, Grid, Segment, pool

# (encoder, waveform [samples] float32) -> {output name: [frames, dim] array}
EncoderRun = Callable[[str, np.ndarray], Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class EncoderInput:
    """What the pipeline needs to know about an encoder (a subset of the pack's EncoderSpec)."""

    sample_rate: int
    hop: int
    window: int
    input_normalization: str


@dataclass(frozen=True)
class Route:
    """Where a stream's features come from."""

    encoder: str
    output: str
    pooling: str


def _field(spec: Any, name: str, default: Any = None) -> Any:
    """``spec.name`` or ``spec[name]``: specs come as pack dataclasses or as write_pack's dicts."""
    if isinstance(spec, Mapping):
        return spec.get(name, default)
    return getattr(spec, name, default)


@dataclass(frozen=True)
class Chunking:
    """How an input is cut for the encoders (the engine's chunk policy).

    ``window_s``: a chunk's core; ``context_s``: real audio on each side of it;
    ``by_frame``: cut whatever whole frames are in (up to a core) instead of whole cores,
    for encoders whose frames depend on no more than ``context_s`` around them;
    ``margin_frames``: how far past a fixed chunk's context the input must be known to go
    before it is cut (files: one frame, so an early cut never differs from the cut at the
    end of input)."""

    window_s: float
    context_s: float
    by_frame: bool = False
    margin_frames: int = 1


def build_pipeline(encoders: Mapping[str, Any], streams: Mapping[str, Any], frame_rate: int, window_s: float, context_s: float) -> FeaturePipeline:
    """The one way a FeaturePipeline is made.

    ``encoders``: name -> spec with ``sample_rate``, ``hop``, ``window`` and
    ``input_normalization`` (a pack's EncoderSpec, an export-side LoadedEncoder, or the
    dict that export/pack_writer.write_pack takes); ``streams``: name -> spec with
    ``encoder``, ``output`` and ``pooling`` (StreamSpec or dict; pooling defaults to mean).
    """
    inputs = {
        name: EncoderInput(int(_field(e, "sample_rate")), int(_field(e, "hop")), int(_field(e, "window")), _field(e, "input_normalization", "none"))
        for name, e in encoders.items()
    }
    routes = {name: Route(_field(s, "encoder"), _field(s, "output"), _field(s, "pooling", "mean")) for name, s in streams.items()}
    return FeaturePipeline(inputs, routes, frame_rate, Chunking(window_s, context_s))


def pipeline_for(pack: Any) -> FeaturePipeline:
    """The FeaturePipeline of a loaded pack (runtime/pack.Pack)."""
    return build_pipeline(pack.encoders, pack.streams, pack.frame_rate, pack.window_s, pack.context_s)


@dataclass(frozen=True)
class ChunkFeatures:
    """One chunk's pooled features: pack frames ``first_frame`` .. ``first_frame + n_frames - 1``."""
    first_frame: int
    n_frames: int
    streams: dict[str, np.ndarray]  # stream -> [n_frames, dim] float64


def normalize_input(samples: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance, exactly as transformers' Wav2Vec2FeatureExtractor(do_normalize=True):
    float32 ``(x - mean) / sqrt(var + 1e-7)`` over the real samples of one chunk segment."""
    x = samples.astype(np.float32, copy=False)
    return (x - x.mean()) / np.sqrt(x.var() + 1e-7)


def segment_waveform(segment: Segment, input_normalization: str) -> np.ndarray:
    """The encoder's input for a segment: (normalized) real samples, then zero padding."""
    real = segment.samples
    if input_normalization == "zero_mean_unit_variance" and len(real):
        real = normalize_input(real)
    out = np.zeros(segment.length, dtype=np.float32)
    out[: len(real)] = real
    return out


def frame_count(n_samples: int, sample_rate: int, frame_rate: int) -> int:
    """Pack frames for an input: ceil(duration * frame_rate); a partial last frame counts."""
    return -(-n_samples * frame_rate // sample_rate)


ChunkGroup = list[dict[str, Segment]]  # chunks run together: per chunk, each encoder's segment


class FeaturePipeline:
    """Resample -> chunk -> encode -> pool, for every encoder a set of streams needs."""

    def __init__(self, encoders: Mapping[str, EncoderInput], routes: Mapping[str, Route], frame_rate: int, chunking: Chunking) -> None:
        used = {r.encoder for r in routes.values()}
        self.encoders = {n: e for n, e in encoders.items() if n in used}
        self.routes = dict(routes)
        self.frame_rate = frame_rate
        self.chunking = chunking
        self.grids = {
            n: Grid.create(e.sample_rate, e.hop, e.window, frame_rate, chunking.window_s, chunking.context_s)
            for n, e in self.encoders.items()
        }

    def with_chunking(self, chunking: Chunking) -> FeaturePipeline:
        """The same encoders and routes, cut another way."""
        return FeaturePipeline(self.encoders, self.routes, self.frame_rate, chunking)

    def cutter(self, sample_rate: int) -> Cutter:
        """A fresh front end for one input at ``sample_rate``."""
        return Cutter(self, sample_rate)

    def iter_chunks(self, source: Any, run: EncoderRun, batch: int = 1, workers: int = 1) -> Iterator[ChunkFeatures]:
        """Pooled features for each chunk of ``source`` (an AudioSource: ``info.sample_rate``
        and mono ``blocks()``), in order, as soon as each is ready.

        ``batch`` > 1 runs up to that many equal-length chunks per encoder call, as a
        [batch, samples] input (worth it on a GPU; on the CPU one chunk at a time is as fast
        and streams sooner). ``run`` must then accept 2-D input and return [batch, frames, dim].

        ``workers`` > 1 keeps that many encoder calls running at once, from a thread pool:
        each (chunk group, encoder) pair is one task, so two encoders of unequal cost, or the
        next chunk, fill the cores while a long call runs (``run`` must be thread-safe;
        onnxruntime's ``run`` is). Results come in chunk order, and each call sees exactly
        the waveform it sees with ``workers`` = 1, so features are identical.
        """
        return self.features(self.cutter(source.info.sample_rate).chunks(source.blocks()), run, batch, workers)

    def features(self, chunks: Iterator[dict[str, Segment]], run: EncoderRun, batch: int = 1, workers: int = 1) -> Iterator[ChunkFeatures]:
        """Pooled features of ``chunks`` (from a :class:`Cutter`), in order; ``batch`` and
        ``workers`` as for :meth:`iter_chunks`."""
        groups = _batched(chunks, batch)
        if workers <= 1:
            encoded = ((group, {name: self.run_encoder(name, group, run) for name in self.encoders}) for group in groups)
        else:
            encoded = _in_order(groups, list(self.encoders), lambda name, group: self.run_encoder(name, group, run), workers)
        for group, outputs in encoded:
            yield from self.pool(group, outputs)

    def encode(self, group: ChunkGroup, run: EncoderRun) -> list[ChunkFeatures]:
        """Every encoder run on a group of chunks, pooled."""
        return list(self.pool(group, {name: self.run_encoder(name, group, run) for name in self.encoders}))

    def run_encoder(self, name: str, group: ChunkGroup, run: EncoderRun) -> list[Mapping[str, np.ndarray]]:
        """One encoder's outputs for each chunk of a group."""
        encoder = self.encoders[name]
        waves = [segment_waveform(c[name], encoder.input_normalization) for c in group]
        if len(waves) == 1:
            return [run(name, waves[0])]
        outputs: list[Mapping[str, np.ndarray]] = [{} for _ in group]
        # Equal lengths batch together; only the input's last chunk can differ.
        for length in sorted({len(w) for w in waves}):
            members = [i for i, w in enumerate(waves) if len(w) == length]
            result = run(name, np.stack([waves[i] for i in members]))
            for k, i in enumerate(members):
                outputs[i] = {out: value[k] for out, value in result.items()}
        return outputs

    def pool(self, group: ChunkGroup, encoded: Mapping[str, list[Mapping[str, np.ndarray]]]) -> Iterator[ChunkFeatures]:
        """Encoder frames -> pack-frame features, chunk by chunk."""
        for k, segments in enumerate(group):
            first = next(iter(segments.values()))
            streams = {}
            for stream, route in self.routes.items():
                frames = np.asarray(encoded[route.encoder][k][route.output])
                if frames.ndim == 3:  # [batch=1, frames, dim]
                    frames = frames[0]
                streams[stream] = pool(frames, segments[route.encoder], self.grids[route.encoder].per_frame, route.pooling)
            yield ChunkFeatures(first.first_frame, first.n_frames, streams)


class Cutter:
    """The front of the pipeline for one input: mono blocks at the input rate -> chunks, each
    with every encoder's segment, as soon as the chunk policy lets them be cut.

    Cheap (soxr and array copies): no encoder runs here."""

    def __init__(self, pipeline: FeaturePipeline, sample_rate: int) -> None:
        self.pipeline = pipeline
        self.sample_rate = sample_rate
        c = pipeline.chunking
        self._chunkers = {n: Chunker(g, c.by_frame, 0 if c.by_frame else c.margin_frames) for n, g in pipeline.grids.items()}
        self._resamplers = {
            n: None if g.sample_rate == sample_rate else soxr.ResampleStream(sample_rate, g.sample_rate, 1, dtype="float32", quality="HQ")
            for n, g in pipeline.grids.items()
        }
        self._core_frames = round(c.window_s * pipeline.frame_rate)
        self.samples = 0  # input samples pushed so far

    def push(self, mono: np.ndarray) -> ChunkGroup:
        """Add mono float32 samples; the chunks they let be cut, in order."""
        self.samples += len(mono)
        for name, chunker in self._chunkers.items():
            rs = self._resamplers[name]
            chunker.add(mono if rs is None else rs.resample_chunk(mono))
        return self._cut(min(c.ready() for c in self._chunkers.values()))

    def finish(self) -> ChunkGroup:
        """The input ended: the remaining chunks, so that its frame count results (none for no samples)."""
        for name, chunker in self._chunkers.items():
            rs = self._resamplers[name]
            if rs is not None:
                chunker.add(rs.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
        n_frames = frame_count(self.samples, self.sample_rate, self.pipeline.frame_rate)
        return self._cut(n_frames - next(iter(self._chunkers.values())).next_frame)

    def chunks(self, blocks: Iterable[np.ndarray]) -> Iterator[dict[str, Segment]]:
        """Every chunk of ``blocks``, in order, as the blocks arrive."""
        for block in blocks:
            yield from self.push(block)
        yield from self.finish()

    def _cut(self, frames: int) -> ChunkGroup:
        out = []
        while frames > 0:
            n = min(frames, self._core_frames)
            out.append({name: c.cut(n) for name, c in self._chunkers.items()})
            frames -= n
        return out


def _batched(chunks: Iterator[dict[str, Segment]], batch: int) -> Iterator[ChunkGroup]:
    """Consecutive groups of ``batch`` chunks (the last may be shorter)."""
    while group := list(itertools.islice(chunks, max(1, batch))):
        yield group


def _in_order(groups: Iterator[list], encoders: list[str], call: Callable[[str, list], Any], workers: int) -> Iterator[tuple[list, dict]]:
    """``(group, {encoder: call(encoder, group)})`` for each group in order, with up to
    ``workers`` calls running at once on a thread pool.

    At most ~2 groups per worker wait queued: enough to keep every worker busy, and memory
    bounded by a few chunks. If ``groups`` fails (the input broke midway), the groups
    already cut still come out first, exactly as without workers, then the error."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="nat-encode")
    in_flight: deque[tuple[list, dict[str, Future]]] = deque()

    def oldest() -> tuple[list, dict]:
        group, futures = in_flight.popleft()
        return group, {name: f.result() for name, f in futures.items()}

    try:
        while True:
            try:
                group = next(groups)
            except StopIteration:
                break
            except Exception:
                while in_flight:
                    yield oldest()
                raise
            in_flight.append((group, {name: pool.submit(call, name, group) for name in encoders}))
            while in_flight and (len(in_flight) > 2 * workers or all(f.done() for f in in_flight[0][1].values())):
                yield oldest()
        while in_flight:
            yield oldest()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
