"""Named recipes for a pack: which pretrained encoder and which layers feed S and A.

Layer spans are transformers ``hidden_states`` indices (0: transformer input, i: output of
layer i), inclusive; a stream's feature is their mean. Why these layers (docs/presets.md):
probing studies of MERT find lower layers closest to acoustics (timbre, pitch, onsets) and
middle/upper layers closest to music semantics (key, genre, mood, structure); wav2vec2's
lower layers carry spectral/timbral and phonetic-acoustic detail. Every layer above the
deepest one a pack uses is cut from the exported graph, so spans are also a cost choice.

Encoder geometry (hop 320, window 400, sample rate) and input normalization are not
preset values: they are read from the model's own config and preprocessor_config.json
(export/models.py), so a preset cannot disagree with the checkpoint it names.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .models import ModelError

MERT_95M = "m-a-p/MERT-v1-95M"
MERT_330M = "m-a-p/MERT-v1-330M"
WAV2VEC2_BASE = "facebook/wav2vec2-base"

STREAM_OUTPUTS = {"S": "semantic", "A": "acoustic"}
LEVELS = 4
FRAME_RATE = 5
WINDOW_S = 10.0
CONTEXT_S = 1.0
CODEBOOK_SIZE = 256


@dataclass(frozen=True)
class StreamPlan:
    """Where one stream's features come from."""

    encoder: str  # encoder name in the pack
    model: str  # hub id or folder
    layers: tuple[int, int]


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    streams: dict[str, StreamPlan]
    frame_rate: int = FRAME_RATE
    window_s: float = WINDOW_S
    context_s: float = CONTEXT_S
    codebook_sizes: dict[str, int] = field(default_factory=lambda: {"S": CODEBOOK_SIZE, "A": CODEBOOK_SIZE})
    levels: int = LEVELS

    def encoders(self) -> dict[str, dict]:
        """{encoder name: {"model": source, "taps": {output: (first, last)}}}. Streams that
        name the same model share one encoder (one graph, run once, two outputs)."""
        out: dict[str, dict] = {}
        by_model: dict[str, str] = {}
        for stream, plan in self.streams.items():
            name = by_model.setdefault(plan.model, plan.encoder if plan.encoder not in out else f"{plan.encoder}_{stream.lower()}")
            entry = out.setdefault(name, {"model": plan.model, "taps": {}})
            entry["taps"][STREAM_OUTPUTS[stream]] = plan.layers
        return out

    def stream_encoder(self, stream: str) -> str:
        model = self.streams[stream].model
        return next(name for name, e in self.encoders().items() if e["model"] == model)


PRESETS = {
    "mert-w2v": Preset(
        "mert-w2v",
        "S: MERT-v1-95M layers 5-8 (music semantics); A: wav2vec2-base layers 1-4 (timbre, texture)",
        {"S": StreamPlan("mert", MERT_95M, (5, 8)), "A": StreamPlan("wav2vec2", WAV2VEC2_BASE, (1, 4))},
    ),
    "mert": Preset(
        "mert",
        "S: MERT-v1-95M layers 5-8; A: MERT-v1-95M layers 1-3; one encoder, run once",
        {"S": StreamPlan("mert", MERT_95M, (5, 8)), "A": StreamPlan("mert", MERT_95M, (1, 3))},
    ),
    "mert-large": Preset(
        "mert-large",
        "S: MERT-v1-330M layers 10-16; A: MERT-v1-330M layers 2-6; one encoder, run once",
        {"S": StreamPlan("mert", MERT_330M, (10, 16)), "A": StreamPlan("mert", MERT_330M, (2, 6))},
    ),
}
DEFAULT = "mert-w2v"


def get_preset(
    name: str,
    *,
    semantic_model: str | None = None,
    acoustic_model: str | None = None,
    semantic_layers: tuple[int, int] | None = None,
    acoustic_layers: tuple[int, int] | None = None,
    codebook_sizes: dict[str, int] | None = None,
    frame_rate: int | None = None,
) -> Preset:
    """A preset with command-line overrides applied."""
    if name not in PRESETS:
        raise ModelError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    preset = PRESETS[name]
    streams = dict(preset.streams)
    for stream, model, layers in (("S", semantic_model, semantic_layers), ("A", acoustic_model, acoustic_layers)):
        plan = streams[stream]
        streams[stream] = StreamPlan(plan.encoder, model or plan.model, layers or plan.layers)
    sizes = dict(preset.codebook_sizes)
    for stream, size in (codebook_sizes or {}).items():
        if size is not None:
            if not 2 <= size <= 65536:
                raise ModelError(f"codebook size {size} for {stream}: must be 2-65536")
            sizes[stream] = size
    rate = preset.frame_rate if frame_rate is None else frame_rate
    if rate < 1:
        raise ModelError(f"frame rate {rate}: must be a positive integer")
    return replace(preset, streams=streams, codebook_sizes=sizes, frame_rate=rate)
