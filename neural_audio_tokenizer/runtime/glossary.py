"""A pack's glossary: what the fit-corpus frames behind each level-0 code measured.

A glossary is a pack file (``glossary.json``, listed and hashed in the manifest; written by
``nat-export glossary``, export/glossary.py). For every level-0 code of S and A it holds
plain signal measurements of the corpus frames the pack's own tokenizer gave that code:
for S the pitch-class profile named as pitch classes and a chord (a single note, a fifth, a
major or minor triad), its texture and loudness; for A brightness, texture, attack and
register, each a word of a fixed vocabulary (docs/ndjson.md, "Glossary") beside the
measured value, the frames' level, and (when the corpus said what played) the share of
each General MIDI family and the drum kit in them. It describes the corpus, not the
sound being tokenized now: :data:`NOTE` says so wherever a glossary is shown.

A glossary is untrusted input like the rest of a pack, and its words end up in LLM prompts,
so :func:`parse` accepts only the fixed vocabulary, note names, chord names and finite
numbers: no free text from a pack reaches a prompt. This module also puts a glossary where
the LLM reads: the ``glossary`` header object of the codes a stream uses
(:func:`annotate`) and the compact legend lines (:func:`legend_lines`).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import PackError
from .records import Frame
from .header import Header
from .stream import TokenStream

FORMAT = "nat-glossary"
FORMAT_VERSION = 2  # 2: A entries name source families and carry no loudness word; more chord names
READS = (1, 2)  # a version-1 glossary (issue #15) still loads; its A loudness words are not shown
MAX_BYTES = 8 << 20  # 2 streams x 65536 codes of ~60 bytes would not fit; real packs need ~0.1 MiB
FILE = "glossary.json"

NOTE = (
    "The glossary says what the pack's fit-corpus frames behind each level-0 code measured "
    "when the pack was made, not what is playing now."
)

LEGEND_INTRO = (
    "Glossary of level-0 codes: what the pack's fit-corpus frames behind each code measured "
    "when the pack was made, not what is playing now."
)

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
QUALITIES = ("major", "minor")
# Chord shapes the glossary names, as semitones above the root; the simpler shape first (ties).
# No sevenths or diminished triads: without a held-out measure of naming them, no claim.
SHAPES = {"single note": (0,), "fifth": (0, 7), "major": (0, 4, 7), "minor": (0, 3, 7)}
CLUSTER = "cluster"  # several strong pitch classes a semitone or tone apart, no chord


def chord_name(root: int, shape: str) -> str:
    """``single note C``, ``fifth D-A``, ``C major``, ``A minor 7th``, ..."""
    if shape == "single note":
        return f"single note {PITCH_CLASSES[root]}"
    if shape == "fifth":
        return f"fifth {PITCH_CLASSES[root]}-{PITCH_CLASSES[(root + 7) % 12]}"
    return f"{PITCH_CLASSES[root]} {shape}"


CHORDS = tuple(chord_name(root, shape) for shape in SHAPES for root in range(12)) + (CLUSTER,)

# What sounded in a code's corpus frames: General MIDI's 16 instrument families (program // 8),
# the percussion kit, and the kinds of synthesized sound in the built-in corpus (export/corpus.py).
GM_FAMILIES = ("piano", "chromatic percussion", "organ", "guitar", "bass", "strings", "ensemble", "brass",
               "reed", "pipe", "synth lead", "synth pad", "synth effects", "ethnic", "percussive", "sound effects")
DRUM_KIT = "drum kit"
SOURCES = (*GM_FAMILIES, DRUM_KIT, "clicks", "drum machine", "noise", "sine sweep", "synthesized tones")
SHOWN_SHARE = 0.10  # the legend names a family with at least this share of a code's frames
SHOWN_FAMILIES = 3

# The fixed vocabulary: per descriptor, (word, lower bound of its bin) from the lowest bin up.
# A measured value takes the word of the last bin whose bound it reaches (docs/ndjson.md).
LOUDNESS = (("silent", -math.inf), ("very quiet", -60.0), ("quiet", -45.0), ("moderate", -30.0), ("loud", -15.0))  # frame RMS, dBFS
BRIGHTNESS = (("dark", 0.0), ("mellow", 600.0), ("bright", 1500.0), ("very bright", 3500.0))  # spectral centroid, Hz
TEXTURE = (("tonal", 0.0), ("mixed", 0.05), ("noisy", 0.3))  # spectral flatness 60 Hz-8 kHz, 0..1
ATTACK = (("steady", -math.inf), ("percussive", 6.0))  # largest level rise in 11.6 ms, dB
REGISTER = (("low", 0.0), ("mid", 250.0), ("high", 1000.0))  # strongest spectral peak 30-5000 Hz, Hz
SILENT_DB = LOUDNESS[1][1]  # a code whose frames' median level is below this is silence
DBFS_RANGE = (-120.0, 10.0)

# A-entry fields: word field -> (bins, measured-value field, value range). No loudness word:
# A is built to ignore gain, so its codes cannot say how loud a frame is (issue #23).
A_FIELDS = {
    "brightness": (BRIGHTNESS, "centroid_hz", (0.0, 400000.0)),
    "texture": (TEXTURE, "flatness", (0.0, 1.0)),
    "attack": (ATTACK, "onset_db", (0.0, 200.0)),
    "register": (REGISTER, "peak_hz", (0.0, 400000.0)),
}
LOUDNESS_FIELD = {"loudness": (LOUDNESS, "dbfs", DBFS_RANGE)}
# S entries: what harmony the frames had, and the texture (how tonal they were).
S_FIELDS = {"texture": A_FIELDS["texture"], **LOUDNESS_FIELD}
_LEVEL = re.compile(r"^([SA])([0-9]{1,2})$")
_CODE = re.compile(r"^(0|[1-9][0-9]{0,5})$")


def word(bins: tuple[tuple[str, float], ...], value: float | None) -> str | None:
    """The vocabulary word of a measured ``value`` (None stays None: nothing was measured)."""
    if value is None:
        return None
    out = bins[0][0]
    for name, low in bins:
        if value >= low:
            out = name
    return out


@dataclass(frozen=True)
class Glossary:
    """Entries by token name (``S0``, ``A0``) and code; entries are the validated JSON objects."""

    codes: Mapping[str, Mapping[int, dict]]

    def for_frames(self, frames: Iterable[Frame] | None) -> dict:
        """The header's ``glossary`` object: :data:`NOTE` and the entries of the codes that
        occur in ``frames`` (None: every entry), keys as strings in code order."""
        used = None if frames is None else used_codes(frames, self.codes)
        out: dict[str, Any] = {"note": NOTE}
        for name, entries in self.codes.items():
            present = sorted(entries if used is None else (c for c in used.get(name, ()) if c in entries))
            if present:
                out[name] = {str(c): entries[c] for c in present}
        return out


def used_codes(frames: Iterable[Frame], names: Iterable[str]) -> dict[str, Counter]:
    """How often each code of the token ``names`` (``S0``, ``A1``, ...) occurs in ``frames``."""
    picks = [(name, name[0], int(name[1:])) for name in names]
    counts: dict[str, Counter] = {name: Counter() for name, _, _ in picks}
    for frame in frames:
        for name, stream, level in picks:
            codes = frame.S if stream == "S" else frame.A
            if level < len(codes):
                counts[name][codes[level]] += 1
    return counts


def annotate(stream: TokenStream, glossary: Glossary) -> TokenStream:
    """``stream`` with a ``glossary`` header object.

    The header is written before the frames, and which codes occur is known only after the
    last one. For a file the frames are computed here and the object holds the codes it
    uses, so the stream starts writing when its input is done. A streamed input (a pipe, a
    microphone: its header has no sha256 yet) may never end, so it gets every entry of the
    glossary at once and its frames stream as they come (docs/ndjson.md, "Glossary")."""
    if stream.header.source.sha256 is None:
        return stream.with_frames(stream.frames, stream.header.with_annotation("glossary", glossary.for_frames(None)))
    frames = list(stream.frames)
    header = stream.header.with_annotation("glossary", glossary.for_frames(frames))
    return TokenStream.complete(header, frames, stream.stats, stream.error)


# --- the legend an LLM reads -----------------------------------------------------------------


def entry_text(name: str, code: int | str, entry: Mapping[str, Any]) -> str:
    """One legend line: ``S0 24 = D major (D F# A), tonal``, ``S0 9 = fifth D-A, tonal`` or
    ``A0 14 = piano 62 %, bass 20 %, no drums; dark, tonal, steady, low register``."""
    if entry.get("loudness") == "silent" or (name.startswith("A") and (entry.get("dbfs") is None or entry["dbfs"] < SILENT_DB)):
        return f"{name} {code} = silence"
    if name.startswith("S"):
        notes = " ".join(entry.get("pitch_classes") or ())
        chord = entry.get("chord")
        if chord is None:
            words = ["no clear chord"]  # its strongest pitch classes would read as a chord that is not there
        elif chord.startswith(("single note", "fifth")):
            words = [chord]  # the name says its notes
        else:
            words = [f"{chord} ({notes})" if notes else chord]
        words += [entry[k] for k in ("texture",) if entry.get(k)]
        return f"{name} {code} = " + ", ".join(words)
    words = [entry[k] for k in ("brightness", "texture", "attack") if entry.get(k)]
    if entry.get("register"):
        words.append(f"{entry['register']} register")
    families = family_words(entry.get("families"))
    return f"{name} {code} = " + (f"{families}; " if families else "") + ", ".join(words)


def shown_families(families: Mapping[str, float]) -> list[str]:
    """The families a legend line names, largest first: at least SHOWN_SHARE, at most
    SHOWN_FAMILIES, at least the largest."""
    ranked = sorted(families, key=lambda w: (-families[w], SOURCES.index(w)))
    return [w for w in ranked[:SHOWN_FAMILIES] if families[w] >= SHOWN_SHARE] or ranked[:1]


def family_words(families: Mapping[str, float] | None) -> str:
    """``piano 62 %, organ 20 %, drum kit 5 %``: the families with at least SHOWN_SHARE (at
    most SHOWN_FAMILIES, at least the largest), then the drum kit's share or ``no drums``, so
    percussion is visible on every code; "" when the glossary names no families."""
    if not families:
        return ""
    shown = shown_families(families)
    words = [f"{w} {round(100 * families[w])} %" for w in shown]
    if DRUM_KIT not in shown:
        drums = round(100 * families.get(DRUM_KIT, 0.0))
        words.append(f"{DRUM_KIT} {drums} %" if drums >= 1 else "no drums")
    return ", ".join(words)


def ranked_entries(header_glossary: Mapping[str, Any], frames: Iterable[Frame] | None) -> list[str]:
    """Legend lines for a header ``glossary`` object, the most frequent codes of ``frames``
    first (None, for a stream still coming: every entry, in code order; S and A alternating,
    so a shortened legend keeps both streams)."""
    names = [n for n in header_glossary if _LEVEL.match(n)]
    counts = None if frames is None else used_codes(frames, names)
    per_name = []
    for name in names:
        entries = header_glossary[name]
        if counts is None:
            order = sorted(int(c) for c in entries)
        else:
            order = sorted((c for c in counts[name] if str(c) in entries), key=lambda c: (-counts[name][c], c))
        per_name.append([entry_text(name, c, entries[str(c)]) for c in order])
    out = []
    for k in range(max((len(p) for p in per_name), default=0)):
        out += [p[k] for p in per_name if k < len(p)]
    return out


def legend_lines(entries: list[str]) -> list[str]:
    """The legend: one sentence saying what a glossary is, then one line per entry."""
    return [LEGEND_INTRO] + entries


# --- validation (untrusted input) --------------------------------------------------------------


def _fail(where: str, why: str) -> PackError:
    return PackError(f"pack {where}: {why}")


def _number(value: Any, where: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not lo <= value <= hi:
        raise _fail(where, f"expected a number in [{lo:g}, {hi:g}], got {value!r}")
    return float(value)


def _entry(name: str, entry: Any, where: str) -> dict:
    if not isinstance(entry, dict):
        raise _fail(where, "expected an object")
    fields = S_FIELDS if name[0] == "S" else A_FIELDS
    optional: dict = {} if name[0] == "S" else {**LOUDNESS_FIELD}  # an A loudness word: version 1 only
    allowed = {"frames"} | set(fields) | {v for _, v, _ in fields.values()} | set(optional)
    if name[0] == "S":
        allowed |= {"pitch_classes", "chord", "match"}
    else:
        allowed |= {"dbfs", "families"}
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise _fail(where, f"unknown field {unknown[0]!r}")
    frames = entry.get("frames")
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise _fail(where, f"frames must be a positive integer, got {frames!r}")
    checked = {**fields, **{k: v for k, v in optional.items() if k in entry}}
    for key, (bins, value_key, (lo, hi)) in checked.items():
        if key not in entry or value_key not in entry:
            raise _fail(where, f"needs {key!r} and {value_key!r}")
        w, v = entry[key], entry[value_key]
        if (w is None) != (v is None):
            raise _fail(where, f"{key!r} and {value_key!r} must both be null or both set")
        if w is not None:
            _number(v, f"{where}.{value_key}", lo, hi)
            if w not in [b[0] for b in bins]:
                raise _fail(where, f"{key} {w!r} is not in the vocabulary")
    if name[0] == "S":
        if not {"pitch_classes", "chord", "match"} <= set(entry):
            raise _fail(where, "needs 'pitch_classes', 'chord' and 'match'")
        pcs = entry.get("pitch_classes")
        if not isinstance(pcs, list) or len(pcs) > 12 or len(set(map(str, pcs))) != len(pcs) or not all(p in PITCH_CLASSES for p in pcs):
            raise _fail(where, "pitch_classes must be a list of distinct note names (C, C#, ..., B)")
        chord = entry.get("chord")
        if chord is not None and chord not in CHORDS:
            raise _fail(where, f"chord {chord!r} is not a chord name of the vocabulary")
        _number(entry["match"], f"{where}.match", 0.0, 1.0)
        return entry
    if "dbfs" not in entry:
        raise _fail(where, "needs 'dbfs'")
    _number(entry["dbfs"], f"{where}.dbfs", *DBFS_RANGE)
    families = entry.get("families", {})
    if not isinstance(families, dict) or not all(isinstance(w, str) and w in SOURCES for w in families):
        raise _fail(where, "families must be an object of family names (piano, organ, ..., drum kit)")
    for w, share in families.items():
        _number(share, f"{where}.families.{w}", 0.0, 1.0)
    if sum(families.values()) > 1.05:  # shares are rounded to the percent
        raise _fail(where, "family shares add up to more than 1")
    return entry


def parse_codes(codes: Any, streams: Mapping[str, tuple[int, int]], where: str) -> dict[str, dict[int, dict]]:
    """Validate ``{"S0": {"24": {...}}, ...}`` against ``streams`` (name -> (levels, codebook
    size)); the entries by token name and integer code. Raises PackError."""
    if not isinstance(codes, dict):
        raise _fail(where, "codes must be an object")
    out: dict[str, dict[int, dict]] = {}
    for name, entries in codes.items():
        m = _LEVEL.match(str(name))
        if not m or m.group(1) not in streams or int(m.group(2)) >= streams[m.group(1)][0]:
            raise _fail(where, f"{name!r} is not a token of this pack")
        if not isinstance(entries, dict):
            raise _fail(f"{where} {name}", "expected an object of codes")
        size = streams[m.group(1)][1]
        level: dict[int, dict] = {}
        for code, entry in entries.items():
            if not _CODE.match(str(code)) or int(code) >= size:
                raise _fail(f"{where} {name}", f"{code!r} is not a code in [0, {size})")
            level[int(code)] = _entry(name, entry, f"{where} {name}.{code}")
        out[name] = level
    return out


def parse(data: bytes, streams: Mapping[str, tuple[int, int]], codebooks_sha256: Mapping[str, str], where: str = FILE) -> Glossary:
    """A pack's glossary file, verified: JSON shape, vocabulary, and that it was made for
    these codebooks (``codebooks_sha256``: stream -> the manifest's codebook hash)."""
    if len(data) > MAX_BYTES:
        raise _fail(where, f"larger than {MAX_BYTES >> 20} MiB; refused")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise _fail(where, f"not valid JSON ({' '.join(str(exc).split()) or type(exc).__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _fail(where, f"not a {FORMAT} file")
    if doc.get("format_version") not in READS or isinstance(doc.get("format_version"), bool):
        raise _fail(where, f"format_version {doc.get('format_version')!r} is not supported (this NAT reads {list(READS)})")
    made_for = doc.get("codebooks_sha256")
    if not isinstance(made_for, dict) or any(made_for.get(s) != h for s, h in codebooks_sha256.items()):
        raise _fail(where, "was made for other codebooks (codebooks_sha256 differs from the manifest's)")
    return Glossary(parse_codes(doc.get("codes"), streams, where))


def from_header(header: Header, where: str) -> Glossary:
    """The glossary a token file's header carries (validated like a pack's)."""
    try:
        streams = {name: (int(spec.levels), int(spec.codebook_size)) for name, spec in header.streams.items()}
        codes = {k: v for k, v in dict(header.glossary or {}).items() if k != "note"}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _fail(where, f"malformed header ({type(exc).__name__}: {exc})") from None
    return Glossary(parse_codes(codes, streams, where))
