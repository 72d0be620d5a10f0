"""Write a pack folder that :func:`neural_audio_tokenizer.runtime.pack.load_pack` accepts.

Deterministic: the manifest is JSON with a fixed key order, ``indent=2`` and a trailing
newline, with no timestamps or absolute paths, and arrays are little-endian float32 ``.npy``,
so the same inputs give the same bytes (and the same ``manifest_sha256`` in every token
header). The folder is assembled in a temporary sibling and renamed into place by the same
code ``nat packs pull`` installs with (packs/install.py), so a crash never leaves a
half-written pack where the runtime would find it; an existing ``out_dir`` is replaced as a
whole, and comes back if the rename fails. The last step loads the result with ``load_pack``: a pack this writes
and the runtime refuses is a bug found here, not by a user.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..packs.install import replace_folder, staging
from ..runtime.pack import FORMAT, INPUT_NORMALIZATIONS, POOLINGS, STREAM_NAMES, load_pack
from ..runtime.silence import DEFAULT_FLOOR_DBFS

FORMAT_VERSION = 1


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def npy_bytes(array: np.ndarray) -> bytes:
    """``.npy`` bytes of ``array`` as little-endian float32 (no pickle, C order)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(np.asarray(array, dtype="<f4")), allow_pickle=False)
    return buf.getvalue()


def _array_entry(folder: Path, file: str, array: np.ndarray, ndim: int, where: str) -> dict:
    arr = np.asarray(array)
    if arr.ndim != ndim or not np.all(np.isfinite(arr)):
        raise ValueError(f"{where}: expected a finite {ndim}-D array, got shape {arr.shape}")
    data = npy_bytes(arr)
    (folder / file).write_bytes(data)
    return {"file": file, "sha256": _sha256(data), "shape": list(arr.shape)}


def install(tmp: Path, manifest: dict, out: Path) -> Path:
    """Write ``manifest`` into the staging folder ``tmp``, check the runtime loads the pack,
    and rename it to ``out``, replacing an existing pack whole; returns ``out``, loaded again."""
    text = json.dumps(manifest, indent=2, sort_keys=False, ensure_ascii=False, allow_nan=False) + "\n"
    (tmp / "manifest.json").write_text(text, encoding="utf-8")
    load_pack(tmp)  # refuse to install a pack the runtime would refuse
    replace_folder(tmp, out)
    load_pack(out)
    return out


def write_pack(
    out_dir: str | os.PathLike[str],
    *,
    name: str,
    description: str,
    frame_rate: int,
    window_s: float,
    context_s: float,
    encoders: Mapping[str, Mapping],
    streams: Mapping[str, Mapping],
    provenance: dict,
    verification: dict | None = None,
    silence_floor_dbfs: float | None = DEFAULT_FLOOR_DBFS,
) -> Path:
    """Write the pack and return its path (verified by loading it).

    ``encoders[name]``: model_bytes, input, sample_rate, hop, window, input_normalization, outputs,
    and optionally receptive_field_s.
    ``streams["S"|"A"]``: encoder, output, pooling, normalization [2, D], projection [D, P] or
    None, codebooks [levels, codes, D or P]. ``silence_floor_dbfs``: frames below it get the
    silence codes (runtime/silence.py); None writes ``"floor_dbfs": null`` (no floor)."""
    out = Path(out_dir).absolute()
    if sorted(streams) != sorted(STREAM_NAMES):
        raise ValueError(f"streams must be exactly {list(STREAM_NAMES)}, got {sorted(streams)}")
    with staging(out) as tmp:
        enc_entries = {}
        for enc_name, e in encoders.items():
            if e.get("input_normalization", "none") not in INPUT_NORMALIZATIONS:
                raise ValueError(f"encoder {enc_name!r}: input_normalization must be one of {INPUT_NORMALIZATIONS}")
            file = f"{enc_name}.onnx"
            (tmp / file).write_bytes(e["model_bytes"])
            enc_entries[enc_name] = {
                "file": file,
                "sha256": _sha256(e["model_bytes"]),
                "input": e["input"],
                "sample_rate": int(e["sample_rate"]),
                "hop": int(e["hop"]),
                "window": int(e["window"]),
                "input_normalization": e.get("input_normalization", "none"),
                "outputs": list(e["outputs"]),
            }
            if e.get("receptive_field_s") is not None:  # optional (live chunking, docs/pack-format.md)
                enc_entries[enc_name]["receptive_field_s"] = float(e["receptive_field_s"])
        stream_entries = {}
        for stream in STREAM_NAMES:  # fixed order S, A whatever order the caller used
            s = streams[stream]
            if s.get("pooling", "mean") not in POOLINGS:
                raise ValueError(f"stream {stream}: pooling must be one of {POOLINGS}")
            where = f"stream {stream}"
            projection = s.get("projection")
            stream_entries[stream] = {
                "encoder": s["encoder"],
                "output": s["output"],
                "pooling": s.get("pooling", "mean"),
                "normalization": _array_entry(tmp, f"{stream}_normalization.npy", s["normalization"], 2, f"{where} normalization"),
                "projection": None if projection is None else _array_entry(tmp, f"{stream}_projection.npy", projection, 2, f"{where} projection"),
                "codebooks": _array_entry(tmp, f"{stream}_codebooks.npy", s["codebooks"], 3, f"{where} codebooks"),
            }
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": name,
            "description": description,
            "frame_rate": int(frame_rate),
            "chunking": {"window_s": window_s, "context_s": context_s},
            "silence": {"floor_dbfs": silence_floor_dbfs, "level": "RMS of the pack frame's mono input samples, dBFS (full-scale square wave = 0)"},
            "encoders": enc_entries,
            "streams": stream_entries,
            "provenance": provenance,
            "verification": verification,
        }
        return install(tmp, manifest, out)
