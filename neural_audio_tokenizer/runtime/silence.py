"""The silence floor: frames quieter than a fixed level get the same tokens, whatever the noise.

Below some level a recording holds no music, only what the medium adds: digital zero, the
dither of 16-bit audio (about -98 dBFS RMS), an MP3 decoder's near-silence, tape or room
noise. Tokenized as sound, that noise decides the tokens (a resample round trip or a
different dither flips them), and an LLM reading the stream sees events in a pause. So a
pack frame whose input level is below the pack's *floor* gets the *silence codes* instead
of what its features quantize to: the codes the pack gives digital silence.

- Level: the RMS of the frame's mono input samples at the input rate (the samples
  ``i`` with ``i * frame_rate // sample_rate == k`` belong to frame ``k``), in dBFS
  (a full-scale square wave is 0 dBFS, a full-scale sine -3 dBFS). A frame is silent when
  ``10 * log10(mean(x^2)) < floor_dbfs``. Its samples are set to zero before any encoder
  sees them (:class:`PushGate`), and its codes are the silence codes.
- Floor: the manifest's optional ``silence.floor_dbfs`` (pack format stays version 1);
  packs without it get :data:`DEFAULT_FLOOR_DBFS`; ``"floor_dbfs": null`` turns it off.
- Silence codes: the codes of a middle frame of one second of digital zero, computed
  once per tokenizer by the pack's own encoders (so every pack, built-in or neural, has
  them without storing them).

Neural packs normalize each chunk's input to unit variance (``zero_mean_unit_variance``,
features.normalize_input). A chunk below the floor reaches it as digital zero, which that
normalization leaves at zero; so it is never blown up to full scale. (Its ``+ 1e-7`` under
the square root, from transformers, already caps the gain at 70 dB, i.e. it maps -70 dBFS
RMS to about -3 dB re unit variance; the floor makes sure nothing below it is amplified at all.)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .inputs.audio import from_array
from ..errors import PackError
from .features import EncoderRun, FeaturePipeline
from .records import LEVEL_MIN_DB, level_db

# 20 dB above white noise at -90 dBFS (the loudest "noise of 16-bit audio" the floor must
# swallow) and below the quietest passages of real recordings (pp strings sit near -60).
DEFAULT_FLOOR_DBFS = -70.0
FLOOR_RANGE = (-140.0, 0.0)
SILENCE_PROBE_S = 1.0  # digital zero fed to the encoders for the silence codes
UNSET: Any = object()


def parse_floor(entry: Any = UNSET) -> float | None:
    """The manifest's ``silence`` entry -> floor in dBFS, or None (no floor). Absent: the default."""
    if entry is UNSET:
        return DEFAULT_FLOOR_DBFS
    if not isinstance(entry, dict) or "floor_dbfs" not in entry:
        raise PackError('pack manifest.json silence: expected an object with "floor_dbfs" (a number in dBFS, or null)')
    value = entry["floor_dbfs"]
    if value is None:
        return None
    lo, hi = FLOOR_RANGE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise PackError(f"pack manifest.json silence.floor_dbfs: expected a number in [{lo:g}, {hi:g}] or null, got {value!r}")
    return float(value)


class HitCounter:
    """Drum-like hits per frame: 10 ms slices where the energy between HIT_BAND_HZ jumps by
    HIT_RISE_DB over the quietest of the three slices before it, above HIT_MIN_DB, while that
    band is noise-like (spectral flatness >= HIT_FLATNESS): snare, hi-hat, cymbal and clap
    strokes count; a piano or guitar attack, whose high partials are peaks, does not.

    Each slice's spectrum is of the ~23 ms that end with the slice, so a frame's hits are
    known when its last sample is (no look-ahead)."""

    SLICES = 20  # per frame: 10 ms at 5 frames/s
    REFRACTORY = 5  # slices after a hit that cannot hold another: one stroke rings for ~50 ms
    HIT_BAND_HZ = (5000.0, 11000.0)
    HIT_RISE_DB = 6.0
    HIT_MIN_DB = -70.0
    HIT_FLATNESS = 0.2

    def __init__(self, sample_rate: int) -> None:
        self.window = 1 << max(4, round(math.log2(sample_rate * 0.0232)))  # 1024 at 44.1 kHz
        freqs = np.fft.rfftfreq(self.window, 1.0 / sample_rate)
        self.band = (freqs >= self.HIT_BAND_HZ[0]) & (freqs < self.HIT_BAND_HZ[1])
        self.hears = int(self.band.sum()) >= 2  # a rate too low for the band hears no hits
        self.taper = np.hanning(self.window)
        self._tail = np.zeros(self.window, dtype=np.float64)  # the samples before this frame
        self._history = [-math.inf] * 3  # the three slices before this frame, in dB
        self._since_hit = self.REFRACTORY  # slices since the last hit

    def count(self, x: np.ndarray) -> int:
        if not len(x):
            return 0
        buf = np.concatenate([self._tail, x.astype(np.float64)])
        self._tail = buf[-self.window :]
        if not self.hears:
            return 0
        slices = min(self.SLICES, len(x))
        ends = [self.window + (i + 1) * len(x) // slices for i in range(slices)]
        spectra = np.abs(np.fft.rfft(np.stack([buf[e - self.window : e] for e in ends]) * self.taper, axis=1))[:, self.band] ** 2
        spectra += 1e-20
        energy = 10.0 * np.log10(spectra.sum(axis=1) / self.window)
        flatness = np.exp(np.log(spectra).mean(axis=1)) / spectra.mean(axis=1)
        hits = 0
        for db, flat in zip(energy.tolist(), flatness.tolist()):
            hit = db > self.HIT_MIN_DB and db - min(self._history) >= self.HIT_RISE_DB and flat >= self.HIT_FLATNESS and self._since_hit >= self.REFRACTORY
            hits += hit
            self._since_hit = 0 if hit else self._since_hit + 1
            self._history = self._history[1:] + [db]
        return hits


def floor_power(floor_dbfs: float) -> float:
    """Mean square of a signal at ``floor_dbfs``."""
    return 10.0 ** (floor_dbfs / 10.0)


class LevelMeter:
    """Per pack frame of a mono sample stream: its level, its percussive hits, and whether it
    is below the floor, decided as each frame's last sample arrives.

    A frame's figures come from its own samples in one piece (they are held until the frame
    is whole), so they do not depend on how the samples arrived in blocks: the same samples
    give the same levels from a file, a pipe or the push API."""

    def __init__(self, sample_rate: int, frame_rate: int, floor_dbfs: float | None, count_hits: bool = True) -> None:
        self.sample_rate = sample_rate
        self.frame_rate = frame_rate
        self.power = None if floor_dbfs is None else floor_power(floor_dbfs)
        self.seen = 0  # samples pushed so far
        self.silent: list[bool] = []  # per decided frame, in order (a few values per 0.2 s: tiny)
        self.levels: list[int] = []  # dBFS, whole numbers
        self.hits: list[int] = []
        self._held: list[np.ndarray] = []  # the undecided frame's samples so far
        self._hits = HitCounter(sample_rate) if count_hits else None  # feature collection needs no hits

    def frame_of(self, sample: int) -> int:
        return sample * self.frame_rate // self.sample_rate

    def start(self, frame: int) -> int:
        """First sample of ``frame``: the smallest i with frame_of(i) == frame."""
        return -(-frame * self.sample_rate // self.frame_rate)

    def push(self, block: np.ndarray) -> None:
        """Meter ``block``; decide every frame it completes."""
        pos = 0
        while pos < len(block):
            need = self.start(len(self.silent) + 1) - self.seen  # samples the undecided frame lacks
            take = min(need, len(block) - pos)
            self._held.append(block[pos : pos + take])
            self.seen += take
            pos += take
            if take == need:
                self._decide()

    def finish(self) -> None:
        """The input ended: decide the partial last frame, if any."""
        if self._held:
            self._decide()

    def _decide(self) -> None:
        x = self._held[0] if len(self._held) == 1 else np.concatenate(self._held)
        self._held = []
        power = float(np.square(x, dtype=np.float64).mean())
        silent = self.power is not None and power < self.power
        hits = self._hits.count(x) if self._hits is not None else 0  # counted even in silence: the next frame's attacks are measured against it
        self.silent.append(silent)
        self.levels.append(LEVEL_MIN_DB if silent else level_db(power))  # below the floor all is silence, as the tokens say
        self.hits.append(0 if silent else hits)

    def gate(self, block: np.ndarray, first: int) -> np.ndarray:
        """``block`` (starting at sample ``first``, all its frames decided) with silent frames zeroed."""
        out = block
        for k in range(self.frame_of(first), self.frame_of(first + len(block) - 1) + 1):
            if self.silent[k]:
                if out is block:
                    out = block.copy()
                out[max(self.start(k), first) - first : self.start(k + 1) - first] = 0.0
        return out


class PushGate:
    """Blocks pushed as they come, handed on once every frame they touch is decided, with
    the silent frames' samples set to zero. A file's blocks keep their sizes (soxr then
    streams the very blocks it gets without a floor); with ``split`` (the push API, whose
    blocks may be long) a block's decided frames go on at once and only the rest waits."""

    def __init__(self, meter: LevelMeter, split: bool = False) -> None:
        self.meter = meter
        self.split = split
        self._pending: deque[np.ndarray] = deque()
        self._first = 0  # sample index of _pending[0]

    def push(self, block: np.ndarray) -> list[np.ndarray]:
        """The blocks now decided, gated, in order (often none)."""
        self.meter.push(block)
        self._pending.append(block)
        out = []
        while self._pending and self.meter.frame_of(self._first + len(self._pending[0]) - 1) < len(self.meter.silent):
            out.append(self._release())
        if self.split and self._pending:
            decided = self.meter.start(len(self.meter.silent)) - self._first  # samples of the head block already decided
            if decided > 0:
                head = self._pending.popleft()
                self._pending.appendleft(head[decided:])
                self._pending.appendleft(head[:decided])
                out.append(self._release())
        return out

    def finish(self) -> list[np.ndarray]:
        """The input ended: every block still held, gated."""
        self.meter.finish()
        return [self._release() for _ in range(len(self._pending))]

    def _release(self) -> np.ndarray:
        block = self._pending.popleft()
        gated = self.meter.gate(block, self._first) if len(block) and self.meter.power is not None else block
        self._first += len(block)
        return gated

    def silent(self, first_frame: int, n: int) -> np.ndarray:
        """[n] bool: which of frames ``first_frame ..`` are below the floor (all decided by now)."""
        decided = self.meter.silent[first_frame : first_frame + n]
        return np.array(decided + [self.meter.power is not None] * (n - len(decided)), dtype=bool)  # a frame with no samples is silent

    def measured(self, first_frame: int, n: int) -> tuple[list[int], list[int]]:
        """(levels, hits) of frames ``first_frame ..``: what the frame lines carry."""
        end = first_frame + n
        levels, hits = self.meter.levels[first_frame:end], self.meter.hits[first_frame:end]
        return levels + [LEVEL_MIN_DB] * (n - len(levels)), hits + [0] * (n - len(hits))


@dataclass
class MeteredSource:
    """An AudioSource look-alike for code that collects features rather than tokens (the
    export side, benches): the source's blocks through a PushGate, as the engine gates them,
    and which frames were below the floor."""

    source: Any  # an AudioSource
    gate: PushGate

    @property
    def info(self) -> Any:
        return self.source.info

    def blocks(self) -> Iterator[np.ndarray]:
        for block in self.source.blocks():
            yield from self.gate.push(block)
        yield from self.gate.finish()

    def silent(self, first_frame: int, n: int) -> np.ndarray:
        """[n] bool: which of frames ``first_frame ..`` are below the floor."""
        return self.gate.silent(first_frame, n)


# (stream, pooled features [frames, dim]) -> codes [frames, levels]
Quantize = Callable[[str, np.ndarray], np.ndarray]


@dataclass
class SilenceGate:
    """The pack's floor and the codes frames below it get."""

    floor_dbfs: float | None
    frame_rate: int
    codes: Mapping[str, np.ndarray] = field(default_factory=dict)  # stream -> [levels] int

    @classmethod
    def for_pipeline(cls, floor_dbfs: float | None, pipeline: FeaturePipeline, run: EncoderRun, quantize: Quantize, sample_rate: int) -> SilenceGate:
        """The gate for a pack: its silence codes come from its own encoders on digital zero
        (``pipeline``/``run`` as the tokenizer uses them; ``sample_rate``: any encoder's)."""
        if floor_dbfs is None:
            return cls(None, pipeline.frame_rate)
        zero = from_array(np.zeros(round(SILENCE_PROBE_S * sample_rate), dtype=np.float32), sample_rate, "silence")
        middle = round(SILENCE_PROBE_S * pipeline.frame_rate) // 2  # away from both edges of the probe
        for chunk in pipeline.iter_chunks(zero, run):
            if chunk.first_frame <= middle < chunk.first_frame + chunk.n_frames:
                i = middle - chunk.first_frame
                codes = {name: np.asarray(quantize(name, feats[i : i + 1]))[0].copy() for name, feats in chunk.streams.items()}
                return cls(floor_dbfs, pipeline.frame_rate, codes)
        raise AssertionError("the silence probe produced no middle frame")

    def meter(self, source: Any) -> Any:
        """``source`` (an AudioSource) gated as the engine gates it, for feature collection;
        as is without a floor."""
        if self.floor_dbfs is None:
            return source
        return MeteredSource(source, PushGate(LevelMeter(source.info.sample_rate, self.frame_rate, self.floor_dbfs, count_hits=False)))

    def push_gate(self, sample_rate: int, split: bool = False) -> PushGate:
        """The meter and gate for one input's mono samples at ``sample_rate`` (``split``:
        release a long block's decided frames at once, for pushed audio); without a floor it
        only meters."""
        return PushGate(LevelMeter(sample_rate, self.frame_rate, self.floor_dbfs), split)

    def keep_apart(self, silent: np.ndarray, codes: dict[str, np.ndarray], s_book: np.ndarray, requantize: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> dict[str, np.ndarray]:
        """``codes`` of one chunk with no sounding frame on the S0 code of digital silence:
        a flat chroma (noise, a dense orchestra, drums) lands there, and a reader must tell a
        pause from sound by S0 alone. Such a frame takes the silence code's *twin*, its first
        copy in the padded level-0 codebook ``s_book`` (the same vector, so the deeper levels
        and the tokens' stability are what they were); a codebook without copies has no twin,
        and the frame gets ``requantize(rows, excluded)``: its S codes with the silence code
        (and any copy) left out."""
        if "S" not in self.codes:
            return codes
        silence = int(self.codes["S"][0])
        copies = np.flatnonzero((s_book == s_book[silence]).all(axis=1))
        clash = ~silent & np.isin(codes["S"][:, 0], copies)
        if not clash.any():
            return codes
        s = np.array(codes["S"], copy=True)
        twins = copies[copies != silence]
        if len(twins):
            s[clash, 0] = twins[0]
        else:
            s[clash] = requantize(clash, copies)
        return {**codes, "S": s}

    def apply(self, silent: np.ndarray, codes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``codes`` of one chunk ([frames, levels] per stream) with the frames ``silent``
        ([frames] bool) marks replaced by the silence codes."""
        if not silent.any():
            return codes
        out = {}
        for name, c in codes.items():
            c = np.array(c, copy=True)
            c[silent] = self.codes[name]
            out[name] = c
        return out
