"""A pack's glossary, written: what the corpus frames behind each level-0 code measured.

    nat-export glossary PACK --corpus DIR [--out NEWPACK]

Every corpus file is tokenized by the pack's own runtime tokenizer (so a frame's code is
exactly the code ``nat`` gives it), and the same decoded audio is measured frame by frame
with plain numpy signal processing, independent of the pack's encoders (:func:`measure`):
RMS level, spectral centroid, spectral flatness, the largest level rise (onset), the
strongest spectral peak, and a 12-bin pitch-class profile. Per level-0 code of each stream,
the word most of the frames have with those frames' median value (and, for S, their mean
pitch-class profile named by its strongest pitch classes and the best-matching single
note, fifth, or major or minor triad) become one entry in the fixed vocabulary of
runtime/glossary.py; codes no corpus frame got have no entry. A corpus rendered by
export/corpus.py says what played (its ``corpus.json``): then each A entry also gives the
share of every General MIDI family and the drum kit in its frames (issue #23).

Needs no torch (numpy, soxr, onnxruntime). Deterministic: files are read in sorted order,
values are rounded, the JSON is canonical, so the same pack and corpus give the same bytes.
The result is a new pack folder (the manifest lists and hashes ``glossary.json``, so the
manifest hash changes); the codes and every other file are untouched.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from ..errors import NatError
from ..runtime import glossary as vocab
from ..runtime.inputs.audio import AUDIO_EXTENSIONS, open_path
from ..runtime.pack import Pack, load_pack
from .pack_writer import install, staging

SR = 22050  # descriptors are measured at this rate (the corpus renders at it)
SPEC_FFT, SPEC_HOP = 1024, 256  # level rise, centroid, flatness: 46 ms windows every 11.6 ms
CHROMA_FFT, CHROMA_HOP = 4096, 1024  # pitch classes, peak: 5.4 Hz bins
CHROMA_BAND = (55.0, 2000.0)  # A1..B6: fundamentals and low harmonics; above, harmonics blur the profile
FLATNESS_BAND = (60.0, 8000.0)
PEAK_BAND = (30.0, 5000.0)
FLOOR_DB = -80.0  # level rises are measured from at most this far below full scale
SILENT_DB = vocab.LOUDNESS[1][1]  # frames quieter than this have no spectrum worth describing
CHORD_MIN_MATCH = 0.70  # cosine of a code's profile with the chosen template; below: no chord
HARMONICS = 4  # harmonics per note in the triad templates
PITCH_SHARE = 0.6  # a pitch class is named when it has this share of the strongest one's weight
MAX_PITCHES = 4


@dataclass
class Measures:
    """Per pack frame of one input: the descriptors (NaN where a frame was silent)."""

    dbfs: np.ndarray  # [n]
    centroid_hz: np.ndarray
    flatness: np.ndarray
    onset_db: np.ndarray
    peak_hz: np.ndarray
    chroma: np.ndarray  # [n, 12], each row summing to 1 (zeros when silent)

    @staticmethod
    def concat(parts: Sequence[Measures]) -> Measures:
        return Measures(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("dbfs", "centroid_hz", "flatness", "onset_db", "peak_hz", "chroma")))


def _stft_power(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """[frames, n_fft/2+1] power of Hann windows centred at 0, hop, 2*hop, ..."""
    pad = np.concatenate([np.zeros(n_fft // 2), x, np.zeros(n_fft // 2)])
    count = 1 + len(x) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(count)[:, None]
    frames = pad[np.minimum(idx, len(pad) - 1)] * np.hanning(n_fft)[None, :]
    return np.abs(np.fft.rfft(frames, axis=1)) ** 2


def _per_frame(values: np.ndarray, hop: int, bounds: np.ndarray) -> list[np.ndarray]:
    """Rows of ``values`` (one per STFT window centred at i*hop) grouped by the pack frame
    whose [start, end) holds the window's centre; a frame shorter than a hop gets the nearest."""
    centres = np.arange(len(values)) * hop
    out = []
    for start, end in zip(bounds[:-1], bounds[1:]):
        rows = np.nonzero((centres >= start) & (centres < end))[0]
        if rows.size == 0:
            rows = np.array([min(len(values) - 1, int(round(start / hop)))])
        out.append(values[rows])
    return out


def measure(x: np.ndarray, sample_rate: int, frame_rate: int, frames: int | None = None) -> Measures:
    """The descriptors of each pack frame of mono ``x``: frame k is [k, k+1) / frame_rate s,
    ``frames`` of them (default: as many as the tokenizer gives, ceil(duration * frame_rate))."""
    x = np.asarray(x, dtype=np.float64)
    if sample_rate != SR:
        x = soxr.resample(x, sample_rate, SR, quality="HQ")
    n = frames if frames is not None else int(np.ceil(len(x) * frame_rate / SR - 1e-9))
    bounds = np.round(np.arange(n + 1) * SR / frame_rate).astype(np.int64)
    x = np.concatenate([x, np.zeros(max(0, int(bounds[-1]) - len(x)))])
    dbfs = np.array([10 * np.log10(np.mean(x[a:b] ** 2) + 1e-12) for a, b in zip(bounds[:-1], bounds[1:])])

    power = _stft_power(x, SPEC_FFT, SPEC_HOP)
    freqs = np.fft.rfftfreq(SPEC_FFT, 1 / SR)
    level = 10 * np.log10(np.maximum(power.sum(axis=1) * 2 / np.sum(np.hanning(SPEC_FFT) ** 2) / SPEC_FFT, 10 ** (FLOOR_DB / 10)))
    rise = np.concatenate([[0.0], np.maximum(np.diff(level), 0.0)])
    flat = (freqs >= FLATNESS_BAND[0]) & (freqs <= FLATNESS_BAND[1])
    spec_rows = _per_frame(power, SPEC_HOP, bounds)
    rise_rows = _per_frame(rise, SPEC_HOP, bounds)

    cpower = _stft_power(x, CHROMA_FFT, CHROMA_HOP)
    cfreqs = np.fft.rfftfreq(CHROMA_FFT, 1 / SR)
    band = (cfreqs >= CHROMA_BAND[0]) & (cfreqs <= CHROMA_BAND[1])
    pitch_class = np.round(12 * np.log2(cfreqs[band] / 440.0) + 9).astype(int) % 12  # A = 9 when C = 0
    to_pc = np.zeros((int(band.sum()), 12))
    to_pc[np.arange(int(band.sum())), pitch_class] = 1.0
    peak_band = (cfreqs >= PEAK_BAND[0]) & (cfreqs <= PEAK_BAND[1])
    chroma_rows = _per_frame(cpower, CHROMA_HOP, bounds)

    out = {k: np.full(n, np.nan) for k in ("centroid_hz", "flatness", "onset_db", "peak_hz")}
    chroma = np.zeros((n, 12))
    for k in range(n):
        out["onset_db"][k] = float(rise_rows[k].max())
        if dbfs[k] < SILENT_DB:
            continue
        spec = spec_rows[k].mean(axis=0)
        out["centroid_hz"][k] = float(np.sum(freqs[1:] * spec[1:]) / max(np.sum(spec[1:]), 1e-30))
        p = spec[flat] + 1e-10 * spec[flat].max() + 1e-30  # relative floor: exact zeros would make any spectrum "tonal"
        out["flatness"][k] = float(np.exp(np.mean(np.log(p))) / np.mean(p))
        cspec = chroma_rows[k].mean(axis=0)
        out["peak_hz"][k] = float(cfreqs[peak_band][np.argmax(cspec[peak_band])])
        profile = np.sqrt(cspec[band]) @ to_pc  # magnitudes: a loud note does not drown the others
        chroma[k] = profile / max(profile.sum(), 1e-30)
    return Measures(dbfs, out["centroid_hz"], out["flatness"], out["onset_db"], out["peak_hz"], chroma)


# --- naming -----------------------------------------------------------------------------------



def _template(root: int, intervals: tuple[int, ...]) -> np.ndarray:
    """A chord's expected profile: each note with its first harmonics at 0.6^(h-1) (Gomez 2006), since
    a played note also lights the pitch classes of its harmonics (the 3rd a fifth up, the 5th a major third)."""
    out = np.zeros(12)
    for interval in intervals:
        for h in range(1, HARMONICS + 1):
            out[int(round(root + interval + 12 * np.log2(h))) % 12] += 0.6 ** (h - 1)
    return out / np.linalg.norm(out)


_NAMED = [(vocab.chord_name(root, shape), _template(root, vocab.SHAPES[shape])) for shape in vocab.SHAPES for root in range(12)]
_TEMPLATES = np.array([t for _, t in _NAMED])
# A triad wins over a single note or a fifth it beats by less than this: a held triad's weak
# third must not turn it into a fifth (chosen on bench/glossary.py --seed 4242, never on 7332).
TRIAD_PREFERENCE = 0.04
_PREFERENCE = np.array([TRIAD_PREFERENCE if name.endswith((" major", " minor")) else 0.0 for name, _ in _NAMED])


def name_profile(profile: np.ndarray) -> tuple[list[str], str | None, float]:
    """(strongest pitch classes, chord name or None, its cosine match) of a 12-bin profile: the
    best-matching template of a single note, a fifth or a major or minor triad (runtime/glossary.py
    SHAPES; triads preferred by TRIAD_PREFERENCE); below CHORD_MIN_MATCH, ``cluster`` when the strongest pitch classes lie within a
    whole tone of each other, else None (no clear harmony)."""
    norm = float(np.linalg.norm(profile))
    if norm <= 0:
        return [], None, 0.0
    order = sorted(range(12), key=lambda pc: (-profile[pc], pc))
    strong = [pc for pc in order[:MAX_PITCHES] if profile[pc] >= PITCH_SHARE * profile[order[0]]]
    pcs = [vocab.PITCH_CLASSES[pc] for pc in strong]
    scores = _TEMPLATES @ (profile / norm)
    best = int(np.argmax(scores + _PREFERENCE))  # lowest index on ties: the simpler shape, C first
    match = float(scores[best])
    if match >= CHORD_MIN_MATCH:
        return pcs, _NAMED[best][0], match
    everything_strong = [pc for pc in range(12) if profile[pc] >= PITCH_SHARE * profile[order[0]]]
    return pcs, (vocab.CLUSTER if _clustered(everything_strong) else None), match


def _clustered(pcs: list[int]) -> bool:
    """Three or four strong pitch classes (more: no pitch stands out), each within two
    semitones of another (G# A A#)."""
    if not 3 <= len(pcs) <= MAX_PITCHES:
        return False
    return all(min((a - b) % 12 for b in pcs if b != a) <= 2 or min((b - a) % 12 for b in pcs if b != a) <= 2 for a in pcs)


def _described(bins, values: np.ndarray, digits: int) -> tuple[str | None, float | None]:
    """(word, value) of one descriptor over a code's frames: the word most of them have
    (ties: the lower bin) and the median value of the frames with that word, so the pair
    always agrees. The most common word rather than the median's: it is the likelier word for
    a frame with that code (docs/quality.md, "Glossary", has the comparison)."""
    values = np.round(values[np.isfinite(values)], digits) + 0.0  # + 0.0: no -0.0 in the JSON
    if values.size == 0:
        return None, None
    words = np.array([vocab.word(bins, float(v)) for v in values])
    order = [name for name, _ in bins]
    counts = Counter(words.tolist())
    best = max(counts, key=lambda w: (counts[w], -order.index(w)))
    return best, round(float(np.median(values[words == best])), digits) + 0.0


def describe(name: str, rows: np.ndarray, m: Measures, sources: dict[str, np.ndarray] | None = None) -> dict:
    """One code's entry from the measures of its frames ``rows`` (and, for A, the share of each
    source word in them when ``sources`` knows what played)."""
    entry: dict = {"frames": int(rows.size)}
    sound = rows[m.dbfs[rows] >= SILENT_DB]
    values = {
        "dbfs": (m.dbfs[rows], 1),
        "centroid_hz": (m.centroid_hz[sound], 0),
        "flatness": (m.flatness[sound], 3),
        "onset_db": (m.onset_db[rows], 1),
        "peak_hz": (m.peak_hz[sound], 0),
    }
    fields = vocab.S_FIELDS if name[0] == "S" else vocab.A_FIELDS
    if name[0] == "S":
        pcs, chord, match = name_profile(m.chroma[sound].mean(axis=0) if sound.size else np.zeros(12))
        entry.update({"pitch_classes": pcs, "chord": chord, "match": round(match, 3) + 0.0})
    else:  # no loudness word: A is built to ignore gain; the level is the frames' own (issue #23)
        entry["dbfs"] = round(float(np.median(np.round(m.dbfs[rows], 1))), 1) + 0.0
    for key, (bins, value_key, _) in fields.items():
        entry[key], entry[value_key] = _described(bins, *values[value_key])
    if name[0] == "A" and sources is not None:
        entry["families"] = _shares(sound, sources)
    return entry


def _shares(rows: np.ndarray, sources: dict[str, np.ndarray]) -> dict[str, float]:
    """Each source word's mean share of the labelled frames ``rows`` (those some source sounds in),
    largest first, to the percent; words under 1 % are left out."""
    if not sources:
        return {}
    total = np.sum(list(sources.values()), axis=0)
    labelled = rows[total[rows] > 0]
    if labelled.size == 0:
        return {}
    shares = {w: round(float(v[labelled].sum() / labelled.size), 2) + 0.0 for w, v in sources.items()}
    return {w: shares[w] for w in sorted(shares, key=lambda w: (-shares[w], vocab.SOURCES.index(w))) if shares[w] >= 0.01}


def glossary_codes(codes: dict[str, np.ndarray], m: Measures, sources: dict[str, np.ndarray] | None = None) -> dict:
    """``{"S0": {"24": entry}, "A0": {...}}`` from each frame's code per token name."""
    out = {}
    for name, column in codes.items():
        out[name] = {str(int(c)): describe(name, np.nonzero(column == c)[0], m, sources) for c in np.unique(column)}
    return out


# --- the corpus, tokenized and measured --------------------------------------------------------


def corpus_files(folder: str | os.PathLike) -> list[Path]:
    """Every audio file under ``folder`` (by suffix), in sorted relative-path order."""
    root = Path(folder)
    if not root.is_dir():
        raise NatError(f"--corpus {folder}: not a folder")
    files = sorted((p for p in root.rglob("*") if p.is_file() and p.suffix.lower().lstrip(".") in AUDIO_EXTENSIONS), key=lambda p: p.relative_to(root).as_posix())
    if not files:
        raise NatError(f"--corpus {folder}: no audio files (by suffix: wav, flac, ogg, mp3, ...)")
    return files


def _decoded(path: Path) -> tuple[np.ndarray, int]:
    source = open_path(os.fspath(path))
    return np.concatenate([b for b in source.blocks()] or [np.zeros(0, np.float32)]), source.info.sample_rate


@dataclass
class Corpus:
    """A corpus tokenized and measured: per frame of all files in order, the level-0 codes,
    the measures, and (when the corpus says what plays) each source word's share."""

    codes: dict[str, np.ndarray]  # "S0", "A0" -> [n]
    measures: Measures
    sources: dict[str, np.ndarray] | None  # source word -> [n] share; None: the corpus names no sources
    listing: str  # sha256 over the files' names and contents
    files: int


def corpus_listing(root: Path | None) -> tuple[int, float, dict[str, dict]] | None:
    """(seed, clips by file name) of the ``corpus.json`` a rendered corpus (export/corpus.py)
    keeps in ``root``; None when there is none (a folder of recordings: no source words)."""
    if root is None or not (root / "corpus.json").is_file():
        return None
    try:
        meta = json.loads((root / "corpus.json").read_text())
        return int(meta["seed"]), float(meta["clip_seconds"]), {_recipe_name(c): c for c in meta["clips"]}
    except (ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise NatError(f"--corpus {root}: corpus.json is not a NAT corpus listing ({type(exc).__name__}: {exc})") from None


def _recipe_name(clip: dict) -> str:
    from . import corpus

    return corpus.recipe_from_listing(clip).file_name


def _sources(listing, name: str, rate: int, frames: int) -> dict[str, np.ndarray]:
    """The source shares of one file's frames from the listing ({} when it does not list the file)."""
    from . import corpus

    seed, seconds, clips = listing
    if name not in clips:
        return {}
    try:
        return corpus.frame_sources(corpus.recipe_from_listing(clips[name]), seed, seconds, rate, frames)
    except (corpus.CorpusError, ValueError) as exc:
        raise NatError(f"source labels of {name}: {exc}") from None


def measure_corpus(pack: Pack, files: Sequence[Path], root: Path | None = None, log: Callable[[str], None] = lambda _: None) -> Corpus:
    """Tokenize ``files`` with ``pack`` and measure every frame; with a rendered corpus's
    ``corpus.json`` in ``root``, also say per frame which GM families sounded (export/corpus.py
    ``frame_sources``: known programs, sources rendered alone for mixtures)."""
    from ..runtime.session import SessionOptions
    from ..runtime.tokenizer import Tokenizer

    tokenizer = Tokenizer(pack, SessionOptions("cpu", 0))
    listing = corpus_listing(root)
    parts, codes, names, lengths = [], {"S0": [], "A0": []}, [], []
    digest = hashlib.sha256()
    for i, path in enumerate(files):
        frames = list(tokenizer.stream(os.fspath(path)).frames)
        x, rate = _decoded(path)
        parts.append(measure(x, rate, pack.frame_rate, len(frames)))
        codes["S0"].append([f.S[0] for f in frames])
        codes["A0"].append([f.A[0] for f in frames])
        name = Path(os.path.relpath(path.resolve(), root.resolve())).as_posix() if root else path.name
        names.append(name)
        lengths.append(len(frames))
        digest.update(f"{name}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
        if (i + 1) % 50 == 0:
            log(f"measured {i + 1} of {len(files)} files")
    sources = None
    if listing is not None:
        log("labelling frames with the corpus's known instruments (mixtures: each source rendered alone)")
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(2) as pool:  # threads: the work is in fluidsynth processes
            per_file = list(pool.map(lambda job: _sources(listing, *job), [(n, pack.frame_rate, k) for n, k in zip(names, lengths)]))
        words = sorted({w for d in per_file for w in d}, key=vocab.SOURCES.index)
        sources = {w: np.concatenate([d.get(w, np.zeros(k)) for d, k in zip(per_file, lengths)]) for w in words}
    column = {k: np.concatenate([np.asarray(c, dtype=np.int64) for c in v]) for k, v in codes.items()}
    return Corpus(column, Measures.concat(parts), sources, digest.hexdigest(), len(files))


def build_glossary(pack: Pack, files: Sequence[Path], root: Path | None = None, log: Callable[[str], None] = lambda _: None) -> bytes:
    """The glossary file of ``pack`` measured on ``files`` (names recorded relative to ``root``)."""
    return glossary_bytes(pack, measure_corpus(pack, files, root, log))


def glossary_bytes(pack: Pack, c: Corpus) -> bytes:
    doc = {
        "format": vocab.FORMAT,
        "format_version": vocab.FORMAT_VERSION,
        "note": vocab.NOTE,
        "codebooks_sha256": {n: pack.manifest["streams"][n]["codebooks"]["sha256"] for n in ("S", "A")},
        "corpus": {"files": c.files, "frames": int(c.measures.dbfs.size), "sha256": c.listing, "sources": "known GM programs (corpus.json)" if c.sources is not None else "none"},
        "method": "export/glossary.py: per-frame numpy DSP at 22050 Hz; per code the word most of its frames have and their median (docs/ndjson.md, Glossary)",
        "codes": glossary_codes(c.codes, c.measures, c.sources),
    }
    return _dumps(doc).encode()


def _dumps(doc: dict) -> str:
    """Canonical JSON with one code's entry per line (readable diffs between two glossaries)."""
    head = {k: v for k, v in doc.items() if k != "codes"}
    lines = [json.dumps(head, separators=(",", ":"), ensure_ascii=True, allow_nan=False)[:-1] + ',"codes":{']
    for i, (name, entries) in enumerate(doc["codes"].items()):
        lines.append(("," if i else "") + json.dumps(name) + ":{")
        lines += [("," if j else "") + json.dumps(code) + ":" + json.dumps(e, separators=(",", ":"), ensure_ascii=True, allow_nan=False) for j, (code, e) in enumerate(entries.items())]
        lines.append("}")
    return "\n".join(lines) + "\n}}\n"


def write_with_glossary(pack_dir: str | os.PathLike, data: bytes, out: str | os.PathLike | None = None) -> Path:
    """Copy the pack at ``pack_dir`` to ``out`` (default: replace it) with ``data`` as its
    glossary listed and hashed in the manifest; returns the new pack's path, verified by loading it."""
    src = load_pack(pack_dir)
    dest = Path(out if out is not None else src.path).absolute()
    manifest: dict = {}
    for key, value in src.manifest.items():  # the glossary entry goes right after the streams
        if key != "glossary":
            manifest[key] = value
        if key == "streams":
            manifest["glossary"] = {"file": vocab.FILE, "sha256": hashlib.sha256(data).hexdigest()}
    with staging(dest) as tmp:
        listed = {spec["file"] for spec in src.manifest["encoders"].values()}
        for spec in src.manifest["streams"].values():
            listed |= {spec[k]["file"] for k in ("normalization", "projection", "codebooks") if spec.get(k)}
        for file in sorted(listed):
            (tmp / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src.path / file, tmp / file)
        (tmp / vocab.FILE).write_bytes(data)
        return install(tmp, manifest, dest)


def add_glossary(pack_dir: str | os.PathLike, files: Sequence[Path], out: str | os.PathLike | None = None, root: Path | None = None, log: Callable[[str], None] = lambda _: None) -> Path:
    """Measure ``files`` with the pack at ``pack_dir`` and write the pack with its glossary.
    The built-in recipe calls this after fitting (export/builtin.py)."""
    pack = load_pack(pack_dir)
    log(f"glossary: tokenizing and measuring {len(files)} files")
    return write_with_glossary(pack_dir, build_glossary(pack, files, root, log), out)


def main(argv: list[str] | None = None) -> int:
    """``nat-export glossary PACK --corpus DIR [--out NEWPACK]``: exit 0 ok, 2 usage/pack/corpus error."""
    parser = argparse.ArgumentParser(prog="nat-export glossary", description="Write a glossary (what each level-0 code's corpus frames measured) into a pack.")
    parser.add_argument("pack", help="pack folder or name")
    parser.add_argument("--corpus", required=True, metavar="DIR", help="audio to measure (e.g. the corpus the pack was fitted on)")
    parser.add_argument("--out", metavar="NEWPACK", help="write the new pack here (default: replace PACK)")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")
    args = parser.parse_args(argv)
    from ..packs import resolve_pack

    log = (lambda _: None) if args.quiet else (lambda msg: print(f"nat-export: {msg}", file=sys.stderr, flush=True))
    try:
        path = resolve_pack(args.pack)
        out = add_glossary(path, corpus_files(args.corpus), args.out, Path(args.corpus), log)
    except NatError as exc:
        print(f"nat-export: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        print("nat-export: interrupted", file=sys.stderr, flush=True)
        return 130
    print(f"{out}  manifest sha256 {load_pack(out).manifest_sha256}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
