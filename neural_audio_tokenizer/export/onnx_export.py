"""Turn a pretrained encoder into the ONNX graph a pack ships: only the outputs the pack uses.

:class:`LayerTaps` wraps a Wav2Vec2Model/HubertModel so that its outputs are exactly the
pack's stream features: for each named output, the mean of the transformers
``hidden_states[first..last]`` (index 0 is the transformer input, i the output of layer i,
the same numbering ``output_hidden_states=True`` gives). Layers after the deepest one used
are dropped from the module, so the exported graph never computes them: with the default
presets this is the largest speed lever there is (half of wav2vec2-base's layers are
never run). The same wrapper is the torch reference (export/reference.py), so reference
and pack differ only by the runtime executing them.

Export is torch.onnx's TorchScript exporter (``dynamo=False``), opset 17, dynamic batch and
time axes. Measured on full-size models: ~10 s per model, ORT matches torch to ~6e-6.
The file is self-contained (no external data): the runtime loads verified bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import torch

from .models import ModelError

OPSET = 17
INPUT = "waveform"


def parse_span(text: str) -> tuple[int, int]:
    """'6-8' -> (6, 8); '4' -> (4, 4). Hidden-state indices, inclusive."""
    try:
        parts = [int(p) for p in str(text).split("-")]
    except ValueError:
        raise ModelError(f"layer span {text!r}: expected FIRST-LAST, e.g. 6-8") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or parts[0] < 0 or parts[1] < parts[0]:
        raise ModelError(f"layer span {text!r}: expected FIRST-LAST with 0 <= FIRST <= LAST")
    return parts[0], parts[1]


class LayerTaps(torch.nn.Module):
    """waveform [batch, samples] -> one [batch, frames, hidden] tensor per tap."""

    def __init__(self, model, taps: Mapping[str, tuple[int, int]]) -> None:
        super().__init__()
        cfg = model.config
        n_layers = int(cfg.num_hidden_layers)
        if not taps:
            raise ModelError("an encoder needs at least one output")
        for name, (first, last) in taps.items():
            if not 0 <= first <= last <= n_layers:
                raise ModelError(f"output {name!r}: layers {first}-{last} outside 0-{n_layers} of this {n_layers}-layer model")
        self.names = list(taps)
        self.spans = [tuple(taps[n]) for n in self.names]
        self.depth = max(last for _, last in self.spans)
        self.stable = bool(cfg.do_stable_layer_norm)
        # Pre-LN ("stable") encoders apply their final LayerNorm only to the last hidden
        # state; transformers' hidden_states[n_layers] includes it, earlier ones do not.
        self.final_norm = self.stable and self.depth == n_layers
        self.feature_extractor = model.feature_extractor
        self.feature_projection = model.feature_projection
        self.pos_conv_embed = model.encoder.pos_conv_embed
        self.layer_norm = model.encoder.layer_norm
        self.layers = torch.nn.ModuleList(list(model.encoder.layers)[: self.depth])
        self.eval()

    def forward(self, waveform):
        x = self.feature_extractor(waveform).transpose(1, 2)
        x = self.feature_projection(x)
        if isinstance(x, tuple):  # Wav2Vec2FeatureProjection also returns its normed input
            x = x[0]
        x = x + self.pos_conv_embed(x)
        if not self.stable:
            x = self.layer_norm(x)
        sums = [None] * len(self.spans)

        def take(index, state):
            for k, (first, last) in enumerate(self.spans):
                if first <= index <= last:
                    sums[k] = state if sums[k] is None else sums[k] + state

        take(0, x)
        for i, layer in enumerate(self.layers, start=1):
            x = layer(x)[0]
            take(i, self.layer_norm(x) if self.final_norm and i == self.depth else x)
        return tuple(s / float(last - first + 1) for s, (first, last) in zip(sums, self.spans))


def layer_taps(model, taps: Mapping[str, tuple[int, int]]):
    """The export/reference wrapper for ``model`` with outputs ``{name: (first, last)}``."""
    return LayerTaps(model, taps)


def export_onnx(wrapper, sample_rate: int, opset: int = OPSET) -> bytes:
    """ONNX bytes of ``wrapper``: input ``waveform`` [batch, samples], outputs named after the
    taps [batch, frames, hidden]; checked with onnx.checker, no external data."""
    import onnx

    dummy = torch.zeros(1, 2 * sample_rate)
    dummy[0] = torch.sin(torch.arange(2 * sample_rate) * 0.05)  # any audio; shapes are dynamic
    dynamic = {INPUT: {0: "batch", 1: "samples"}}
    dynamic.update({name: {0: "batch", 1: "frames"} for name in wrapper.names})
    buf = io.BytesIO()
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            wrapper,
            (dummy,),
            buf,
            input_names=[INPUT],
            output_names=list(wrapper.names),
            dynamic_axes=dynamic,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    data = buf.getvalue()
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        raise ModelError("exported ONNX model refers to external data; packs need self-contained models")
    return data


def quantize_int8(model_bytes: bytes) -> bytes:
    """Optional variant: onnxruntime dynamic int8 quantization of MatMul weights only, so
    LayerNorm, convolutions and softmax stay fp32. Never the default; a pack built with it
    records the token agreement it measured against the fp32 torch reference."""
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(model_bytes)
        quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8)
        return dst.read_bytes()


# Normalization and its reductions stay fp32: their sums over hundreds of channels are
# where half precision loses most, and they are cheap.
FP16_KEEP_FP32 = ["LayerNormalization", "GroupNormalization", "InstanceNormalization", "ReduceMean", "Pow", "Sqrt", "Div", "Softmax", "Erf"]


def convert_fp16(model_bytes: bytes) -> bytes:
    """Optional variant for GPUs: weights and most ops in float16 by onnxruntime's own
    converter, with float32 input/output and the ops in ``FP16_KEEP_FP32`` kept float32.
    Never the default; a pack built with it records the agreement it measured (on the CPU
    provider, which runs the same graph through casts)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load_from_string(model_bytes), keep_io_types=True, op_block_list=FP16_KEEP_FP32)
    _sort_nodes(model.graph)  # the converter appends its input casts at the end of the node list
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _sort_nodes(graph) -> None:
    """Order ``graph.node`` so every node comes after the producers of its inputs (stable)."""
    known = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            raise ModelError("fp16 conversion produced a graph with a cycle or a missing input")
        for node in ready:
            known.update(node.output)
        ordered += ready
        taken = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in taken]
    del graph.node[:]
    graph.node.extend(ordered)


def onnx_opset(model_bytes: bytes) -> int:
    import onnx

    model = onnx.load_from_string(model_bytes)
    return max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
