"""Is a pack's glossary right? Held-out FluidSynth renders of all 24 major and minor triads.

Every triad is rendered on several instruments, each clip with its own voicing (close
position: inversion, lowest note in octave 3 or 4, doubled bass note) and velocity drawn
from ``SEED``. The built-in pack's corpus uses seed 0, root-position triads in octave 4
inside progressions, and harmony clips whose voicings are never these (tests/test_corpus.py
checks it: close position only above C5, open and spread voicings). Each clip is tokenized by the pack and
measured frame by frame with the glossary's own descriptors (export/glossary.py ``measure``):

- chord: the share of frames whose S0 code's glossary chord names the rendered triad's root
  and quality (goal >= 80 %); also how many frames' S0 code has a chord at all, and the
  same naming applied to each frame's own pitch-class profile (what the descriptor alone
  reaches, an upper bound for the glossary);
- loudness / brightness: the share of frames whose A0 code's glossary word equals the word
  of the frame's own measured level / spectral centroid (goal >= 85 %); also with each clip
  at a random gain of -40..0 dB, because the renders all peak at -6 dBFS like the corpus.
  A version-2 glossary has no A loudness word (issue #23: the level is a frame field), so
  its loudness columns read n/a;
- family (issue #23): held-out clips of every melodic instrument of the corpus alone, the
  three basses, the drum kit in each style, and mixtures (export/corpus.py ``plan_mixture``
  with this seed: a lead with bass, half of them with drums). Per clip, each sounding
  frame's A0 code names its largest family; the clip is right when the most common of
  those names its GM family (solos), or, for mixtures, when the most common largest family
  other than bass and drum kit names the lead's; drums: a mixture's frames' codes give the
  drum kit 10 % or more on average exactly when it has drums. Also: how often the clip's
  family is among the families the legend names (10 % or more) on at least half its frames,
  and the ceiling any one family per A0 code could reach, fitted on these very clips;
- distinct: how many A0 codes have a legend line of their own, with and without the
  percentages.

    python bench/glossary.py                       # the built-in pack
    python bench/glossary.py --pack PACK --pack tests/data/tiny_pack --seed 4242

Needs the runtime, mido and FluidSynth with the GM soundfont (no torch).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from neural_audio_tokenizer.export import corpus  # noqa: E402
from neural_audio_tokenizer.export.glossary import measure, name_profile  # noqa: E402
from neural_audio_tokenizer.runtime import glossary as vocab  # noqa: E402

SEED = 7332  # not the corpus's 0, not evaluation/rendered.py's 7331
INSTRUMENTS = ("piano", "strings", "drawbar_organ", "nylon_guitar", "choir", "brass")
SECONDS = 3.0
GOALS = {"chord": 0.80, "loudness": 0.85, "brightness": 0.85}
FAMILY_SECONDS, MIXTURES = 6.0, 26  # mixtures: two per lead family
DRUM_SHARE = 0.10


def triads() -> list[tuple[int, str]]:
    return [(root, quality) for quality in vocab.QUALITIES for root in range(12)]


def render(index: int, instrument: str, root: int, quality: str, folder: Path, seed: int) -> Path:
    """One held triad: a drawn inversion (0-2), bass octave (3 or 4), doubled bass note or not."""
    rng = np.random.default_rng([seed, index])
    third = 4 if quality == "major" else 3
    base = corpus.tonic(root, int(rng.choice([3, 4])))
    notes = [base, base + third, base + 7]
    for _ in range(int(rng.integers(0, 3))):  # inversions: the lowest note goes up an octave
        notes = notes[1:] + [notes[0] + 12]
    if rng.random() < 0.5:
        notes = [notes[0] - 12] + notes
    velocity = int(rng.integers(60, 111))
    beats = SECONDS  # tempo 60: a beat is a second
    part = corpus.Part(instrument, tuple(corpus.NoteEvent(0.0, beats * 0.95, p, velocity) for p in notes))
    return corpus.render_parts([part], 60.0, SECONDS, folder / f"{index:03d}_{instrument}_{root}_{quality}.wav")


def family_clips(folder: Path, seed: int) -> list[dict]:
    """The family set: solos (each melodic instrument, the basses, the drum kit per style), then mixtures."""
    rng = np.random.default_rng([seed, 7])
    jobs = []
    for i, name in enumerate([*corpus.MELODIC, *corpus.MIXTURE_BASSES]):
        melody = corpus.random_melody(rng, 8.0, str(rng.choice(["major", "minor"])))
        octave = 2 if name in corpus.MIXTURE_BASSES else 4 if name in ("cello", "trombone", "french_horn") else 5
        key, tempo = str(rng.choice(corpus.PITCH_NAMES)), float(round(rng.uniform(70, 160)))
        jobs.append(({"kind": "solo", "family": corpus.family(name), "drums": False, "name": name},
                     lambda p, n=name, m=melody, k=key, t=tempo, o=octave: corpus.render_clip(n, m, t, k, FAMILY_SECONDS, p, octave=o)))
    for style in corpus.DRUM_STYLES:
        tempo = float(round(rng.uniform(70, 160)))
        jobs.append(({"kind": "solo", "family": corpus.DRUM_KIT, "drums": True, "name": f"drums_{style}"},
                     lambda p, s=style, t=tempo: corpus.render_parts([corpus.Part("drums", corpus.drum_events(s, FAMILY_SECONDS, t))], t, FAMILY_SECONDS, p)))
    for j in range(MIXTURES):
        r = corpus.plan_mixture(j, seed)
        jobs.append(({"kind": "mixture", "family": corpus.family(r.instruments[0]), "drums": "drums" in r.instruments, "name": "+".join(r.instruments)},
                     lambda p, r=r: corpus.render_recipe(r, seed, 12.0, p)))
    with ThreadPoolExecutor(2) as pool:  # threads: the work is in fluidsynth processes
        paths = list(pool.map(lambda k: jobs[k][1](folder / f"family_{k:03d}.wav"), range(len(jobs))))
    return [{**info, "path": p} for (info, _), p in zip(jobs, paths)]


def evaluate_families(pack_ref: str, clips: list[dict]) -> dict:
    """Family accuracy on the family set, and how distinct the A0 legend lines are."""
    import re

    from neural_audio_tokenizer.packs import resolve_pack
    from neural_audio_tokenizer.runtime.pack import load_pack
    from neural_audio_tokenizer.runtime.session import SessionOptions
    from neural_audio_tokenizer.runtime.tokenizer import Tokenizer

    pack = load_pack(resolve_pack(pack_ref))
    a0 = pack.glossary.codes.get("A0", {}) if pack.glossary else {}
    lines = [vocab.entry_text("A0", c, e).split(" = ", 1)[1] for c, e in a0.items()]
    out = {"a0_codes": len(lines), "distinct": len(set(lines)), "distinct_without_numbers": len({re.sub(r" [0-9]+ %", "", x) for x in lines})}
    if not any("families" in e for e in a0.values()):
        return {**out, "family_solo": None, "family_mixture": None, "drums": None}  # no family words to score
    tok = Tokenizer(pack, SessionOptions("cpu", 1))
    right: dict[str, list[bool]] = {"solo": [], "mixture": [], "drums": [], "named_solo": [], "named_mixture": []}
    sounding = []
    for clip in clips:
        x, sr = sf.read(str(clip["path"]), dtype="float32")
        frames = list(tok.stream((x, sr), clip["path"].name).frames)
        m = measure(x, sr, pack.frame_rate, len(frames))
        codes = [f.A[0] for k, f in enumerate(frames) if m.dbfs[k] >= vocab.SILENT_DB]
        sounding.append(codes)
        fams = [a0.get(c, {}).get("families") or {} for c in codes]
        skip = () if clip["kind"] == "solo" else ("bass", vocab.DRUM_KIT)
        tops = [max((w for w in fam if w not in skip), key=lambda w: fam[w], default=None) for fam in fams]
        named = Counter(t for t in tops if t is not None)
        right[clip["kind"]].append(bool(named) and named.most_common(1)[0][0] == clip["family"])
        shown = [bool(fam) and clip["family"] in vocab.shown_families(fam) for fam in fams]
        right[f"named_{clip['kind']}"].append(bool(shown) and 2 * sum(shown) >= len(shown))
        if clip["kind"] == "mixture":
            drums = float(np.mean([fam.get(vocab.DRUM_KIT, 0.0) for fam in fams])) if fams else 0.0
            right["drums"].append((drums >= DRUM_SHARE) == clip["drums"])
    # What any one family per A0 code could reach, fitted on these very clips (an optimistic bound).
    ceiling = {}
    for kind in ("solo", "mixture"):
        picked = [(clip, codes) for clip, codes in zip(clips, sounding) if clip["kind"] == kind]
        per_code: dict[int, Counter] = defaultdict(Counter)
        for clip, codes in picked:
            for c in codes:
                per_code[c][clip["family"]] += 1
        best = {c: n.most_common(1)[0][0] for c, n in per_code.items()}
        ceiling[f"family_ceiling_{kind}"] = sum(bool(codes) and Counter(best[c] for c in codes).most_common(1)[0][0] == clip["family"] for clip, codes in picked) / max(1, len(picked))
    rates = {(k if k == "drums" else f"family_{k}"): sum(v) / len(v) for k, v in right.items() if v}
    return {**out, **rates, **ceiling, "family_clips": {k: len(v) for k, v in right.items() if not k.startswith("named")}}


def evaluate(pack_ref: str, clips: list[tuple[Path, int, str]], seed: int) -> dict:
    from neural_audio_tokenizer.packs import resolve_pack
    from neural_audio_tokenizer.runtime.pack import load_pack
    from neural_audio_tokenizer.runtime.session import SessionOptions
    from neural_audio_tokenizer.runtime.tokenizer import Tokenizer

    pack = load_pack(resolve_pack(pack_ref))
    if pack.glossary is None:
        raise SystemExit(f"bench/glossary.py: pack {pack.name!r} has no glossary")
    tok = Tokenizer(pack, SessionOptions("cpu", 1))
    s0, a0 = pack.glossary.codes.get("S0", {}), pack.glossary.codes.get("A0", {})
    n = {"frames": 0, "chord": 0, "named": 0, "own": 0, "loud_frames": 0, "loudness": 0, "bright_frames": 0, "brightness": 0, "gain_loudness": 0, "gain_frames": 0}
    rng = np.random.default_rng([seed, 99])
    by_code = {"chord": defaultdict(Counter), "loudness": defaultdict(Counter)}  # what one name per code could reach
    for path, root, quality in clips:
        want = f"{vocab.PITCH_CLASSES[root]} {quality}"
        x, sr = sf.read(str(path), dtype="float32")
        for gain_db in (0.0, float(rng.uniform(-40.0, 0.0))):
            y = x * np.float32(10 ** (gain_db / 20))
            frames = list(tok.stream((y, sr), path.name).frames)
            m = measure(y, sr, pack.frame_rate, len(frames))
            for k, f in enumerate(frames):
                a_entry = a0.get(f.A[0], {})
                own_loud = vocab.word(vocab.LOUDNESS, round(float(m.dbfs[k]), 1))
                has_loudness = "loudness" in a_entry
                if gain_db != 0.0:
                    n["gain_frames"] += has_loudness
                    n["gain_loudness"] += a_entry.get("loudness") == own_loud
                    continue
                n["frames"] += 1
                chord = s0.get(f.S[0], {}).get("chord")
                by_code["chord"][f.S[0]][want] += 1
                by_code["loudness"][f.A[0]][own_loud] += 1
                n["chord"] += chord == want
                n["named"] += chord is not None
                n["own"] += name_profile(m.chroma[k])[1] == want
                n["loud_frames"] += has_loudness
                n["loudness"] += a_entry.get("loudness") == own_loud
                if np.isfinite(m.centroid_hz[k]):
                    n["bright_frames"] += 1
                    n["brightness"] += a_entry.get("brightness") == vocab.word(vocab.BRIGHTNESS, round(float(m.centroid_hz[k])))
    return {
        "pack": pack.name,
        "manifest_sha256": pack.manifest_sha256,
        "frames": n["frames"],
        "chord": n["chord"] / n["frames"],
        "chord_named": n["named"] / n["frames"],
        "chord_own_profile": n["own"] / n["frames"],
        "loudness": n["loudness"] / n["loud_frames"] if n["loud_frames"] else None,
        "brightness": n["brightness"] / max(1, n["bright_frames"]),
        "brightness_frames": n["bright_frames"],
        "loudness_random_gain": n["gain_loudness"] / n["gain_frames"] if n["gain_frames"] else None,
        # The best any glossary with one chord (one loudness word) per code could score on
        # these very clips: the share of frames whose code's most common label is theirs.
        "chord_ceiling": sum(max(c.values()) for c in by_code["chord"].values()) / n["frames"],
        "loudness_ceiling": sum(max(c.values()) for c in by_code["loudness"].values()) / n["frames"],
    }


def machine() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")), "unknown CPU")
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/glossary.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pack", action="append", help="pack name or folder (repeatable; default: builtin)")
    parser.add_argument("--seed", type=int, default=SEED, help=f"voicing and velocity seed (default {SEED})")
    parser.add_argument("--instruments", default=",".join(INSTRUMENTS), help="General MIDI instruments (export/corpus.py names)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = parser.parse_args(argv)
    started = time.monotonic()
    instruments = args.instruments.split(",")
    with tempfile.TemporaryDirectory(prefix="nat-glossary-bench-") as tmp:
        jobs = [(i, inst, root, q) for i, (inst, (root, q)) in enumerate((inst, t) for inst in instruments for t in triads())]
        with ThreadPoolExecutor(2) as pool:  # threads: the work is in fluidsynth processes
            paths = list(pool.map(lambda j: render(*j, Path(tmp), args.seed), jobs))
        family_set = family_clips(Path(tmp), args.seed)
        rendered = time.monotonic() - started
        clips = [(p, root, q) for p, (_, _, root, q) in zip(paths, jobs)]
        results = [{**evaluate(ref, clips, args.seed), **evaluate_families(ref, family_set)} for ref in (args.pack or ["builtin"])]
    report = {"machine": machine(), "seed": args.seed, "instruments": instruments, "clips": len(clips), "family_clips": len(family_set), "seconds": SECONDS, "render_s": round(rendered, 1), "total_s": round(time.monotonic() - started, 1), "packs": results}
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"machine: {report['machine']}; {len(clips)} clips ({len(instruments)} instruments x 24 triads, {SECONDS:g} s, seed {args.seed}) and {len(family_set)} family clips; rendering {rendered:.0f} s, total {report['total_s']:.0f} s")

    def pct(value) -> str:
        return "n/a" if value is None else f"{100 * value:.1f} %"

    print("| pack | frames | S0 chord = triad | ceiling: one name per S0 code | frames whose S0 code has a chord | frame's own profile = triad | A0 loudness word | ceiling: one word per A0 code | A0 brightness word | A0 loudness, random gain -40..0 dB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['pack']} | {r['frames']} | {pct(r['chord'])} | {pct(r['chord_ceiling'])} | {pct(r['chord_named'])} | {pct(r['chord_own_profile'])} | {pct(r['loudness'])} | {pct(r['loudness_ceiling'])} | {pct(r['brightness'])} | {pct(r['loudness_random_gain'])} |")
    print("\n| pack | family, solo clips | named on most frames | ceiling: one family per A0 code | family (lead), mixtures | named on most frames | ceiling | drums yes/no, mixtures | A0 codes | distinct A0 lines | distinct without percentages |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        g = {k: pct(r.get(k)) for k in ("family_solo", "family_named_solo", "family_ceiling_solo", "family_mixture", "family_named_mixture", "family_ceiling_mixture", "drums")}
        print(f"| {r['pack']} | {g['family_solo']} | {g['family_named_solo']} | {g['family_ceiling_solo']} | {g['family_mixture']} | {g['family_named_mixture']} | {g['family_ceiling_mixture']} | {g['drums']} | {r['a0_codes']} | {r['distinct']} | {r['distinct_without_numbers']} |")
    for r in results:
        for goal, need in GOALS.items():
            if r[goal] is not None:
                print(f"- [{'x' if r[goal] >= need else ' '}] {r['pack']}: {goal} >= {100 * need:.0f} %: {100 * r[goal]:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
