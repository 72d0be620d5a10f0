"""The everyday changes a token stream should survive, one implementation each.

Gain, a resample round trip (rate -> rate/2 -> rate, soxr HQ), mono mixdown, the left
channel alone, MP3 and OGG Vorbis round trips through soundfile, a 10 ms shift, seeded
white noise at a given SNR, and a pad of 16-bit dither against a pad of digital zero. The
rendered set (evaluation/rendered.py) and the folder of music (evaluation/music.py) each
pick and name the rows they report from these (:class:`Perturbation`), and the built-in
recipe's codec-noise weights (export/codec_noise.py) measure the music table's codecs.

libsndfile 1.2's Vorbis writer crashed (segmentation fault) when 90 s of stereo was written
in one call, so codec round trips write in blocks of :data:`CODEC_BLOCK_S` by default. The
rendered set's clips (10 s at most) are written in one call (``block_s=None``), as their
figures were measured: Vorbis output depends on how the samples are split into calls.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

CODEC_BLOCK_S = 1.0  # seconds per soundfile write call in codec round trips (see the module docstring)
PAD_S = 2.0  # silence pad before and after the audio for the dither-pad change

# (audio [n, channels] float32, rate, clip number) -> (audio, rate, facts such as {"kbps": ...})
Change = Callable[[np.ndarray, int, int], tuple[np.ndarray, int, dict]]


@dataclass(frozen=True)
class Perturbation:
    how: str
    change: Change
    reference: Change | None = None  # what the change is compared with (None: the audio as given)


# --- the changes on samples ------------------------------------------------------------------


def gain(x: np.ndarray, db: float) -> np.ndarray:
    """Samples x 10^(db/20), in float32 (peaks above full scale are kept, not clipped)."""
    return x * np.float32(10 ** (db / 20))


def resample_round_trip(x: np.ndarray, rate: int) -> np.ndarray:
    down = soxr.resample(x, rate, rate // 2, quality="HQ")
    return soxr.resample(down, rate // 2, rate, quality="HQ").astype(np.float32)


def mono(x: np.ndarray) -> np.ndarray:
    """(L+R)/2 as a mono signal."""
    return x.mean(axis=1, dtype=np.float64).astype(np.float32)


def left(x: np.ndarray) -> np.ndarray:
    """The left channel alone, as a mono recording."""
    return np.ascontiguousarray(x[:, 0])


def shift_10ms(x: np.ndarray, rate: int) -> np.ndarray:
    """10 ms of silence prepended (rate // 100 samples)."""
    return np.concatenate([np.zeros((rate // 100, x.shape[1]), np.float32), x])


def codec_round_trip(x: np.ndarray, rate: int, fmt: str, subtype: str, block_s: float | None = CODEC_BLOCK_S, **options) -> tuple[np.ndarray, float]:
    """Through an in-memory file, written in ``block_s`` blocks (None: one call): (decoded, kbit/s)."""
    buf = io.BytesIO()
    block = max(1, len(x) if block_s is None else round(block_s * rate))
    with sf.SoundFile(buf, "w", rate, x.shape[1], format=fmt, subtype=subtype, **options) as f:
        for i in range(0, len(x), block):
            f.write(x[i : i + block])
    kbps = len(buf.getvalue()) * 8 / max(1e-9, len(x) / rate) / 1000
    buf.seek(0)
    y, got = sf.read(buf, dtype="float32", always_2d=True)
    if got != rate:
        raise AssertionError(f"{fmt} decoded at {got} Hz, written at {rate}")
    return y, kbps


def mp3(x: np.ndarray, rate: int, block_s: float | None = CODEC_BLOCK_S) -> tuple[np.ndarray, float]:
    """soundfile MP3 (LAME) CBR, compression_level 0.65 (about 128 kbit/s), and back."""
    return codec_round_trip(x, rate, "MP3", "MPEG_LAYER_III", block_s, bitrate_mode="CONSTANT", compression_level=0.65)


def ogg(x: np.ndarray, rate: int, block_s: float | None = CODEC_BLOCK_S) -> tuple[np.ndarray, float]:
    """soundfile OGG Vorbis, compression_level 0.6 (about 100 kbit/s), and back."""
    return codec_round_trip(x, rate, "OGG", "VORBIS", block_s, compression_level=0.6)


def add_noise(x: np.ndarray, snr_db: float, seed: Sequence[int]) -> np.ndarray:
    """Seeded white noise ``snr_db`` under the mean power of the mono mixdown, the same on
    every channel (so the mixdown the runtime tokenizes has exactly that SNR)."""
    mix = x.astype(np.float64).mean(axis=1)
    power = float(np.mean(mix**2))
    noise = np.random.default_rng(list(seed)).standard_normal(len(x)) * np.sqrt(power / 10 ** (snr_db / 10))
    return (x + noise[:, None]).astype(np.float32)


def dither(n: int, channels: int, seed: Sequence[int]) -> np.ndarray:
    """16-bit TPDF dither (+-1 LSB, about -98 dBFS RMS), independent per channel."""
    rng = np.random.default_rng(list(seed))
    return ((rng.random((n, channels)) - rng.random((n, channels))) / 32768).astype(np.float32)


def pad(x: np.ndarray, rate: int, fill: Callable[[int, int], np.ndarray]) -> np.ndarray:
    """``fill(n, 0)`` before and ``fill(n, 1)`` after ``x``, n = PAD_S seconds."""
    n = round(PAD_S * rate)
    return np.concatenate([fill(n, 0), x, fill(n, 1)])


# --- the same, as table rows (Change functions) ----------------------------------------------


def gain_change(db: float) -> Change:
    return lambda x, r, i: (gain(x, db), r, {})


def resample_change(x: np.ndarray, rate: int, i: int) -> tuple[np.ndarray, int, dict]:
    return resample_round_trip(x, rate), rate, {}


def mono_change(x: np.ndarray, rate: int, i: int) -> tuple[np.ndarray, int, dict]:
    return mono(x), rate, {}


def left_change(x: np.ndarray, rate: int, i: int) -> tuple[np.ndarray, int, dict]:
    return left(x), rate, {}


def shift_change(x: np.ndarray, rate: int, i: int) -> tuple[np.ndarray, int, dict]:
    return shift_10ms(x, rate), rate, {}


def codec_change(codec: Callable[..., tuple[np.ndarray, float]], block_s: float | None = CODEC_BLOCK_S) -> Change:
    """``mp3`` or ``ogg`` as a row; the measured bit rate goes into the facts."""

    def change(x: np.ndarray, rate: int, i: int) -> tuple[np.ndarray, int, dict]:
        y, kbps = codec(x, rate, block_s)
        return y, rate, {"kbps": kbps}

    return change


def noise_change(snr_db: float, seed: Sequence[int]) -> Change:
    """White noise seeded by ``seed`` + the clip number."""
    return lambda x, r, i: (add_noise(x, snr_db, [*seed, i]), r, {})


def dither_pad(seed: Sequence[int]) -> tuple[Change, Change]:
    """(dither pads, zero pads): clip i's pads are seeded ``seed`` + 2i and ``seed`` + 2i+1."""
    padded = lambda x, r, i: (pad(x, r, lambda n, end: dither(n, x.shape[1], [*seed, 2 * i + end])), r, {})  # noqa: E731
    zeros = lambda x, r, i: (pad(x, r, lambda n, end: np.zeros((n, x.shape[1]), np.float32)), r, {})  # noqa: E731
    return padded, zeros
