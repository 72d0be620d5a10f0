"""The torch reference pipeline: what a pack's tokens *should* be, computed without ONNX.

Everything except the encoder execution is the runtime's own code: the same
FeaturePipeline (resampling, chunking, input normalization, pooling), the same
normalization/projection/RVQ (``runtime.tokenizer.stream_codes``), the same Frame records
and NDJSON writer. The encoders are the very LayerTaps modules that were exported, run by
torch in fp32 under ``inference_mode``. So a disagreement between reference and runtime
can only come from ONNX export or onnxruntime execution, which is what verification is for.

Which model and layers each pack encoder came from is read from the manifest's
``provenance.encoders`` (written by export/build.py); models can be overridden (a local
folder instead of the hub id).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import IO, Any

import numpy as np
import torch

from ..codebooks.quantize import code_norms
from ..runtime.audio import AudioSource, open_path
from ..runtime.features import EncoderInput, FeaturePipeline, Route
from ..runtime.pack import Pack, load_pack
from ..runtime.records import Frame, LineOptions, frame_time
from ..runtime.silence import SilenceGate
from ..runtime.tokenizer import stream_codes
from .models import ModelError, load_encoder
from .onnx_export import layer_taps


class TorchRunner:
    """``EncoderRun`` for FeaturePipeline: {encoder name: LayerTaps module}, fp32."""

    def __init__(self, modules: Mapping[str, Any], threads: int = 0) -> None:
        self.modules = dict(modules)
        if threads:
            torch.set_num_threads(threads)

    def __call__(self, encoder: str, waveform: np.ndarray) -> dict[str, np.ndarray]:
        """[samples] -> {output: [frames, dim]}; a batch [n, samples] -> [n, frames, dim]."""
        module = self.modules[encoder]
        x = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
        with torch.inference_mode():
            outs = module(x if x.ndim == 2 else x[None])
        return {name: (out if x.ndim == 2 else out[0]).numpy() for name, out in zip(module.names, outs)}


def pipeline_for(pack: Pack) -> FeaturePipeline:
    """The FeaturePipeline the runtime builds for ``pack`` (same arguments as Tokenizer)."""
    return FeaturePipeline(
        {n: EncoderInput(n, e.sample_rate, e.hop, e.window, e.input_normalization) for n, e in pack.encoders.items()},
        {n: Route(s.encoder, s.output, s.pooling) for n, s in pack.streams.items()},
        pack.frame_rate,
        pack.window_s,
        pack.context_s,
    )


def encoder_provenance(pack: Pack) -> dict[str, dict]:
    """{encoder: {"model", "revision", "layers": {output: [first, last]}, ...}} from the manifest."""
    prov = (pack.manifest.get("provenance") or {}).get("encoders")
    if not isinstance(prov, dict) or sorted(prov) != sorted(pack.encoders):
        raise ModelError(f"pack {pack.name!r}: manifest has no provenance.encoders for {sorted(pack.encoders)} (not built by nat-export?)")
    for name, entry in prov.items():
        layers = entry.get("layers") if isinstance(entry, dict) else None
        if not isinstance(layers, dict) or sorted(layers) != sorted(pack.encoders[name].outputs):
            raise ModelError(f"pack {pack.name!r}: provenance.encoders.{name}.layers must name every output of {name!r}")
    return prov


def torch_modules(pack: Pack, models: Mapping[str, str] | None = None) -> dict[str, Any]:
    """LayerTaps per pack encoder, loaded from provenance (or ``models[encoder]`` instead)."""
    modules = {}
    for name, entry in encoder_provenance(pack).items():
        source = (models or {}).get(name) or entry.get("model")
        if not source:
            raise ModelError(f"pack {pack.name!r}: encoder {name!r} records no model; pass one explicitly")
        loaded = load_encoder(source, None if (models or {}).get(name) else entry.get("revision"))
        enc = pack.encoders[name]
        if (loaded.sample_rate, loaded.hop, loaded.window) != (enc.sample_rate, enc.hop, enc.window):
            raise ModelError(f"model {source!r} ({loaded.sample_rate} Hz, hop {loaded.hop}) does not match pack encoder {name!r} ({enc.sample_rate} Hz, hop {enc.hop})")
        taps = {out: tuple(entry["layers"][out]) for out in enc.outputs}
        modules[name] = layer_taps(loaded.model, taps)
    return modules


class ReferenceTokenizer:
    """A Tokenizer look-alike whose encoders are torch modules: feeds the runtime's NDJSON
    writer, so reference output is in exactly the runtime's format."""

    def __init__(self, pack: Pack, runner: TorchRunner) -> None:
        self.pack = pack
        self.runner = runner
        self.pipeline = pipeline_for(pack)
        self._norms = {name: code_norms(s.codebooks) for name, s in pack.streams.items()}

        def quantize(stream: str, features: np.ndarray) -> np.ndarray:
            return stream_codes(pack.streams[stream], features, self._norms[stream])

        first = next(iter(pack.encoders.values()))
        self.silence = SilenceGate.for_pipeline(pack.silence_floor_dbfs, self.pipeline, runner, quantize, first.sample_rate)

    @property
    def frame_rate(self) -> int:
        return self.pack.frame_rate

    def frames(self, source: AudioSource) -> Iterator[Frame]:
        metered = self.silence.meter(source)
        for chunk in self.pipeline.iter_chunks(metered, self.runner):
            codes = self.silence.apply(metered, chunk.first_frame, {n: stream_codes(self.pack.streams[n], f, self._norms[n]) for n, f in chunk.streams.items()})
            for i in range(chunk.n_frames):
                index = chunk.first_frame + i
                yield Frame(index, frame_time(index, self.frame_rate), tuple(int(c) for c in codes["S"][i]), tuple(int(c) for c in codes["A"][i]))


def _pack(pack: str | os.PathLike | Pack) -> Pack:
    return pack if isinstance(pack, Pack) else load_pack(pack)


def _source(source: str | os.PathLike | AudioSource) -> AudioSource:
    return source if isinstance(source, AudioSource) else open_path(os.fspath(source))


def reference_frames(
    pack: str | os.PathLike | Pack,
    source: str | os.PathLike | AudioSource,
    runner: TorchRunner | None = None,
    models: Mapping[str, str] | None = None,
) -> list[Frame]:
    """Torch-reference frames for one input (models from provenance unless ``runner`` given)."""
    pack = _pack(pack)
    runner = runner or TorchRunner(torch_modules(pack, models))
    return list(ReferenceTokenizer(pack, runner).frames(_source(source)))


def write_reference_ndjson(
    pack: str | os.PathLike | Pack,
    source: str | os.PathLike | AudioSource,
    out: IO[str],
    runner: TorchRunner | None = None,
    options: LineOptions = LineOptions(),
) -> None:
    """The reference tokens as NDJSON, through the runtime's own writer."""
    from ..runtime.ndjson import write_ndjson

    pack = _pack(pack)
    runner = runner or TorchRunner(torch_modules(pack))
    write_ndjson(ReferenceTokenizer(pack, runner), _source(source), out, options)
