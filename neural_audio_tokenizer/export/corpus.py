"""A reproducible corpus: seeded MIDI rendered by FluidSynth, plus numpy-synthesized sound.

The built-in pack's codebooks are fitted on this corpus, and quality checks render their own
sets with the same helpers ("same melody, different instruments"), so everything an
experiment varies is an explicit parameter: instrument (a General MIDI program), melody,
tempo, key, duration. Nothing is downloaded: the notes come from a seeded numpy Generator,
the sounds from the FluidR3 General MIDI soundfont (Debian/Ubuntu: ``apt-get install
fluidsynth fluid-soundfont-gm``). Synthesized clips (noise colours, sweeps, clicks, drum
hits, tones with gaps) make sure non-musical sound is covered too.

Determinism: FluidSynth's fast render is sample-exact run to run (checked with reverb and
chorus on and off); only the PEAK chunk of its float WAV carries a timestamp, so we render
float, read the samples, and write our own file: mono, 22050 Hz, 16-bit, peak-normalized,
trimmed or zero-padded to exactly ``seconds``. Same arguments, same tools -> same bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..runtime.glossary import DRUM_KIT, GM_FAMILIES

SAMPLE_RATE = 22050
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
TICKS_PER_BEAT = 480
PEAK = 0.5  # -6 dBFS: headroom, and every clip at the same peak level
INSTALL_HINT = "apt-get install fluidsynth fluid-soundfont-gm"

# General MIDI programs (0-based), by family; "drums" is the percussion kit on channel 10.
INSTRUMENTS: dict[str, int | str] = {
    "piano": 0, "bright_piano": 1, "electric_piano": 4, "harpsichord": 6, "glockenspiel": 9,
    "vibraphone": 11, "marimba": 12, "drawbar_organ": 16, "church_organ": 19, "accordion": 21,
    "nylon_guitar": 24, "steel_guitar": 25, "clean_guitar": 27, "overdriven_guitar": 29,
    "distortion_guitar": 30, "acoustic_bass": 32, "finger_bass": 33, "synth_bass": 38,
    "violin": 40, "cello": 42, "pizzicato": 45, "harp": 46, "strings": 48, "choir": 52,
    "voice_oohs": 53, "trumpet": 56, "trombone": 57, "french_horn": 60, "brass": 61,
    "alto_sax": 65, "oboe": 68, "clarinet": 71, "flute": 73, "pan_flute": 75,
    "square_lead": 80, "saw_lead": 81, "warm_pad": 89, "sitar": 104, "steel_drums": 114,
    "drums": "drums",
}
# What the synthesized (non-GM) clips are, in words a reader knows (runtime/glossary.py SOURCES;
# GM_FAMILIES and DRUM_KIT name the rendered instruments).
SYNTH_SOURCES = {"white_noise": "noise", "pink_noise": "noise", "brown_noise": "noise", "sine_sweep": "sine sweep",
                 "clicks": "clicks", "synth_drums": "drum machine", "tones_with_gaps": "synthesized tones"}
MELODIC = [n for n in INSTRUMENTS if n not in ("drums", "acoustic_bass", "finger_bass", "synth_bass")]
BASSES = ["acoustic_bass", "finger_bass", "synth_bass", "cello"]
HARMONY = ["piano", "electric_piano", "strings", "drawbar_organ", "warm_pad", "nylon_guitar", "steel_guitar", "clean_guitar", "harp", "choir", "distortion_guitar", "brass"]

NOTE_NAMES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
# Progressions as scale degrees (0-based) of triad roots.
PROGRESSIONS = {"major": ((0, 4, 5, 3), (0, 3, 4, 4), (0, 5, 3, 4), (1, 4, 0, 0)), "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 4))}
# GM percussion keys.
KICK, SNARE, CLAP, CLOSED_HAT, OPEN_HAT, LOW_TOM, HIGH_TOM, CRASH, RIDE = 36, 38, 39, 42, 46, 45, 50, 49, 51

# A melody: (semitones above the key's tonic, or None for a rest; length in beats).
Melody = Sequence[tuple[int | None, float]]


class CorpusError(RuntimeError):
    """The rendering tools are missing or failed."""


@dataclass(frozen=True)
class NoteEvent:
    start: float  # beats
    beats: float
    pitch: int  # MIDI note number (a GM percussion key on the drum channel)
    velocity: int = 90


@dataclass(frozen=True)
class Part:
    """One instrument's notes. ``instrument``: a name in INSTRUMENTS, a GM program 0-127, or "drums"."""

    instrument: str | int
    notes: tuple[NoteEvent, ...]


# --- tools ----------------------------------------------------------------------------


def tools() -> tuple[str, Path]:
    """(fluidsynth executable, soundfont); CorpusError naming the apt packages if either is missing."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise CorpusError(f"the fluidsynth program is not installed; install it with: {INSTALL_HINT}")
    if not SOUNDFONT.is_file():
        raise CorpusError(f"the soundfont {SOUNDFONT} is missing; install it with: {INSTALL_HINT}")
    return exe, SOUNDFONT


def tool_provenance() -> dict:
    """What the renders depend on: FluidSynth's version and the soundfont's sha256."""
    exe, font = tools()
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    first = next((line.strip() for line in version.splitlines() if "version" in line.lower()), "unknown")
    digest = hashlib.sha256()
    with open(font, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return {"fluidsynth": first, "soundfont": font.name, "soundfont_sha256": digest.hexdigest()}


# --- music ----------------------------------------------------------------------------


def tonic(key: str | int, octave: int = 4) -> int:
    """MIDI note of a key's tonic: "C", "F#", "Bb" (or a pitch class 0-11) in ``octave`` (C4 = 60)."""
    if isinstance(key, str):
        name = key.strip()
        if not name or name[0].upper() not in NOTE_NAMES:
            raise ValueError(f"unknown key {key!r}; use a note name like 'C', 'F#' or 'Bb'")
        pc = NOTE_NAMES[name[0].upper()] + name[1:].count("#") - name[1:].count("b")
    else:
        pc = int(key)
    return 12 * (octave + 1) + pc % 12


def instrument_program(instrument: str | int) -> int | None:
    """GM program number, or None for the drum kit."""
    value = INSTRUMENTS.get(instrument, instrument) if isinstance(instrument, str) else instrument
    if value == "drums":
        return None
    if isinstance(value, str) or not 0 <= int(value) <= 127:
        raise ValueError(f"unknown instrument {instrument!r}; use a name in INSTRUMENTS or a GM program 0-127")
    return int(value)


def family(instrument: str | int) -> str:
    """The GM family name of an instrument (``"drum kit"`` for the percussion kit)."""
    program = instrument_program(instrument)
    return DRUM_KIT if program is None else GM_FAMILIES[program // 8]


def random_melody(rng: np.random.Generator, beats: float = 16.0, mode: str = "major", rest_chance: float = 0.1) -> list[tuple[int | None, float]]:
    """A stepwise-leaning melody in ``mode``: (semitones above tonic | None, beats) pairs."""
    scale = SCALES[mode]
    out: list[tuple[int | None, float]] = []
    degree, used = int(rng.integers(0, 7)), 0.0
    while used < beats:
        length = float(min(rng.choice([0.5, 0.5, 1.0, 1.0, 1.0, 1.5, 2.0]), beats - used))
        if rng.random() < rest_chance:
            out.append((None, length))
        else:
            degree = int(np.clip(degree + rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3]), -3, 10))
            out.append((12 * (degree // 7) + scale[degree % 7], length))
        used += length
    return out


def melody_events(melody: Melody, key: str | int, seconds: float, tempo: float, octave: int = 5, velocity: int = 90) -> tuple[NoteEvent, ...]:
    """The melody, repeated until ``seconds`` is filled, as note events."""
    if not melody or sum(b for _, b in melody) <= 0:
        raise ValueError("melody must have at least one note or rest with a positive length")
    root, total = tonic(key, octave), seconds * tempo / 60.0
    events, t = [], 0.0
    while t < total:
        for offset, beats in melody:
            if t >= total:
                break
            if offset is not None:
                events.append(NoteEvent(t, beats * 0.95, root + offset, velocity))  # slight legato gap
            t += beats
    return tuple(events)


def chord_events(progression: Sequence[int], key: str | int, mode: str, seconds: float, tempo: float, beats_per_chord: float = 4.0, arpeggio: bool = False, octave: int = 4, velocity: int = 70) -> tuple[NoteEvent, ...]:
    """Triads on scale degrees, held or arpeggiated in eighths, looped to fill ``seconds``."""
    scale, root, total = SCALES[mode], tonic(key, octave), seconds * tempo / 60.0
    events, t, i = [], 0.0, 0
    while t < total:
        degree = progression[i % len(progression)]
        triad = [root + 12 * ((degree + s) // 7) + scale[(degree + s) % 7] for s in (0, 2, 4)]
        if arpeggio:
            for step in range(int(beats_per_chord * 2)):
                events.append(NoteEvent(t + step * 0.5, 0.5, triad[step % 3] + 12 * (step % 6 >= 3), velocity))
        else:
            events.extend(NoteEvent(t, beats_per_chord * 0.95, p, velocity) for p in triad)
        t, i = t + beats_per_chord, i + 1
    return tuple(events)


def bass_events(progression: Sequence[int], key: str | int, mode: str, seconds: float, tempo: float, beats_per_chord: float = 4.0, velocity: int = 95) -> tuple[NoteEvent, ...]:
    """Chord roots two octaves down: root on 1 and 3, fifth on the "and" of 4."""
    scale, root, total = SCALES[mode], tonic(key, 2), seconds * tempo / 60.0
    events, t, i = [], 0.0, 0
    while t < total:
        degree = progression[i % len(progression)]
        note = root + scale[degree % 7]
        events += [NoteEvent(t, 1.8, note, velocity), NoteEvent(t + 2, 1.4, note, velocity), NoteEvent(t + 3.5, 0.45, note + 7, velocity - 10)]
        t, i = t + beats_per_chord, i + 1
    return tuple(events)


DRUM_STYLES = ("rock", "four_on_floor", "half_time", "breakbeat", "toms")


def drum_events(style: str, seconds: float, tempo: float) -> tuple[NoteEvent, ...]:
    """A one-bar pattern (16 sixteenths) looped, with a crash every fourth bar."""
    patterns = {
        "rock": {KICK: "x.......x.x.....", SNARE: "....x.......x...", CLOSED_HAT: "x.x.x.x.x.x.x.x."},
        "four_on_floor": {KICK: "x...x...x...x...", CLAP: "....x.......x...", OPEN_HAT: "..x...x...x...x."},
        "half_time": {KICK: "x.........x.....", SNARE: "........x.......", RIDE: "x...x...x...x..."},
        "breakbeat": {KICK: "x.....x...x.....", SNARE: "....x..x.x..x..x", CLOSED_HAT: "xxxxxxxxxxxxxxxx"},
        "toms": {LOW_TOM: "x..x..x...x.x...", HIGH_TOM: "..x..x..x.....x.", KICK: "x.......x......."},
    }
    if style not in patterns:
        raise ValueError(f"unknown drum style {style!r}; choose one of {DRUM_STYLES}")
    total, events, bar = seconds * tempo / 60.0, [], 0
    while bar * 4 < total:
        if bar % 4 == 0:
            events.append(NoteEvent(bar * 4.0, 1.0, CRASH, 90))
        for key, hits in patterns[style].items():
            for step, hit in enumerate(hits):
                if hit == "x":
                    events.append(NoteEvent(bar * 4 + step * 0.25, 0.2, key, 105 if step % 4 == 0 else 80))
        bar += 1
    return tuple(e for e in events if e.start < total)


# --- rendering ------------------------------------------------------------------------


def write_midi(parts: Sequence[Part], tempo: float, seconds: float, path: Path) -> None:
    """A type-1 MIDI file, one track per part; the end-of-track marks ``seconds``."""
    import mido  # export extra; imported here so the module loads without it

    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo), time=0)])
    end_tick = round(seconds * tempo / 60.0 * TICKS_PER_BEAT)
    meta.append(mido.MetaMessage("end_of_track", time=end_tick))
    mid.tracks.append(meta)
    melodic_channels = iter([c for c in range(16) if c != 9])
    for part in parts:
        program = instrument_program(part.instrument)
        channel = 9 if program is None else next(melodic_channels)
        msgs: list[tuple[int, int, mido.Message]] = []  # (tick, order: offs before ons, message)
        if program is not None:
            msgs.append((0, 0, mido.Message("program_change", program=program, channel=channel)))
        for e in part.notes:
            on = round(e.start * TICKS_PER_BEAT)
            off = max(on + 1, round((e.start + e.beats) * TICKS_PER_BEAT))
            if on >= end_tick:
                continue
            msgs.append((on, 2, mido.Message("note_on", note=e.pitch, velocity=int(np.clip(e.velocity, 1, 127)), channel=channel)))
            msgs.append((min(off, end_tick), 1, mido.Message("note_off", note=e.pitch, velocity=0, channel=channel)))
        track, now = mido.MidiTrack(), 0
        for tick, _, msg in sorted(msgs, key=lambda m: (m[0], m[1], m[2].note if hasattr(m[2], "note") else -1)):
            track.append(msg.copy(time=tick - now))
            now = tick
        track.append(mido.MetaMessage("end_of_track", time=max(0, end_tick - now)))
        mid.tracks.append(track)
    mid.save(str(path))


SUBTYPES = {".wav": "PCM_16", ".flac": "PCM_16", ".ogg": "VORBIS"}


def finish_clip(samples: np.ndarray, seconds: float, out_path: Path, peak: float = PEAK) -> Path:
    """Mono, exact length, 10 ms fade-out, peak-normalized, written at 22050 Hz: 16-bit WAV,
    or 16-bit FLAC / OGG Vorbis when ``out_path`` ends in .flac / .ogg."""
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=1)
    n = round(seconds * SAMPLE_RATE)
    x = np.concatenate([x[:n], np.zeros(max(0, n - len(x)))])
    fade = min(n, SAMPLE_RATE // 100)
    x[n - fade :] *= np.linspace(1.0, 0.0, fade)  # a hard cut would click
    top = float(np.max(np.abs(x))) if n else 0.0
    if top > 0:
        x *= peak / top
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    suffix = out_path.suffix.lower()
    if suffix not in SUBTYPES:
        raise ValueError(f"{out_path.name}: write .wav, .flac or .ogg")
    extra = {"compression_level": 1.0} if suffix == ".flac" else {}  # FLAC: smallest file, same samples
    sf.write(str(out_path), x.astype(np.float32), SAMPLE_RATE, subtype=SUBTYPES[suffix], format=suffix[1:].upper(), **extra)
    return out_path


def render_parts(parts: Sequence[Part], tempo: float, seconds: float, out_path: str | os.PathLike, reverb: bool = False, peak: float = PEAK) -> Path:
    """Render parts with FluidSynth to ``out_path`` (see :func:`finish_clip` for the format)."""
    return finish_clip(synthesize(parts, tempo, seconds, reverb), seconds, Path(out_path), peak)


def synthesize(parts: Sequence[Part], tempo: float, seconds: float, reverb: bool = False) -> np.ndarray:
    """FluidSynth's float render of ``parts``: [samples, channels] at SAMPLE_RATE, unscaled."""
    exe, font = tools()
    with tempfile.TemporaryDirectory(prefix="nat-render-") as tmp:
        mid, wav = Path(tmp, "clip.mid"), Path(tmp, "clip.wav")
        write_midi(parts, tempo, seconds, mid)
        cmd = [exe, "-ni", "-q", "-R", "1" if reverb else "0", "-C", "0", "-g", "0.5", "-r", str(SAMPLE_RATE),
               "-O", "float", "-T", "wav", "-F", str(wav), str(font), str(mid)]  # float: no clipping, no dither
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not wav.is_file():
            raise CorpusError(f"fluidsynth failed (exit {done.returncode}): {done.stderr.strip()[:300]}")
        samples, rate = sf.read(str(wav), dtype="float64", always_2d=True)
        if rate != SAMPLE_RATE:
            raise CorpusError(f"fluidsynth wrote {rate} Hz, expected {SAMPLE_RATE}")
    return samples


def render_clip(program: str | int, melody: Melody, tempo: float, key: str | int, seconds: float, out_path: str | os.PathLike, octave: int = 5, velocity: int = 90, reverb: bool = False) -> Path:
    """One instrument playing ``melody`` (looped) in ``key`` at ``tempo`` bpm for ``seconds``.

    Change only ``program`` to get "same melody, different instrument" sets."""
    if instrument_program(program) is None:
        raise ValueError("render_clip plays pitched melodies; use drum_events with render_parts for drums")
    part = Part(program, melody_events(melody, key, seconds, tempo, octave, velocity))
    return render_parts([part], tempo, seconds, out_path, reverb=reverb)


# --- synthesized (non-musical) sound --------------------------------------------------

SYNTH_KINDS = ("white_noise", "pink_noise", "brown_noise", "sine_sweep", "clicks", "synth_drums", "tones_with_gaps")


def _coloured_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    return np.fft.irfft(spectrum / f ** (exponent / 2.0), n)


def _hit(n: int, freq_start: float, freq_end: float, decay_s: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    freq = freq_end + (freq_start - freq_end) * np.exp(-t / 0.03)
    tone = np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE)
    return np.exp(-t / decay_s) * ((1 - noise) * tone + noise * rng.standard_normal(n))


def synth_samples(kind: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Mono float64 samples of a synthesized ``kind`` (one of SYNTH_KINDS)."""
    n = round(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    if kind.endswith("_noise"):
        x = _coloured_noise(rng, n, {"white_noise": 0.0, "pink_noise": 1.0, "brown_noise": 2.0}[kind])
        return x * (0.4 + 0.6 * (np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t) > -0.5))  # some level changes
    if kind == "sine_sweep":
        lo, hi = rng.uniform(40, 200), rng.uniform(3000, 10000)
        phase = 2 * np.pi * lo * seconds / np.log(hi / lo) * (np.exp(t / seconds * np.log(hi / lo)) - 1)
        return np.sin(phase)  # exponential sweep lo -> hi Hz
    if kind == "clicks":
        x = np.zeros(n)
        x[(np.arange(0, seconds, 1 / rng.uniform(1.5, 12)) * SAMPLE_RATE).astype(int)] = 1.0
        return x
    if kind == "synth_drums":
        x, beat = np.zeros(n), 60.0 / rng.uniform(80, 150)
        for k, start in enumerate(np.arange(0, seconds, beat / 2)):
            i, m = int(start * SAMPLE_RATE), int(0.4 * SAMPLE_RATE)
            hit = _hit(m, 150, 50, 0.12, 0.05, rng) if k % 4 == 0 else _hit(m, 300, 180, 0.08, 0.7, rng) if k % 4 == 2 else 0.3 * _hit(m, 8000, 8000, 0.02, 1.0, rng)
            x[i : i + m] += hit[: n - i]
        return x
    if kind == "tones_with_gaps":
        x, start = np.zeros(n), 0.0
        while start < seconds:
            length = rng.uniform(0.2, 1.5)
            i, j = int(start * SAMPLE_RATE), min(n, int((start + length) * SAMPLE_RATE))
            f0, tt = rng.uniform(80, 1200), t[: j - i]
            partials = sum(np.sin(2 * np.pi * f0 * h * tt) / h ** rng.uniform(0.5, 2.5) for h in range(1, 6))
            x[i:j] = partials * np.hanning(j - i)
            start += length + rng.uniform(0.1, 1.0)  # gaps of true silence
        return x
    raise ValueError(f"unknown synth kind {kind!r}; choose one of {SYNTH_KINDS}")


def synth_clip(kind: str, seconds: float, seed: int, out_path: str | os.PathLike) -> Path:
    return finish_clip(synth_samples(kind, seconds, np.random.default_rng(seed)), seconds, Path(out_path))


# --- committed examples ---------------------------------------------------------------

# "Ode to Joy" (Beethoven, 1824; public domain): a tune people recognize from tokens alone.
ODE_TO_JOY: tuple[tuple[int | None, float], ...] = (
    (4, 1), (4, 1), (5, 1), (7, 1), (7, 1), (5, 1), (4, 1), (2, 1),
    (0, 1), (0, 1), (2, 1), (4, 1), (4, 1.5), (2, 0.5), (2, 2),
)


def render_demo(out_path: str | os.PathLike, seconds: float = 10.0) -> Path:
    """examples/demo.ogg: piano melody, chords on the electric piano, bass and drums, G major, 112 bpm."""
    tempo, key = 112.0, "G"
    parts = [
        Part("piano", melody_events(ODE_TO_JOY, key, seconds, tempo, octave=5, velocity=100)),
        Part("electric_piano", chord_events((0, 4, 0, 4), key, "major", seconds, tempo, velocity=55)),
        Part("finger_bass", bass_events((0, 4, 0, 4), key, "major", seconds, tempo)),
        Part("drums", drum_events("rock", seconds, tempo)),
    ]
    return render_parts(parts, tempo, seconds, out_path, reverb=True)


def render_fixture(out_path: str | os.PathLike, seconds: float = 3.0) -> Path:
    """tests/data/clip.flac: a clarinet playing the opening of the same tune, 100 bpm in D (about 70 KB)."""
    return render_clip("clarinet", ODE_TO_JOY[:8], 100.0, "D", seconds, out_path, octave=5)


# --- the corpus -----------------------------------------------------------------------

# Clip kinds in a fixed cycle, so any n_clips >= 20 covers every kind in these proportions.
CYCLE = ("solo", "ensemble", "solo", "synth", "chords", "solo", "ensemble", "drums", "solo", "ensemble",
         "solo", "synth", "chords", "solo", "ensemble", "solo", "synth", "ensemble", "drums", "solo")


@dataclass(frozen=True)
class ClipRecipe:
    """Everything that determines one corpus clip."""

    index: int
    kind: str
    instruments: tuple[str, ...]
    roles: tuple[str, ...]  # per instrument: "melody" | "chords" | "bass" | "drums"
    key: str
    mode: str
    tempo: float
    reverb: bool
    detail: str

    @property
    def file_name(self) -> str:
        return f"{self.index:04d}_{self.kind}_{'+'.join(self.instruments) or self.detail}.wav"


def plan_clip(index: int, seed: int) -> ClipRecipe:
    """The recipe of clip ``index``: drawn from its own generator, so adding clips never changes earlier ones."""
    rng = np.random.default_rng([seed, index])
    kind = CYCLE[index % len(CYCLE)]
    key = str(rng.choice(["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]))
    mode = str(rng.choice(["major", "minor"]))
    tempo = float(round(rng.uniform(70, 160)))
    reverb = bool(rng.random() < 0.5)
    if kind == "solo":
        cast, detail = [(str(rng.choice(MELODIC)), "melody")], "melody"
    elif kind == "chords":
        cast, detail = [(str(rng.choice(HARMONY)), "chords")], str(rng.choice(["held", "arpeggio"]))
    elif kind == "ensemble":
        candidates = [(str(rng.choice(MELODIC)), "melody"), (str(rng.choice(HARMONY)), "chords"), (str(rng.choice(BASSES)), "bass"), ("drums", "drums")]
        keep = [True, rng.random() < 0.8, rng.random() < 0.8, rng.random() < 0.75]
        cast, detail = [c for c, on in zip(candidates, keep) if on], str(rng.choice(DRUM_STYLES))
    elif kind == "drums":
        cast, detail = [("drums", "drums")], str(rng.choice(DRUM_STYLES))
    else:
        cast, detail, reverb = [], str(rng.choice(SYNTH_KINDS)), False
    return ClipRecipe(index, kind, tuple(c[0] for c in cast), tuple(c[1] for c in cast), key, mode, tempo, reverb, detail)


# Harmony clips: held chords, so S learns what chords look like (issue #15). Several kinds
# of chord, not only the triads the glossary names, and voicings that bench/glossary.py's
# held-out triads never use (they are close position with the lowest note in octave 3 or 4).
CHORD_SHAPES = {"major": (0, 4, 7), "minor": (0, 3, 7), "dominant 7th": (0, 4, 7, 10), "minor 7th": (0, 3, 7, 10),
                "major 7th": (0, 4, 7, 11), "diminished": (0, 3, 6), "suspended 4th": (0, 5, 7), "augmented": (0, 4, 8)}
CHORD_WEIGHTS = (0.3, 0.3, 0.1, 0.08, 0.06, 0.06, 0.05, 0.05)
VOICINGS = ("close, octave 5", "open", "spread")
HARMONY_CHORDS, HARMONY_CHORD_SECONDS = 6, 2.0
PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def plan_harmony(index: int, seed: int) -> ClipRecipe:
    """A harmony clip: one harmony instrument holding HARMONY_CHORDS chords of drawn root and
    kind, listed in ``detail`` ("D minor; Bb dominant 7th; ..."); voicings are drawn when rendering."""
    rng = np.random.default_rng([seed, index, 2])
    instrument, reverb = str(rng.choice(HARMONY)), bool(rng.random() < 0.5)
    kinds = rng.choice(len(CHORD_SHAPES), size=HARMONY_CHORDS, p=CHORD_WEIGHTS)
    roots = rng.integers(0, 12, size=HARMONY_CHORDS)
    detail = "; ".join(f"{PITCH_NAMES[r]} {list(CHORD_SHAPES)[k]}" for r, k in zip(roots, kinds))
    return ClipRecipe(index, "harmony", (instrument,), ("chords",), PITCH_NAMES[roots[0]], "", 60.0, reverb, detail)


def voiced(root: int, shape: tuple[int, ...], voicing: str, rng: np.random.Generator) -> list[int]:
    """MIDI notes of a chord: ``close, octave 5`` (an inversion of the close chord above C5),
    ``open`` (close in octave 4 with its second-highest note an octave down: drop 2) or
    ``spread`` (root in octave 3, the other notes an octave or more above it)."""
    if voicing == "close, octave 5":
        notes = [tonic(root, 5) + i for i in shape]
        for _ in range(int(rng.integers(0, len(notes)))):
            notes = notes[1:] + [notes[0] + 12]
        return notes
    if voicing == "open":
        notes = [tonic(root, 4) + i for i in shape]
        return sorted(notes[:-2] + [notes[-2] - 12] + notes[-1:])
    bass = tonic(root, 3)
    return [bass] + [bass + 12 + i for i in shape[1:]]


def harmony_events(recipe: ClipRecipe, rng: np.random.Generator) -> tuple[NoteEvent, ...]:
    events = []
    for j, chord in enumerate(recipe.detail.split("; ")):
        root, kind = chord.split(" ", 1)
        notes = voiced(PITCH_NAMES.index(root), CHORD_SHAPES[kind], str(rng.choice(VOICINGS)), rng)
        if rng.random() < 0.4:
            notes = [tonic(PITCH_NAMES.index(root), 2)] + notes  # a bass note two octaves down
        velocity = int(rng.integers(50, 111))
        start = j * HARMONY_CHORD_SECONDS  # tempo 60: a beat is a second
        events += [NoteEvent(start, HARMONY_CHORD_SECONDS * 0.95, p, velocity) for p in notes]
    return tuple(events)


def recipe_parts(recipe: ClipRecipe, seed: int, seconds: float) -> list[Part]:
    """The parts of a clip of the GM kinds (solo, chords, ensemble, drums, mixture), from the
    recipe's note generator: what :func:`render_recipe` renders, and the glossary's labels."""
    rng = np.random.default_rng([seed, recipe.index, 1])  # the notes: separate from the plan's draws
    k, mode, tempo = recipe.key, recipe.mode, recipe.tempo
    progression = PROGRESSIONS[mode][int(rng.integers(len(PROGRESSIONS[mode])))]
    parts = []
    for name, role in zip(recipe.instruments, recipe.roles):
        if role == "drums":
            notes = drum_events(recipe.detail, seconds, tempo)
        elif role == "chords":
            notes = chord_events(progression, k, mode, seconds, tempo, arpeggio=recipe.detail == "arpeggio" or name in ("harp", "nylon_guitar"))
        elif role == "bass":
            notes = bass_events(progression, k, mode, seconds, tempo)
        else:
            octave = 4 if name in ("cello", "trombone", "french_horn") else 5
            notes = melody_events(random_melody(rng, 8.0 * float(rng.choice([1, 2])), mode), k, seconds, tempo, octave=octave)
        parts.append(Part(name, notes))
    return parts


def mixture_stems(recipe: ClipRecipe, seed: int, seconds: float) -> list[tuple[str, np.ndarray]]:
    """A mixture clip's sources, each rendered alone and scaled by its drawn gain: (instrument,
    mono samples); the clip is their sum, so every frame's share of each source is known."""
    parts = recipe_parts(recipe, seed, seconds)
    rng = np.random.default_rng([seed, recipe.index, 4])  # the gains: separate from the notes' draws
    out, n = [], round(seconds * SAMPLE_RATE)
    for instrument in dict.fromkeys(recipe.instruments):  # the lead's melody and chords: one source
        own = [p for p in parts if p.instrument == instrument]
        gain_db = 0.0 if instrument == recipe.instruments[0] else float(rng.uniform(-9.0, 0.0))
        x = synthesize(own, recipe.tempo, seconds, recipe.reverb).mean(axis=1)[:n]
        out.append((instrument, np.concatenate([x, np.zeros(n - len(x))]) * 10 ** (gain_db / 20)))  # renders end where their last note does
    return out


def render_recipe(recipe: ClipRecipe, seed: int, seconds: float, out_path: Path) -> Path:
    if recipe.kind == "synth":
        rng = np.random.default_rng([seed, recipe.index, 1])
        return finish_clip(synth_samples(recipe.detail, seconds, rng), seconds, out_path)
    if recipe.kind == "harmony":
        rng = np.random.default_rng([seed, recipe.index, 1])
        return render_parts([Part(recipe.instruments[0], harmony_events(recipe, rng))], recipe.tempo, seconds, out_path, reverb=recipe.reverb)
    if recipe.kind == "mixture":
        return finish_clip(sum(x for _, x in mixture_stems(recipe, seed, seconds)), seconds, out_path)
    return render_parts(recipe_parts(recipe, seed, seconds), recipe.tempo, seconds, out_path, reverb=recipe.reverb)


# Mixture clips: what recordings are, a lead with bass and often drums, labelled frame by frame
# with each source's share (issue #23). The glossary measures them; no codebook is fitted on them.
LEAD_FAMILIES: dict[str, list[str]] = {}
for _name in MELODIC:
    LEAD_FAMILIES.setdefault(family(_name), []).append(_name)
MIXTURE_BASSES = ["acoustic_bass", "finger_bass", "synth_bass"]


def plan_mixture(index: int, seed: int) -> ClipRecipe:
    """A mixture clip: a lead (its family taken in turn, so every family leads as often) playing
    the melody and, mostly, the chords; a bass (mostly); a drum kit (half of them)."""
    rng = np.random.default_rng([seed, index, 3])
    families = sorted(LEAD_FAMILIES)
    lead = str(rng.choice(LEAD_FAMILIES[families[index % len(families)]]))
    key = str(rng.choice(PITCH_NAMES))
    mode = str(rng.choice(["major", "minor"]))
    tempo = float(round(rng.uniform(70, 160)))
    reverb = bool(rng.random() < 0.5)
    cast = [(lead, "melody")] + [(lead, "chords")] * bool(rng.random() < 0.7)
    if rng.random() < 0.85:
        cast.append((str(rng.choice(MIXTURE_BASSES)), "bass"))
    drums = bool(rng.random() < 0.5)
    style = str(rng.choice(DRUM_STYLES))
    if drums:
        cast.append(("drums", "drums"))
    return ClipRecipe(index, "mixture", tuple(c[0] for c in cast), tuple(c[1] for c in cast), key, mode, tempo, reverb, style if drums else "no drums")


def plan_corpus(n_clips: int, seed: int, harmony_clips: int = 0, mixture_clips: int = 0) -> list[ClipRecipe]:
    """The corpus's clips in order: ``n_clips`` of the kind cycle, ``harmony_clips`` harmony
    clips, then ``mixture_clips`` mixture clips."""
    plans = [plan_clip(i, seed) for i in range(n_clips)] + [plan_harmony(n_clips + j, seed) for j in range(harmony_clips)]
    return plans + [plan_mixture(len(plans) + j, seed) for j in range(mixture_clips)]


def render_corpus(out_dir: str | os.PathLike, n_clips: int = 120, seed: int = 0, clip_seconds: float = 12.0, workers: int = 2, harmony_clips: int = 0, mixture_clips: int = 0) -> list[Path]:
    """Render the corpus of :func:`plan_corpus` to ``out_dir`` (plus ``corpus.json`` describing each clip); returns the WAV paths in order."""
    if n_clips < 1 or clip_seconds <= 0 or harmony_clips < 0 or mixture_clips < 0:
        raise ValueError("render_corpus needs n_clips >= 1, clip_seconds > 0, harmony_clips >= 0 and mixture_clips >= 0")
    tools()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    recipes = plan_corpus(n_clips, seed, harmony_clips, mixture_clips)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # threads: the work is in fluidsynth processes
        paths = list(pool.map(lambda r: render_recipe(r, seed, clip_seconds, out / r.file_name), recipes))
    listing = {"seed": seed, "clip_seconds": clip_seconds, "sample_rate": SAMPLE_RATE, "clips": [asdict(r) for r in recipes]}
    (out / "corpus.json").write_text(json.dumps(listing, indent=2) + "\n")
    return paths


# --- what sounds in each frame: the glossary's source labels ----------------------------------


def recipe_from_listing(clip: dict) -> ClipRecipe:
    """A ClipRecipe from its ``corpus.json`` entry; ValueError when the entry is malformed."""
    try:
        return ClipRecipe(**{**clip, "instruments": tuple(clip["instruments"]), "roles": tuple(clip["roles"])})
    except (TypeError, KeyError) as exc:
        raise ValueError(f"corpus.json: malformed clip entry ({exc})") from None


def frame_sources(recipe: ClipRecipe, seed: int, seconds: float, frame_rate: int, frames: int) -> dict[str, np.ndarray]:
    """Per source word (a GM family, ``drum kit``, or a SYNTH_SOURCES word), its share of each of
    ``frames`` frames of the clip: 1 for a one-source clip; for several sources, each source
    rendered alone, its RMS in the frame over the sum of the sources' RMS (amplitude, not power,
    so a bass's low-frequency energy does not hide the lead), sources 30 dB under the loudest
    counting 0. A frame's shares sum to 1; which frames are sounding is the glossary's to say."""
    if recipe.kind == "synth":
        return {SYNTH_SOURCES[recipe.detail]: np.ones(frames)}
    words = {family(i) for i in recipe.instruments}
    if len(words) == 1:
        return {words.pop(): np.ones(frames)}
    if recipe.kind == "mixture":
        stems = mixture_stems(recipe, seed, seconds)
    else:
        parts = recipe_parts(recipe, seed, seconds)
        stems = [(p.instrument, synthesize([p], recipe.tempo, seconds, recipe.reverb).mean(axis=1)) for p in parts]
    bounds = np.round(np.arange(frames + 1) * SAMPLE_RATE / frame_rate).astype(np.int64)
    rms = np.zeros((len(stems), frames))
    for i, (_, x) in enumerate(stems):
        x = np.concatenate([x, np.zeros(max(0, int(bounds[-1]) - len(x)))])
        rms[i] = [np.sqrt(np.mean(x[a:b] ** 2)) if b > a else 0.0 for a, b in zip(bounds[:-1], bounds[1:])]
    rms[rms < rms.max(axis=0, keepdims=True) * 10 ** (-30 / 20)] = 0.0
    shares = rms / np.maximum(rms.sum(axis=0, keepdims=True), 1e-30)
    out: dict[str, np.ndarray] = {}
    for (instrument, _), row in zip(stems, shares):
        out[family(instrument)] = out.get(family(instrument), 0.0) + row
    return out


def describe_corpus(n_clips: int, seed: int, clip_seconds: float, harmony_clips: int = 0, mixture_clips: int = 0) -> dict:
    """A summary for provenance: clip counts per kind, instruments used, total duration."""
    recipes = plan_corpus(n_clips, seed, harmony_clips, mixture_clips)
    kinds: dict[str, int] = {}
    for r in recipes:
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
    return {
        "clips": len(recipes),
        "clip_seconds": clip_seconds,
        "total_seconds": len(recipes) * clip_seconds,
        "sample_rate": SAMPLE_RATE,
        "kinds": kinds,
        "instruments": sorted({i for r in recipes for i in r.instruments}),
        "synth_kinds": sorted({r.detail for r in recipes if r.kind == "synth"}),
        "seed": seed,
    }
