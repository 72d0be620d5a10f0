"""Load the pretrained encoders a pack is built from: Wav2Vec2 and MERT-v1, in torch, fp32.

One code path for a Hugging Face id and a local folder: a hub id is first turned into a
local snapshot folder (``huggingface_hub.snapshot_download``, only when ``source`` is not
an existing folder), then the folder is loaded. Nothing here downloads when given a folder.

MERT-v1 is loaded *without* ``trust_remote_code``: its released configs (CQT branch and
deepnorm off) describe exactly a HuBERT network, so the MERT ``config.json`` is translated
key by key into a transformers ``HubertConfig`` and the weights are loaded into
``HubertModel`` strictly: every parameter must come from the checkpoint and every
checkpoint tensor must land somewhere, so a renamed key can never leave a layer silently at
its random initialization (a known failure of loading MERT with mismatched transformers
versions). The positional convolution's weight norm (stored as ``weight_g``/``weight_v`` or
``parametrizations.weight.original0/1``) is folded into one plain weight, which is also
what the ONNX export wants: a constant, not a norm recomputed on every run.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EXIT_USAGE, NatError
from ..runtime.inputs.audio import sha256_file

CONFIG = "config.json"
PREPROCESSOR = "preprocessor_config.json"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
POS_CONV = "encoder.pos_conv_embed.conv"
# Prefixes a MERT checkpoint's keys may carry when saved from a wrapper around the backbone
# (``MERTModel.base_model_prefix``); stripped explicitly, anything else must match exactly.
MERT_PREFIXES = ("mert_model.",)


class ModelError(NatError):
    """An encoder could not be found, translated or loaded (exit 2)."""

    exit_code = EXIT_USAGE
    kind = "model"


@dataclass
class LoadedEncoder:
    """A pretrained encoder ready to wrap and export, with what the pack must record about it."""

    model: Any  # transformers Wav2Vec2Model | HubertModel, eval mode, fp32, weight norm folded
    kind: str  # "wav2vec2" | "hubert" | "mert"
    source: str  # the id or folder as given
    model_id: str  # for the manifest: hub id (also recovered from a hub cache folder), else the folder as given, never absolute
    revision: str | None  # hub commit hash when known
    sample_rate: int
    input_normalization: str  # "none" | "zero_mean_unit_variance"
    hop: int
    window: int
    num_layers: int
    hidden_size: int
    weights: dict[str, str] = field(default_factory=dict)  # weight file name -> sha256
    notes: list[str] = field(default_factory=list)


def conv_geometry(kernels: list[int], strides: list[int]) -> tuple[int, int]:
    """(hop, window) of a strided conv stack: frames = (samples - window) // hop + 1 exactly,
    since nested floor divisions by integers compose into one."""
    hop, window = 1, 1
    for k, s in zip(kernels, strides):
        window += (k - 1) * hop
        hop *= s
    return hop, window


def _is_commit(text: str) -> bool:
    return bool(re.fullmatch(r"[0-9a-f]{40}", text))


def model_id(source: str, folder: Path) -> str:
    """What the manifest records as the model: the hub id when known (a hub cache snapshot
    folder ``models--OWNER--NAME/snapshots/COMMIT`` names its repository), otherwise the
    folder as given, reduced to its name if absolute so manifests do not vary by machine."""
    if not Path(os.path.expanduser(source)).is_dir():
        return source
    resolved = folder.resolve()
    repo = resolved.parent.parent.name
    if resolved.parent.name == "snapshots" and repo.startswith("models--") and repo.count("--") == 2:
        return "/".join(repo.split("--")[1:])
    return resolved.name if os.path.isabs(os.path.expanduser(source)) else source


def resolve_source(source: str, revision: str | None = None) -> tuple[Path, str | None]:
    """A local folder for ``source`` and the hub commit it came from (None when unknown).

    A folder is used as it is (a hub cache snapshot folder is named by its commit). Anything
    else is taken as a hub id and fetched with ``snapshot_download``: config, preprocessor
    config and one weights format (safetensors preferred), never both. When the hub cannot
    be reached, a snapshot already in the local cache is used.
    """
    path = Path(os.path.expanduser(source))
    if path.is_dir():
        return path, path.resolve().name if _is_commit(path.resolve().name) else None
    if path.exists():
        raise ModelError(f"model {source!r}: not a folder (give a model folder or a Hugging Face id)")
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", source):
        raise ModelError(f"model {source!r}: no such folder, and not a Hugging Face id (owner/name)")
    try:
        from huggingface_hub import list_repo_files, snapshot_download
    except ImportError:
        raise ModelError(f"model {source!r}: downloading needs huggingface_hub (pip install 'neural-audio-tokenizer[export]')") from None
    try:
        files = set(list_repo_files(source, revision=revision))
    except Exception as exc:  # offline or hub unreachable: a snapshot already in the cache will do
        try:
            folder = Path(snapshot_download(source, revision=revision, allow_patterns=[CONFIG, PREPROCESSOR, *WEIGHT_FILES, "*.safetensors", "*.bin"], local_files_only=True))
        except Exception:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"model {source!r}: download failed ({reason})") from None
        return folder, folder.name if _is_commit(folder.name) else None
    try:
        weights = next((w for w in WEIGHT_FILES if w in files), None)
        if weights is None:
            raise ModelError(f"model {source!r}: the repository has none of {', '.join(WEIGHT_FILES)}")
        patterns = [CONFIG, PREPROCESSOR, weights]
        if weights.endswith(".index.json"):
            patterns.append(weights.split(".index.json")[0].replace(".safetensors", "-*.safetensors").replace(".bin", "-*.bin"))
        folder = Path(snapshot_download(source, revision=revision, allow_patterns=patterns))
    except ModelError:
        raise
    except Exception as exc:  # network, auth, missing repo: all mean "cannot get the model"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"model {source!r}: download failed ({reason})") from None
    return folder, folder.name if _is_commit(folder.name) else None


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{what}: cannot read {path.name} ({exc})") from None
    if not isinstance(data, dict):
        raise ModelError(f"{what}: {path.name} is not a JSON object")
    return data


def weight_files(folder: Path) -> list[Path]:
    """The checkpoint files of a folder: one file, or the shards its index names."""
    for name in WEIGHT_FILES:
        path = folder / name
        if not path.is_file():
            continue
        if name.endswith(".index.json"):
            index = _read_json(path, f"model {folder}")
            shards = sorted(set(index.get("weight_map", {}).values()))
            if not shards:
                raise ModelError(f"model {folder}: {name} names no shards")
            missing = [s for s in shards if not (folder / s).is_file()]
            if missing:
                raise ModelError(f"model {folder}: missing shard {missing[0]}")
            return [folder / s for s in shards]
        return [path]
    raise ModelError(f"model {folder}: no weights ({' or '.join(WEIGHT_FILES)})")


def read_state_dict(files: list[Path]) -> dict:
    """All tensors of a checkpoint, on CPU, floating ones as float32. No pickled code runs:
    ``.bin`` files are read with ``weights_only=True``."""
    import torch

    state: dict = {}
    for path in files:
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                part = load_file(str(path), device="cpu")
            else:
                part = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ModelError(f"model weights {path.name}: cannot be read ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
        if not isinstance(part, dict):
            raise ModelError(f"model weights {path.name}: not a state dict")
        state.update(part)
    return {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}


def translate_mert_config(mert: dict) -> Any:
    """A transformers ``HubertConfig`` equal to a MERT-v1 ``config.json``; refuses the MERT
    variants that are not HuBERT (CQT input branch, deepnorm residual scaling)."""
    from transformers import HubertConfig

    if mert.get("feature_extractor_cqt"):
        raise ModelError("MERT config has feature_extractor_cqt on: its CQT input branch (nnAudio) is not HuBERT and cannot be exported; use a released MERT-v1 checkpoint")
    if mert.get("deepnorm"):
        raise ModelError("MERT config has deepnorm on: its scaled residuals are not HuBERT and cannot be exported; use a released MERT-v1 checkpoint")
    known = set(HubertConfig().to_dict())
    kwargs = {k: v for k, v in mert.items() if k in known and not k.startswith("_")}
    for k in ("architectures", "auto_map", "model_type", "transformers_version", "torch_dtype", "dtype"):
        kwargs.pop(k, None)
    try:
        config = HubertConfig(**kwargs, attn_implementation="eager")
    except (TypeError, ValueError) as exc:
        raise ModelError(f"MERT config cannot be translated to HuBERT: {exc}") from None
    return config


def fold_weight_norm(g: Any, v: Any) -> Any:
    """``g * v / ||v||`` as one float32 tensor, the norm taken over every dimension where
    ``g`` has size 1 (torch's weight_norm keeps ``g`` full-size only along its ``dim``).

    Computed in numpy float64: torch's own reduction splits work by thread count, so the
    folded weight (and the exported graph's bytes) would change with ``torch.set_num_threads``.
    """
    import torch

    gn = g.detach().cpu().double().numpy()
    vn = v.detach().cpu().double().numpy()
    dims = tuple(i for i in range(vn.ndim) if gn.shape[i] == 1) if gn.ndim == vn.ndim else tuple(range(vn.ndim))
    norm = np.sqrt(np.sum(vn * vn, axis=dims, keepdims=True))
    return torch.from_numpy((gn * vn / norm).astype(np.float32))


def normalize_checkpoint_keys(state: dict) -> dict:
    """MERT checkpoint keys -> HubertModel keys: strip the MERT wrapper prefix, fold the
    positional conv's weight norm into ``weight``. Every other key passes unchanged."""
    out = {}
    for key, value in state.items():
        for prefix in MERT_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    pairs = (("weight_g", "weight_v"), ("parametrizations.weight.original0", "parametrizations.weight.original1"))
    for g_name, v_name in pairs:
        g_key, v_key = f"{POS_CONV}.{g_name}", f"{POS_CONV}.{v_name}"
        if g_key in out and v_key in out:
            if f"{POS_CONV}.weight" in out:
                raise ModelError(f"MERT checkpoint holds both {POS_CONV}.weight and {g_name}/{v_name}")
            out[f"{POS_CONV}.weight"] = fold_weight_norm(out.pop(g_key), out.pop(v_key))
    return out


def remove_weight_norm(model: Any) -> None:
    """Replace the positional conv's weight norm by one plain weight, folded deterministically
    (see :func:`fold_weight_norm`). On a meta-device model only the structure changes: the
    folded weight then comes from the checkpoint (:func:`normalize_checkpoint_keys`)."""
    import torch

    conv = model.encoder.pos_conv_embed.conv
    if torch.nn.utils.parametrize.is_parametrized(conv, "weight"):
        g, v = conv.parametrizations.weight.original0, conv.parametrizations.weight.original1
        torch.nn.utils.parametrize.remove_parametrizations(conv, "weight", leave_parametrized=True)
    elif hasattr(conv, "weight_g"):
        g, v = conv.weight_g, conv.weight_v
        torch.nn.utils.remove_weight_norm(conv)
    else:
        return
    if not v.is_meta:
        with torch.no_grad():
            conv.weight.copy_(fold_weight_norm(g, v))


def load_strict(model: Any, state: dict, what: str) -> None:
    """``load_state_dict(strict=True)`` with a one-line error naming what did not match."""
    expected = set(model.state_dict())
    got = set(state)
    missing, unexpected = sorted(expected - got), sorted(got - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise ModelError(f"{what}: checkpoint does not match the network: {', '.join(parts)}")
    shapes = model.state_dict()
    for key, value in state.items():
        if tuple(shapes[key].shape) != tuple(value.shape):
            raise ModelError(f"{what}: {key} has shape {tuple(value.shape)}, the network needs {tuple(shapes[key].shape)}")
    model.load_state_dict(state, strict=True, assign=True)


def load_mert(folder: Path, config: dict) -> Any:
    """HubertModel with the MERT folder's weights, loaded strictly (see module docstring)."""
    import torch
    from transformers import HubertModel

    hubert_config = translate_mert_config(config)
    state = normalize_checkpoint_keys(read_state_dict(weight_files(folder)))
    with torch.device("meta"):  # no random init of weights that are about to be replaced
        model = HubertModel(hubert_config)
    remove_weight_norm(model)
    load_strict(model, state, f"MERT model {folder}")
    return model


def load_transformers(folder: Path, kind: str) -> Any:
    """Wav2Vec2Model / HubertModel via ``from_pretrained`` from a local folder; missing or
    mis-shaped parameters are refused (unused pretraining heads are fine)."""
    from transformers import HubertModel, Wav2Vec2Model

    cls = {"wav2vec2": Wav2Vec2Model, "hubert": HubertModel}[kind]
    try:
        model, info = cls.from_pretrained(str(folder), output_loading_info=True, attn_implementation="eager", local_files_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"model {folder}: {kind} weights cannot be loaded ({reason})") from None
    if info.get("missing_keys") or info.get("mismatched_keys"):
        bad = (info.get("missing_keys") or info.get("mismatched_keys"))[0]
        raise ModelError(f"model {folder}: checkpoint does not match the network ({bad!r} missing or mis-shaped)")
    remove_weight_norm(model)
    return model


def model_kind(config: dict) -> str:
    model_type = str(config.get("model_type", ""))
    archs = config.get("architectures") or []
    if model_type in ("mert_model", "music2vec") or any(str(a).startswith("MERT") for a in archs):
        return "mert"
    if model_type in ("wav2vec2", "hubert"):
        return model_type
    raise ModelError(f"model type {model_type!r} is not supported (NAT exports wav2vec2, hubert and MERT-v1 encoders)")


def input_settings(folder: Path, config: dict, kind: str) -> tuple[int, str, list[str]]:
    """(sample_rate, input_normalization, notes) from ``preprocessor_config.json``.

    ``do_normalize`` is the Wav2Vec2FeatureExtractor flag (zero mean, unit variance per
    input; transformers' default is True). MERT-v1 and wav2vec2-base both ship True. The
    runtime applies it per chunk segment, as the feature extractor does per input.
    """
    notes = []
    pre = _read_json(folder / PREPROCESSOR, f"model {folder}") if (folder / PREPROCESSOR).is_file() else {}
    if not pre:
        notes.append(f"no {PREPROCESSOR}: assuming the Wav2Vec2FeatureExtractor defaults (do_normalize=True)")
    normalize = bool(pre.get("do_normalize", True))
    rate = pre.get("sampling_rate")
    model_rate = config.get("sample_rate")
    if rate is not None and model_rate is not None and int(rate) != int(model_rate):
        raise ModelError(f"model {folder}: {PREPROCESSOR} says {rate} Hz but config.json says {model_rate} Hz")
    rate = rate or model_rate or (24000 if kind == "mert" else 16000)
    return int(rate), "zero_mean_unit_variance" if normalize else "none", notes


def load_encoder(source: str, revision: str | None = None) -> LoadedEncoder:
    """Load an encoder from a hub id or local folder; fp32, eval mode, weight norm folded."""
    folder, commit = resolve_source(source, revision)
    if not (folder / CONFIG).is_file():
        raise ModelError(f"model {source!r}: no {CONFIG} in {folder}")
    config = _read_json(folder / CONFIG, f"model {source!r}")
    kind = model_kind(config)
    files = weight_files(folder)
    model = load_mert(folder, config) if kind == "mert" else load_transformers(folder, kind)
    model = model.float().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    sample_rate, norm, notes = input_settings(folder, config, kind)
    cfg = model.config
    hop, window = conv_geometry(list(cfg.conv_kernel), list(cfg.conv_stride))
    return LoadedEncoder(
        model=model,
        kind=kind,
        source=source,
        model_id=model_id(source, folder),
        revision=commit or revision,
        sample_rate=sample_rate,
        input_normalization=norm,
        hop=hop,
        window=window,
        num_layers=int(cfg.num_hidden_layers),
        hidden_size=int(cfg.hidden_size),
        weights={p.name: sha256_file(p)[1] for p in files},
        notes=notes,
    )
