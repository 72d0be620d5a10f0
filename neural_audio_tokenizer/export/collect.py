"""Codebook training features, gathered through the runtime's own FeaturePipeline.

Codebooks must be fitted on exactly what tokenization will quantize, so training features
are not computed by a separate script: they come out of
:class:`~neural_audio_tokenizer.runtime.features.FeaturePipeline` (same resampling, chunking,
padding and pooling as the runtime). Only the encoder runner differs: onnxruntime here
(:func:`ort_runner`), torch for the export of learned models.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from ..runtime.audio import AudioSource
from ..runtime.features import EncoderInput, EncoderRun, FeaturePipeline, Route
from ..runtime.session import SessionOptions, create_session, run_session


def collect_features(pipeline: FeaturePipeline, run: EncoderRun, sources: Iterable[AudioSource]) -> dict[str, np.ndarray]:
    """Pooled features of every chunk of every source: {stream: [frames, dim] float64}, in order."""
    parts: dict[str, list[np.ndarray]] = {stream: [] for stream in pipeline.routes}
    for source in sources:
        for chunk in pipeline.iter_chunks(source, run):
            for stream, features in chunk.streams.items():
                parts[stream].append(features)
    if not any(parts.values()):
        raise ValueError("collect_features: the sources gave no frames")
    return {stream: np.concatenate(chunks, axis=0).astype(np.float64) for stream, chunks in parts.items()}


def ort_runner(encoders: Mapping[str, tuple[bytes, str, Sequence[str]]], threads: int = 2) -> EncoderRun:
    """An EncoderRun backed by onnxruntime CPU sessions built the way the runtime builds them.

    ``encoders``: {name: (model bytes, input name, output names)}."""
    options = SessionOptions(device="cpu", threads=threads)
    sessions = {name: (create_session(model, f"encoder {name!r}", options), inp, list(outs)) for name, (model, inp, outs) in encoders.items()}

    def run(name: str, waveform: np.ndarray) -> dict[str, np.ndarray]:
        session, inp, outs = sessions[name]
        return run_session(session, inp, outs, waveform)

    return run


def pipeline_for(encoders: Mapping[str, Mapping], streams: Mapping[str, Mapping], frame_rate: int, window_s: float, context_s: float) -> FeaturePipeline:
    """A FeaturePipeline from the same ``encoders``/``streams`` dicts that
    :func:`~neural_audio_tokenizer.export.pack_writer.write_pack` takes, for use before the pack exists."""
    inputs = {
        name: EncoderInput(name, int(e["sample_rate"]), int(e["hop"]), int(e["window"]), e.get("input_normalization", "none"))
        for name, e in encoders.items()
    }
    routes = {name: Route(s["encoder"], s["output"], s.get("pooling", "mean")) for name, s in streams.items()}
    return FeaturePipeline(inputs, routes, frame_rate, window_s, context_s)
