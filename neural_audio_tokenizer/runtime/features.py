"""Waveform -> pooled stream features, chunk by chunk, for any set of encoders.

This is the one place that resamples, chunks, normalizes encoder input and pools encoder
frames. The runtime runs it with onnxruntime sessions; the export side runs the very same
code with torch encoders (reference pipeline) and to collect codebook training features,
so all three see identical chunk boundaries and arithmetic. Only ``run`` differs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr

from .audio import AudioSource
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
    return FeaturePipeline(inputs, routes, frame_rate, window_s, context_s)


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


class FeaturePipeline:
    """Resample -> chunk -> encode -> pool, for every encoder a set of streams needs."""

    def __init__(
        self,
        encoders: Mapping[str, EncoderInput],
        routes: Mapping[str, Route],
        frame_rate: int,
        window_s: float,
        context_s: float,
    ) -> None:
        used = {r.encoder for r in routes.values()}
        self.encoders = {n: e for n, e in encoders.items() if n in used}
        self.routes = dict(routes)
        self.frame_rate = frame_rate
        self.grids = {
            n: Grid.create(e.sample_rate, e.hop, e.window, frame_rate, window_s, context_s)
            for n, e in self.encoders.items()
        }

    def iter_chunks(self, source: AudioSource, run: EncoderRun, batch: int = 1, workers: int = 1) -> Iterator[ChunkFeatures]:
        """Pooled features for each chunk of ``source``, in order, as soon as each is ready.

        ``batch`` > 1 runs up to that many equal-length chunks per encoder call, as a
        [batch, samples] input (worth it on a GPU; on the CPU one chunk at a time is as fast
        and streams sooner). ``run`` must then accept 2-D input and return [batch, frames, dim].

        ``workers`` > 1 keeps that many encoder calls running at once, from a thread pool:
        each (chunk group, encoder) pair is one task, so two encoders of unequal cost, or the
        next chunk, fill the cores while a long call runs (``run`` must be thread-safe;
        onnxruntime's ``run`` is). Results come in chunk order, and each call sees exactly
        the waveform it sees with ``workers`` = 1, so features are identical.
        """
        groups = self._ready(source, batch)
        if workers <= 1:
            encoded = ((chunks, {name: self._run_encoder(name, chunks, run) for name in self.encoders}) for chunks in groups)
        else:
            encoded = _in_order(groups, list(self.encoders), lambda name, chunks: self._run_encoder(name, chunks, run), workers)
        for chunks, outputs in encoded:
            yield from self._pool(chunks, outputs)

    def _ready(self, source: AudioSource, batch: int) -> Iterator[list[dict[str, Segment]]]:
        """Read, resample and chunk ``source``; yield groups of up to ``batch`` chunks whose
        every encoder segment is cut, in chunk order."""
        in_rate = source.info.sample_rate
        chunkers = {n: Chunker(g) for n, g in self.grids.items()}
        resamplers = {
            n: None if g.sample_rate == in_rate else soxr.ResampleStream(in_rate, g.sample_rate, 1, dtype="float32", quality="HQ")
            for n, g in self.grids.items()
        }
        pending: dict[int, dict[str, Segment]] = {}
        n_in = 0
        for block in source.blocks():
            n_in += len(block)
            for name, chunker in chunkers.items():
                rs = resamplers[name]
                for seg in chunker.push(block if rs is None else rs.resample_chunk(block)):
                    pending.setdefault(seg.chunk, {})[name] = seg
            yield from self._complete(pending, batch, final=False)
        n_frames = frame_count(n_in, in_rate, self.frame_rate)
        for name, chunker in chunkers.items():
            rs = resamplers[name]
            if rs is not None:
                chunker.push(rs.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
            for seg in chunker.finish(n_frames):
                pending.setdefault(seg.chunk, {})[name] = seg
        yield from self._complete(pending, batch, final=True)

    def _complete(self, pending: dict[int, dict[str, Segment]], batch: int, final: bool) -> Iterator[list[dict[str, Segment]]]:
        """The leading chunks whose every encoder segment is ready, ``batch`` at a time."""
        while pending:
            ready = []
            for j in sorted(pending):
                if len(pending[j]) < len(self.encoders) or len(ready) == batch:
                    break
                ready.append(j)
            if not ready or (len(ready) < batch and not final):
                if final and not ready:
                    raise AssertionError(f"chunk {min(pending)} is missing an encoder's segment")
                return
            yield [pending.pop(j) for j in ready]

    def _run_encoder(self, name: str, chunks: list[dict[str, Segment]], run: EncoderRun) -> list[Mapping[str, np.ndarray]]:
        """One encoder's outputs for each chunk of a group."""
        encoder = self.encoders[name]
        waves = [segment_waveform(c[name], encoder.input_normalization) for c in chunks]
        if len(waves) == 1:
            return [run(name, waves[0])]
        outputs: list[Mapping[str, np.ndarray]] = [{} for _ in chunks]
        # Equal lengths batch together; only the input's last chunk can differ.
        for length in sorted({len(w) for w in waves}):
            members = [i for i, w in enumerate(waves) if len(w) == length]
            result = run(name, np.stack([waves[i] for i in members]))
            for k, i in enumerate(members):
                outputs[i] = {out: value[k] for out, value in result.items()}
        return outputs

    def _pool(self, chunks: list[dict[str, Segment]], encoded: Mapping[str, list[Mapping[str, np.ndarray]]]) -> Iterator[ChunkFeatures]:
        """Encoder frames -> pack-frame features, chunk by chunk."""
        for k, segments in enumerate(chunks):
            first = next(iter(segments.values()))
            streams = {}
            for stream, route in self.routes.items():
                frames = np.asarray(encoded[route.encoder][k][route.output])
                if frames.ndim == 3:  # [batch=1, frames, dim]
                    frames = frames[0]
                streams[stream] = pool(frames, segments[route.encoder], self.grids[route.encoder].per_frame, route.pooling)
            yield ChunkFeatures(first.first_frame, first.n_frames, streams)


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
