"""Load and verify a pack: the folder that tells the runtime how to turn audio into tokens.

A pack is untrusted input (people download them from each other), so loading checks
everything before anything runs: the manifest's format and version, that every path stays
inside the pack folder (symlinks included), every file's sha256, every ``.npy`` header's
dtype and shape *before* its data is read (a declared 10^9-entry codebook is refused without
allocating it), ``allow_pickle=False``, and finite values. ONNX files are inspected without
creating a session (``onnx_check``: no custom operator domains, no external data, the
manifest's input and output names present) and handed to onnxruntime as the very bytes that
were hashed, so a file cannot change between check and use (docs/pack-format.md, "Trust
model"). Every refusal is one ``PackError`` line naming the file and the reason.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import PackError
from . import glossary as glossary_mod
from .onnx_check import FLOAT, ModelInfo, OnnxCheckError, inspect_model
from .silence import DEFAULT_FLOOR_DBFS, UNSET, parse_floor

FORMAT = "nat-pack"
FORMAT_VERSIONS = (1,)
STREAM_NAMES = ("S", "A")
INPUT_NORMALIZATIONS = ("none", "zero_mean_unit_variance")
POOLINGS = ("mean", "mean_std")

MAX_MANIFEST_BYTES = 1 << 20
MAX_ARRAY_ELEMENTS = 1 << 26  # 256 MiB of float32: far above any sane codebook
MAX_LEVELS = 16
MAX_CODES = 65536
MAX_DIM = 16384
MAX_NPY_BYTES = 4 * MAX_ARRAY_ELEMENTS + (1 << 16)  # data plus the largest header numpy reads
MAX_ONNX_BYTES = (2 << 30) - 1  # protobuf's limit; larger models need external data, refused


@dataclass(frozen=True)
class EncoderSpec:
    """One ONNX encoder: waveform [batch, samples] float32 -> outputs [batch, frames, dim]."""

    name: str
    file: str
    model_bytes: bytes
    input: str
    sample_rate: int
    hop: int  # samples between consecutive encoder frames
    window: int  # samples the first frame needs: frames = (samples - window) // hop + 1
    input_normalization: str
    outputs: tuple[str, ...]
    # Seconds of audio before a pack frame's start and after its end that its output depends
    # on; None: the whole chunk (attention, per-chunk normalization). See docs/pack-format.md.
    receptive_field_s: float | None = None


@dataclass(frozen=True)
class StreamSpec:
    """One token stream (S or A): which encoder output, pooling, normalization, codebooks."""

    name: str
    encoder: str
    output: str
    pooling: str
    mean: np.ndarray  # [dim] float64, subtracted after pooling
    scale: np.ndarray  # [dim] float64, 1/std, multiplied after centring
    projection: np.ndarray | None  # [dim, proj_dim] float64, applied after normalization
    codebooks: np.ndarray  # [levels, codes, proj_dim] float64

    @property
    def levels(self) -> int:
        return int(self.codebooks.shape[0])

    @property
    def codebook_size(self) -> int:
        return int(self.codebooks.shape[1])

    def level_sizes(self) -> tuple[int, ...]:
        """Distinct codes per level: a level fitted with fewer codes than the array holds is
        padded with copies, which quantization never picks (ties go to the lowest index)."""
        return tuple(len(np.unique(book, axis=0)) for book in self.codebooks)


@dataclass(frozen=True)
class Pack:
    """A verified pack, ready to build sessions from."""

    name: str
    path: Path
    manifest: dict[str, Any]
    manifest_sha256: str
    frame_rate: int  # pack frames per second
    window_s: float  # chunk core length
    context_s: float  # audio added on each side of a chunk's core
    encoders: dict[str, EncoderSpec]
    streams: dict[str, StreamSpec]
    silence_floor_dbfs: float | None = DEFAULT_FLOOR_DBFS  # manifest silence.floor_dbfs (runtime/silence.py)
    glossary: glossary_mod.Glossary | None = None  # optional pack file (runtime/glossary.py)


def sha256_bytes(data: bytes) -> str:
    """The hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def _fail(where: str, why: str) -> PackError:
    return PackError(f"pack {where}: {why}")


def _resolve_inside(root: Path, rel: Any, where: str) -> Path:
    """Resolve ``rel`` under ``root``; refuse absolute paths, '..' and symlinks that leave it."""
    if not isinstance(rel, str) or not rel:
        raise _fail(where, "file name must be a non-empty string")
    if os.path.isabs(rel) or rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
        raise _fail(where, f"{rel!r} is an absolute path; pack files must be inside the pack")
    parts = rel.replace("\\", "/").split("/")
    if ".." in parts:
        raise _fail(where, f"{rel!r} leaves the pack folder")
    if "\0" in rel:
        raise _fail(where, f"{rel!r} contains a NUL byte")
    try:
        path = (root / rel).resolve()
    except (OSError, RuntimeError) as exc:  # symlink loops, over-long names
        raise _fail(where, f"{rel!r} cannot be resolved ({exc})") from None
    if path != root and root not in path.parents:
        raise _fail(where, f"{rel!r} resolves outside the pack folder (symlink?)")
    if not path.is_file():
        raise _fail(where, f"missing file {rel!r}")
    return path


def _read_verified(root: Path, entry: Any, where: str, max_bytes: int) -> tuple[str, bytes]:
    if not isinstance(entry, dict):
        raise _fail(where, "expected an object with 'file' and 'sha256'")
    path = _resolve_inside(root, entry.get("file"), where)
    want = entry.get("sha256")
    if not isinstance(want, str) or len(want) != 64:
        raise _fail(f"{where} ({entry.get('file')})", "missing or malformed sha256")
    try:
        size = path.stat().st_size
        if size > max_bytes:  # checked before reading: a hostile size must not cost memory
            raise _fail(entry["file"], f"{size} bytes is larger than any pack needs ({max_bytes}); refused")
        data = path.read_bytes()
    except OSError as exc:
        raise _fail(entry["file"], f"cannot be read ({exc.strerror or exc})") from None
    got = sha256_bytes(data)
    if got != want.lower():
        raise _fail(f"{entry['file']}", f"sha256 mismatch (manifest {want[:12]}..., file {got[:12]}...)")
    return entry["file"], data


def _load_array(root: Path, entry: Any, where: str, ndim: int) -> np.ndarray:
    """Load a verified ``.npy``: header checked first, no pickles, float32, finite."""
    name, data = _read_verified(root, entry, where, MAX_NPY_BYTES)
    buf = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buf)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _fortran, dtype = read_header(buf)
    except Exception as exc:  # any malformed header
        raise _fail(name, f"not a valid .npy file ({exc})") from None
    if dtype.hasobject:
        raise _fail(name, "holds Python objects (pickle); refused")
    if dtype != np.dtype("<f4"):
        raise _fail(name, f"dtype {dtype} is not little-endian float32")
    if len(shape) != ndim:
        raise _fail(name, f"expected {ndim} dimensions, found shape {tuple(shape)}")
    if math.prod(shape) > MAX_ARRAY_ELEMENTS:
        raise _fail(name, f"shape {tuple(shape)} is larger than any pack needs; refused")
    if len(data) - buf.tell() != math.prod(shape) * dtype.itemsize:
        raise _fail(name, f"holds {len(data) - buf.tell()} data bytes, its header shape {tuple(shape)} needs {math.prod(shape) * dtype.itemsize}")
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:
        raise _fail(name, f"cannot be read ({exc})") from None
    if not np.all(np.isfinite(arr)):
        raise _fail(name, "contains NaN or infinite values")
    declared = entry.get("shape")
    if declared is not None and (not isinstance(declared, list) or list(arr.shape) != declared):
        raise _fail(name, f"shape {list(arr.shape)} differs from manifest {declared!r}")
    return arr.astype(np.float64)


def _int(value: Any, where: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _fail(where, f"expected an integer in [{lo}, {hi}], got {value!r}")
    return value


def _number(value: Any, where: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise _fail(where, f"expected a number in [{lo}, {hi}], got {value!r}")
    return float(value)


def _check_model(file: str, model: bytes, inp: str, outputs: list[str]) -> ModelInfo:
    """Refuse custom operators, external data and I/O that do not match the manifest."""
    try:
        info = inspect_model(model)
    except OnnxCheckError as exc:
        raise _fail(file, str(exc)) from None
    if inp not in info.inputs:
        raise _fail(file, f"has no input {inp!r} (inputs: {', '.join(sorted(info.inputs)) or 'none'})")
    shape = info.inputs[inp].shape
    if info.inputs[inp].elem_type not in (0, FLOAT) or (shape is not None and len(shape) != 2):
        raise _fail(file, f"input {inp!r} must be float32 [batch, samples]")
    for out in outputs:
        if out not in info.outputs:
            raise _fail(file, f"has no output {out!r} (outputs: {', '.join(sorted(info.outputs)) or 'none'})")
        shape = info.outputs[out].shape
        if info.outputs[out].elem_type not in (0, FLOAT) or (shape is not None and len(shape) != 3):
            raise _fail(file, f"output {out!r} must be float32 [batch, frames, dim]")
    return info


def _encoder(root: Path, name: str, spec: Any, frame_rate: int) -> tuple[EncoderSpec, ModelInfo]:
    where = f"manifest.json encoders.{name}"
    if not isinstance(spec, dict):
        raise _fail(where, "expected an object")
    file, model = _read_verified(root, spec, where, MAX_ONNX_BYTES)
    sr = _int(spec.get("sample_rate"), f"{where}.sample_rate", 1000, 768000)
    hop = _int(spec.get("hop"), f"{where}.hop", 1, sr)
    window = _int(spec.get("window"), f"{where}.window", hop, 16 * sr)
    if sr % frame_rate or (sr // frame_rate) % hop:
        raise _fail(where, f"hop {hop} at {sr} Hz does not divide the {frame_rate} Hz frame grid")
    norm = spec.get("input_normalization", "none")
    if norm not in INPUT_NORMALIZATIONS:
        raise _fail(where, f"unknown input_normalization {norm!r}")
    outputs = spec.get("outputs")
    if not isinstance(outputs, list) or not outputs or not all(isinstance(o, str) for o in outputs):
        raise _fail(where, "outputs must be a list of output names")
    inp = spec.get("input", "waveform")
    if not isinstance(inp, str):
        raise _fail(where, "input must be a string")
    info = _check_model(file, model, inp, outputs)
    receptive = spec.get("receptive_field_s")
    if receptive is not None:
        receptive = _number(receptive, f"{where}.receptive_field_s", 0.0, 60)
        if norm != "none":  # a chunk-wide normalization makes every frame see the whole chunk
            raise _fail(where, f"receptive_field_s cannot be declared with input_normalization {norm!r}")
    return EncoderSpec(name, file, model, inp, sr, hop, window, norm, tuple(outputs), receptive), info


def _stream(root: Path, name: str, spec: Any, encoders: dict[str, EncoderSpec], models: dict[str, ModelInfo]) -> StreamSpec:
    where = f"manifest.json streams.{name}"
    if not isinstance(spec, dict):
        raise _fail(where, "expected an object")
    enc = spec.get("encoder")
    if not isinstance(enc, str) or enc not in encoders:
        raise _fail(where, f"unknown encoder {enc!r}")
    output = spec.get("output")
    if not isinstance(output, str) or output not in encoders[enc].outputs:
        raise _fail(where, f"output {output!r} is not among encoder {enc!r}'s outputs")
    pooling = spec.get("pooling", "mean")
    if not isinstance(pooling, str) or pooling not in POOLINGS:
        raise _fail(where, f"unknown pooling {pooling!r}")
    if "normalization" not in spec or "codebooks" not in spec:
        raise _fail(where, "needs 'normalization' and 'codebooks'")
    norm = _load_array(root, spec["normalization"], f"{where}.normalization", 2)
    if norm.shape[0] != 2 or np.any(norm[1] <= 0):
        raise _fail(spec["normalization"]["file"], "must be [2, dim]: mean, then positive std")
    dim = norm.shape[1]
    out_shape = models[enc].outputs[output].shape
    feat_dim = out_shape[-1] if out_shape else None
    if isinstance(feat_dim, int) and feat_dim * (2 if pooling == "mean_std" else 1) != dim:
        raise _fail(spec["normalization"]["file"], f"dim {dim} does not match {encoders[enc].file} output {output!r} (dim {feat_dim}, pooling {pooling})")
    proj = None
    if spec.get("projection") is not None:
        proj = _load_array(root, spec["projection"], f"{where}.projection", 2)
        if proj.shape[0] != dim:
            raise _fail(spec["projection"]["file"], f"projection rows {proj.shape[0]} != feature dim {dim}")
        dim = proj.shape[1]
    books = _load_array(root, spec["codebooks"], f"{where}.codebooks", 3)
    levels, codes, bdim = books.shape
    cb_file = spec["codebooks"]["file"]
    if not 1 <= levels <= MAX_LEVELS or not 2 <= codes <= MAX_CODES or bdim != dim or dim > MAX_DIM:
        raise _fail(cb_file, f"shape {list(books.shape)} must be [1..{MAX_LEVELS}, 2..{MAX_CODES}, {dim}]")
    return StreamSpec(name, enc, output, pooling, norm[0], 1.0 / norm[1], proj, books)


def load_pack(path: str | os.PathLike[str]) -> Pack:
    """Read ``path/manifest.json`` and verify the whole pack. Raises PackError on any problem."""
    root = Path(path)
    if not root.is_dir():
        raise PackError(f"pack {str(path)!r}: not a folder")
    root = root.resolve()
    if not (root / "manifest.json").is_file():
        raise _fail("manifest.json", f"missing in {root.name!r}")
    try:
        return _load(root)
    except PackError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError, RecursionError) as exc:
        # Every malformation found so far has its own message; this keeps an unforeseen one
        # to one line instead of a traceback.
        raise _fail("manifest.json", f"malformed ({type(exc).__name__}: {exc})") from None


def _load(root: Path) -> Pack:
    mpath = _resolve_inside(root, "manifest.json", "manifest.json")
    try:
        if mpath.stat().st_size > MAX_MANIFEST_BYTES:
            raise _fail("manifest.json", "larger than 1 MiB; refused")
        raw = mpath.read_bytes()
    except OSError as exc:
        raise _fail("manifest.json", f"cannot be read ({exc.strerror or exc})") from None
    try:
        manifest = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise _fail("manifest.json", f"not valid JSON (truncated?): {reason}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _fail("manifest.json", f"not a {FORMAT} manifest")
    version = manifest.get("format_version")
    if isinstance(version, bool) or version not in FORMAT_VERSIONS:
        raise _fail("manifest.json", f"format_version {version!r} is not supported (this NAT reads {list(FORMAT_VERSIONS)})")
    name = manifest.get("name")
    if not isinstance(name, str) or not name:
        raise _fail("manifest.json", "missing pack name")
    frame_rate = _int(manifest.get("frame_rate"), "manifest.json frame_rate", 1, 1000)
    chunking = manifest.get("chunking")
    if not isinstance(chunking, dict):
        raise _fail("manifest.json", "missing chunking")
    window_s = _number(chunking.get("window_s"), "manifest.json chunking.window_s", 0.1, 600)
    context_s = _number(chunking.get("context_s"), "manifest.json chunking.context_s", 0.0, 60)
    for label, secs in (("window_s", window_s), ("context_s", context_s)):
        if abs(secs * frame_rate - round(secs * frame_rate)) > 1e-9:
            raise _fail("manifest.json", f"chunking.{label} must be a whole number of frames")
    enc_specs = manifest.get("encoders")
    if not isinstance(enc_specs, dict) or not enc_specs:
        raise _fail("manifest.json", "missing encoders")
    # Read, hash and check the encoders at once (hashlib and file reads release the GIL);
    # map() raises the first failure in manifest order, so a bad pack always reads the same.
    with ThreadPoolExecutor(len(enc_specs)) as pool:
        checked = dict(zip(enc_specs, pool.map(lambda item: _encoder(root, item[0], item[1], frame_rate), enc_specs.items())))
    encoders = {n: spec for n, (spec, _) in checked.items()}
    models = {n: info for n, (_, info) in checked.items()}
    for enc in encoders.values():
        if round(context_s * enc.sample_rate) < enc.window - enc.hop:
            raise _fail("manifest.json", f"chunking.context_s is shorter than encoder {enc.name!r}'s window")
        if enc.receptive_field_s is not None and enc.receptive_field_s > context_s:
            raise _fail("manifest.json", f"encoder {enc.name!r}'s receptive_field_s exceeds chunking.context_s")
    st_specs = manifest.get("streams")
    if not isinstance(st_specs, dict) or sorted(map(str, st_specs)) != sorted(STREAM_NAMES):
        raise _fail("manifest.json", f"streams must be exactly {list(STREAM_NAMES)}")
    streams = {n: _stream(root, n, st_specs[n], encoders, models) for n in STREAM_NAMES}
    glossary = _glossary(root, manifest.get("glossary"), streams, st_specs)
    return Pack(
        name=name,
        path=root,
        manifest=manifest,
        manifest_sha256=sha256_bytes(raw),
        frame_rate=frame_rate,
        window_s=window_s,
        context_s=context_s,
        encoders=encoders,
        streams=streams,
        silence_floor_dbfs=parse_floor(manifest.get("silence", UNSET)),
        glossary=glossary,
    )


def _glossary(root: Path, entry: Any, streams: dict[str, StreamSpec], st_specs: dict) -> glossary_mod.Glossary | None:
    """The optional glossary file: hashed, size-checked and validated like every pack file."""
    if entry is None:
        return None
    _name, data = _read_verified(root, entry, "manifest.json glossary", glossary_mod.MAX_BYTES)
    shape = {n: (s.levels, s.codebook_size) for n, s in streams.items()}
    books = {n: str(st_specs[n]["codebooks"]["sha256"]).lower() for n in STREAM_NAMES}
    return glossary_mod.parse(data, shape, books, str(entry["file"]))
