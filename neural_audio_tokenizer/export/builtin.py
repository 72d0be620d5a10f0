"""The built-in pack's recipe: ``python -m neural_audio_tokenizer.export.builtin --out DIR``.

Everything comes from this repository and four apt packages (fluidsynth and
fluid-soundfont-gm for the corpus; warzone2100-music and hedgewars-data, real music whose
codec noise weights A: export/codec_noise.py), with no download and no torch: a seeded
corpus rendered with FluidSynth (export/corpus.py), a fixed-DSP ONNX
encoder (export/dsp.py), features gathered through the runtime's own FeaturePipeline in
onnxruntime (export/collect.py), normalization and residual-VQ codebooks fitted with numpy
(codebooks/fit.py), and the pack written by export/pack_writer.py. Same seed and tools ->
same bytes.

Streams: S = ``semantic`` (12-bin chroma, ~1 s context) pooled by mean; A = ``acoustic``
(mel cepstra c0..c7 and the level envelope) pooled by mean *and* standard deviation over
the 0.2 s frame, since how a timbre moves within a frame (attack, vibrato) helps tell
instruments apart. What the streams carry was chosen with ``nat-export eval`` (evaluation/
rendered.py, docs/quality.md), whose clips are rendered with other seeds than this corpus:
on its instrument set (8 instruments x 12 tunes in all 12 keys) the A stream names the
instrument of every clip by nearest neighbour (82 % with the former 20 cepstra, whose upper
half followed pitch), and S0 names the tune (73 %) far more often than the instrument
(25 %; the former spectral-flux dims in S had made S tell the instrument first).

Codebook sizes: 4 levels of 64, 128, 256 and 256 codes for both streams, stored as 256
entries per level (a smaller level repeats its codes; ties go to the lowest index, so the
repeats are never chosen). The fit sees the corpus's sounding frames (200 clips x 12 s x
5 Hz, less the frames below the silence floor; 20 more clips are held out); S also sees
273 harmony clips (27 held out): held chords of eight kinds in voicings drawn per chord,
so S0 codes keep chords apart and the glossary can name them (issue #15). A is fitted on
the 200 clips only: its codes, tuned for instruments and codecs, do not change with them. With 256 codes
at every level a lossy codec flipped one A0 token in twenty and one A1 token in five on
real music; the coarser first levels and A's codec-noise weights (export/codec_noise.py,
measured with bench/robust_levers.py, docs/quality.md) keep 96-99 % of A0 and 90-97 % of
A1 tokens, and S0 names the tune more often than before.

After the fit, the glossary step (export/glossary.py) measures every corpus clip, plus 104
mixture clips (a lead with bass and, in half, drums; no codebook sees them), and adds
``glossary.json``: what each level-0 code's frames sounded like and which GM families
played in them, from the corpus's known programs (docs/ndjson.md, "Glossary").

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

from ..codebooks.fit import apply_normalization, fit_normalization, snap_normalization
from ..codebooks.quantize import quantize
from ..runtime.inputs.audio import from_array, open_path
from ..runtime.silence import DEFAULT_FLOOR_DBFS, SilenceGate
from . import codec_noise
from . import corpus as corpus_mod
from . import dsp, glossary
from ..runtime.features import build_pipeline
from .collect import ort_runner
from .pack_writer import write_pack

NAME = "builtin"
FRAME_RATE = 5
WINDOW_S = 10.0
CONTEXT_S = 1.0
LEVELS = 4
CODES = {"S": (64, 128, 256, 256), "A": (64, 128, 256, 256)}  # per level (export/codec_noise.py)
NOISE_WEIGHTED = ("A",)  # streams whose normalization is weighted by codec noise (export/codec_noise.py)
CLIPS = 220
HARMONY_CLIPS = 300  # held chords for S (export/corpus.py plan_harmony); A is fitted on the CLIPS only
HARMONY_STREAMS = ("S",)
MIXTURE_CLIPS = 104  # leads with bass and drums (export/corpus.py plan_mixture): the glossary's family labels only, no fit
CLIP_SECONDS = 12.0
HOLD_OUT_EVERY = 11  # every 11th clip is held out (11 and CYCLE's 20 are coprime: all kinds)
ITERATIONS = 25
STREAMS = {
    "S": {"encoder": "dsp", "output": "semantic", "pooling": "mean"},
    "A": {"encoder": "dsp", "output": "acoustic", "pooling": "mean_std"},
}
DESCRIPTION = (
    "NAT's built-in pack: fixed signal processing, no learned weights, no download. "
    "S (semantic): 12-bin chroma of 100 Hz-2 kHz over about a second, compressed (harmony: what is played). "
    "A (acoustic): mean and spread of 8 mel cepstra and the level envelope over each 0.2 s frame "
    "(timbre: who plays it). 5 frames per second, 4 RVQ levels of 64, 128, 256 and 256 codes per stream, "
    "fitted on the sounding frames of a FluidSynth-rendered General MIDI corpus plus synthesized noise, sweeps "
    "and clicks, S also on held chords of eight kinds; A weighted against codec noise measured on real music. "
    "Frames below -70 dBFS get the silence codes."
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


def _codes(features: np.ndarray, normalization: np.ndarray, codebooks: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    return quantize(apply_normalization(features, normalization), codebooks.astype(np.float64), exclude=exclude)


def _probe_codes(probe: np.ndarray, pipeline, run, streams: dict) -> dict[str, list]:
    """The probe's codes by the recipe's arithmetic, silence floor included (its silent
    second gets the codes the pack gives digital zero, its noise never the silence S0 code,
    as in the runtime)."""

    def codes(name: str, features: np.ndarray) -> np.ndarray:
        return _codes(features, streams[name]["normalization"], streams[name]["codebooks"])

    gate = SilenceGate.for_pipeline(DEFAULT_FLOOR_DBFS, pipeline, run, codes, dsp.SAMPLE_RATE)
    source = gate.meter(from_array(probe, dsp.SAMPLE_RATE, "probe"))
    out: dict[str, list] = {name: [] for name in STREAMS}
    for chunk in pipeline.iter_chunks(source, run):
        silent = source.silent(chunk.first_frame, chunk.n_frames)
        s = streams["S"]
        found = gate.keep_apart(
            silent,
            {n: codes(n, f) for n, f in chunk.streams.items()},
            s["codebooks"][0],
            lambda rows, excluded: _codes(chunk.streams["S"][rows], s["normalization"], s["codebooks"], excluded),
        )
        for name, c in gate.apply(silent, found).items():
            out[name] += c.tolist()
    return out


def _heldout(features: np.ndarray, normalization: np.ndarray, codebooks: np.ndarray) -> list[float]:
    """Mean squared residual per dimension after each level, on frames the fit never saw."""
    residual = apply_normalization(features, normalization)
    codes = quantize(residual, codebooks.astype(np.float64))
    out = []
    for level in range(codebooks.shape[0]):
        residual = residual - codebooks[level].astype(np.float64)[codes[:, level]]
        out.append(round(float(np.mean(residual**2)), 6))
    return out


def _corpus_files(folder: Path, clips: int, seed: int, clip_seconds: float, log, harmony_clips: int = HARMONY_CLIPS, mixture_clips: int = MIXTURE_CLIPS) -> list[Path]:
    """The corpus in ``folder`` (``clips`` clips, ``harmony_clips`` harmony clips, then
    ``mixture_clips`` mixture clips): reused when its corpus.json says it is this corpus
    (rendering is deterministic, so a reused render is the same bytes), else rendered there."""
    listing = folder / "corpus.json"
    names = [r.file_name for r in corpus_mod.plan_corpus(clips, seed, harmony_clips, mixture_clips)]
    if listing.is_file():
        meta = json.loads(listing.read_text())
        if (meta.get("seed"), meta.get("clip_seconds"), [c.get("index") for c in meta.get("clips", [])]) == (seed, clip_seconds, list(range(len(names)))) and all((folder / n).is_file() for n in names):
            log(f"reusing the rendered corpus in {folder}")
            return [folder / n for n in names]
    log(f"rendering {clips} + {harmony_clips} harmony + {mixture_clips} mixture clips of {clip_seconds:g} s (seed {seed}) into {folder}")
    return corpus_mod.render_corpus(folder, clips, seed, clip_seconds, harmony_clips=harmony_clips, mixture_clips=mixture_clips)


def build(out: Path, seed: int = 0, clips: int = CLIPS, clip_seconds: float = CLIP_SECONDS, log=print, corpus_dir: Path | None = None, harmony_clips: int = HARMONY_CLIPS) -> Path:
    started = time.monotonic()
    tools = corpus_mod.tool_provenance()
    encoder = dsp.build_dsp_encoder()
    encoders = {"dsp": encoder.spec()}
    encoders["dsp"]["receptive_field_s"] = dsp.receptive_field_s()  # lets live input use short chunks (runtime/live.py)
    pipeline = build_pipeline(encoders, STREAMS, FRAME_RATE, WINDOW_S, CONTEXT_S)
    run = ort_runner({"dsp": (encoder.model_bytes, encoder.input, encoder.outputs)}, threads=2)
    # The encoder looks back (span/2 - centre) samples; the chunk context must cover it.
    assert round(CONTEXT_S * encoder.sample_rate) >= encoder.window - encoder.hop

    music = codec_noise.music_files("fit")  # fails early, before rendering, when the packages are missing
    tmp = tempfile.TemporaryDirectory(prefix="nat-builtin-corpus-")  # kept until the glossary step has read the clips
    files = _corpus_files(Path(corpus_dir or tmp.name), clips, seed, clip_seconds, log, harmony_clips)
    main, harmony = files[:clips], files[clips : clips + harmony_clips]  # the mixture clips after them: glossary only

    def sounding(paths: list[Path], held: bool) -> dict[str, np.ndarray]:
        """Features of the training clips of ``paths``, or (``held``) of the held-out ones."""
        chosen = [f for i, f in enumerate(paths) if (i % HOLD_OUT_EVERY == HOLD_OUT_EVERY - 1) == held]
        return codec_noise.sounding_features(pipeline, run, (open_path(os.fspath(f)) for f in chosen))

    log(f"collecting features (sounding frames; every {HOLD_OUT_EVERY}th clip held out): {len(main)} clips, {len(harmony)} harmony clips for {', '.join(HARMONY_STREAMS)}")
    feats, held_feats = sounding(main, held=False), sounding(main, held=True)
    if harmony:
        more, more_held = sounding(harmony, held=False), sounding(harmony, held=True)
        for name in HARMONY_STREAMS:
            feats[name] = np.concatenate([feats[name], more[name]])
            held_feats[name] = np.concatenate([held_feats[name], more_held[name]])
    music_list = [f for fs in music.values() for f in fs]
    log(f"measuring codec noise on {len(music_list)} real music files (the first {codec_noise.SECONDS:g} s of each)")
    clean, change = codec_noise.codec_pairs(pipeline, run, music_list)
    probe = probe_signal()

    streams, fit_report, heldout, probe_codes, weights = {}, {}, {}, {}, {}
    for name, route in STREAMS.items():
        log(f"fitting {name}: {feats[name].shape[0]} frames x {feats[name].shape[1]} dims, {LEVELS} levels of {'/'.join(map(str, CODES[name]))} codes")
        norm = fit_normalization(feats[name])
        if name in NOISE_WEIGHTED:
            weights[name] = codec_noise.noise_weights(clean[name], change[name])
            norm = snap_normalization(np.stack([norm[0], norm[1] / weights[name]]))  # a dimension codecs rewrite counts less; snapped again so rebuilds agree
        books, report = codec_noise.fit_levels(feats[name], norm, CODES[name], seed, ITERATIONS)
        streams[name] = {**route, "normalization": norm, "projection": None, "codebooks": books}
        fit_report[name] = {
            "frames": int(feats[name].shape[0]),
            "dim": int(feats[name].shape[1]),
            "codes": list(CODES[name]),
            "levels": [{k: round(v, 6) if isinstance(v, float) else v for k, v in r.items()} for r in report],
        }
        heldout[name] = {"frames": int(held_feats[name].shape[0]), "mse_per_level": _heldout(held_feats[name], norm, books)}
    probe_codes = _probe_codes(probe, pipeline, run, streams)

    provenance = {
        "recipe": f"python -m neural_audio_tokenizer.export.builtin --out <dir> --seed {seed}" + ("" if (clips, clip_seconds, harmony_clips) == (CLIPS, CLIP_SECONDS, HARMONY_CLIPS) else f" --clips {clips} --harmony-clips {harmony_clips} --clip-seconds {clip_seconds:g}"),
        "seed": seed,
        "corpus": {**corpus_mod.describe_corpus(clips, seed, clip_seconds, len(harmony)), "held_out": f"every {HOLD_OUT_EVERY}th clip of each kind list",
                   "harmony_clips": f"fitted by {', '.join(HARMONY_STREAMS)} only; the glossary measures every clip", **tools},
        "encoder": {
            "kind": "fixed DSP (export/dsp.py), no learned weights",
            "onnx_opset": dsp.OPSET,
            "frame_centre": f"encoder frame i is centred at sample i*{dsp.HOP} + {dsp.CENTRE}",
            "acoustic": f"{dsp.N_FFT_ACOUSTIC}-pt Hann STFT, {dsp.N_MELS} mel bands {dsp.MEL_FMIN:g}-{dsp.MEL_FMAX:g} Hz, per-frame normalized log (floor {dsp.FLOOR:g}), DCT c0..c{dsp.N_CEPSTRA - 1}; level envelope log(level / {dsp.LEVEL_FRAMES}-frame local level + {dsp.ENVELOPE_FLOOR:g})",
            "semantic": f"12-bin chroma ({dsp.N_FFT_CHROMA}-pt STFT magnitude, {dsp.CHROMA_FMIN:g}-{dsp.CHROMA_FMAX:g} Hz), computed every {dsp.CHROMA_HOP} samples and Hann-smoothed over {dsp.SMOOTH_FRAMES} of those frames, raised to the power {dsp.CHROMA_POWER:g}, L1-normalized, each value repeated for its {dsp.CHROMA_REPEAT} encoder frames",
        },
        "fit": {"algorithm": "residual k-means (k-means++ init, Lloyd), codebooks/fit.py, one level at a time (seed + level), smaller levels repeated to 256 entries (export/codec_noise.py)",
                "frames": "sounding frames only: those at or above the silence floor", "iterations": ITERATIONS, "streams": fit_report},
        "codec_noise": {
            "what": "normalization std of the listed streams divided by per-dimension weights (spread / feature change under MP3 and OGG Vorbis round trips, mean 1), export/codec_noise.py",
            "codecs": list(codec_noise.CODECS),
            "packages": codec_noise.package_versions(),
            "files": [f"{pkg}: {', '.join(str(f.relative_to(codec_noise.MUSIC_PACKAGES[pkg])) for f in fs)}" for pkg, fs in music.items()],
            "seconds_per_file": codec_noise.SECONDS,
            "weights": {k: [float(x) for x in v] for k, v in weights.items()},
        },
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
    # The glossary step (export/glossary.py): every corpus clip measured, the same as
    # `nat-export glossary PACK --corpus DIR` on this pack and its --corpus-dir gives.
    path = glossary.add_glossary(path, files, root=files[0].parent, log=log)
    tmp.cleanup()
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
    parser.add_argument("--harmony-clips", type=int, default=HARMONY_CLIPS, help=f"harmony clips (held chords) S is also fitted on (default {HARMONY_CLIPS})")
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
            build(args.out, args.seed, args.clips, args.clip_seconds, corpus_dir=args.corpus_dir, harmony_clips=args.harmony_clips)
    except corpus_mod.CorpusError as exc:  # also missing real music (export/codec_noise.py)
        print(f"nat builtin: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
