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

from ..runtime.inputs.audio import AudioSource
from ..runtime.features import EncoderRun, FeaturePipeline
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
