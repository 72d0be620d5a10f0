"""Token quality on the user's own music: ``nat-export eval PACK --audio DIR``.

The rendered sets of evaluation/rendered.py say how a pack behaves on General MIDI clips; this
says how it behaves on whatever music is in ``DIR`` (every file libsndfile decodes, found
recursively), with no labels:

1. Stability: each file is tokenized as decoded and after each everyday change
   (:data:`CHANGES`: gain, MP3, OGG Vorbis, a resample round trip, mono, a 10 ms shift,
   white noise, and a pad of 16-bit dither against a pad of digital zero); per token
   level, the share of frames whose token is unchanged, frame k against frame k (all files
   pooled, and the worst file).
2. Distinctness without labels: each file's first half looks for its own second half among
   all halves (and the second half for its first) by the nearest token histogram, exactly
   the histograms of evaluation/measures.py; chance is 1 / (2 files - 1).
3. Change rate: per level, how often a token differs from the previous frame's, the share
   of frames ``--rle`` folds into the line before (all eight tokens unchanged), and the
   share of frames below the pack's silence floor (runtime/silence.py).

Every codec round trip here writes in blocks of perturbations.CODEC_BLOCK_S: libsndfile
1.2's Vorbis writer crashed when 90 s of stereo was written in one call.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .measures import change_rates, halves_found, machine, pct, tokenize
from .perturbations import PAD_S, Perturbation, codec_change, dither_pad, gain_change, mono_change, mp3, noise_change, ogg, resample_change, shift_change

SEED = 12  # noise and dither
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf")

# Issue #12's goals on real music (levels 0 and 1 under codecs, level 0 and 1 under gain and resampling).
GOALS: tuple[tuple[str, tuple[str, ...], float], ...] = (
    ("MP3 128 kbit/s", ("S0", "A0"), 0.98),
    ("MP3 128 kbit/s", ("S1", "A1"), 0.90),
    ("OGG Vorbis", ("S0", "A0"), 0.98),
    ("OGG Vorbis", ("S1", "A1"), 0.90),
    ("gain -6 dB", ("S0", "A0"), 0.995),
    ("gain +3 dB", ("S0", "A0"), 0.995),
    ("resample round trip", ("S0", "A0"), 0.995),
)


class AudioEvalError(Exception):
    """A folder that cannot be evaluated (missing, or no decodable audio in it)."""


# --- the files ----------------------------------------------------------------------------


def find_audio(folder: str | os.PathLike) -> list[Path]:
    """Audio files under ``folder`` by suffix, sorted (the order of every table and list)."""
    root = Path(folder)
    if not root.is_dir():
        raise AudioEvalError(f"--audio {os.fspath(folder)!r}: not a folder")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise AudioEvalError(f"--audio {os.fspath(folder)!r}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    return files


def load(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """[samples, channels] float32 and the rate: the first ``max_seconds`` (all if None)."""
    with sf.SoundFile(str(path)) as f:
        frames = f.frames if max_seconds is None else min(f.frames, round(max_seconds * f.samplerate))
        x = f.read(frames, dtype="float32", always_2d=True)
        return x, f.samplerate


# --- changes ------------------------------------------------------------------------------


# name -> what it does and how (evaluation/perturbations.py), at each file's own rate
CHANGES: dict[str, Perturbation] = {
    "gain -6 dB": Perturbation("samples x 10^(-6/20)", gain_change(-6)),
    "gain +3 dB": Perturbation("samples x 10^(3/20), in float (peaks above full scale are kept, not clipped)", gain_change(3)),
    "resample round trip": Perturbation("rate -> rate/2 -> rate, soxr HQ", resample_change),
    "mono mixdown": Perturbation("(L+R)/2 as a mono signal", mono_change),
    "MP3 128 kbit/s": Perturbation("soundfile MP3 (LAME) CBR, compression_level 0.65, written in 1 s blocks, and back", codec_change(mp3)),
    "OGG Vorbis": Perturbation("soundfile OGG Vorbis, compression_level 0.6, written in 1 s blocks, and back", codec_change(ogg)),
    "shift 10 ms": Perturbation("10 ms of silence prepended; frame k vs frame k", shift_change),
    "noise 40 dB SNR": Perturbation("seeded white noise, 40 dB under the file's mean power", noise_change(40.0, (SEED, 2))),
    "dither pad": Perturbation(f"{PAD_S:g} s of 16-bit TPDF dither before and after, against {PAD_S:g} s of digital zero", *dither_pad((SEED, 1))),
}


# --- measuring ------------------------------------------------------------------------------


@dataclass
class FileResult:
    name: str
    seconds: float
    rate: int
    channels: int
    base: np.ndarray  # [frames, levels] tokens of the file as decoded
    compared: dict  # change -> (equal [frames, levels] bool, facts)


def measure_file(tok, path: Path, index: int, max_seconds: float | None) -> FileResult:
    """Tokenize one file as decoded and after every change."""
    x, rate = load(path, max_seconds)
    base = tokenize(tok, x, rate)
    compared = {}
    for change, p in CHANGES.items():
        y, y_rate, facts = p.change(x, rate, index)
        got = tokenize(tok, y, y_rate)
        ref = base if p.reference is None else tokenize(tok, *p.reference(x, rate, index)[:2])
        n = min(len(ref), len(got))
        compared[change] = (ref[:n] == got[:n], facts)
    return FileResult(path.name, len(x) / rate, rate, x.shape[1], base, compared)


def evaluate_folder(
    pack,
    folder: str | os.PathLike,
    max_seconds: float | None = None,
    max_files: int | None = None,
    workers: int = 2,
    log: Callable[[str], None] = lambda m: None,
    device: str = "cpu",
) -> dict:
    """Every measurement on the audio in ``folder``; a JSON-ready dict shaped like
    rendered.evaluate's (``stability`` rows alike)."""
    from ..runtime.tokenizer import Tokenizer

    started = time.monotonic()
    files = find_audio(folder)[: max_files or None]
    tok = Tokenizer.load(pack, device=device, threads=1)
    levels = {s: tok.pack.streams[s].codebooks.shape[0] for s in ("S", "A")}
    sizes = {s: tok.pack.streams[s].codebooks.shape[1] for s in ("S", "A")}
    level_sizes = {s: list(tok.pack.streams[s].level_sizes()) for s in ("S", "A")}  # what each level can emit
    names = [f"{s}{i}" for s in ("S", "A") for i in range(levels[s])]
    log(f"tokenizing {len(files)} files x {len(CHANGES) + 2} versions" + (f" (the first {max_seconds:g} s of each)" if max_seconds else ""))

    skipped: list[dict] = []

    def one(item: tuple[int, Path]) -> FileResult | None:
        i, path = item
        try:
            return measure_file(tok, path, i, max_seconds)
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:  # one undecodable file does not end the run
            skipped.append({"file": os.fspath(path.relative_to(folder)), "reason": " ".join(str(exc).split())[:200]})
            return None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = [r for r in pool.map(one, enumerate(files)) if r is not None and len(r.base)]
    if not results:
        raise AudioEvalError(f"--audio {os.fspath(folder)!r}: no file could be tokenized ({skipped[0]['reason'] if skipped else 'empty'})")

    rows = []
    for change, p in CHANGES.items():
        same = np.zeros(len(names))
        frames = 0
        per_file = []
        for r in results:
            eq, _ = r.compared[change]
            same += eq.sum(axis=0)
            frames += len(eq)
            if len(eq):
                per_file.append(eq.mean(axis=0))
        row = {"change": change, "how": p.how, "frames": frames,
               "agreement": {n: float(same[i] / frames) if frames else 0.0 for i, n in enumerate(names)},
               "worst_clip": {n: float(min(q[i] for q in per_file)) for i, n in enumerate(names)}}
        kbps = [r.compared[change][1]["kbps"] for r in results if "kbps" in r.compared[change][1]]
        if kbps:
            row["kbps"] = float(np.mean(kbps))
        rows.append(row)

    base = [r.base for r in results]
    col = {n: i for i, n in enumerate(names)}
    groups = {"S": [f"S{i}" for i in range(levels["S"])], "A": [f"A{i}" for i in range(levels["A"])], "S+A": names}
    groups.update({n: [n] for n in names})
    halves = {g: halves_found(base, [col[n] for n in members], [sizes[n[0]] for n in members]) for g, members in groups.items()}
    silence = np.concatenate([tok.silence.codes["S"], tok.silence.codes["A"]]) if tok.silence.codes else None
    result = {
        "pack": {"name": tok.pack.name, "path": os.fspath(tok.pack.path), "manifest_sha256": tok.pack.manifest_sha256,
                 "codes": level_sizes, "levels": levels, "encoders": sorted(tok.pack.encoders), "silence_floor_dbfs": tok.pack.silence_floor_dbfs},
        "set": {"name": "audio", "folder": os.fspath(folder), "files": [r.name for r in results], "skipped": skipped,
                "max_seconds": max_seconds, "seconds": round(sum(r.seconds for r in results), 1),
                "rates": sorted({r.rate for r in results}), "channels": sorted({r.channels for r in results})},
        "levels": names,
        "stability": rows,
        "distinctness": {"files": len(results), "halves_found": halves, "chance": 1.0 / max(1, 2 * len(results) - 1)},
        "change_rate": change_rates(base, names, silence),
        "machine": machine(),
        "eval_s": round(time.monotonic() - started, 1),
    }
    result["goals"] = check_goals(result)
    return result


def check_goals(result: dict) -> list[dict]:
    rows = {r["change"]: r["agreement"] for r in result["stability"]}
    out = []
    for change, levels, threshold in GOALS:
        for level in levels:
            if level in rows.get(change, {}):
                value = rows[change][level]
                out.append({"goal": f"{level} stability under {change} >= {100 * threshold:g}%", "value": value, "threshold": threshold, "met": value >= threshold})
    return out


def format_report(result: dict) -> str:
    """Markdown: stability (the table rendered.format_report prints), distinctness, change rate, goals."""
    names = result["levels"]
    s = result["set"]
    p = result["pack"]
    excerpt = f", the first {s['max_seconds']:g} s of each" if s["max_seconds"] else ""
    lines = [f"## Pack `{p['name']}` on {s['folder']} ({len(s['files'])} files, {s['seconds'] / 60:.1f} min{excerpt}; "
             f"{p['levels']['S']}+{p['levels']['A']} levels, S codes per level {'/'.join(map(str, p['codes']['S']))}, A {'/'.join(map(str, p['codes']['A']))})", ""]
    if s["skipped"]:
        lines += [f"Skipped {len(s['skipped'])} files that could not be decoded: " + "; ".join(f"{k['file']} ({k['reason']})" for k in s["skipped"]), ""]
    lines += ["### Stability: % of frames with the same token (frame k vs frame k, all files pooled)", ""]
    lines.append("| change | " + " | ".join(names) + " | how |")
    lines.append("|---|" + "---:|" * len(names) + "---|")
    for r in result["stability"]:
        how = r["how"] + (f"; {r['kbps']:.0f} kbit/s measured" if "kbps" in r else "")
        lines.append(f"| {r['change']} | " + " | ".join(pct(r["agreement"][n]) for n in names) + f" | {how} |")
    lines += ["", "Worst file, %:", ""]
    lines.append("| change | " + " | ".join(names) + " |")
    lines.append("|---|" + "---:|" * len(names))
    for r in result["stability"]:
        lines.append(f"| {r['change']} | " + " | ".join(pct(r["worst_clip"][n]) for n in names) + " |")
    d = result["distinctness"]
    cols = list(d["halves_found"])
    lines += ["", f"### Distinctness: each half finds its other half ({d['files']} files, {2 * d['files']} halves; chance {pct(d['chance'])} %)", ""]
    lines.append("| | " + " | ".join(cols) + " |")
    lines.append("|---|" + "---:|" * len(cols))
    lines.append("| found % | " + " | ".join(pct(d["halves_found"][c]) for c in cols) + " |")
    c = result["change_rate"]
    lines += ["", "### Change rate: % of frames whose token differs from the previous frame's", ""]
    lines.append("| | " + " | ".join(names) + " | --rle folds | silent frames |")
    lines.append("|---|" + "---:|" * (len(names) + 2))
    lines.append("| as decoded | " + " | ".join(pct(c["levels"][n]) for n in names) + f" | {pct(c['rle_folded'])} | {pct(c['silent'])} |")
    lines += ["", "### Goals (issue #12)", ""]
    for g in result["goals"]:
        lines.append(f"- [{'x' if g['met'] else ' '}] {g['goal']}: {pct(g['value'])} %")
    lines += ["", f"Evaluation {result['eval_s']:.0f} s on {result['machine']}."]
    return "\n".join(lines) + "\n"
