"""Measure the built-in pack's robustness levers (issue #12) on real music and the GM sets.

    python bench/robust_levers.py --variants base,fmax5k --fits clean,perturbed ...

For each *encoder variant* (export/dsp.py constants changed before the graph is built) the
pooled S/A features are collected once, through the runtime's FeaturePipeline and silence
floor, for: the built-in corpus (seed 0, the fitting set), extra real music for fitting,
the real-music evaluation excerpts as decoded and after MP3 / OGG / gain / resampling, and
the GM evaluation sets of evaluation/rendered.py (stability clips after MP3 / OGG, the
instrument set). Then for each *fit variant* (what the codebooks are fitted on, codes per
level, feature weighting) it fits normalization and residual k-means exactly as
export/builtin.py does and reports stability per level, distinctness (GM instrument from A,
melody from S0 and S, real-music half/half) and change rates. Figures: docs/rendered.md.

Real music comes from Debian's warzone2100-music and hedgewars-data packages (nothing is
committed); the evaluation excerpts are every third file, the fitting excerpts the files
after them, so no real evaluation file is fitted on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from neural_audio_tokenizer.codebooks.fit import apply_normalization, fit_normalization, fit_rvq  # noqa: E402
from neural_audio_tokenizer.codebooks.quantize import quantize  # noqa: E402
from neural_audio_tokenizer.evaluation import measures, music, perturbations, rendered  # noqa: E402
from neural_audio_tokenizer.export import builtin, dsp  # noqa: E402
from neural_audio_tokenizer.export.collect import ort_runner  # noqa: E402
from neural_audio_tokenizer.export.glossary import SILENT_DB, name_profile  # noqa: E402
from neural_audio_tokenizer.export.glossary import measure as glossary_measure  # noqa: E402
from neural_audio_tokenizer.runtime.features import build_pipeline  # noqa: E402
from neural_audio_tokenizer.runtime.inputs.audio import from_array, open_path  # noqa: E402
from neural_audio_tokenizer.runtime.silence import DEFAULT_FLOOR_DBFS, SilenceGate  # noqa: E402

FOLDERS = {"hedgewars": "/usr/share/games/hedgewars/Data/Music", "warzone2100": "/usr/share/games/warzone2100/music"}
VERSIONS = ("base", "mp3", "ogg", "gain-6", "resample")

# name -> dsp module constants to change (export/dsp.py)
ENCODERS: dict[str, dict] = {
    "base": {},
    "fmax5k": {"MEL_FMAX": 5000.0},
    "floor-15dB": {"FLOOR": 10 ** -1.5},
    "cep6": {"N_CEPSTRA": 6},
    # the semantic branch (issue #15): chroma band and compression; the first is the encoder before #15
    "chroma-5k-linear": {"CHROMA_FMAX": 5000.0, "CHROMA_POWER": 1.0},
    "chroma-5k-0.5": {"CHROMA_FMAX": 5000.0, "CHROMA_POWER": 0.5},
    "chroma-5k-0.3": {"CHROMA_FMAX": 5000.0, "CHROMA_POWER": 0.3},
    "chroma-2k-linear": {"CHROMA_FMAX": 2000.0, "CHROMA_POWER": 1.0},
    "chroma-2k-0.5": {"CHROMA_FMAX": 2000.0, "CHROMA_POWER": 0.5},
}
TRIAD_SEED = 4242  # bench/glossary.py's development seed (its evaluation seed 7332 is never used here)


def real_files(which: str) -> dict[str, list[Path]]:
    out = {}
    for name, folder in FOLDERS.items():
        files = music.find_audio(folder)
        out[name] = files[0::3] if which == "eval" else files[1::3]
    return out


def versions_of(x: np.ndarray, rate: int, i: int) -> dict[str, tuple[np.ndarray, int]]:
    return {
        "base": (x, rate),
        "mp3": (perturbations.mp3(x, rate)[0], rate),
        "ogg": (perturbations.ogg(x, rate)[0], rate),
        "gain-6": (perturbations.gain(x, -6), rate),
        "resample": (perturbations.resample_round_trip(x, rate), rate),
    }


class Collector:
    """Pooled features and silent-frame masks through the runtime's pipeline and silence floor."""

    def __init__(self, constants: dict) -> None:
        saved = {k: getattr(dsp, k) for k in constants}
        for k, v in constants.items():
            setattr(dsp, k, v)
        dsp.OUTPUT_DIMS["acoustic"] = dsp.N_CEPSTRA + 1
        try:
            enc = dsp.build_dsp_encoder()
        finally:
            for k, v in saved.items():
                setattr(dsp, k, v)
            dsp.OUTPUT_DIMS["acoustic"] = dsp.N_CEPSTRA + 1
        self.digest = hashlib.sha256(enc.model_bytes).hexdigest()[:12]  # the cache follows the encoder, not its name
        self.pipeline = build_pipeline({"dsp": enc.spec()}, builtin.STREAMS, builtin.FRAME_RATE, builtin.WINDOW_S, builtin.CONTEXT_S)
        self.run = ort_runner({"dsp": (enc.model_bytes, enc.input, enc.outputs)}, threads=1)
        self.gate = SilenceGate(DEFAULT_FLOOR_DBFS, builtin.FRAME_RATE, {})

    def features(self, source) -> tuple[dict[str, np.ndarray], np.ndarray]:
        metered = self.gate.meter(source)
        parts = {"S": [], "A": []}
        silent = []
        for chunk in self.pipeline.iter_chunks(metered, self.run):
            for s in parts:
                parts[s].append(chunk.streams[s])
            silent.append(metered.silent(chunk.first_frame, chunk.n_frames))
        return {s: np.concatenate(v) for s, v in parts.items()}, np.concatenate(silent)


def collect(name: str, cache: Path, seconds: float, corpus_dir: Path, workers: int) -> dict:
    """Every feature set for encoder variant ``name`` (cached as .npz)."""
    col = Collector(ENCODERS[name])
    path = cache / f"features-{name}-{col.digest}-{seconds:g}s.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    from concurrent.futures import ThreadPoolExecutor

    started = time.monotonic()
    out: dict[str, np.ndarray] = {}

    def put(key: str, feats: dict, silent: np.ndarray) -> None:
        out[f"{key}|S"], out[f"{key}|A"], out[f"{key}|silent"] = feats["S"], feats["A"], silent

    every = builtin.HOLD_OUT_EVERY
    corpus_files = builtin._corpus_files(corpus_dir, builtin.CLIPS, 0, builtin.CLIP_SECONDS, print)
    main, harmony = corpus_files[: builtin.CLIPS], corpus_files[builtin.CLIPS :]
    train = [f for i, f in enumerate(main) if i % every != every - 1]
    harmony_train = [f for i, f in enumerate(harmony) if i % every != every - 1]
    triads = _triad_clips(cache / f"triads-{TRIAD_SEED}")

    def measured_job(item):
        """Features plus the glossary's descriptors (pitch-class profile, level) per frame."""
        key, f = item
        feats, silent = col.features(open_path(str(f)))
        x, rate = sf.read(str(f), dtype="float32")
        m = glossary_measure(x, rate, builtin.FRAME_RATE, len(silent))
        return key, feats, silent, m.chroma, m.dbfs

    def real_job(item):
        tag, i, f, fit = item
        x, rate = music.load(f, seconds)
        vs = versions_of(x, rate, i)
        if fit:  # fitting needs the decoded file and its codec versions only
            vs = {v: vs[v] for v in ("base", "mp3", "ogg")}
        return [(f"{tag}/{i}/{v}", col.features(from_array(y.mean(axis=1), r, "x"))) for v, (y, r) in vs.items()]

    jobs_real = [(f"real-eval/{folder}", i, f, False) for folder, fs in real_files("eval").items() for i, f in enumerate(fs)]
    jobs_real += [(f"real-fit/{folder}", i, f, True) for folder, fs in real_files("fit").items() for i, f in enumerate(fs)]
    gm = rendered.build_set(rendered.FULL, workers)

    def gm_job(item):
        kind, i, clip = item
        if kind == "inst":
            return [(f"gm-inst/{i}/base", col.features(from_array(clip.audio.mean(axis=1), rendered.RATE, "x")))]
        vs = {"base": clip.audio, "mp3": perturbations.mp3(clip.audio, rendered.RATE, block_s=None)[0], "ogg": perturbations.ogg(clip.audio, rendered.RATE, block_s=None)[0]}  # one write call, as rendered.CHANGES
        return [(f"gm-stab/{i}/{v}", col.features(from_array(y.mean(axis=1), rendered.RATE, "x"))) for v, y in vs.items()]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        measured = [(f"corpus/{k}", f) for k, f in enumerate(train)] + [(f"harmony/{k}", f) for k, f in enumerate(harmony_train)]
        measured += [(f"triads/{k}", f) for k, (f, _) in enumerate(triads)]
        for key, feats, silent, chroma, dbfs in pool.map(measured_job, measured):
            put(key, feats, silent)
            out[f"{key}|chroma"], out[f"{key}|dbfs"] = chroma, dbfs
        out["triad-labels"] = np.array([label for _, label in triads])
        for results in pool.map(real_job, jobs_real):
            for key, (feats, silent) in results:
                put(key, feats, silent)
        gm_items = [("stab", i, c) for i, c in enumerate(gm.stability)] + [("inst", i, c) for i, c in enumerate(gm.instruments)]
        for results in pool.map(gm_job, gm_items):
            for key, (feats, silent) in results:
                put(key, feats, silent)
    out["gm-inst-labels"] = np.array([[c.labels["instrument"], c.labels["melody"]] for c in gm.instruments])
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **out)
    print(f"[{name}] features collected in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return out


def _triad_clips(folder: Path) -> list[tuple[Path, str]]:
    """bench/glossary.py's held-out triads rendered with the development seed: (clip, "C major")."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import glossary as triad_bench  # bench/glossary.py

    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(i, inst, root, q) for i, (inst, (root, q)) in enumerate((inst, t) for inst in triad_bench.INSTRUMENTS for t in triad_bench.triads())]
    paths = [triad_bench.render(*job, folder, TRIAD_SEED) for job in jobs]
    return [(p, f"{triad_bench.vocab.PITCH_CLASSES[root]} {q}") for p, (_, _, root, q) in zip(paths, jobs)]


def chord_naming(f: dict, fit: dict, norm, books) -> dict:
    """bench/glossary.py's chord measure for an S fit: each S0 code named from the corpus frames
    (and harmony clips' frames when the fit uses them) it gets, then the share of held-out
    triad frames whose S0 code's name is their triad, and the ceiling of one name per code."""
    prefixes = ["corpus/"] + (["harmony/"] if fit.get("harmony") else [])
    ks = [k for p in prefixes for k in keys(f, p)]
    codes = np.concatenate([codes_of(f[f"{k}|S"], f[f"{k}|silent"], norm, books[:1])[:, 0] for k in ks])
    chroma = np.concatenate([f[f"{k}|chroma"] for k in ks])
    sounding = np.concatenate([f[f"{k}|dbfs"] for k in ks]) >= SILENT_DB  # as export/glossary.py names codes
    names = {c: name_profile(chroma[(codes == c) & sounding].mean(axis=0))[1] for c in np.unique(codes[(codes >= 0) & sounding])}
    right, per_code, frames = 0, {}, 0
    for k in keys(f, "triads/"):
        want = str(f["triad-labels"][int(k.split("/")[1])])
        for c in codes_of(f[f"{k}|S"], f[f"{k}|silent"], norm, books[:1])[:, 0]:
            right += names.get(c) == want
            per_code.setdefault(c, {}).setdefault(want, 0)
            per_code[c][want] += 1
            frames += 1
    ceiling = sum(max(v.values()) for v in per_code.values())
    return {"S0 chord = triad": round(100 * right / frames, 1), "ceiling": round(100 * ceiling / frames, 1), "S0 codes named": sum(1 for v in names.values() if v)}


# --- fitting and measuring ---------------------------------------------------------------------


def keys(f: dict, prefix: str, version: str | None = None) -> list[str]:
    ks = sorted({k.rsplit("|", 1)[0] for k in f if k.startswith(prefix) and "|" in k})
    return [k for k in ks if version is None or k.endswith("/" + version)]


def fit_stream(train: np.ndarray, codes: tuple[int, ...], seed: int = 0, weights: np.ndarray | None = None):
    norm = fit_normalization(train)
    if weights is not None:
        norm = norm.copy()
        norm[1] = norm[1] / weights  # a larger std makes a dimension count less
    z = apply_normalization(train, norm)
    books = []
    for level, k in enumerate(codes):
        b, _ = fit_rvq(z, 1, k, seed + level, builtin.ITERATIONS)
        books.append(b[0].astype(np.float64))
        z = z - b[0].astype(np.float64)[quantize(z, b.astype(np.float64))[:, 0]]
    return norm, books


def codes_of(feats: np.ndarray, silent: np.ndarray, norm, books) -> np.ndarray:
    z = apply_normalization(feats, norm)
    out = np.empty((len(z), len(books)), dtype=np.int64)
    for level, b in enumerate(books):
        c = quantize(z, b[None])[:, 0]
        out[:, level] = c
        z = z - b[c]
    out[silent[: len(out)]] = -1  # the silence codes (one fixed code per level)
    return out


def noise_weights(f: dict, stream: str, norm: np.ndarray, power: float) -> np.ndarray:
    """Per dimension: (codec noise / spread) ** -power, from the corpus-independent real-fit
    pairs (decoded vs MP3/OGG), normalized to mean 1."""
    base_keys = keys(f, "real-fit/", "base")
    diffs, whole = [], []
    for bk in base_keys:
        b = apply_normalization(f[f"{bk}|{stream}"], norm)
        whole.append(b)
        for v in ("mp3", "ogg"):
            o = apply_normalization(f[f"{bk[:-4]}{v}|{stream}"], norm)
            n = min(len(b), len(o))
            diffs.append(o[:n] - b[:n])
    noise = np.concatenate(diffs).std(axis=0)
    spread = np.concatenate(whole).std(axis=0)
    w = (noise / spread) ** -power
    return w / w.mean()


def transformed(f: dict, fit: dict) -> dict:
    """``f`` with the fit's feature transforms applied per clip: ``a_mean_only`` keeps A's
    means (pooling "mean"), ``smooth`` averages each frame with its neighbours (weights
    1-2-1, a stand-in for smoothing inside the encoder)."""
    if not (fit.get("a_mean_only") or fit.get("smooth")):
        return f
    out = dict(f)
    for k in f:
        if not (k.endswith("|S") or k.endswith("|A")):
            continue
        x = f[k]
        if fit.get("a_mean_only") and k.endswith("|A"):
            x = x[:, : x.shape[1] // 2]
        if fit.get("smooth") and len(x) > 2:
            padded = np.concatenate([x[:1], x, x[-1:]])
            x = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
        out[k] = x
    return out


def measure(f: dict, fit: dict) -> dict:
    """Fit per ``fit`` and measure everything."""
    f = transformed(f, fit)
    train = {s: [f[f"{k}|{s}"][~f[f"{k}|silent"]] for k in keys(f, "corpus/")] for s in "SA"}
    if fit.get("harmony"):  # S only, as export/builtin.py does
        train["S"] += [f[f"{k}|S"][~f[f"{k}|silent"]] for k in keys(f, "harmony/")]
    if fit.get("real"):
        for s in "SA":
            train[s] += [f[f"{k}|{s}"][~f[f"{k}|silent"]] for k in keys(f, "real-fit/", "base")]
    if fit.get("perturbed"):
        for s in "SA":
            train[s] += [f[f"{k}|{s}"][~f[f"{k}|silent"]] for v in ("mp3", "ogg") for k in keys(f, "real-fit/", v)]
    packs = {}
    for s in "SA":
        x = np.concatenate(train[s])
        weights = None
        if fit.get("noise_weight") and s in fit.get("noise_weight_streams", "SA"):
            norm0 = fit_normalization(x)
            weights = noise_weights(f, s, norm0, fit["noise_weight"])
        packs[s] = fit_stream(x, tuple(fit["codes"][s]), 0, weights)

    def tokens(key: str) -> np.ndarray:
        return np.concatenate([codes_of(f[f"{key}|{s}"], f[f"{key}|silent"], *packs[s]) for s in "SA"], axis=1)

    names = [f"S{i}" for i in range(len(fit["codes"]["S"]))] + [f"A{i}" for i in range(len(fit["codes"]["A"]))]
    result = {"fit": fit, "levels": names, "stability": {}}
    for group, prefixes, versions in (("real", ["real-eval/hedgewars", "real-eval/warzone2100"], ("mp3", "ogg", "gain-6", "resample")), ("gm", ["gm-stab/"], ("mp3", "ogg"))):
        for prefix in prefixes:
            label = prefix.split("/")[1] if group == "real" else "gm"
            base_keys = keys(f, prefix, "base")
            base = {k: tokens(k) for k in base_keys}
            for v in versions:
                same, n_all = np.zeros(len(names)), 0
                for k in base_keys:
                    o = tokens(k[:-4] + v)
                    n = min(len(o), len(base[k]))
                    same += (o[:n] == base[k][:n]).sum(axis=0)
                    n_all += n
                result["stability"][f"{label} {v}"] = {n: round(100 * same[i] / n_all, 1) for i, n in enumerate(names)}
            if group == "real":
                toks = [base[k] for k in base_keys]
                col = {n: i for i, n in enumerate(names)}
                halves = {}
                for g, members in (("S", [n for n in names if n[0] == "S"]), ("A", [n for n in names if n[0] == "A"]), ("S+A", names)):
                    cols = [col[n] for n in members]
                    sizes = [max(fit["codes"][n[0]][int(n[1:])], 1) + 1 for n in members]
                    halves[g] = round(100 * measures.halves_found([t + 1 for t in toks], cols, sizes), 1)
                rates = measures.change_rates(toks, names, None)
                result.setdefault("halves", {})[label] = halves
                result.setdefault("change_rate", {})[label] = {**{n: round(100 * v, 1) for n, v in rates["levels"].items()}, "rle": round(100 * rates["rle_folded"], 1)}
    # GM distinctness: instrument from A, melody from S0 and S
    labels = f["gm-inst-labels"]
    inst = [tokens(k) for k in sorted(keys(f, "gm-inst/", "base"), key=lambda k: int(k.split("/")[1]))]
    col = {n: i for i, n in enumerate(names)}

    def hist(members):
        return np.concatenate([measures.histograms([t[:, col[n]] + 1 for t in inst], fit["codes"][n[0]][int(n[1:])] + 1) for n in members], axis=1)

    result["chord"] = chord_naming(f, fit, *packs["S"])
    result["gm_nn"] = {
        "instrument from A": round(100 * measures.nn_accuracy(hist([n for n in names if n[0] == "A"]), labels[:, 0]), 1),
        "instrument from A0": round(100 * measures.nn_accuracy(hist(["A0"]), labels[:, 0]), 1),
        "melody from S0": round(100 * measures.nn_accuracy(hist(["S0"]), labels[:, 1]), 1),
        "melody from S": round(100 * measures.nn_accuracy(hist([n for n in names if n[0] == "S"]), labels[:, 1]), 1),
    }
    return result


FITS: dict[str, dict] = {
    "clean": {"codes": {"S": [256] * 4, "A": [256] * 4}},
    "real": {"codes": {"S": [256] * 4, "A": [256] * 4}, "real": True},
    "real+perturbed": {"codes": {"S": [256] * 4, "A": [256] * 4}, "real": True, "perturbed": True},
    "A 64/128/256/256": {"codes": {"S": [256] * 4, "A": [64, 128, 256, 256]}},
    "SA 64/128/256/256": {"codes": {"S": [64, 128, 256, 256], "A": [64, 128, 256, 256]}},
    "SA 128/128/256/256": {"codes": {"S": [128, 128, 256, 256], "A": [128, 128, 256, 256]}},
    "A mean only": {"codes": {"S": [256] * 4, "A": [256] * 4}, "a_mean_only": True},
    "smooth 1-2-1": {"codes": {"S": [256] * 4, "A": [256] * 4}, "smooth": True},
    "S 64/128, A noise-weighted 1": {"codes": {"S": [64, 128, 256, 256], "A": [256] * 4}, "noise_weight": 1.0, "noise_weight_streams": "A"},
    "S 64/128, A mean only, noise-weighted 1": {"codes": {"S": [64, 128, 256, 256], "A": [256] * 4}, "a_mean_only": True, "noise_weight": 1.0, "noise_weight_streams": "A"},
    "SA 64/128, A noise-weighted 1": {"codes": {"S": [64, 128, 256, 256], "A": [64, 128, 256, 256]}, "noise_weight": 1.0, "noise_weight_streams": "A"},
    "S 64/128, A 128/128, A noise-weighted 1": {"codes": {"S": [64, 128, 256, 256], "A": [128, 128, 256, 256]}, "noise_weight": 1.0, "noise_weight_streams": "A"},
    "SA 64/128, A mean only, noise-weighted 1": {"codes": {"S": [64, 128, 256, 256], "A": [64, 128, 256, 256]}, "a_mean_only": True, "noise_weight": 1.0, "noise_weight_streams": "A"},
    "S 64/128, A noise-weighted 2": {"codes": {"S": [64, 128, 256, 256], "A": [256] * 4}, "noise_weight": 2.0, "noise_weight_streams": "A"},
    "S 64/128, A 32/128, A noise-weighted 1": {"codes": {"S": [64, 128, 256, 256], "A": [32, 128, 256, 256]}, "noise_weight": 1.0, "noise_weight_streams": "A"},
    "SA 64/128, A noise-weighted 1.5": {"codes": {"S": [64, 128, 256, 256], "A": [64, 128, 256, 256]}, "noise_weight": 1.5, "noise_weight_streams": "A"},
    "SA 64/64, A noise-weighted 1": {"codes": {"S": [64, 64, 256, 256], "A": [64, 64, 256, 256]}, "noise_weight": 1.0, "noise_weight_streams": "A"},
    "noise-weighted 0.5": {"codes": {"S": [256] * 4, "A": [256] * 4}, "noise_weight": 0.5},
    "noise-weighted 1": {"codes": {"S": [256] * 4, "A": [256] * 4}, "noise_weight": 1.0},
    # issue #15: the shipped sizes and weights, without and with the harmony clips in S's fit
    "shipped": {"codes": {"S": [64, 128, 256, 256], "A": [64, 128, 256, 256]}, "noise_weight": 1.0, "noise_weight_streams": "A"},
    "shipped + harmony": {"codes": {"S": [64, 128, 256, 256], "A": [64, 128, 256, 256]}, "noise_weight": 1.0, "noise_weight_streams": "A", "harmony": True},
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--encoders", default="base", help=f"comma list of {', '.join(ENCODERS)}")
    p.add_argument("--fits", default="clean", help=f"semicolon list of {'; '.join(FITS)}")
    p.add_argument("--seconds", type=float, default=40.0, help="excerpt of each real file (default 40 s)")
    p.add_argument("--cache", type=Path, default=Path("/tmp/nat-levers"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", type=Path, help="append results here (one JSON object per line)")
    args = p.parse_args()
    print(f"machine: {measures.machine()}", file=sys.stderr)
    for enc in args.encoders.split(","):
        f = collect(enc, args.cache, args.seconds, args.cache / "corpus", args.workers)
        for fit in args.fits.split(";"):
            r = measure(f, FITS[fit])
            r["encoder"], r["fit_name"] = enc, fit
            print(json.dumps(r))
            if args.json:
                with open(args.json, "a") as out:
                    out.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
