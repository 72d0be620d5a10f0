"""Tiny seeded random-weight encoders saved the way the real hub repositories store them.

Real conv strides and kernels (hop 320, window 400) with small widths, so every code path
of the export side (config translation, strict loading, weight-norm folding, layer taps,
ONNX export, pack geometry) runs as it does for the full-size models, in milliseconds.

- ``save_tiny_mert``: a MERT-v1-style repo: ``config.json`` with MERT's key names
  (model_type "mert_model", MERTModel, feature_extractor_cqt, deepnorm, attention_relax,
  sample_rate 24000), ``preprocessor_config.json`` (do_normalize true), and weights with
  top-level keys and the positional conv as ``weight_g``/``weight_v``, as MERT-v1-95M's
  ``pytorch_model.bin`` was saved by transformers 4.25.
- ``save_tiny_wav2vec2``: a wav2vec2-base-style repo: ``Wav2Vec2ForPreTraining`` weights
  (``wav2vec2.`` prefix, quantizer heads, weight_g/weight_v) in ``pytorch_model.bin``,
  16 kHz, do_normalize true.
"""

from __future__ import annotations

import json
from pathlib import Path

CONV = dict(conv_dim=[16] * 7, conv_stride=[5, 2, 2, 2, 2, 2, 2], conv_kernel=[10, 3, 3, 3, 3, 2, 2])


def _shape(hidden: int, layers: int) -> dict:
    """What both tiny encoders share: a small transformer on the seven-layer conv stack."""
    return dict(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        attn_implementation="eager",
        **CONV,
    )


def hubert_config(hidden: int = 32, layers: int = 4, stable: bool = False):
    from transformers import HubertConfig

    return HubertConfig(
        do_stable_layer_norm=stable,
        feat_extract_norm="layer" if stable else "group",
        conv_bias=stable,
        feat_proj_layer_norm=True,
        **_shape(hidden, layers),
    )


def mert_config_json(config, **overrides) -> dict:
    """A MERT-v1 config.json for a HubertConfig: MERT's keys and values, as released."""
    d = {k: v for k, v in config.to_dict().items() if not k.startswith("_") and k not in ("transformers_version", "model_type", "architectures")}
    d.update(
        {
            "architectures": ["MERTModel"],
            "auto_map": {"AutoConfig": "configuration_MERT.MERTConfig", "AutoModel": "modeling_MERT.MERTModel"},
            "model_type": "mert_model",
            "feature_extractor_cqt": False,
            "feature_extractor_cqt_bins": 336,
            "deepnorm": False,
            "attention_relax": -1.0,
            "sample_rate": 24000,
            "transformers_version": "4.25.1",
            "torch_dtype": "float32",
        }
    )
    d.pop("attn_implementation", None)
    d.update(overrides)
    return d


def checkpoint_state_dict(model, old_style: bool = True) -> dict:
    """The model's state dict; ``old_style``: the positional conv's weight norm as
    weight_g / weight_v (how torch < 2.1 saved it), else parametrizations.weight.original0/1."""
    out = {}
    for k, v in model.state_dict().items():
        if old_style:
            k = k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v")
        out[k] = v.clone().contiguous()
    return out


def save_tiny_mert(
    folder: Path, seed: int = 1, layers: int = 4, stable: bool = False, fmt: str = "bin", prefix: str = "", old_style: bool = True, hidden: int = 32, **config_overrides
):
    """Write a tiny MERT-style repo to ``folder``; returns the HubertModel it holds."""
    import torch
    from transformers import HubertModel

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = hubert_config(hidden=hidden, layers=layers, stable=stable)
    model = HubertModel(config).eval()
    state = {prefix + k: v for k, v in checkpoint_state_dict(model, old_style).items()}
    if fmt == "bin":
        torch.save(state, folder / "pytorch_model.bin")
    else:
        from safetensors.torch import save_file

        save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(mert_config_json(config, **config_overrides), indent=2))
    pre = {"do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1, "padding_side": "right", "padding_value": 0, "return_attention_mask": True, "sampling_rate": 24000}
    (folder / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))
    return model


def save_tiny_wav2vec2(folder: Path, seed: int = 2, layers: int = 3, hidden: int = 32, old_style: bool = True):
    """Write a tiny wav2vec2-base-style repo (pretraining checkpoint); returns its Wav2Vec2Model.
    ``old_style``: ``pytorch_model.bin`` with weight_g/weight_v, as facebook/wav2vec2-base
    stores it; else transformers' current ``model.safetensors``."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2ForPreTraining

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = Wav2Vec2Config(codevector_dim=16, proj_codevector_dim=16, num_codevectors_per_group=8, **_shape(hidden, layers))
    model = Wav2Vec2ForPreTraining(config).eval()
    model.save_pretrained(folder)
    if old_style:
        from safetensors.torch import load_file

        state = load_file(str(folder / "model.safetensors"))
        (folder / "model.safetensors").unlink()
        state = {k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v"): v for k, v in state.items()}
        torch.save(state, folder / "pytorch_model.bin")
    pre = {"do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1, "padding_side": "right", "padding_value": 0.0, "return_attention_mask": False, "sampling_rate": 16000}
    (folder / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))
    return model.wav2vec2
