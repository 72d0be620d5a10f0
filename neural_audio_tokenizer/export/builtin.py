"""The built-in pack's recipe: ``python -m neural_audio_tokenizer.export.builtin --out DIR``.

Everything comes from this repository and two apt packages, with no download and no
torch: a seeded corpus rendered with FluidSynth (export/corpus.py), a fixed-DSP ONNX
encoder (export/dsp.py), features gathered through the runtime's own FeaturePipeline in
onnxruntime (export/collect.py), normalization and residual-VQ codebooks fitted with numpy
(codebooks/fit.py), and the pack written by export/pack_writer.py. Same seed and tools ->
same bytes.

Streams: S = ``semantic`` (12-bin chroma, ~1 s context) pooled by mean; A = ``acoustic``
(mel cepstra c0..c7 and the level envelope) pooled by mean *and* standard deviation over
the 0.2 s frame, since how a timbre moves within a frame (attack, vibrato) helps tell
instruments apart. What the streams carry was chosen with ``nat-export eval`` (export/
quality.py, docs/quality.md), whose clips are rendered with other seeds than this corpus:
on its instrument set (8 instruments x 12 tunes in all 12 keys) the A stream names the
instrument of every clip by nearest neighbour (82 % with the former 20 cepstra, whose upper
half followed pitch), and S0 names the tune (73 %) far more often than the instrument
(25 %; the former spectral-flux dims in S had made S tell the instrument first).

Codebook sizes: 4 levels of 256 codes for both streams. The fit sees 12,000 frames (200
clips x 12 s x 5 Hz; 20 more clips are held out), about 47 per code at every level: enough
for k-means to place every code (the report shows no dead codes), while 256 keeps each token
a byte. On the evaluation clips at most 15 % of any level's codes go unused (S0; 11 % for
A0). Larger books would mostly split the corpus's own clips: held-out error is already
1.4-1.5x the training error at level 0 and grows towards the last level.

``--demo examples/demo.ogg --fixture tests/data/clip.flac`` also renders the repository's
example and test clips (export/corpus.py ``render_demo``, ``render_fixture``).

A ``verification`` block records the held-out quantization error, and a *probe*: the codes
the recipe's arithmetic gives for a synthetic signal (:func:`probe_signal`), so a test can
check that the runtime reproduces the recipe's tokens exactly.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..codebooks.fit import apply_normalization, fit_normalization, fit_rvq
from ..codebooks.quantize import quantize
from ..runtime.audio import from_array, open_path
from . import corpus as corpus_mod
from . import dsp
from ..runtime.features import build_pipeline
from .collect import collect_features, ort_runner
from .pack_writer import write_pack

NAME = "builtin"
FRAME_RATE = 5
WINDOW_S = 10.0
CONTEXT_S = 1.0
LEVELS = 4
CODES = {"S": 256, "A": 256}
CLIPS = 220
CLIP_SECONDS = 12.0
HOLD_OUT_EVERY = 11  # every 11th clip is held out (11 and CYCLE's 20 are coprime: all kinds)
ITERATIONS = 25
STREAMS = {
    "S": {"encoder": "dsp", "output": "semantic", "pooling": "mean"},
    "A": {"encoder": "dsp", "output": "acoustic", "pooling": "mean_std"},
}
DESCRIPTION = (
    "NAT's built-in pack: fixed signal processing, no learned weights, no download. "
    "S (semantic): 12-bin chroma over about a second (harmony: what is played). "
    "A (acoustic): mean and spread of 8 mel cepstra and the level envelope over each 0.2 s frame "
    "(timbre: who plays it). 5 frames per second, 4 RVQ levels of 256 codes per stream, fitted on a "
    "FluidSynth-rendered General MIDI corpus plus synthesized noise, sweeps and clicks."
)


def probe_signal() -> np.ndarray:
    """4 s at 22050 Hz: an A-minor triad of harmonic tones, a noise burst, silence, clicks."""
    sr = dsp.SAMPLE_RATE
    t = np.arange(sr) / sr
    chord = sum(np.sin(2 * np.pi * f * h * t) / h for f in (220.0, 261.63, 329.63) for h in (1, 2, 3))
    noise = np.random.default_rng(2024).standard_normal(sr)
    clicks = np.zeros(sr)
    clicks[:: sr // 8] = 1.0
    x = np.concatenate([0.1 * chord, 0.2 * noise, np.zeros(sr), 0.8 * clicks])
    return x.astype(np.float32)


def _codes(features: np.ndarray, normalization: np.ndarray, codebooks: np.ndarray) -> np.ndarray:
    return quantize(apply_normalization(features, normalization), codebooks.astype(np.float64))


def _heldout(features: np.ndarray, normalization: np.ndarray, codebooks: np.ndarray) -> list[float]:
    """Mean squared residual per dimension after each level, on frames the fit never saw."""
    residual = apply_normalization(features, normalization)
    codes = quantize(residual, codebooks.astype(np.float64))
    out = []
    for level in range(codebooks.shape[0]):
        residual = residual - codebooks[level].astype(np.float64)[codes[:, level]]
        out.append(round(float(np.mean(residual**2)), 6))
    return out


def _corpus_files(folder: Path, clips: int, seed: int, clip_seconds: float, log) -> list[Path]:
    """The corpus in ``folder``: reused when its corpus.json says it is this corpus (rendering
    is deterministic, so a reused render is the same bytes), else rendered there."""
    listing = folder / "corpus.json"
    if listing.is_file():
        meta = json.loads(listing.read_text())
        names = [corpus_mod.plan_clip(i, seed).file_name for i in range(clips)]
        if (meta.get("seed"), meta.get("clip_seconds"), len(meta.get("clips", []))) == (seed, clip_seconds, clips) and all((folder / n).is_file() for n in names):
            log(f"reusing the rendered corpus in {folder}")
            return [folder / n for n in names]
    log(f"rendering {clips} clips of {clip_seconds:g} s (seed {seed}) into {folder}")
    return corpus_mod.render_corpus(folder, clips, seed, clip_seconds)


def build(out: Path, seed: int = 0, clips: int = CLIPS, clip_seconds: float = CLIP_SECONDS, log=print, corpus_dir: Path | None = None) -> Path:
    started = time.monotonic()
    tools = corpus_mod.tool_provenance()
    encoder = dsp.build_dsp_encoder()
    encoders = {"dsp": encoder.spec()}
    encoders["dsp"]["receptive_field_s"] = dsp.receptive_field_s()  # lets live input use short chunks (runtime/live.py)
    pipeline = build_pipeline(encoders, STREAMS, FRAME_RATE, WINDOW_S, CONTEXT_S)
    run = ort_runner({"dsp": (encoder.model_bytes, encoder.input, encoder.outputs)}, threads=2)
    # The encoder looks back (span/2 - centre) samples; the chunk context must cover it.
    assert round(CONTEXT_S * encoder.sample_rate) >= encoder.window - encoder.hop

    with tempfile.TemporaryDirectory(prefix="nat-builtin-corpus-") as tmp:
        files = _corpus_files(Path(corpus_dir or tmp), clips, seed, clip_seconds, log)
        train = [f for i, f in enumerate(files) if i % HOLD_OUT_EVERY != HOLD_OUT_EVERY - 1]
        held = [f for i, f in enumerate(files) if i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1]
        log(f"collecting features: {len(train)} training clips, {len(held)} held out")
        feats = collect_features(pipeline, run, (open_path(os.fspath(f)) for f in train))
        held_feats = collect_features(pipeline, run, (open_path(os.fspath(f)) for f in held))
    probe = probe_signal()
    probe_feats = collect_features(pipeline, run, [from_array(probe, dsp.SAMPLE_RATE, "probe")])

    streams, fit_report, heldout, probe_codes = {}, {}, {}, {}
    for name, route in STREAMS.items():
        log(f"fitting {name}: {feats[name].shape[0]} frames x {feats[name].shape[1]} dims, {LEVELS} levels of {CODES[name]} codes")
        norm = fit_normalization(feats[name])
        books, report = fit_rvq(apply_normalization(feats[name], norm), LEVELS, CODES[name], seed, ITERATIONS)
        streams[name] = {**route, "normalization": norm, "projection": None, "codebooks": books}
        fit_report[name] = {
            "frames": int(feats[name].shape[0]),
            "dim": int(feats[name].shape[1]),
            "codes": CODES[name],
            "levels": [{k: round(v, 6) if isinstance(v, float) else v for k, v in r.items()} for r in report],
        }
        heldout[name] = {"frames": int(held_feats[name].shape[0]), "mse_per_level": _heldout(held_feats[name], norm, books)}
        probe_codes[name] = _codes(probe_feats[name], norm, books).tolist()

    provenance = {
        "recipe": f"python -m neural_audio_tokenizer.export.builtin --out <dir> --seed {seed}" + ("" if (clips, clip_seconds) == (CLIPS, CLIP_SECONDS) else f" --clips {clips} --clip-seconds {clip_seconds:g}"),
        "seed": seed,
        "corpus": {**corpus_mod.describe_corpus(clips, seed, clip_seconds), "held_out": f"every {HOLD_OUT_EVERY}th clip ({len(held)} clips)", **tools},
        "encoder": {
            "kind": "fixed DSP (export/dsp.py), no learned weights",
            "onnx_opset": dsp.OPSET,
            "frame_centre": f"encoder frame i is centred at sample i*{dsp.HOP} + {dsp.CENTRE}",
            "acoustic": f"{dsp.N_FFT_ACOUSTIC}-pt Hann STFT, {dsp.N_MELS} mel bands {dsp.MEL_FMIN:g}-{dsp.MEL_FMAX:g} Hz, per-frame normalized log (floor {dsp.FLOOR:g}), DCT c0..c{dsp.N_CEPSTRA - 1}; level envelope log(level / {dsp.LEVEL_FRAMES}-frame local level + {dsp.ENVELOPE_FLOOR:g})",
            "semantic": f"12-bin chroma ({dsp.N_FFT_CHROMA}-pt STFT magnitude, {dsp.CHROMA_FMIN:g}-{dsp.CHROMA_FMAX:g} Hz), computed every {dsp.CHROMA_HOP} samples and Hann-smoothed over {dsp.SMOOTH_FRAMES} of those frames, L1-normalized, each value repeated for its {dsp.CHROMA_REPEAT} encoder frames",
        },
        "fit": {"algorithm": "residual k-means (k-means++ init, Lloyd), codebooks/fit.py", "iterations": ITERATIONS, "streams": fit_report},
        "libraries": _versions(),
    }
    verification = {
        "reference": "none: the encoder is fixed DSP with no torch counterpart",
        "heldout_quantization": heldout,
        "probe": {
            "signal": "export/builtin.py probe_signal(): 4 s at 22050 Hz (triad, noise, silence, clicks)",
            "sha256": hashlib.sha256(probe.astype("<f4").tobytes()).hexdigest(),
            "codes": probe_codes,
        },
    }
    path = write_pack(
        out, name=NAME, description=DESCRIPTION, frame_rate=FRAME_RATE, window_s=WINDOW_S, context_s=CONTEXT_S,
        encoders=encoders, streams=streams, provenance=provenance, verification=verification,
    )
    log(f"wrote {path} in {time.monotonic() - started:.0f} s")
    for name, rep in fit_report.items():
        for level, r in enumerate(rep["levels"]):
            log(f"  {name}{level}: mse {r['mse']:.4f} (held out {heldout[name]['mse_per_level'][level]:.4f}), perplexity {r['perplexity']:.1f}, dead codes {r['dead_codes']}")
    return path


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for pkg in ("numpy", "onnx", "onnxruntime", "soundfile", "soxr", "mido"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "missing"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neural_audio_tokenizer.export.builtin", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="pack folder to write (replaced if it exists)")
    parser.add_argument("--seed", type=int, default=0, help="corpus and k-means seed (default 0)")
    parser.add_argument("--clips", type=int, default=CLIPS, help=f"corpus clips (default {CLIPS})")
    parser.add_argument("--clip-seconds", type=float, default=CLIP_SECONDS, help=f"seconds per clip (default {CLIP_SECONDS:g})")
    parser.add_argument("--corpus-dir", type=Path, metavar="DIR", help="keep the rendered corpus in DIR and reuse it on the next build (default: a temporary folder)")
    parser.add_argument("--demo", type=Path, metavar="OGG", help="also render the example clip (the repo's examples/demo.ogg)")
    parser.add_argument("--fixture", type=Path, metavar="FLAC", help="also render the test clip (the repo's tests/data/clip.flac)")
    args = parser.parse_args(argv)
    if not (args.out or args.demo or args.fixture):
        parser.error("give --out (and/or --demo, --fixture)")
    try:
        if args.demo:
            print(f"wrote {corpus_mod.render_demo(args.demo)}")
        if args.fixture:
            print(f"wrote {corpus_mod.render_fixture(args.fixture)}")
        if args.out:
            build(args.out, args.seed, args.clips, args.clip_seconds, corpus_dir=args.corpus_dir)
    except corpus_mod.CorpusError as exc:
        print(f"nat builtin: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
