"""Token quality of a pack on rendered clips, measured: the same sound gives the same tokens,
different sounds give different tokens, and the codebooks are used.

    nat-export eval [PACK] [--quick] [--json]        (evaluation/main.py)

Needs only the runtime and the corpus renderer (numpy, onnxruntime, soundfile, soxr, mido,
and the apt packages fluidsynth + fluid-soundfont-gm): no torch, so any pack, built-in or
exported, is evaluated the same way. The renderer is export/corpus.py, imported inside the
functions that use it (evaluation sits below export); :func:`check_renderer` says in one line
what is missing. Every clip is rendered here from seeded MIDI, so the
numbers are reproducible; the seeds differ from the built-in pack's codebook-fitting
corpus (``export/builtin.py`` renders ``corpus.plan_clip(i, seed=0)``; evaluation uses
``EVAL_SEED``), so no evaluation clip was seen by the fit.

Three measurements (docs/quality.md has the full tables and how to read them):

1. Stability: a *stability set* of corpus-style clips (solo, chords, ensemble, drums,
   synthesized noise/sweeps/clicks), rendered as 44.1 kHz stereo float, is tokenized as is
   and after each everyday change; per token level, the share of frames whose token is
   unchanged (frame k compared with frame k). Changes: gain -6/+3 dB; resampling 44.1 ->
   22.05 -> 44.1 kHz (soxr HQ); mono mixdown (L+R)/2 and the left channel alone; MP3
   (128 kbit/s CBR) and OGG Vorbis (libsndfile level 0.6, about 100 kbit/s) round trips
   through soundfile; a 10 ms delay (10 ms of silence prepended; the frame grid stays on the
   file start, so frame k of the delayed clip covers the original's
   [0.2k - 0.01, 0.2k + 0.19] s: 95 % overlap with frame k, which it is compared with); and
   seeded white noise at 40 dB SNR (SNR of the mono mixdown over the whole clip, the same
   noise on both channels so the mixdown the runtime tokenizes has exactly that SNR).
2. Distinctness: an *instrument set*: piano, strings, distorted guitar, drum kit, choir,
   flute, bass and synth pad each play the same tunes (the drum kit plays each tune's
   rhythm), every tune in its own key, mode and tempo, with a velocity drawn per render.
   Per-clip token histograms (per level: counts / frames, square-rooted, so Euclidean
   distance is the Hellinger distance; a stream concatenates its levels) classify each clip
   by its nearest other clip (leave-one-out; every class has same-class neighbours). And the
   per-frame mutual information between tokens and labels, normalized by the label entropy
   and corrected for chance by permuting labels between clips (AMI: 0 = no more than a
   random grouping of the clips, 1 = the tokens determine the label).
3. Utilization: on all evaluation clips, per level: codes used, perplexity, dead codes.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .measures import entropy, histograms, mutual_information, nn_accuracy, nn_chance, pct, reachable_codes, tokenize, utilization
from .perturbations import Perturbation, codec_change, gain_change, left_change, mono_change, mp3, noise_change, ogg, resample_change, shift_change

RATE = 44100  # evaluation clips: 44.1 kHz stereo float, the common file format
EVAL_SEED = 7331  # the built-in pack's fitting corpus uses seed 0: different clips, different notes
PERMUTATIONS = 50  # label permutations for the chance level of mutual information


@dataclass(frozen=True)
class SetSpec:
    """How big the evaluation is."""

    name: str
    stability_clips: tuple[int, ...]  # corpus.plan_clip indices (with EVAL_SEED)
    stability_seconds: float
    tunes: int  # the instrument set: every instrument plays every tune
    tune_seconds: float


FULL = SetSpec("full", tuple(range(20)), 10.0, 12, 8.0)  # one whole corpus.CYCLE; tunes in all 12 keys
QUICK = SetSpec("quick", (0, 1, 4, 7), 6.0, 3, 6.0)  # solo, ensemble, chords, drums

# class -> (General MIDI instrument, octave of the tune's tonic; None: the drum kit)
INSTRUMENT_SET: dict[str, tuple[str, int | None]] = {
    "piano": ("piano", 5),
    "strings": ("strings", 4),
    "distortion_guitar": ("distortion_guitar", 4),
    "drum_kit": ("drums", None),
    "choir": ("choir", 4),
    "flute": ("flute", 5),
    "bass": ("finger_bass", 2),
    "synth_pad": ("warm_pad", 4),
}
KEYS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

# The goals of issue #7 (any pack is measured against them; the built-in pack is held to them).
GOALS = {
    "stable_exact": (("gain -6 dB", "gain +3 dB", "resample 22.05 kHz"), 0.95),
    "stable_lossy": (("MP3 128 kbit/s", "OGG Vorbis", "noise 40 dB SNR"), 0.85),
    "instrument_nn_A": 0.90,
    "max_dead_share": 0.20,
}


@dataclass
class Clip:
    name: str
    audio: np.ndarray  # [samples, 2] float32 at RATE
    labels: dict = field(default_factory=dict)


@dataclass
class EvalSet:
    spec: SetSpec
    stability: list[Clip]
    instruments: list[Clip]
    render_s: float = 0.0

    def describe(self) -> dict:
        return {
            "name": self.spec.name,
            "seed": EVAL_SEED,
            "sample_rate": RATE,
            "channels": 2,
            "stability_clips": [c.name for c in self.stability],
            "stability_seconds": self.spec.stability_seconds,
            "instrument_classes": list(INSTRUMENT_SET),
            "tunes": [{"tune": t["tune"], "key": t["key"], "mode": t["mode"], "tempo": t["tempo"]} for t in tune_plans(self.spec.tunes)],
            "instrument_clips": len(self.instruments),
            "instrument_seconds": self.spec.tune_seconds,
            "render_s": round(self.render_s, 1),
        }


# --- rendering ----------------------------------------------------------------------------


def check_renderer() -> None:
    """A one-line corpus.CorpusError naming what rendering lacks (mido, the fluidsynth program,
    the GM soundfont) and how to get it; nothing when all is there."""
    from ..export import corpus

    try:
        import mido  # noqa: F401  (corpus.write_midi imports it only inside the render threads)
    except ImportError:
        raise corpus.CorpusError("rendering the evaluation set needs mido: pip install mido (or the [export] extra)") from None
    corpus.tools()


def finish(samples: np.ndarray, seconds: float, rate: int = RATE) -> np.ndarray:
    """[n, 2] float32: exact length, 10 ms fade-out, peak at corpus.PEAK (-6 dBFS), like the corpus."""
    from ..export import corpus

    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = np.repeat(x[:, None], 2, axis=1)
    n = round(seconds * rate)
    x = np.concatenate([x[:n], np.zeros((max(0, n - len(x)), x.shape[1]))])
    fade = min(n, rate // 100)
    x[n - fade :] *= np.linspace(1.0, 0.0, fade)[:, None]
    top = float(np.max(np.abs(x))) if n else 0.0
    if top > 0:
        x *= corpus.PEAK / top
    return x.astype(np.float32)


def render_audio(parts: Sequence, tempo: float, seconds: float, reverb: bool = False) -> np.ndarray:
    """FluidSynth, as corpus.render_parts does (``parts``: corpus.Part), but at 44.1 kHz and kept stereo, in memory."""
    from ..export import corpus

    exe, font = corpus.tools()
    with tempfile.TemporaryDirectory(prefix="nat-eval-") as tmp:
        mid, wav = Path(tmp, "clip.mid"), Path(tmp, "clip.wav")
        corpus.write_midi(parts, tempo, seconds, mid)
        cmd = [exe, "-ni", "-q", "-R", "1" if reverb else "0", "-C", "0", "-g", "0.5", "-r", str(RATE),
               "-O", "float", "-T", "wav", "-F", str(wav), str(font), str(mid)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not wav.is_file():
            raise corpus.CorpusError(f"fluidsynth failed (exit {done.returncode}): {done.stderr.strip()[:300]}")
        samples, rate = sf.read(str(wav), dtype="float64", always_2d=True)
    if rate != RATE:
        raise corpus.CorpusError(f"fluidsynth wrote {rate} Hz, expected {RATE}")
    return finish(samples, seconds)


def recipe_audio(index: int, seconds: float) -> Clip:
    """Corpus clip ``index`` of the evaluation seed, with the same parts as
    corpus.render_recipe builds, rendered by :func:`render_audio` (44.1 kHz stereo)."""
    from ..export import corpus

    recipe = corpus.plan_clip(index, EVAL_SEED)
    rng = np.random.default_rng([EVAL_SEED, recipe.index, 1])
    k, mode, tempo = recipe.key, recipe.mode, recipe.tempo
    name = f"{index:02d}_{recipe.kind}_{'+'.join(recipe.instruments) or recipe.detail}"
    labels = {"kind": recipe.kind, "instruments": list(recipe.instruments), "detail": recipe.detail}
    if recipe.kind == "synth":
        mono = corpus.synth_samples(recipe.detail, seconds, rng)  # at the corpus rate
        return Clip(name, finish(soxr.resample(mono, corpus.SAMPLE_RATE, RATE, quality="HQ"), seconds), labels)
    progression = corpus.PROGRESSIONS[mode][int(rng.integers(len(corpus.PROGRESSIONS[mode])))]
    parts = []
    for inst, role in zip(recipe.instruments, recipe.roles):
        if role == "drums":
            notes = corpus.drum_events(recipe.detail, seconds, tempo)
        elif role == "chords":
            notes = corpus.chord_events(progression, k, mode, seconds, tempo, arpeggio=recipe.detail == "arpeggio" or inst in ("harp", "nylon_guitar"))
        elif role == "bass":
            notes = corpus.bass_events(progression, k, mode, seconds, tempo)
        else:
            octave = 4 if inst in ("cello", "trombone", "french_horn") else 5
            notes = corpus.melody_events(corpus.random_melody(rng, 8.0 * float(rng.choice([1, 2])), mode), k, seconds, tempo, octave=octave)
        parts.append(corpus.Part(inst, notes))
    return Clip(name, render_audio(parts, tempo, seconds, reverb=recipe.reverb), labels)


def tune_plans(n: int) -> list[dict]:
    """``n`` tunes, each with its own key (no two alike), tempo and 8-beat melody; major and minor alternate."""
    from ..export import corpus

    keys = np.random.default_rng([EVAL_SEED, 1]).permutation(len(KEYS))
    out = []
    for j in range(n):
        rng = np.random.default_rng([EVAL_SEED, 1, j])
        mode = ("major", "minor")[j % 2]
        tempo = float(round(rng.uniform(80, 140)))
        out.append({"tune": f"tune{j}", "key": KEYS[int(keys[j % len(KEYS)])], "mode": mode, "tempo": tempo,
                    "melody": corpus.random_melody(rng, 8.0, mode, rest_chance=0.1)})
    return out


def instrument_audio(cls: str, tune: dict, index: int, seconds: float) -> Clip:
    from ..export import corpus

    # The drum kit plays a tune's rhythm: scale step -> kick, snare, hats, toms, ride.
    drum_voices = (corpus.KICK, corpus.SNARE, corpus.CLOSED_HAT, corpus.LOW_TOM, corpus.HIGH_TOM, corpus.OPEN_HAT, corpus.RIDE)
    program, octave = INSTRUMENT_SET[cls]
    velocity = int(np.random.default_rng([EVAL_SEED, 2, index]).integers(70, 111))
    if octave is None:  # the drum kit plays the tune's rhythm
        events = corpus.melody_events(tune["melody"], tune["key"], seconds, tune["tempo"], octave=4, velocity=velocity)
        root = corpus.tonic(tune["key"], 4)
        notes = tuple(corpus.NoteEvent(e.start, min(e.beats, 0.25), drum_voices[(e.pitch - root) % len(drum_voices)], e.velocity) for e in events)
    else:
        notes = corpus.melody_events(tune["melody"], tune["key"], seconds, tune["tempo"], octave=octave, velocity=velocity)
    labels = {"instrument": cls, "melody": tune["tune"], "key": tune["key"], "tempo": tune["tempo"], "velocity": velocity}
    return Clip(f"{cls}_{tune['tune']}", render_audio([corpus.Part(program, notes)], tune["tempo"], seconds), labels)


def build_set(spec: SetSpec = FULL, workers: int = 2) -> EvalSet:
    """Render every evaluation clip (in memory), ``workers`` FluidSynth processes at a time."""
    check_renderer()
    started = time.monotonic()
    tunes = tune_plans(spec.tunes)
    jobs: list[Callable[[], Clip]] = [lambda i=i: recipe_audio(i, spec.stability_seconds) for i in spec.stability_clips]
    pairs = [(c, t) for t in tunes for c in INSTRUMENT_SET]
    jobs += [lambda c=c, t=t, n=n: instrument_audio(c, t, n, spec.tune_seconds) for n, (c, t) in enumerate(pairs)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        clips = list(pool.map(lambda job: job(), jobs))
    k = len(spec.stability_clips)
    return EvalSet(spec, clips[:k], clips[k:], time.monotonic() - started)


# --- changes -------------------------------------------------------------------------------


# name -> what it does and how (evaluation/perturbations.py); every clip is at RATE
CHANGES: dict[str, Perturbation] = {
    "gain -6 dB": Perturbation("samples x 10^(-6/20)", gain_change(-6)),
    "gain +3 dB": Perturbation("samples x 10^(3/20) (peak -3 dBFS, no clipping)", gain_change(3)),
    "resample 22.05 kHz": Perturbation("44.1 -> 22.05 -> 44.1 kHz, soxr HQ", resample_change),
    "mono mixdown": Perturbation("(L+R)/2 as a mono signal", mono_change),
    "left channel": Perturbation("the left channel alone, as a mono recording", left_change),
    "MP3 128 kbit/s": Perturbation("soundfile MP3 (LAME) CBR, compression_level 0.65, and back", codec_change(mp3, block_s=None)),
    "OGG Vorbis": Perturbation("soundfile OGG Vorbis, compression_level 0.6, and back", codec_change(ogg, block_s=None)),
    "shift 10 ms": Perturbation("10 ms of silence prepended; frame k vs frame k (0.05 frame offset)", shift_change),
    "noise 40 dB SNR": Perturbation("seeded white noise, 40 dB under the clip's mean power", noise_change(40.0, (EVAL_SEED, 3))),
}


# --- measures only the rendered set has (labels) ----------------------------------------------


def label_information(clip_tokens: Sequence[np.ndarray], clip_labels: Sequence, seed: int = 0) -> dict:
    """How much of a clip label the per-frame tokens carry.

    ``nmi`` = I(T; Y) / H(Y); ``ami`` corrects it for chance as (I - E) / (H(Y) - E), where E
    is the mean I over PERMUTATIONS random reassignments of the labels between clips (which
    keeps each clip's frames together, so tokens that merely tell clips apart score 0)."""
    frames = np.concatenate(clip_tokens)
    _, codes = np.unique(np.asarray(clip_labels), return_inverse=True)
    lengths = [len(t) for t in clip_tokens]
    y = np.repeat(codes, lengths)
    h = entropy(np.bincount(y))
    mi = mutual_information(frames, y)
    rng = np.random.default_rng([EVAL_SEED, 4, seed])
    chance = float(np.mean([mutual_information(frames, np.repeat(rng.permutation(codes), lengths)) for _ in range(PERMUTATIONS)]))
    return {"nmi": mi / h if h > 0 else 0.0, "ami": (mi - chance) / (h - chance) if h > chance else 0.0, "chance_nmi": chance / h if h > 0 else 0.0}


# --- evaluation ---------------------------------------------------------------------------


def evaluate(pack: str | os.PathLike | None, eval_set: EvalSet, workers: int = 2, log: Callable[[str], None] = lambda m: None, device: str = "cpu") -> dict:
    """Every measurement for one pack on rendered clips; a JSON-ready dict. ``workers`` clips
    are tokenized at once, each with one onnxruntime thread (on ``device``)."""
    from ..runtime.tokenizer import Tokenizer

    started = time.monotonic()
    tok = Tokenizer.load(pack, device=device, threads=1)
    levels = {s: tok.pack.streams[s].codebooks.shape[0] for s in ("S", "A")}
    sizes = {s: tok.pack.streams[s].codebooks.shape[1] for s in ("S", "A")}
    level_sizes = {s: list(tok.pack.streams[s].level_sizes()) for s in ("S", "A")}  # what each level can emit
    names = [f"{s}{i}" for s in ("S", "A") for i in range(levels[s])]
    col = {n: i for i, n in enumerate(names)}
    pool = ThreadPoolExecutor(max_workers=max(1, workers))

    log(f"tokenizing {len(eval_set.stability)} stability clips x {len(CHANGES) + 1} versions")
    base = list(pool.map(lambda c: tokenize(tok, c.audio, RATE), eval_set.stability))
    rows = []
    for change, p in CHANGES.items():
        def one(i: int):
            audio, rate, extra = p.change(eval_set.stability[i].audio, RATE, i)
            return tokenize(tok, audio, rate), extra

        results = list(pool.map(one, range(len(base))))
        same = np.zeros(len(names))
        frames = 0
        per_clip = []
        for ref, (got, _) in zip(base, results):
            n = min(len(ref), len(got))
            eq = ref[:n] == got[:n]
            same += eq.sum(axis=0)
            frames += n
            per_clip.append(eq.mean(axis=0))
        row = {"change": change, "how": p.how, "frames": frames,
               "agreement": {n: float(same[i] / frames) for i, n in enumerate(names)},
               "worst_clip": {n: float(min(p[i] for p in per_clip)) for i, n in enumerate(names)}}
        kbps = [extra["kbps"] for _, extra in results if "kbps" in extra]
        if kbps:
            row["kbps"] = float(np.mean(kbps))
        rows.append(row)

    log(f"tokenizing {len(eval_set.instruments)} instrument-set clips")
    inst = list(pool.map(lambda c: tokenize(tok, c.audio, RATE), eval_set.instruments))
    pool.shutdown()
    targets = {"instrument": [c.labels["instrument"] for c in eval_set.instruments], "melody": [c.labels["melody"] for c in eval_set.instruments]}
    hist = {n: histograms([t[:, col[n]] for t in inst], sizes[n[0]]) for n in names}
    feats = dict(hist)
    for s in ("S", "A"):
        feats[s] = np.concatenate([hist[f"{s}{i}"] for i in range(levels[s])], axis=1)
    nn = {f: {target: nn_accuracy(x, y) for target, y in targets.items()} for f, x in feats.items()}
    info = {n: {target: label_information([t[:, col[n]] for t in inst], y, k) for k, (target, y) in enumerate(targets.items())} for n in names}
    distinct = {
        "clips": len(inst),
        "frames": int(sum(len(t) for t in inst)),
        "nn_chance": {target: nn_chance(y) for target, y in targets.items()},
        "nn_accuracy": nn,
        "information": info,
        "verdict": _verdict(nn, info),
    }

    everything = np.concatenate(base + inst)
    reach = {n: reachable_codes(tok.pack.streams[n[0]].codebooks[int(n[1:])]) for n in names}
    util = {n: utilization(everything[:, col[n]], reach[n]) for n in names}
    result = {
        "pack": {"name": tok.pack.name, "path": os.fspath(tok.pack.path), "manifest_sha256": tok.pack.manifest_sha256,
                 "codes": level_sizes, "levels": levels, "encoders": sorted(tok.pack.encoders)},
        "set": eval_set.describe(),
        "levels": names,
        "stability": rows,
        "distinctness": distinct,
        "utilization": {"frames": int(len(everything)), "clips": len(base) + len(inst), "levels": util},
        "eval_s": round(time.monotonic() - started, 1),
    }
    result["goals"] = check_goals(result)
    return result


def _verdict(nn: dict, info: dict) -> dict:
    """Does S follow what is played and A who plays it? Both by histogram NN and by level-0 AMI."""
    s_nn = nn["S"]["melody"] > nn["S"]["instrument"]
    a_nn = nn["A"]["instrument"] > nn["A"]["melody"]
    s_mi = info["S0"]["melody"]["ami"] > info["S0"]["instrument"]["ami"]
    a_mi = info["A0"]["instrument"]["ami"] > info["A0"]["melody"]["ami"]
    return {
        "S_follows_melody_nn": bool(s_nn), "A_follows_instrument_nn": bool(a_nn),
        "S0_follows_melody_ami": bool(s_mi), "A0_follows_instrument_ami": bool(a_mi),
        "shown": bool(s_nn and a_nn and s_mi and a_mi),
    }


def check_goals(result: dict) -> list[dict]:
    """Issue #7's goals, each with the measured value and whether it is met."""
    rows = {r["change"]: r["agreement"] for r in result["stability"]}
    out = []
    for key in ("stable_exact", "stable_lossy"):
        changes, threshold = GOALS[key]
        for change in changes:
            for level in ("S0", "A0"):
                value = rows[change][level]
                out.append({"goal": f"{level} stability under {change} >= {threshold:.0%}", "value": value, "threshold": threshold, "met": value >= threshold})
    value = result["distinctness"]["nn_accuracy"]["A"]["instrument"]
    out.append({"goal": f"A-stream nearest-neighbour instrument accuracy >= {GOALS['instrument_nn_A']:.0%}", "value": value, "threshold": GOALS["instrument_nn_A"], "met": value >= GOALS["instrument_nn_A"]})
    worst = max(result["utilization"]["levels"].items(), key=lambda kv: kv[1]["dead_share"])
    out.append({"goal": f"no level with more than {GOALS['max_dead_share']:.0%} dead codes (worst: {worst[0]})", "value": worst[1]["dead_share"], "threshold": GOALS["max_dead_share"], "met": worst[1]["dead_share"] <= GOALS["max_dead_share"]})
    return out



# --- report -------------------------------------------------------------------------------


def format_report(result: dict) -> str:
    """Markdown tables: stability, distinctness, utilization, goals."""
    names = result["levels"]
    s = result["set"]
    lines = [f"## Pack `{result['pack']['name']}` ({s['name']} set, {result['pack']['levels']['S']}+{result['pack']['levels']['A']} levels, "
             f"S codes per level {'/'.join(map(str, result['pack']['codes']['S']))}, A {'/'.join(map(str, result['pack']['codes']['A']))})", ""]
    lines += [f"### Stability: % of frames with the same token ({len(s['stability_clips'])} clips x {s['stability_seconds']:g} s, 44.1 kHz stereo)", ""]
    lines.append("| change | " + " | ".join(names) + " | how |")
    lines.append("|---|" + "---:|" * len(names) + "---|")
    for r in result["stability"]:
        how = r["how"] + (f"; {r['kbps']:.0f} kbit/s measured" if "kbps" in r else "")
        lines.append(f"| {r['change']} | " + " | ".join(pct(r["agreement"][n]) for n in names) + f" | {how} |")
    d = result["distinctness"]
    lines += ["", f"### Distinctness: instrument set ({d['clips']} clips: {len(s['instrument_classes'])} instruments x {len(s['tunes'])} tunes, {s['instrument_seconds']:g} s each)", ""]
    lines.append(f"Leave-one-out nearest-neighbour accuracy of per-clip token histograms, % (chance: instrument {pct(d['nn_chance']['instrument'])}, melody {pct(d['nn_chance']['melody'])}):")
    lines.append("")
    cols = ["S", "A"] + names
    lines.append("| label | " + " | ".join(cols) + " |")
    lines.append("|---|" + "---:|" * len(cols))
    for target in ("instrument", "melody"):
        lines.append(f"| {target} | " + " | ".join(pct(d["nn_accuracy"][c][target]) for c in cols) + " |")
    lines += ["", "Per-frame information the tokens carry about the label: AMI (chance-corrected; NMI = I/H(label) in brackets):", ""]
    lines.append("| label | " + " | ".join(names) + " |")
    lines.append("|---|" + "---:|" * len(names))
    for target in ("instrument", "melody"):
        lines.append(f"| {target} | " + " | ".join(f"{d['information'][n][target]['ami']:.2f} ({d['information'][n][target]['nmi']:.2f})" for n in names) + " |")
    v = d["verdict"]
    lines += ["", f"S follows what is played (melody) more than who plays it: {'yes' if v['S_follows_melody_nn'] and v['S0_follows_melody_ami'] else 'no'} "
              f"(NN {pct(d['nn_accuracy']['S']['melody'])} vs {pct(d['nn_accuracy']['S']['instrument'])}; S0 AMI {d['information']['S0']['melody']['ami']:.2f} vs {d['information']['S0']['instrument']['ami']:.2f}). "
              f"A follows who plays (instrument) more than what: {'yes' if v['A_follows_instrument_nn'] and v['A0_follows_instrument_ami'] else 'no'} "
              f"(NN {pct(d['nn_accuracy']['A']['instrument'])} vs {pct(d['nn_accuracy']['A']['melody'])}; A0 AMI {d['information']['A0']['instrument']['ami']:.2f} vs {d['information']['A0']['melody']['ami']:.2f})."]
    u = result["utilization"]
    lines += ["", f"### Utilization ({u['clips']} clips, {u['frames']} frames)", ""]
    lines.append("| | " + " | ".join(names) + " |")
    lines.append("|---|" + "---:|" * len(names))
    lines.append("| codes used | " + " | ".join(f"{u['levels'][n]['used']}/{u['levels'][n]['codes']}" for n in names) + " |")
    lines.append("| perplexity | " + " | ".join(f"{u['levels'][n]['perplexity']:.1f}" for n in names) + " |")
    lines.append("| dead codes % | " + " | ".join(pct(u["levels"][n]["dead_share"]) for n in names) + " |")
    lines += ["", "### Goals", ""]
    if s["name"] != FULL.name:
        lines += [f"(The {s['name']} set is too small to decide these, dead codes above all: {u['frames']} frames for "
                  f"S codes per level {'/'.join(map(str, result['pack']['codes']['S']))}, A {'/'.join(map(str, result['pack']['codes']['A']))}. The full set decides them.)", ""]
    for g in result["goals"]:
        lines.append(f"- [{'x' if g['met'] else ' '}] {g['goal']}: {pct(g['value'])} %")
    lines += ["", f"Rendering {s['render_s']:.0f} s, evaluation {result['eval_s']:.0f} s."]
    return "\n".join(lines) + "\n"
