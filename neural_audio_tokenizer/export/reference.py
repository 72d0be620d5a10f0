"""The torch reference pipeline: what a pack's tokens *should* be, computed without ONNX.

Everything except the encoder execution is the runtime's own code: a
``runtime.tokenizer.RunnerTokenizer`` over the same FeaturePipeline (resampling, chunking,
input normalization, pooling), the same normalization/projection/RVQ, the same token
stream and NDJSON writer. The encoders are the very LayerTaps modules that were exported, run by
torch in fp32 under ``inference_mode``. So a disagreement between reference and runtime
can only come from ONNX export or onnxruntime execution, which is what verification is for.

Which model and layers each pack encoder came from is read from the manifest's
``provenance.encoders`` (written by export/build.py); models can be overridden (a local
folder instead of the hub id).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import IO, Any

import numpy as np
import torch

from ..runtime.inputs.audio import AudioSource, open_path
from ..runtime.ndjson import write_ndjson
from ..runtime.pack import Pack, load_pack
from ..runtime.records import Frame, LineOptions
from ..runtime.tokenizer import RunnerTokenizer
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


class ReferenceTokenizer(RunnerTokenizer):
    """A Tokenizer whose encoders are the torch modules of a TorchRunner: its streams are
    exactly the runtime's (silence floor included), but for the encoder arithmetic."""


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
    pack = _pack(pack)
    runner = runner or TorchRunner(torch_modules(pack))
    write_ndjson(ReferenceTokenizer(pack, runner).stream(_source(source)), out, options)
