"""A listening benchmark (issue #23): can a reader that only sees ``nat prompt`` text hear the music?

Pieces with known answers are rendered with FluidSynth and the GM soundfont, each piece's
``nat prompt --format text`` is written with and without ``--glossary``, and readers answer
seven multiple-choice questions from the text alone: a mechanical reader here (``mech``) and
LLM readers whose answer files ``score`` grades. A real-music part (``music``) asks readers
to match the first minute of eight soundtrack cues to their eight titles.

    python bench/listen.py render --seed 2323 --out /tmp/listen         # the evaluation set
    python bench/listen.py mech /tmp/listen                              # the mechanical reader
    python bench/listen.py score /tmp/listen answers1.json answers2.json # LLM readers
    python bench/listen.py music --out /tmp/listen-music                 # sets 0 and 1
    python bench/listen.py score-music /tmp/listen-music/set0 a.json b.json
    python bench/listen.py render --seed 2323 --out /tmp/after --python /o/.venv/bin/python --checkout /o

Pieces (``plan``): about 35 s, three equal sections in ABA or ABC form (each section its own
two-bar melody and four-chord progression, every progression starting on the tonic), one
lead instrument playing melody (octave 5) and held chords (octave 4), a bass, in half the
pieces a GM drum kit (channel 10). Tempo slow (64-80 bpm) or fast (132-156 bpm); major or
minor; dynamics steady, gradual crescendo, gradual decrescendo, or quiet then suddenly loud
at a section boundary (note velocity and CC11 expression together: about 22 dB between
quiet and loud, measured on the audio by tests/test_bench_listen.py); a 3 s rest (notes
cut, then CC120 all-sound-off) in the middle of the first, middle or last third, or none.
Lead families (LEADS): piano, organ, guitar, strings, brass, reed/pipe, each three GM
programs. Every answer is balanced over the pieces (16 pieces: 8/8, 4 of each of four,
3-3-3-3-2-2 of the six families), each question drawn independently from the seed.

Seeds: DEV_SEED (1) is the one to look at and tune the mechanical reader on; EVAL_SEED
(2323) is the reported set and is never tuned on.

Folders (``render --out DIR``): ``DIR/reader/`` is all a reader gets (questions.md,
prompts/pNN.txt with the glossary, prompts-noglossary/pNN.txt); ``DIR/private/`` holds
truth.json, plan.json, run.json (which python and checkout ran nat) and audio/pieceNN.flac
(neutral names: the prompt's header names the file). Renders are cached by recipe under
``--cache`` (default ~/.cache/nat-bench-listen), so a second checkout reuses the same audio.
Everything is a function of the seed: same seed, same tools -> same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from neural_audio_tokenizer.export import corpus  # noqa: E402
from neural_audio_tokenizer.export.corpus import NoteEvent, Part  # noqa: E402

DEV_SEED = 1
EVAL_SEED = 2323
N_PIECES = 16
TARGET_S = 35.0
REST_S = 3.0
RANGE_DB = 12.0  # quiet vs loud through CC11 (GM: 40 log10(expr/127) dB); velocity adds ~10 dB: ~22 dB in all
RENDER_VERSION = 1  # bump when the rendering changes, so cached audio is not reused
CACHE = Path(os.environ.get("NAT_LISTEN_CACHE", Path.home() / ".cache" / "nat-bench-listen"))

# Lead instrument families: GM programs (0-based), three per family; the option letter is the order here.
LEADS: dict[str, tuple[int, ...]] = {
    "piano": (0, 1, 2),  # acoustic grand, bright acoustic, electric grand
    "organ": (16, 17, 19),  # drawbar, percussive, church organ
    "guitar": (24, 25, 27),  # nylon, steel, clean electric
    "strings": (40, 41, 48),  # violin, viola, string ensemble
    "brass": (56, 57, 61),  # trumpet, trombone, brass section
    "reed/pipe": (65, 71, 73),  # alto sax, clarinet, flute
}
BASS_PROGRAMS = (32, 33)  # acoustic, finger bass
DRUM_STYLES = ("rock", "four_on_floor", "half_time", "breakbeat")
KEYS = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
TONIC_PROGRESSIONS = {m: tuple(p for p in ps if p[0] == 0) for m, ps in corpus.PROGRESSIONS.items()}  # a section opens on its tonic

# (key, question, options, truth field); the letters are A, B, ... in this order.
QUESTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("tempo", "What is the tempo?", ("slow (about 64-80 beats per minute)", "fast (about 132-156 beats per minute)")),
    ("mode", "Is the piece in a major or a minor key?", ("major", "minor")),
    ("form", "The piece has three equal sections. Does the first section's music come back as the third section?", ("yes: the form is A B A", "no: the form is A B C, three different sections")),
    ("rest", "Is there a rest of about 3 seconds where every instrument is silent, and if so where?", ("no such rest", "in the first third", "in the middle third", "in the last third")),
    ("drums", "Does a drum kit play?", ("yes", "no")),
    ("dynamics", "How does the loudness change over the piece?", ("steady: about the same level throughout", "gradual crescendo: grows louder from start to end", "gradual decrescendo: grows softer from start to end", "quiet, then suddenly loud")),
    ("instrument", "Which instrument family plays the lead (melody and chords)? A bass plays too, and sometimes drums.", ("piano", "organ", "guitar", "strings (violin, viola, string ensemble)", "brass", "reed or pipe (saxophone, clarinet, flute)")),
)
QKEYS = tuple(q[0] for q in QUESTIONS)
LETTERS = "ABCDEFGH"


class ListenError(Exception):
    """A clear one-line failure (missing tools, a bad folder, a nat run that failed)."""


# --- the pieces ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """Everything that determines one piece; the ``answers`` are option indexes per question."""

    index: int  # 1-based: pNN
    answers: dict
    family: str
    program: int
    bass: int
    drums: str  # a corpus drum style, or "" for none
    key: str
    mode: str
    tempo: float
    bars: int  # per section
    sudden_at: int  # dynamics "sudden": the loud part starts at section 1 or 2

    @property
    def seconds(self) -> float:
        return 3 * self.bars * 4 * 60.0 / self.tempo

    def cache_key(self) -> str:
        text = json.dumps({**asdict(self), "render_version": RENDER_VERSION, "range_db": RANGE_DB, "rest_s": REST_S}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]


def balanced(rng: np.random.Generator, n: int, options: int) -> list[int]:
    """n answers, every option used as equally often as n allows, in a seeded order."""
    values = [i % options for i in range(n)]
    return [int(v) for v in rng.permutation(values)]


def plan(seed: int, n: int = N_PIECES) -> list[Piece]:
    """The pieces of ``seed``: answers balanced per question, drawn independently."""
    rng = np.random.default_rng([seed, 23])
    columns = {key: balanced(rng, n, len(options)) for key, _, options in QUESTIONS}
    pieces = []
    for i in range(n):
        answers = {key: columns[key][i] for key in QKEYS}
        r = np.random.default_rng([seed, 23, i])
        family = list(LEADS)[answers["instrument"]]
        tempo = float(round(r.uniform(64, 80) if answers["tempo"] == 0 else r.uniform(132, 156)))
        bars = max(1, round(TARGET_S / 3 * tempo / 60 / 4))
        pieces.append(Piece(
            index=i + 1, answers=answers, family=family, program=int(r.choice(LEADS[family])),
            bass=int(r.choice(BASS_PROGRAMS)), drums=str(r.choice(DRUM_STYLES)) if answers["drums"] == 0 else "",
            key=str(r.choice(KEYS)), mode=("major", "minor")[answers["mode"]], tempo=tempo, bars=bars,
            sudden_at=int(r.choice([1, 2])),
        ))  # fmt: skip
    return pieces


def truth_of(piece: Piece) -> dict:
    return {key: LETTERS[piece.answers[key]] for key in QKEYS}


def loudness(piece: Piece, beat: float) -> float:
    """0 (quiet) .. 1 (loud) at ``beat``, from the piece's dynamics answer."""
    total = 3 * piece.bars * 4
    x = min(max(beat / total, 0.0), 1.0)
    kind = piece.answers["dynamics"]
    if kind == 0:
        return 0.75
    if kind == 1:
        return x
    if kind == 2:
        return 1.0 - x
    return 1.0 if beat >= piece.sudden_at * piece.bars * 4 else 0.0


def rest_span(piece: Piece) -> tuple[float, float] | None:
    """The rest in beats, centred in its third and starting on a beat; None without one."""
    where = piece.answers["rest"]
    if where == 0:
        return None
    section, beats_per_s = piece.bars * 4, piece.tempo / 60.0
    length = REST_S * beats_per_s
    start = round((where - 1) * section + (section - length) / 2)
    return float(start), start + length


def events(piece: Piece) -> tuple[list[Part], list[tuple[float, int]]]:
    """(parts, expression curve as (beat, CC11 value)) of a piece."""
    rng = np.random.default_rng([int(piece.cache_key()[:8], 16)])  # the notes: a function of the whole recipe
    form = "ABA" if piece.answers["form"] == 0 else "ABC"
    progressions = TONIC_PROGRESSIONS[piece.mode]
    order = [int(i) for i in rng.permutation(len(progressions))]
    material = {}
    for j, name in enumerate("ABC"):
        material[name] = (corpus.random_melody(rng, 8.0, piece.mode, rest_chance=0.05), progressions[order[j % len(order)]])
    section_beats = piece.bars * 4
    section_s = section_beats * 60.0 / piece.tempo
    lead, bass, drums = [], [], []
    for k, name in enumerate(form):
        melody, progression = material[name]
        shift = k * section_beats

        def moved(notes, shift=shift):
            return [NoteEvent(e.start + shift, e.beats, e.pitch, e.velocity) for e in notes if e.start < section_beats]

        lead += moved(corpus.melody_events(melody, piece.key, section_s, piece.tempo, octave=5, velocity=100))
        lead += moved(corpus.chord_events(progression, piece.key, piece.mode, section_s, piece.tempo, octave=4, velocity=72))
        bass += moved(corpus.bass_events(progression, piece.key, piece.mode, section_s, piece.tempo, velocity=95))
        if piece.drums:
            drums += moved(corpus.drum_events(piece.drums, section_s, piece.tempo))
    rest = rest_span(piece)

    def shaped(notes: list[NoteEvent]) -> tuple[NoteEvent, ...]:
        out = []
        for e in notes:
            beats = e.beats
            if rest is not None:
                if rest[0] <= e.start < rest[1]:
                    continue  # the rest: nothing starts inside it
                if e.start < rest[0] < e.start + beats:
                    beats = rest[0] - e.start  # and nothing rings into it
            velocity = round(e.velocity * (0.55 + 0.45 * loudness(piece, e.start)))
            out.append(NoteEvent(e.start, beats, e.pitch, velocity))
        return tuple(out)

    parts = [Part(piece.program, shaped(lead)), Part(piece.bass, shaped(bass))]
    if piece.drums:
        parts.append(Part("drums", shaped(drums)))
    curve = [(float(b), expression(loudness(piece, b))) for b in range(3 * section_beats)]
    if piece.answers["dynamics"] == 3:
        curve.append((float(piece.sudden_at * section_beats), expression(1.0)))
    return parts, curve


def expression(level: float) -> int:
    """CC11 for a loudness of 0..1: RANGE_DB between 0 and 1."""
    return int(round(127 * 10 ** ((level - 1) * RANGE_DB / 40)))


def write_midi(parts: Sequence[Part], curve: Sequence[tuple[float, int]], rest: tuple[float, float] | None, tempo: float, seconds: float, path: Path) -> None:
    """corpus.write_midi plus controller events (CC7 volume, CC11 expression, CC120 in the rest),
    which corpus.write_midi has no way to carry."""
    import mido

    tpb = corpus.TICKS_PER_BEAT
    mid = mido.MidiFile(type=1, ticks_per_beat=tpb)
    end_tick = round(seconds * tempo / 60.0 * tpb)
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo), time=0), mido.MetaMessage("end_of_track", time=end_tick)]))
    melodic = iter([c for c in range(16) if c != 9])
    for part in parts:
        program = corpus.instrument_program(part.instrument)
        channel = 9 if program is None else next(melodic)
        msgs = [(0, 0, 0, mido.Message("control_change", control=7, value=100, channel=channel))]
        if program is not None:
            msgs.append((0, 0, 1, mido.Message("program_change", program=program, channel=channel)))
        msgs += [(round(b * tpb), 0, 2, mido.Message("control_change", control=11, value=v, channel=channel)) for b, v in curve]
        if rest is not None:  # cut release tails: the rest is silence, not a fading note
            msgs.append((round((rest[0] + 0.5) * tpb), 0, 3, mido.Message("control_change", control=120, value=0, channel=channel)))
        for e in part.notes:
            on = round(e.start * tpb)
            off = max(on + 1, round((e.start + e.beats) * tpb))
            if on >= end_tick:
                continue
            msgs.append((on, 2, e.pitch, mido.Message("note_on", note=e.pitch, velocity=int(np.clip(e.velocity, 1, 127)), channel=channel)))
            msgs.append((min(off, end_tick), 1, e.pitch, mido.Message("note_off", note=e.pitch, velocity=0, channel=channel)))
        track, now = mido.MidiTrack(), 0
        for tick, _, _, msg in sorted(msgs, key=lambda m: m[:3]):
            track.append(msg.copy(time=tick - now))
            now = tick
        track.append(mido.MetaMessage("end_of_track", time=max(0, end_tick - now)))
        mid.tracks.append(track)
    mid.save(str(path))


def render_piece(piece: Piece, out_path: Path, cache: Path | None) -> Path:
    """The piece's FLAC at ``out_path``, from the cache when the same recipe was rendered before."""
    cached = cache / f"{piece.cache_key()}.flac" if cache else None
    if cached is not None and cached.is_file():
        shutil.copyfile(cached, out_path)
        return out_path
    exe, font = corpus.tools()
    parts, curve = events(piece)
    with tempfile.TemporaryDirectory(prefix="nat-listen-") as tmp:
        mid, wav = Path(tmp, "piece.mid"), Path(tmp, "piece.wav")
        write_midi(parts, curve, rest_span(piece), piece.tempo, piece.seconds, mid)
        cmd = [exe, "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.5", "-r", str(corpus.SAMPLE_RATE),
               "-O", "float", "-T", "wav", "-F", str(wav), str(font), str(mid)]  # fmt: skip  # corpus.render_parts' settings
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0 or not wav.is_file():
            raise ListenError(f"fluidsynth failed on piece {piece.index} (exit {done.returncode}): {done.stderr.strip()[:200]}")
        samples, _ = sf.read(str(wav), dtype="float64", always_2d=True)
    corpus.finish_clip(samples, piece.seconds, out_path)
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp_copy = cached.with_suffix(".tmp")
        shutil.copyfile(out_path, tmp_copy)
        os.replace(tmp_copy, cached)
    return out_path


# --- running nat --------------------------------------------------------------------------


@dataclass(frozen=True)
class Nat:
    """Which python and which checkout run ``nat`` (PYTHONPATH=checkout)."""

    python: str
    checkout: Path

    def env(self) -> dict:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.checkout)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        return env

    def prompt(self, audio: Path, out: Path, glossary: bool) -> None:
        cmd = [self.python, "-m", "neural_audio_tokenizer", "prompt", str(audio), "--format", "text", "--threads", "1", "-o", str(out)]
        if glossary:
            cmd.append("--glossary")
        done = subprocess.run(cmd, capture_output=True, text=True, env=self.env(), cwd=self.checkout, timeout=600)
        if done.returncode != 0:
            raise ListenError(f"nat prompt {audio.name} failed (exit {done.returncode}): {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'no message'}")

    def describe(self) -> dict:
        commit = subprocess.run(["git", "-C", str(self.checkout), "rev-parse", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", str(self.checkout), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True)
        return {"python": self.python, "checkout": str(self.checkout), "commit": commit.stdout.strip() or None, "dirty": bool(dirty.stdout.strip())}


def nat_of(args) -> Nat:
    python = args.python or os.environ.get("NAT_LISTEN_PYTHON") or sys.executable
    checkout = Path(args.checkout or os.environ.get("NAT_LISTEN_CHECKOUT") or REPO).resolve()
    if not (checkout / "neural_audio_tokenizer").is_dir():
        raise ListenError(f"--checkout {checkout}: no neural_audio_tokenizer package there")
    return Nat(python, checkout)


def write_prompts(nat: Nat, audio: Sequence[Path], names: Sequence[str], reader: Path, workers: int, glossary_only: bool = False) -> None:
    """reader/prompts/NAME.txt (with --glossary) and reader/prompts-noglossary/NAME.txt."""
    jobs = [(a, reader / "prompts" / f"{n}.txt", True) for a, n in zip(audio, names)]
    if not glossary_only:
        jobs += [(a, reader / "prompts-noglossary" / f"{n}.txt", False) for a, n in zip(audio, names)]
    for _, out, _ in jobs:
        out.parent.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # threads: the work is in nat processes
        list(pool.map(lambda job: nat.prompt(*job), jobs))


# --- render -------------------------------------------------------------------------------

INSTRUCTIONS = """\
You are given text files made by an audio tokenizer from short pieces of music. You cannot
hear the audio; read each file and answer from its text only. Do not run code or any
analysis tool on the files; read them as text. Each file stands alone: the pieces are
unrelated, and every answer option below may be right for any number of pieces.
"""


def questions_md(names: Sequence[str]) -> str:
    lines = ["# Listening questions", "", INSTRUCTIONS, f"Files: {', '.join(f'{n}.txt' for n in names)}.", "",
             "Answer all seven questions for every file, each with one option letter:", ""]  # fmt: skip
    for i, (key, text, options) in enumerate(QUESTIONS, 1):
        lines.append(f"{i}. **{key}**: {text}")
        lines += [f"   - {LETTERS[j]}: {o}" for j, o in enumerate(options)]
    example = {names[0]: {key: "A" for key in QKEYS}}
    lines += ["", "Reply with JSON only, one object per file, in this shape:", "", "```json",
              json.dumps(example), "```", ""]  # fmt: skip
    return "\n".join(lines)


def cmd_render(args) -> int:
    nat = nat_of(args)
    corpus.tools()
    out = Path(args.out)
    reader, private = out / "reader", out / "private"
    pieces = plan(args.seed, args.pieces)
    names = [f"p{p.index:02d}" for p in pieces]
    (private / "audio").mkdir(parents=True, exist_ok=True)
    reader.mkdir(parents=True, exist_ok=True)
    audio = [private / "audio" / f"piece{p.index:02d}.flac" for p in pieces]
    cache = None if args.no_cache else Path(args.cache) / f"seed{args.seed}"
    print(f"render: {len(pieces)} pieces of seed {args.seed} ({'the evaluation seed' if args.seed == EVAL_SEED else 'the development seed' if args.seed == DEV_SEED else 'a seed of your own'}) with FluidSynth, {args.workers} at a time")
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        list(pool.map(lambda pa: render_piece(pa[0], pa[1], cache), zip(pieces, audio)))
    print(f"render: nat prompt --format text (with and without --glossary) by {nat.python} on {nat.checkout}")
    write_prompts(nat, audio, names, reader, args.workers)
    (reader / "questions.md").write_text(questions_md(names))
    truth = {"seed": args.seed, "questions": {k: list(o) for k, _, o in QUESTIONS}, "answers": {n: truth_of(p) for n, p in zip(names, pieces)}}
    (private / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    (private / "plan.json").write_text(json.dumps({"seed": args.seed, "pieces": [{**asdict(p), "seconds": round(p.seconds, 3), "audio": a.name} for p, a in zip(pieces, audio)]}, indent=2) + "\n")
    (private / "run.json").write_text(json.dumps({"nat": nat.describe(), "seed": args.seed, "pieces": len(pieces)}, indent=2) + "\n")
    print(f"render: readers get {reader} (questions.md, prompts/, prompts-noglossary/)")
    print(f"render: kept private: {private} (truth.json, plan.json, run.json, audio/)")
    return 0


# --- reading the prompt text ----------------------------------------------------------------

FRAME = re.compile(r"^(-?\d+(?:\.\d+)?)\s+S\s+(.*?)\s+A\s+(.*)$")
GLOSSARY = re.compile(r"^#?\s*([SA]\d)\s+(\d+)\s*=\s*(.+)$")
LEVEL_NAMES = ("l", "lv", "lvl", "level", "db", "loud", "loudness", "dbfs", "lufs")
ONSET_NAMES = ("o", "on", "onset", "onsets", "hits", "beat", "beats", "pulse")


@dataclass
class Prompt:
    frames: list[dict]  # {"t", "S": [..], "A": [..], "extra": {name: value}} one per frame (RLE expanded)
    glossary: dict  # ("S0", 57) -> "G major (G D B), tonal"
    line_s: float
    columns: list[str]  # the legend's names of the columns after A's codes


def _number(word: str) -> float | None:
    m = re.fullmatch(r"([+-]?\d+(?:\.\d+)?)(?:db|dB|DB)?", word)
    return float(m.group(1)) if m else None


def parse_prompt(text: str) -> Prompt:
    """The frames and glossary of a ``nat prompt --format text`` file; frame lines may carry
    extra columns after the A codes (named in the legend's ``line:`` list, or as ``name value``
    pairs), ``.`` for an unchanged token (--delta) and ``xN`` for N identical frames (--rle)."""
    frames: list[dict] = []
    glossary: dict = {}
    line_s, columns, n_a = 0.2, [], 4
    previous: dict | None = None
    for raw in text.splitlines():
        line = raw.strip()
        g = GLOSSARY.match(line)
        if g:
            glossary[(g.group(1), int(g.group(2)))] = g.group(3).strip()
            continue
        if line.startswith("#"):
            m = re.search(r"line:\s*t\s+S((?:\s+S\d)+)\s+A((?:\s+A\d)+)([^(|]*)", line)
            if m:
                n_a = len(m.group(2).split())
                columns = [w.strip(",;:").lower() for w in m.group(3).split() if w.strip(",;:")]
            p = re.search(r"each line pools (\d+) frames \(([\d.]+) s\)", line)
            if p:
                line_s = float(p.group(2))
            f = re.search(r"(\d+(?:\.\d+)?) frames/s", line)
            if f and not p:
                line_s = 1 / float(f.group(1))
            continue
        m = FRAME.match(line)
        if not m:
            continue
        t, s_words, rest = float(m.group(1)), m.group(2).split(), m.group(3).split()
        count = 1
        if rest and re.fullmatch(r"x\d+", rest[-1]):
            count = int(rest.pop()[1:])
        a_words, extra_words = rest[:n_a], rest[n_a:]

        def fill(words, before):
            return [before[i] if w == "." and before is not None else int(w) if re.fullmatch(r"-?\d+", w) else -1 for i, w in enumerate(words)]

        S = fill(s_words, previous["S"] if previous else None)
        A = fill(a_words, previous["A"] if previous else None)
        extra: dict = {}
        words, i, position = extra_words, 0, 0
        while i < len(words):
            w = words[i]
            label = _number(w) is None and w != "." and i + 1 < len(words)
            if label and (_number(words[i + 1]) is not None or words[i + 1] == "." or w.strip(":=").lower() in LEVEL_NAMES + ONSET_NAMES):
                name, value = w.strip(":=").lower(), words[i + 1]
                i += 2
            else:
                name = columns[position] if position < len(columns) else f"x{position}"
                value, i = w, i + 1
            position += 1
            if value == "." and previous is not None and name in previous["extra"]:
                extra[name] = previous["extra"][name]
            elif _number(value) is not None:
                extra[name] = _number(value)
            else:
                extra[name] = value
        frame = {"t": t, "S": S, "A": A, "extra": extra}
        for k in range(count):
            frames.append({**frame, "t": round(t + k * line_s, 3)})
        previous = frame
    return Prompt(frames, glossary, line_s, columns)


def field(prompt: Prompt, names: Sequence[str], suffix: str = "") -> list[float] | None:
    """Per-frame values of the extra column called one of ``names`` (or ending in ``suffix``),
    if every frame has it as a number."""
    if not prompt.frames:
        return None
    keys = sorted(prompt.frames[0]["extra"])
    hit = next((k for k in keys if k in names or (suffix and k.endswith(suffix))), None)
    if hit is None:
        return None
    values = [f["extra"].get(hit) for f in prompt.frames]
    return [float(v) for v in values] if all(isinstance(v, float) for v in values) else None


def level_of(prompt: Prompt) -> list[float] | None:
    """A per-frame level column in dB, or in words (quiet, loud, pp, ff ...) as LEVEL_STEPS x 10,
    so word steps and dB take the same thresholds (a step reads as about 10 dB)."""
    numbers = field(prompt, LEVEL_NAMES, suffix="db")
    if numbers is not None or not prompt.frames:
        return numbers
    key = next((k for k in sorted(prompt.frames[0]["extra"]) if k in LEVEL_NAMES), None)
    words = [str(f["extra"].get(key, "")).lower() for f in prompt.frames] if key else []
    if not words or not all(w in LEVEL_STEPS for w in words):
        return None
    return [10.0 * LEVEL_STEPS[w] for w in words]


def words_of(prompt: Prompt, level: str, frame: dict) -> str:
    code = frame["S" if level[0] == "S" else "A"][int(level[1])]
    return prompt.glossary.get((level, code), "").lower()


# --- the mechanical reader -------------------------------------------------------------------

FAMILY_WORDS = {  # option index -> words a glossary may use for it
    0: ("piano", "keyboard", "keys"),
    1: ("organ", "accordion"),
    2: ("guitar",),
    3: ("strings", "string", "ensemble", "violin", "viola", "cello"),
    4: ("brass", "trumpet", "trombone", "horn"),
    5: ("reed", "pipe", "sax", "saxophone", "clarinet", "flute", "oboe", "woodwind"),
}
DRUM_WORDS = ("drum", "drums", "percussion", "kit", "snare", "cymbal")
LEVEL_STEPS = {"silent": -3.0, "silence": -3.0, "ppp": -1.0, "pp": 0.0, "p": 1.0, "mp": 2.0, "mf": 3.0, "f": 4.0, "ff": 5.0, "fff": 6.0,
               "very quiet": 0.0, "quiet": 1.0, "soft": 1.0, "moderate": 3.0, "medium": 3.0, "loud": 4.0, "very loud": 5.0}
LOUD_WORDS = {"silent": 0.0, "very quiet": 0.5, "quiet": 1.0, "soft": 1.0, "moderate": 2.0, "medium": 2.0, "loud": 3.0, "very loud": 4.0}


def _shares(text: str, words: Sequence[str]) -> float:
    """How much of a glossary entry goes to ``words``: a stated share ("piano 40%") or 1 per mention."""
    total = 0.0
    for w in words:
        for m in re.finditer(rf"\b{re.escape(w)}\b(?:[^,;%\d]*?(\d+(?:\.\d+)?)\s*%)?", text):
            total += float(m.group(1)) / 100 if m.group(1) else 1.0
    return total


def _silent(prompt: Prompt) -> list[bool]:
    """Frames that read as silence: a level field far below the piece's loud frames, or a
    glossary entry saying silence, or (neither available) a run of identical whole frames."""
    frames = prompt.frames
    level = level_of(prompt)
    if level is not None:
        top = float(np.percentile(level, 90))
        return [v < top - 40 for v in level]
    said = [("silen" in words_of(prompt, "S0", f) or "silen" in words_of(prompt, "A0", f)) for f in frames]
    if any(said):
        return said
    same = [False] * len(frames)
    i = 0
    while i < len(frames):
        j = i
        while j + 1 < len(frames) and frames[j + 1]["S"] == frames[i]["S"] and frames[j + 1]["A"] == frames[i]["A"]:
            j += 1
        if j - i + 1 >= 5:  # a second of eight identical tokens: real sound keeps its fine levels moving
            for k in range(i, j + 1):
                same[k] = True
        i = j + 1
    return same


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    out, i = [], 0
    while i < len(flags):
        if flags[i]:
            j = i
            while j + 1 < len(flags) and flags[j + 1]:
                j += 1
            out.append((i, j + 1))
            i = j + 1
        else:
            i += 1
    return out


def answer_rest(prompt: Prompt) -> str:
    n = len(prompt.frames)
    runs = [r for r in _runs(_silent(prompt)) if (r[1] - r[0]) * prompt.line_s >= 1.5 and r[0] > 0 and r[1] < n]  # inside, not the tail fade
    if not runs:
        return "A"
    start, end = max(runs, key=lambda r: r[1] - r[0])
    return LETTERS[1 + min(2, int(3 * (start + end) / 2 / n))]


def _similarity(a: list[dict], b: list[dict]) -> float:
    m = min(len(a), len(b))
    return sum(x["S"][:2] == y["S"][:2] for x, y in zip(a[:m], b[:m])) / max(1, m)


def answer_form(prompt: Prompt) -> str:
    n = len(prompt.frames) // 3
    first, middle, last = prompt.frames[:n], prompt.frames[n : 2 * n], prompt.frames[2 * n : 3 * n]
    shifts = range(-2, 3)  # a frame or two of misalignment at the section boundaries
    back = max(_similarity(first[max(0, s) :], last[max(0, -s) :]) for s in shifts)
    other = max(_similarity(first[max(0, s) :], middle[max(0, -s) :]) for s in shifts)
    return "A" if back > max(0.2, 2 * other) else "B"


def answer_tempo(prompt: Prompt) -> str:
    """Fast when the (S0, S1) pattern repeats after 5-8.5 s: a four-chord progression (4 bars)
    lasts 6.2-7.3 s at 132-156 bpm and 12-15 s at 64-80 bpm, longer than a slow section holds it."""
    frames = prompt.frames
    lags = range(max(1, round(5.0 / prompt.line_s)), round(8.5 / prompt.line_s) + 1)
    best = max((_similarity(frames[:-lag], frames[lag:]) for lag in lags if lag < len(frames)), default=0.0)
    return "B" if best >= TEMPO_REPEAT else "A"


TEMPO_REPEAT = 0.12  # dev seed: fast pieces 0.24-0.41, slow ones <= 0.05


def answer_mode(prompt: Prompt) -> str:
    """The chord the glossary names at the opening of each third (every section opens on its tonic)."""
    n, votes = len(prompt.frames), Counter()
    per = max(1, round(1.0 / prompt.line_s))
    for k in range(3):
        start = k * n // 3
        for f in prompt.frames[start : start + per]:
            words = words_of(prompt, "S0", f)
            if re.search(r"\bminor\b", words):
                votes["B"] += 1
            elif re.search(r"\bmajor\b", words):
                votes["A"] += 1
    return votes.most_common(1)[0][0] if votes else "A"


def answer_drums(prompt: Prompt) -> str:
    frames = prompt.frames
    onsets = field(prompt, ONSET_NAMES)
    if onsets is not None:  # a per-frame hits column beats the glossary's corpus shares
        return "A" if np.mean(np.asarray(onsets) > 0) > DRUM_HIT_SHARE else "B"
    said = [_shares(words_of(prompt, "A0", f), DRUM_WORDS) for f in frames]
    if any(said):
        return "A" if sum(1 for s in said if s > 0) / len(frames) > 0.25 else "B"
    struck = sum(bool(re.search(r"\b(percussive|mixed|noisy)\b", words_of(prompt, "A0", f))) for f in frames) / max(1, len(frames))
    if prompt.glossary:
        return "A" if struck > DRUM_STRUCK else "B"
    changes = sum(a["A"][0] != b["A"][0] for a, b in zip(frames, frames[1:])) / max(1, len(frames) - 1)
    return "A" if changes > DRUM_A0_CHANGE else "B"


DRUM_HIT_SHARE = 0.2  # dev seed: share of lines with a hit (drum pieces 0.25-0.9, others 0-0.31)
DRUM_STRUCK = 0.11  # dev seed: share of frames whose A0 words say percussive/mixed/noisy
DRUM_A0_CHANGE = 0.5  # no glossary: how often A0 changes (dev seed: weak either way)


def _level_curve(prompt: Prompt) -> list[float] | None:
    level = level_of(prompt)
    if level is not None:
        return level
    values = []
    for f in prompt.frames:
        words = words_of(prompt, "A0", f)
        hit = next((v for w, v in sorted(LOUD_WORDS.items(), key=lambda kv: -len(kv[0])) if re.search(rf"\b{w}\b", words)), None)
        values.append(hit)
    if sum(v is not None for v in values) < len(values) / 2:
        return None
    fill = float(np.median([v for v in values if v is not None]))
    return [fill if v is None else v for v in values]


def answer_dynamics(prompt: Prompt) -> str:
    """Steady / crescendo / decrescendo / sudden from the level curve (silent frames left out):
    the difference between the first and last fifth, and whether it happens in one step."""
    curve = _level_curve(prompt)
    if curve is None:
        return "A"
    keep = [not s for s in _silent(prompt)]
    x = np.array([v for v, k in zip(curve, keep) if k], dtype=float)
    if len(x) < 10:
        return "A"
    spread = float(np.percentile(x, 90) - np.percentile(x, 10)) or 1.0
    w = max(2, len(x) // 5)
    smooth = np.convolve(x, np.ones(w) / w, mode="valid")
    change = float(smooth[-1] - smooth[0])
    if abs(change) < 0.35 * spread or abs(change) < DYN_MIN_CHANGE.get(level_of(prompt) is not None, 0):
        return "A"
    if change < 0:
        return "C"
    short = max(2, round(1.0 / prompt.line_s))
    step = np.convolve(x, np.ones(short) / short, mode="valid")
    jump = float(np.max(step[short:] - step[:-short])) if len(step) > short else 0.0
    return "D" if jump > 0.6 * change else "B"


DYN_MIN_CHANGE = {True: 6.0, False: 0.5}  # dB with a level field, word steps without


def answer_instrument(prompt: Prompt) -> str:
    totals = Counter()
    for f in prompt.frames:
        words = words_of(prompt, "A0", f)
        for option, names in FAMILY_WORDS.items():
            totals[option] += _shares(words, names)
    if sum(totals.values()) > 0:
        return LETTERS[totals.most_common(1)[0][0]]
    percussive = sum("percussive" in words_of(prompt, "A0", f) for f in prompt.frames) / max(1, len(prompt.frames))
    return "A" if percussive > 0.5 else "D"  # no family words: struck sounds read as piano, held ones as strings


READERS = {"tempo": answer_tempo, "mode": answer_mode, "form": answer_form, "rest": answer_rest,
           "drums": answer_drums, "dynamics": answer_dynamics, "instrument": answer_instrument}  # fmt: skip


def mech_answers(folder: Path) -> dict:
    """The mechanical reader's answers for every prompt file in ``folder``."""
    out = {}
    for path in sorted(folder.glob("*.txt")):
        prompt = parse_prompt(path.read_text())
        if not prompt.frames:
            raise ListenError(f"{path}: no frame lines (is it a nat prompt --format text file?)")
        out[path.stem] = {key: READERS[key](prompt) for key in QKEYS}
    return out


# --- scoring --------------------------------------------------------------------------------


def load_truth(folder: Path) -> dict:
    path = folder / "private" / "truth.json"
    if not path.is_file():
        raise ListenError(f"{path}: missing (give the folder `render --out` wrote)")
    return json.loads(path.read_text())


def grade(truth: dict, answers: dict) -> dict:
    """{question: [right, asked]} over the truth's pieces (a missing answer counts wrong)."""
    table = {key: [0, 0] for key in QKEYS}
    for name, right in truth["answers"].items():
        given = answers.get(name, {})
        for key in QKEYS:
            table[key][1] += 1
            table[key][0] += str(given.get(key, "")).strip().upper()[:1] == right[key]
    return table


def chance(truth: dict) -> dict:
    return {key: 1 / len(truth["questions"][key]) for key in QKEYS}


def results(truth: dict, graded: dict[str, dict]) -> dict:
    """Per reader and pooled: per-question and overall accuracy, with chance."""
    ch = chance(truth)
    out = {"chance": {**ch, "all": float(np.mean(list(ch.values())))}, "readers": {}}
    pooled = {key: [0, 0] for key in QKEYS}
    for name, table in graded.items():
        acc = {key: r / n for key, (r, n) in table.items()}
        acc["all"] = sum(r for r, _ in table.values()) / sum(n for _, n in table.values())
        out["readers"][name] = acc
        for key in QKEYS:
            pooled[key][0] += table[key][0]
            pooled[key][1] += table[key][1]
    out["pooled"] = {key: r / n for key, (r, n) in pooled.items()}
    out["pooled"]["all"] = sum(r for r, _ in pooled.values()) / max(1, sum(n for _, n in pooled.values()))
    return out


def markdown(res: dict, pooled: bool = True) -> str:
    """Per question: each reader, the pooled readers (when several, and ``pooled``), chance."""
    names = list(res["readers"])
    pooled = pooled and len(names) > 1
    cols = names + (["pooled"] if pooled else [])
    lines = ["| question | " + " | ".join(cols) + " | chance |", "|---" * (len(cols) + 2) + "|"]
    for key in (*QKEYS, "all"):
        values = [res["readers"][n][key] for n in names] + ([res["pooled"][key]] if pooled else [])
        lines.append(f"| {key} | " + " | ".join(f"{v:.0%}" for v in values) + f" | {res['chance'][key]:.0%} |")
    return "\n".join(lines)


def read_answers(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ListenError(f"{path}: not a readable JSON answer file ({e})") from None
    if not isinstance(data, dict):
        raise ListenError(f"{path}: expected a JSON object {{\"p01\": {{\"tempo\": \"A\", ...}}, ...}}")
    return data


def cmd_mech(args) -> int:
    folder = Path(args.dir)
    truth = load_truth(folder)
    graded, everything = {}, {}
    for sub in ("prompts", "prompts-noglossary"):
        prompts = folder / "reader" / sub
        if not prompts.is_dir():
            continue
        answers = mech_answers(prompts)
        label = "mech, --glossary" if sub == "prompts" else "mech, no glossary"
        graded[label] = grade(truth, answers)
        everything[sub] = answers
        (folder / "private" / f"mech-{sub}.json").write_text(json.dumps(answers, indent=1) + "\n")
    if not graded:
        raise ListenError(f"{folder}/reader: no prompts/ folder")
    res = results(truth, graded)
    (folder / "private" / "mech.json").write_text(json.dumps(res, indent=2) + "\n")
    print(f"mech: the mechanical reader on {folder / 'reader'} (seed {truth['seed']}, {len(truth['answers'])} pieces)")
    print(markdown(res, pooled=False) if not args.json else json.dumps(res, indent=2))  # two conditions, not two readers
    print(f"mech: answers and scores in {folder / 'private'} (mech-prompts.json, mech-prompts-noglossary.json, mech.json)")
    return 0


def cmd_score(args) -> int:
    folder = Path(args.dir)
    truth = load_truth(folder)
    graded = {Path(p).stem: grade(truth, read_answers(Path(p))) for p in args.answers}
    res = results(truth, graded)
    print(json.dumps(res, indent=2) if args.json else markdown(res))
    return 0


# --- real music -------------------------------------------------------------------------------

WARZONE = Path("/usr/share/games/warzone2100/music/albums")
HEDGEWARS = Path("/usr/share/games/hedgewars/Data/Music")
MUSIC_SEED = 8
MUSIC_S = 60.0
CUES = tuple(f"cue{c}" for c in "ABCDEFGH")
NOT_TITLES = re.compile(r"^(track \d+|menu|main theme|sdmusic|olympics sd)\b", re.I)  # numbers and menus say nothing


def soundtrack_pool() -> dict[str, list[tuple[str, Path]]]:
    """(title, path) per source: Warzone 2100's album titles (album.json), Hedgewars' file names."""
    pool: dict[str, list[tuple[str, Path]]] = {"warzone2100": [], "hedgewars": []}
    for album in sorted(WARZONE.glob("*/album.json")):
        for track in json.loads(album.read_text()).get("tracks", []):
            title = str(track.get("title", "")).strip()
            if title and not NOT_TITLES.match(title) and (album.parent / track["filename"]).is_file():
                pool["warzone2100"].append((title, album.parent / track["filename"]))
    for path in sorted(HEDGEWARS.glob("*.ogg")):
        title = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", path.stem).replace("_", " ")
        title = title[:1].upper() + title[1:]
        if not NOT_TITLES.match(title):
            pool["hedgewars"].append((title, path))
    return pool


def music_sets(seed: int, sets: Sequence[int]) -> list[list[tuple[str, Path]]]:
    """Set k: 4 Warzone 2100 and 4 Hedgewars cues, disjoint between sets, by a seeded shuffle."""
    pool = soundtrack_pool()
    shuffled = {src: [items[i] for i in np.random.default_rng([seed, j]).permutation(len(items))] for j, (src, items) in enumerate(sorted(pool.items()))}
    out = []
    for k in sets:
        chosen = []
        for src, items in sorted(shuffled.items()):
            part = items[4 * k : 4 * k + 4]
            if len(part) < 4:
                raise ListenError(f"--sets {k}: only {len(items)} {src} cues, enough for sets 0-{len(items) // 4 - 1}")
            chosen += part
        order = np.random.default_rng([seed, 100 + k]).permutation(8)
        out.append([chosen[i] for i in order])
    return out


def cut(path: Path, out: Path, seconds: float) -> None:
    """The first ``seconds`` of ``path`` as 16-bit FLAC, channels and rate kept."""
    try:
        with sf.SoundFile(str(path)) as f:
            data = f.read(int(seconds * f.samplerate), dtype="float32", always_2d=True)
            rate = f.samplerate
    except (OSError, RuntimeError) as e:
        raise ListenError(f"{path}: cannot decode ({e})") from None
    sf.write(str(out), data, rate, subtype="PCM_16", format="FLAC")


MUSIC_INSTRUCTIONS = """\
You are given text files made by an audio tokenizer from the first minute of eight pieces of
game soundtrack music (cueA ... cueH), and the eight titles of those pieces in shuffled
order. You cannot hear the audio; read each file and answer from its text only. Do not run
code or any analysis tool on the files; read them as text. Match each cue to one title;
every title is used exactly once.
"""


def cmd_music(args) -> int:
    nat = nat_of(args)
    sets = [int(s) for s in args.sets.split(",")]
    out = Path(args.out)
    for k, cues in zip(sets, music_sets(args.seed, sets)):
        folder = out / f"set{k}"
        reader, private = folder / "reader", folder / "private"
        (private / "audio").mkdir(parents=True, exist_ok=True)
        reader.mkdir(parents=True, exist_ok=True)
        audio = [private / "audio" / f"{name}.flac" for name in CUES]
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            list(pool.map(lambda ca: cut(ca[0][1], ca[1], MUSIC_S), zip(cues, audio)))
        write_prompts(nat, audio, CUES, reader, args.workers, glossary_only=True)
        titles = [cues[i][0] for i in np.random.default_rng([args.seed, 200 + k]).permutation(8)]
        lines = ["# Match the cues to their titles", "", MUSIC_INSTRUCTIONS, "Titles:", ""]
        lines += [f"{i}. {t}" for i, t in enumerate(titles, 1)]
        lines += ["", f"Files: {', '.join(f'prompts/{c}.txt' for c in CUES)}.", "",
                  "Reply with JSON only, the title's number for each cue, in this shape:", "", "```json",
                  json.dumps({c: i + 1 for i, c in enumerate(CUES)}), "```", ""]  # fmt: skip
        (reader / "questions.md").write_text("\n".join(lines))
        truth = {"seed": args.seed, "set": k, "titles": titles, "answers": {c: titles.index(t) + 1 for c, (t, _) in zip(CUES, cues)},
                 "sources": {c: str(p) for c, (_, p) in zip(CUES, cues)}}  # fmt: skip
        (private / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
        (private / "run.json").write_text(json.dumps({"nat": nat.describe(), "seed": args.seed, "set": k, "seconds": MUSIC_S}, indent=2) + "\n")
        print(f"music: set {k}: readers get {reader} (questions.md, prompts/cueA..H.txt); truth in {private / 'truth.json'}")
    return 0


def cmd_score_music(args) -> int:
    truth = load_truth(Path(args.dir))
    if "titles" not in truth:
        raise ListenError(f"{args.dir}: not a music set (give a folder `music` wrote, e.g. OUT/set0)")
    scores = {}
    for path in args.answers:
        given = read_answers(Path(path))
        def number(v):
            if isinstance(v, str) and v in truth["titles"]:
                return truth["titles"].index(v) + 1
            try:
                return int(v)
            except (TypeError, ValueError):
                return None
        picks = {c: number(given.get(c)) for c in CUES}
        if len({p for p in picks.values() if p is not None}) < sum(p is not None for p in picks.values()):
            print(f"score-music: {path}: a title is used twice (counted as given)", file=sys.stderr)
        scores[Path(path).stem] = sum(picks[c] == truth["answers"][c] for c in CUES)
    mean = float(np.mean(list(scores.values()))) if scores else 0.0
    if args.json:
        print(json.dumps({"set": truth["set"], "matches": scores, "mean": mean, "chance": 1.0, "of": 8}, indent=2))
    else:
        print("| reader | matches of 8 |\n|---|---|")
        print("\n".join(f"| {n} | {s} |" for n, s in scores.items()) + f"\n| mean | {mean:.2f} |\n| chance | 1 |")
    return 0


# --- the command line ---------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/listen.py", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    def with_nat(q):
        q.add_argument("--python", help="python that runs nat (default: env NAT_LISTEN_PYTHON, else this python)")
        q.add_argument("--checkout", help="checkout put first on PYTHONPATH for nat (default: env NAT_LISTEN_CHECKOUT, else this one)")
        q.add_argument("--workers", type=int, default=2, help="renders and nat runs at a time (default 2)")

    r = sub.add_parser("render", help="render pieces, write prompts, questions and (private) truth")
    r.add_argument("--seed", type=int, default=EVAL_SEED, help=f"{EVAL_SEED}: evaluation (default); {DEV_SEED}: development")
    r.add_argument("--pieces", type=int, default=N_PIECES)
    r.add_argument("--out", required=True)
    r.add_argument("--cache", default=str(CACHE), help="rendered audio by recipe (default ~/.cache/nat-bench-listen)")
    r.add_argument("--no-cache", action="store_true")
    with_nat(r)
    m = sub.add_parser("mech", help="the mechanical reader on DIR's prompts, scored")
    m.add_argument("dir")
    m.add_argument("--json", action="store_true")
    s = sub.add_parser("score", help="score answer files against DIR's truth")
    s.add_argument("dir")
    s.add_argument("answers", nargs="+")
    s.add_argument("--json", action="store_true")
    mu = sub.add_parser("music", help="soundtrack cues' first minute, prompts, titles to match")
    mu.add_argument("--out", required=True)
    mu.add_argument("--sets", default="0,1", help="comma-separated set numbers (default 0,1)")
    mu.add_argument("--seed", type=int, default=MUSIC_SEED)
    with_nat(mu)
    sm = sub.add_parser("score-music", help="matches out of 8 per answer file")
    sm.add_argument("dir")
    sm.add_argument("answers", nargs="+")
    sm.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    handlers = {"render": cmd_render, "mech": cmd_mech, "score": cmd_score, "music": cmd_music, "score-music": cmd_score_music}
    try:
        return handlers[args.command](args)
    except (ListenError, corpus.CorpusError, ValueError) as e:
        print(f"listen: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
