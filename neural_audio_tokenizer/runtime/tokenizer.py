"""The public API: load a pack once, then turn any number of inputs into token streams.

    from neural_audio_tokenizer import Tokenizer
    tok = Tokenizer.load()                      # the built-in pack, CPU
    stream = tok.stream("song.flac")            # header, frames as chunks finish, stats
    for frame in stream.frames:
        print(frame.t, frame.S, frame.A)

A Tokenizer holds immutable arrays and onnxruntime sessions (whose ``run`` is thread-safe),
so one instance may serve several threads at once, as desktop apps need.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Union

import numpy as np

from ..codebooks.quantize import code_norms, quantize
from ..packs import resolve_pack
from .inputs.audio import AudioSource, from_array, open_bytes, open_path
from .inputs.limits import RAW_RATE
from .inputs.piped import PipedSource
from .engine import Engine
from .features import ChunkFeatures, EncoderRun, pipeline_for
from .header import make_header
from .live import LiveStream, live_chunking
from .pack import Pack, StreamSpec, load_pack
from .records import Frame, frame_time
from .session import SessionOptions, create_session, parallelism, resolve_device, run_session
from .silence import SilenceGate
from .stream import TokenStream, counted

AudioInput = Union[str, os.PathLike, bytes, tuple, AudioSource, PipedSource]


def stream_codes(spec: StreamSpec, features: np.ndarray, norms: np.ndarray | None = None, exclude: np.ndarray | None = None) -> np.ndarray:
    """Pooled features [frames, dim] -> codes [frames, levels]: normalize, project, RVQ.

    ``spec``: the pack's stream (normalization, projection, codebooks); ``norms``: the
    codebooks' precomputed code norms (codebooks.code_norms), computed here if None;
    ``exclude``: level-0 code indices the frames may not take."""
    x = (features - spec.mean) * spec.scale
    if spec.projection is not None:
        x = x @ spec.projection
    return quantize(x, spec.codebooks, norms, exclude)


class Tokenizer:
    """Audio -> token streams of S and A frames, with one verified pack."""

    def __init__(self, pack: Pack, options: SessionOptions | None = None) -> None:
        self.options = options or SessionOptions()
        self.device = resolve_device(self.options.device)
        # A GPU is starved by one chunk per call; on the CPU one chunk streams the first frames sooner.
        self.batch = self.options.batch or (8 if self.device == "cuda" else 1)
        self.workers, threads = parallelism(self.options, self.device)
        session_options = dataclasses.replace(self.options, device=self.device, threads=threads)
        # onnxruntime loads models with the GIL released, so the sessions are built at once;
        # results and the first failure still come in manifest order.
        with ThreadPoolExecutor(len(pack.encoders)) as pool:
            made = pool.map(lambda enc: create_session(enc.model_bytes, enc.file, session_options), pack.encoders.values())
            self._sessions = dict(zip(pack.encoders, made))
        self._outputs = {name: list(enc.outputs) for name, enc in pack.encoders.items()}
        # The sessions hold the models now: a second copy of a neural pack's bytes would be waste.
        self._prepare(dataclasses.replace(pack, encoders={n: dataclasses.replace(e, model_bytes=b"") for n, e in pack.encoders.items()}))

    def _prepare(self, pack: Pack) -> None:
        """What every way of running the encoders shares: the pack, its pipelines, its code
        norms, its silence codes (computed with ``run_encoder``, which must work by now)."""
        self.pack = pack
        self.pipeline = pipeline_for(pack)
        self.live_pipeline = self.pipeline.with_chunking(live_chunking(pack))  # short chunks where the pack allows (live.py)
        self._norms = {name: code_norms(s.codebooks) for name, s in pack.streams.items()}
        first = next(iter(pack.encoders.values()))
        self.silence = SilenceGate.for_pipeline(pack.silence_floor_dbfs, self.pipeline, self.run_encoder, self.quantize, first.sample_rate)

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
        """Pack frames per second."""
        return self.pack.frame_rate

    def open(self, audio: AudioInput, name: str | None = None, raw_rate: int = RAW_RATE) -> AudioSource | PipedSource:
        """Decode an input: a path, bytes, ``(samples, sample_rate)``, an AudioSource, or a
        PipedSource (a part of a pipe, decoded as its bytes arrive).

        ``name``: what the header calls bytes or an array (a path names itself);
        ``raw_rate``: the sample rate of input no decoder recognizes, read as raw s16le PCM."""
        if isinstance(audio, (AudioSource, PipedSource)):
            return audio
        if isinstance(audio, (bytes, bytearray, memoryview)):
            return open_bytes(bytes(audio), name or "bytes", raw_rate)
        if isinstance(audio, tuple):
            samples, sample_rate = audio
            return from_array(samples, sample_rate, name or "array")
        return open_path(os.fspath(audio), raw_rate)

    def stream(self, audio: AudioInput, name: str | None = None, raw_rate: int = RAW_RATE) -> TokenStream:
        """One input's token stream: its header now, frames as each chunk is done, then stats.

        Arguments as for :meth:`open`. Decoding errors raise InputError, here or while the
        frames are iterated (after the frames decoded before the damage)."""
        source = self.open(audio, name, raw_rate)
        if isinstance(source, PipedSource):
            return self._piped_stream(source)
        return token_stream(self.pack, source, self.frames(source))

    def encode(self, audio: AudioInput, name: str | None = None, raw_rate: int = RAW_RATE) -> Iterator[Frame]:
        """Just the frames of :meth:`stream`, in time order, yielded as each chunk is done."""
        return self.frames(self.open(audio, name, raw_rate))

    def live(self, sample_rate: int, channels: int = 1, name: str = "live") -> LiveStream:
        """A live input fed by the caller: ``push(samples)`` queues audio as it is recorded and
        returns at once, ``read()`` gives the frames made final so far, ``close()`` the rest:
        the frames :meth:`encode` gives for the whole recording, each as soon as its audio and
        context are in (runtime/live.py)."""
        return LiveStream(self, sample_rate, channels, name)

    def engine(self, sample_rate: int, live: bool = False) -> Engine:
        """A streaming engine for one input of mono samples at ``sample_rate``: the file's
        chunking and parallelism, or (``live``) live chunking, one chunk at a time."""
        if live:
            return Engine(self, self.live_pipeline, sample_rate, split=True)
        return Engine(self, self.pipeline, sample_rate, batch=self.batch, workers=self.workers)

    def frames(self, source: AudioSource | PipedSource) -> Iterator[Frame]:
        """The frames of a decoded input (``source`` is read once, as they are iterated)."""
        if isinstance(source, PipedSource):
            return self._piped_stream(source).frames
        return self.engine(source.info.sample_rate).run(source.blocks())

    def _piped_stream(self, source: PipedSource) -> TokenStream:
        """A part of a pipe: decoded whole (formats libsndfile must seek), or its samples pushed
        into a live-chunked engine as its bytes arrive; the header cannot know the part's size,
        hash or duration yet, its stats line carries them (docs/ndjson.md)."""
        if source.source is not None:
            return self.stream(source.source)
        fmt = source.format
        header = make_header(
            self.pack,
            name=source.name,
            decoder="raw" if fmt.label == "s16le" else "stream",
            format=fmt.label,
            sample_rate=fmt.sample_rate,
            channels=fmt.channels,
        )
        engine = self.engine(fmt.sample_rate, live=True)

        def frames() -> Iterator[Frame]:
            for block in source.blocks():
                yield from engine.push(block)
            yield from engine.finish()
            source.check_end()

        def finish() -> dict:
            return {"samples": source.samples, "sample_rate": fmt.sample_rate, "nonfinite_samples": source.damage.nonfinite, **source.identity()}

        return counted(header, frames(), finish)

    def chunk_frames(self, chunk: ChunkFeatures, silent: np.ndarray | None = None, measured: tuple[list[int], list[int]] | None = None) -> list[Frame]:
        """A chunk's Frames: each stream quantized; the frames ``silent`` marks ([n] bool:
        below the silence floor) get the pack's silence codes, and ``measured`` gives each
        frame its level (dBFS) and hits (silence.LevelMeter)."""
        codes = {name: self.quantize(name, feats) for name, feats in chunk.streams.items()}
        if silent is not None:
            spec = self.pack.streams["S"]
            codes = self.silence.keep_apart(
                silent, codes, spec.codebooks[0], lambda rows, excluded: stream_codes(spec, chunk.streams["S"][rows], self._norms["S"], excluded)
            )
            codes = self.silence.apply(silent, codes)
        levels, hits = measured if measured is not None else ([None] * chunk.n_frames, [None] * chunk.n_frames)
        return [
            Frame(
                index,
                frame_time(index, self.frame_rate),
                tuple(int(c) for c in codes["S"][i]),
                tuple(int(c) for c in codes["A"][i]),
                levels[i],
                hits[i],
            )
            for i, index in enumerate(range(chunk.first_frame, chunk.first_frame + chunk.n_frames))
        ]

    def quantize(self, stream: str, features: np.ndarray) -> np.ndarray:
        """Codes [frames, levels] of stream ``stream`` ("S" or "A") for pooled ``features`` [frames, dim]."""
        return stream_codes(self.pack.streams[stream], features, self._norms[stream])

    def run_encoder(self, encoder: str, waveform: np.ndarray) -> Mapping[str, np.ndarray]:
        """Encoder ``encoder``'s outputs for one waveform (or a [batch, samples] stack)."""
        enc = self.pack.encoders[encoder]
        return run_session(self._sessions[encoder], enc.input, self._outputs[encoder], waveform)


class RunnerTokenizer(Tokenizer):
    """A Tokenizer whose encoders run elsewhere: ``run(encoder, waveform)`` instead of
    onnxruntime sessions (the export side's torch reference). One call at a time."""

    def __init__(self, pack: Pack, run: EncoderRun) -> None:
        self._runner = run
        self.batch, self.workers = 1, 1
        self._prepare(pack)

    def run_encoder(self, encoder: str, waveform: np.ndarray) -> Mapping[str, np.ndarray]:
        return self._runner(encoder, waveform)


def token_stream(pack: Pack, source: AudioSource, frames: Iterator[Frame]) -> TokenStream:
    """The stream of ``source`` tokenized with ``pack``: the header from both, stats counted
    as ``frames`` pass."""
    info = source.info
    header = make_header(
        pack,
        name=info.name,
        bytes=info.bytes,
        sha256=info.sha256,
        decoder=info.decoder,
        format=info.format,
        sample_rate=info.sample_rate,
        channels=info.channels,
        duration_s=info.duration_s,
    )
    return counted(
        header,
        frames,
        lambda: {"samples": source.decoded, "sample_rate": info.sample_rate, "nonfinite_samples": source.damage.nonfinite},
    )
