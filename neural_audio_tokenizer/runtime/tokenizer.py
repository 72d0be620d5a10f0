"""The public API: load a pack once, then turn any number of inputs into frames.

    from neural_audio_tokenizer import Tokenizer
    tok = Tokenizer.load()                      # the built-in pack, CPU
    for frame in tok.encode("song.flac"):
        print(frame.t, frame.S, frame.A)

A Tokenizer holds immutable arrays and onnxruntime sessions (whose ``run`` is thread-safe),
so one instance may serve several threads at once, as desktop apps need.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Union

import numpy as np

from ..codebooks.quantize import code_norms, quantize
from ..packs import resolve_pack
from .audio import RAW_RATE, AudioSource, from_array, open_bytes, open_path
from .features import EncoderInput, FeaturePipeline, Route
from .pack import Pack, StreamSpec, load_pack
from .records import Frame, frame_time
from .session import SessionOptions, create_session, parallelism, resolve_device, run_session
from .silence import SilenceGate

AudioInput = Union[str, os.PathLike, bytes, tuple, AudioSource]


def stream_codes(spec: StreamSpec, features: np.ndarray, norms: np.ndarray | None = None) -> np.ndarray:
    """Pooled features [frames, dim] -> codes [frames, levels]: normalize, project, RVQ.
    Shared with the torch reference pipeline, so both quantize identically."""
    x = (features - spec.mean) * spec.scale
    if spec.projection is not None:
        x = x @ spec.projection
    return quantize(x, spec.codebooks, norms)


class Tokenizer:
    """Audio -> frames of S and A tokens, with one verified pack."""

    def __init__(self, pack: Pack, options: SessionOptions | None = None) -> None:
        self.pack = pack
        self.options = options or SessionOptions()
        self.device = resolve_device(self.options.device)
        # Chunks per encoder call: a GPU is starved by one 10 s chunk (issue #4 measured
        # 918x real time at batch 1 vs 1382x at 16 on an H200); a CPU is not, and batch 1
        # streams the first frames sooner.
        self.batch = self.options.batch or (8 if self.device == "cuda" else 1)
        # Encoder calls at once, and threads per call (session.parallelism): on the CPU by
        # default one single-threaded call per core, over chunks and encoders.
        self.workers, threads = parallelism(self.options, self.device)
        session_options = dataclasses.replace(self.options, device=self.device, threads=threads)
        # All at once: onnxruntime parses a model and loads its weights with the GIL released,
        # so mert-w2v's two sessions take 0.7 s instead of 1.1-1.3 s (both loading transients
        # at once cost ~0.1 GB of peak RSS, docs/performance.md). Results and the first
        # failure come back in manifest order.
        with ThreadPoolExecutor(len(pack.encoders)) as pool:
            made = pool.map(lambda enc: create_session(enc.model_bytes, enc.file, session_options), pack.encoders.values())
            self._sessions = dict(zip(pack.encoders, made))
        # The sessions hold the models now; keeping the pack's copy of the bytes would double
        # a neural pack's ~0.4 GB for nothing (the caller's own Pack object keeps its bytes).
        self.pack = dataclasses.replace(pack, encoders={n: dataclasses.replace(e, model_bytes=b"") for n, e in pack.encoders.items()})
        self._outputs = {name: list(enc.outputs) for name, enc in pack.encoders.items()}
        self._norms = {name: code_norms(s.codebooks) for name, s in pack.streams.items()}
        self.pipeline = FeaturePipeline(
            {n: EncoderInput(n, e.sample_rate, e.hop, e.window, e.input_normalization) for n, e in pack.encoders.items()},
            {n: Route(s.encoder, s.output, s.pooling) for n, s in pack.streams.items()},
            pack.frame_rate,
            pack.window_s,
            pack.context_s,
        )
        first = next(iter(pack.encoders.values()))
        self.silence = SilenceGate.for_pipeline(pack.silence_floor_dbfs, self.pipeline, self._run, self.quantize, first.sample_rate)

    @classmethod
    def load(
        cls,
        pack: str | os.PathLike | None = None,
        device: str = "cpu",
        threads: int = 0,
        spinning: bool = False,
        batch: int = 0,
        workers: int = 0,
    ) -> Tokenizer:
        """Load a pack by name or folder (default: the built-in pack) and open its sessions.

        ``device``: "cpu", "cuda" or "auto"; ``threads``: onnxruntime intra-op threads per
        encoder call (0: every core, through ``workers``); ``spinning``: let idle worker threads
        spin (faster alone, slower when the process runs other thread pools); ``batch``: chunks
        per encoder call (0: 8 on CUDA, 1 on CPU); ``workers``: encoder calls at once (0: on the
        CPU with ``threads`` 0, one single-threaded call per core; otherwise 1).
        """
        return cls(load_pack(resolve_pack(pack)), SessionOptions(device, threads, spinning, batch, workers))

    @property
    def frame_rate(self) -> int:
        return self.pack.frame_rate

    def open(self, audio: AudioInput, name: str | None = None, raw_rate: int = RAW_RATE) -> AudioSource:
        """Decode an input: a path, bytes, ``(samples, sample_rate)``, or an AudioSource."""
        if isinstance(audio, AudioSource):
            return audio
        if isinstance(audio, (bytes, bytearray, memoryview)):
            return open_bytes(bytes(audio), name or "bytes", raw_rate)
        if isinstance(audio, tuple):
            samples, sample_rate = audio
            return from_array(samples, sample_rate, name or "array")
        return open_path(os.fspath(audio), raw_rate)

    def encode(self, audio: AudioInput, name: str | None = None, raw_rate: int = RAW_RATE) -> Iterator[Frame]:
        """Frames in time order, yielded as each chunk is done."""
        return self.frames(self.open(audio, name, raw_rate))

    def frames(self, source: AudioSource) -> Iterator[Frame]:
        metered = self.silence.meter(source)
        for chunk in self.pipeline.iter_chunks(metered, self._run, self.batch, self.workers):
            codes = self.silence.apply(metered, chunk.first_frame, {name: self.quantize(name, feats) for name, feats in chunk.streams.items()})
            for i in range(chunk.n_frames):
                index = chunk.first_frame + i
                yield Frame(
                    index,
                    frame_time(index, self.frame_rate),
                    tuple(int(c) for c in codes["S"][i]),
                    tuple(int(c) for c in codes["A"][i]),
                )

    def quantize(self, stream: str, features: np.ndarray) -> np.ndarray:
        return stream_codes(self.pack.streams[stream], features, self._norms[stream])

    def _run(self, encoder: str, waveform: np.ndarray) -> dict[str, np.ndarray]:
        enc = self.pack.encoders[encoder]
        return run_session(self._sessions[encoder], enc.input, self._outputs[encoder], waveform)
