"""``nat-export build``: pretrained encoders + a corpus -> a verified pack, or nothing.

Steps, each a module of its own:
1. load the preset's encoders (export/models.py) and export one ONNX graph per encoder
   holding only the layers the streams use (export/onnx_export.py);
2. run the training part of the corpus through the runtime's FeaturePipeline with those
   very ONNX graphs in onnxruntime (export/collect.py), so codebooks are fitted to exactly
   the features tokenization will see;
3. fit per-stream normalization and residual VQ codebooks (codebooks/fit.py);
4. write the pack to a staging folder (export/pack_writer.py), load it with the runtime's
   own loader, and verify it on held-out clips against the torch reference
   (export/verify.py). Below the agreement threshold the staging folder is deleted and
   nothing is left at ``out``; above it the pack is written again with the measurements
   in its manifest and moved into place;
5. unless ``--no-glossary``: tokenize every corpus clip with the written pack and add the
   glossary of what each level-0 code's frames measured (export/glossary.py); on the
   built-in corpus also 104 mixture clips (glossary only), and the GM families of each
   frame from the corpus's known programs.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..errors import NatError
from ..runtime.inputs.audio import AUDIO_EXTENSIONS, open_path, sha256_file
from ..runtime.features import build_pipeline
from ..runtime.pack import load_pack
from .models import LoadedEncoder, ModelError, load_encoder
from .onnx_export import OPSET, convert_fp16, export_onnx, layer_taps, onnx_opset, quantize_int8
from .presets import STREAM_OUTPUTS, Preset
from .reference import TorchRunner
from .verify import MAX_FEATURE_DIFF, MIN_AGREEMENT, Verification, verify_pack

INT8_MIN_AGREEMENT = 0.90
HELD_OUT_FRACTION = 0.1
BUILTIN_CLIPS = 120  # export/corpus.py defaults: 24 minutes, 7200 frames at 5 Hz
BUILTIN_CLIP_S = 12.0
BUILTIN_MIXTURES = 104  # mixture clips rendered for the glossary's family labels (export/corpus.py plan_mixture)


class VerificationError(NatError):
    """The built pack's runtime disagrees with the torch reference (exit 1)."""

    exit_code = 1
    kind = "verification"


class CorpusError(NatError):
    """The corpus cannot be used (exit 2)."""

    exit_code = 2
    kind = "corpus"


@dataclass
class BuildOptions:
    preset: Preset
    out: Path
    corpus: Sequence[str] | None = None  # files and folders; None: the built-in rendered corpus
    name: str | None = None
    seed: int = 0
    iterations: int = 25
    threads: int = 0  # onnxruntime threads collecting features (0: one per core); torch and onnxruntime during verification (0: 2)
    int8: bool = False
    fp16: bool = False
    min_agreement: float | None = None  # None: 99.9% (fp32) or 90% (int8, fp16)
    glossary: bool = True  # measure the corpus into the pack's glossary.json (export/glossary.py)

    @property
    def precision(self) -> str:
        return "int8" if self.int8 else "fp16" if self.fp16 else "fp32"
    force: bool = False


@dataclass
class BuildResult:
    path: Path
    verification: Verification
    sizes: dict[str, int] = field(default_factory=dict)


def expand_corpus(items: Sequence[str]) -> list[Path]:
    """Audio files named directly, plus every audio file under named folders (sorted)."""
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower().lstrip(".") in AUDIO_EXTENSIONS)
            if not found:
                raise CorpusError(f"corpus folder {item!r} holds no audio files ({', '.join('.' + e for e in AUDIO_EXTENSIONS)})")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise CorpusError(f"corpus {item!r}: no such file or folder")
    if not files:
        raise CorpusError("the corpus is empty")
    return files


def split_corpus(files: Sequence[Path], fraction: float = HELD_OUT_FRACTION) -> tuple[list[Path], list[Path]]:
    """(training, held-out): every k-th clip is held out, at least one; a one-clip corpus is
    both (verification then says held_out false)."""
    if len(files) == 1:
        return list(files), list(files)
    n_out = max(1, round(len(files) * fraction))
    step = len(files) / n_out
    held = {int(i * step + step / 2) for i in range(n_out)}
    return [f for i, f in enumerate(files) if i not in held], [f for i, f in enumerate(files) if i in held]


def check_grid(preset: Preset, encoders: dict[str, LoadedEncoder]) -> None:
    """The pack's frame rate must split every encoder's frames evenly (loader rule)."""
    rate = preset.frame_rate
    for name, enc in encoders.items():
        if enc.sample_rate % rate or (enc.sample_rate // rate) % enc.hop:
            fits = [r for r in range(1, enc.sample_rate // enc.hop + 1) if all(e.sample_rate % r == 0 and (e.sample_rate // r) % e.hop == 0 for e in encoders.values())]
            raise ModelError(f"frame rate {rate} Hz does not fit encoder {name!r} (hop {enc.hop} at {enc.sample_rate} Hz); rates that fit: {', '.join(map(str, fits))}")
    for label, secs in (("window_s", preset.window_s), ("context_s", preset.context_s)):
        if abs(secs * rate - round(secs * rate)) > 1e-9:
            raise ModelError(f"{label} {secs} s is not a whole number of {rate} Hz frames")


def describe(plan: dict, loaded: dict[str, LoadedEncoder], preset: Preset) -> str:
    """One line: which model and layers feed each stream."""
    parts = []
    for stream in ("S", "A"):
        enc = preset.stream_encoder(stream)
        first, last = plan[enc]["taps"][STREAM_OUTPUTS[stream]]
        parts.append(f"{stream}: {loaded[enc].model_id} hidden states {first}-{last} (mean)")
    sizes = preset.codebook_sizes
    return f"{'; '.join(parts)}; {preset.frame_rate} Hz, {preset.levels} levels x {sizes['S']}/{sizes['A']} codes (preset {preset.name})"


def library_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch
    import transformers

    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
    }
    try:
        from importlib.metadata import version

        versions["huggingface_hub"] = version("huggingface_hub")
    except Exception:  # optional; absent only in unusual installs
        pass
    return versions


def _file_info(path: Path, display: str) -> dict:
    return {"name": display, "sha256": sha256_file(path)[1]}


def _display_names(files: Sequence[Path]) -> dict[str, str]:
    """Corpus names for the manifest: relative to the common folder, never absolute."""
    if not files:
        return {}
    root = os.path.commonpath([str(f.resolve().parent) for f in files])
    return {os.fspath(f): os.path.relpath(f.resolve(), root) for f in files}


@dataclass
class Exported:
    """Step 1's result: the preset's encoders loaded, cut to their taps and exported."""

    plan: dict  # preset.encoders(): {encoder: {"model", "taps"}}
    loaded: dict[str, LoadedEncoder]
    modules: dict[str, Any]  # LayerTaps per encoder (the torch reference runs these)
    model_bytes: dict[str, bytes]  # ONNX per encoder, in the build's precision
    precision: dict[str, str]  # what the manifest says of each encoder's precision


def build_pack(opts: BuildOptions, log: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr)) -> BuildResult:
    """Build, verify and write a pack (see module docstring). Raises NatError subclasses."""
    out = Path(opts.out)
    _check_options(opts, out)
    exported = export_encoders(opts, log)
    with tempfile.TemporaryDirectory(prefix=".nat-export-", dir=out.parent) as tmp:
        tmpdir = Path(tmp)
        every, corpus_meta = _corpus_files(opts, tmpdir, log)
        files = every if opts.corpus else every[:BUILTIN_CLIPS]  # the built-in corpus's mixture clips come last: glossary only
        train, held_out = split_corpus(files)
        log(f"corpus: {len(files)} clips ({len(train)} for codebooks, {len(held_out)} held out for verification)")
        features = collect_training_features(opts, exported, train, log)
        streams, fit_report = fit_streams(opts, features, log)
        names = _display_names(files)
        corpus_meta.update(
            clips=[_file_info(f, names[os.fspath(f)]) for f in files],
            training_clips=len(train),
            held_out_clips=[names[os.fspath(f)] for f in held_out],
            training_frames={s: int(np.asarray(features[s]).shape[0]) for s in ("S", "A")},
        )
        contents = _pack_contents(opts, exported, streams, corpus_meta, fit_report)
        result = write_verified(opts, exported, contents, tmpdir, held_out, names, len(files) > 1, out, log)
        if opts.glossary:  # every corpus clip, tokenized by the written pack and measured
            from .glossary import add_glossary

            add_glossary(out, every, root=Path(os.path.commonpath([f.resolve().parent for f in every])), log=log)
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    log(f"wrote {out} ({sum(sizes.values()) / 1e6:.1f} MB)")
    return BuildResult(out, result, sizes)


def _check_options(opts: BuildOptions, out: Path) -> None:
    """Refuse what cannot work before any model is loaded."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not opts.force:
            raise CorpusError(f"output {str(out)!r} already exists; choose another --out or pass --force")
        if not (out / "manifest.json").is_file():
            raise CorpusError(f"output {str(out)!r} is not a pack folder; --force only replaces packs")
    out.parent.mkdir(parents=True, exist_ok=True)
    if opts.int8 and opts.fp16:
        raise CorpusError("choose --int8 or --fp16, not both")


def export_encoders(opts: BuildOptions, log: Callable[[str], None]) -> Exported:
    """Step 1: load the preset's encoders and export each to ONNX, only up to its deepest tap."""
    preset = opts.preset
    plan = preset.encoders()
    loaded: dict[str, LoadedEncoder] = {}
    for name, entry in plan.items():
        log(f"loading {name}: {entry['model']}")
        loaded[name] = load_encoder(entry["model"])
    check_grid(preset, loaded)
    modules, model_bytes, precision = {}, {}, {}
    for name, entry in plan.items():
        enc = loaded[name]
        taps = {out_name: tuple(span) for out_name, span in entry["taps"].items()}
        modules[name] = layer_taps(enc.model, taps)
        log(f"exporting {name} to ONNX: layers {', '.join(f'{o} {a}-{b}' for o, (a, b) in taps.items())} (runs {modules[name].depth} of {enc.num_layers})")
        model_bytes[name] = export_onnx(modules[name], enc.sample_rate)
        precision[name] = "fp32"
        if opts.int8:
            model_bytes[name] = quantize_int8(model_bytes[name])
            precision[name] = "int8 dynamic (MatMul weights), LayerNorm fp32"
        elif opts.fp16:
            model_bytes[name] = convert_fp16(model_bytes[name])
            precision[name] = "fp16 (float32 input/output; normalization, softmax and reductions fp32)"
    return Exported(plan, loaded, modules, model_bytes, precision)


def _corpus_files(opts: BuildOptions, tmpdir: Path, log: Callable[[str], None]) -> tuple[list[Path], dict]:
    """The corpus clips, and what the manifest says of where they came from."""
    if opts.corpus:
        return expand_corpus(opts.corpus), {"source": "files"}
    from . import corpus as builtin_corpus

    log(f"rendering the built-in corpus ({BUILTIN_CLIPS} clips of {BUILTIN_CLIP_S:g} s, FluidSynth)")
    try:
        files = [Path(p) for p in builtin_corpus.render_corpus(tmpdir / "corpus", BUILTIN_CLIPS, 0, BUILTIN_CLIP_S, mixture_clips=BUILTIN_MIXTURES if opts.glossary else 0)]
    except (builtin_corpus.CorpusError, ValueError, OSError) as exc:
        raise CorpusError(f"built-in corpus: {exc} (or pass --corpus)") from None
    return files, {"source": "builtin", "builtin": builtin_corpus.describe_corpus(BUILTIN_CLIPS, 0, BUILTIN_CLIP_S)}


def _routes(preset: Preset) -> dict[str, dict]:
    return {s: {"encoder": preset.stream_encoder(s), "output": STREAM_OUTPUTS[s], "pooling": "mean"} for s in ("S", "A")}


def collect_training_features(opts: BuildOptions, exported: Exported, train: Sequence[Path], log: Callable[[str], None]) -> dict[str, np.ndarray]:
    """Step 2: the training clips' pooled features, through onnxruntime and the runtime's own
    FeaturePipeline running the very ONNX graphs the pack will hold."""
    from .collect import collect_features, ort_runner

    preset = opts.preset
    pipeline = build_pipeline(exported.loaded, _routes(preset), preset.frame_rate, preset.window_s, preset.context_s)
    # onnxruntime alone here (torch idle): every core by default. Features, hence codebook
    # bytes, are reproducible for the same machine and --threads.
    run = ort_runner({n: (exported.model_bytes[n], "waveform", list(m.names)) for n, m in exported.modules.items()}, threads=opts.threads)
    log("collecting features through onnxruntime")
    try:
        return collect_features(pipeline, run, (open_path(os.fspath(f)) for f in train))
    except ValueError as exc:
        raise CorpusError(str(exc)) from None


def fit_streams(opts: BuildOptions, features: dict[str, np.ndarray], log: Callable[[str], None]) -> tuple[dict, dict]:
    """Step 3: per stream, normalization and residual VQ codebooks. (streams for write_pack, fit report)."""
    from ..codebooks.fit import apply_normalization, fit_normalization, fit_rvq

    preset = opts.preset
    streams, report = {}, {}
    for s, route in _routes(preset).items():
        x = np.asarray(features[s])
        log(f"fitting {s}: {x.shape[0]} frames x {x.shape[1]} dims, {preset.levels} levels x {preset.codebook_sizes[s]} codes")
        try:
            norm = fit_normalization(x)
            books, report[s] = fit_rvq(apply_normalization(x, norm), preset.levels, preset.codebook_sizes[s], opts.seed, opts.iterations)
        except ValueError as exc:
            raise CorpusError(f"stream {s}: {exc}") from None
        streams[s] = {**route, "normalization": norm, "projection": None, "codebooks": books}
    return streams, report


def _pack_contents(opts: BuildOptions, exported: Exported, streams: dict, corpus_meta: dict, fit_report: dict) -> dict:
    """write_pack's arguments: encoders, streams, description and provenance."""
    preset, plan, loaded, modules = opts.preset, exported.plan, exported.loaded, exported.modules
    encoders = {
        n: {
            "model_bytes": exported.model_bytes[n],
            "input": "waveform",
            "sample_rate": e.sample_rate,
            "hop": e.hop,
            "window": e.window,
            "input_normalization": e.input_normalization,
            "outputs": list(modules[n].names),
        }
        for n, e in loaded.items()
    }
    provenance = {
        "exporter": {"tool": "nat-export", "version": __version__, "preset": preset.name},
        "libraries": library_versions(),
        "encoders": {
            n: {
                "model": e.model_id,
                "revision": e.revision,
                "kind": e.kind,
                "layers": {o: list(span) for o, span in plan[n]["taps"].items()},
                "layers_run": modules[n].depth,
                "num_layers": e.num_layers,
                "hidden_size": e.hidden_size,
                "weights_sha256": e.weights,
                "onnx": {"exporter": "torch.onnx.export (TorchScript, dynamo=False)", "opset": onnx_opset(exported.model_bytes[n]), "requested_opset": OPSET, "precision": exported.precision[n]},
                "notes": e.notes,
            }
            for n, e in loaded.items()
        },
        "corpus": _ordered_corpus(corpus_meta),
        "codebooks": {
            "method": "residual k-means (k-means++ seeding, fixed Lloyd iterations)",
            "seed": opts.seed,
            "iterations": opts.iterations,
            "levels": preset.levels,
            "codes": dict(preset.codebook_sizes),
            "report": fit_report,
        },
    }
    return dict(
        name=opts.name or preset.name,
        description=describe(plan, loaded, preset),
        frame_rate=preset.frame_rate,
        window_s=preset.window_s,
        context_s=preset.context_s,
        encoders=encoders,
        streams=streams,
        provenance=provenance,
    )


def _ordered_corpus(meta: dict) -> dict:
    """The manifest's corpus entry, keys in their documented order."""
    keys = ("source", "clips", "training_clips", "held_out_clips", "training_frames", "builtin")
    return {k: meta[k] for k in keys if k in meta}


def write_verified(opts: BuildOptions, exported: Exported, contents: dict, tmpdir: Path, held_out: Sequence[Path], names: dict[str, str], is_held_out: bool, out: Path, log: Callable[[str], None]) -> Verification:
    """Step 4: write the pack to a staging folder, load it with the runtime's loader, verify it
    against the torch reference on held-out clips; only if it passes, write it to ``out``
    (atomically, replacing a --force'd pack whole) with the measurements in its manifest."""
    from .pack_writer import write_pack

    threads = opts.threads or 2  # torch and onnxruntime share the process while verifying
    reduced = opts.precision != "fp32"
    min_agreement = opts.min_agreement if opts.min_agreement is not None else (INT8_MIN_AGREEMENT if reduced else MIN_AGREEMENT)
    staging = write_pack(tmpdir / "staging", **contents)
    log(f"verifying against torch on {len(held_out)} held-out clip(s)")
    result = verify_pack(
        load_pack(staging),
        held_out,
        TorchRunner(exported.modules, threads),
        threads=threads,
        min_agreement=min_agreement,
        max_feature_diff=None if reduced else MAX_FEATURE_DIFF,  # int8/fp16: measured, not gated
        names=names,
    )
    result.extra["held_out"] = is_held_out
    result.extra["precision"] = opts.precision
    for line in result.lines():
        log(line)
    if not result.passed:
        raise VerificationError(f"pack not written: {result.failure()}")
    write_pack(out, **contents, verification=result.record())
    return result
