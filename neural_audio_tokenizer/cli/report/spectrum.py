"""A log-mel spectrogram and a waveform envelope, computed with numpy while audio streams by.

Pictures (``--all-outputs``) need the audio that was tokenized, but holding a whole long
file in memory is what NAT avoids, so :class:`Analyzer` sees each decoded block once (it is
attached to the AudioSource) and keeps only mel frames and a min/max envelope: about 1 KB
per 50 ms, not the samples. Audio is first resampled (soxr) to the analysis rate, 22,050 Hz
unless ``--resample HZ`` says otherwise (never above the source rate by default).

Frames are centred (``n_fft/2`` zeros before the first), so mel frame *j* is centred on
``j * hop / rate`` seconds and lines up with the token grid on a shared time axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import soxr

DEFAULT_RATE = 22050
N_MELS = 64
TOP_DB = 80.0


def mel_filterbank(rate: int, n_fft: int, n_mels: int = N_MELS, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """Triangular filters on the HTK mel scale: [n_mels, n_fft // 2 + 1]."""
    fmax = rate / 2 if fmax is None else fmax
    mel = np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2)
    edges = mel_to_hz(mel)
    freqs = np.linspace(0, rate / 2, n_fft // 2 + 1)
    bank = np.zeros((n_mels, len(freqs)))
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        rising = (freqs - lo) / max(mid - lo, 1e-9)
        falling = (hi - freqs) / max(hi - mid, 1e-9)
        bank[m] = np.maximum(0, np.minimum(rising, falling))
    return bank


def hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


@dataclass
class Analysis:
    rate: int
    hop: int
    mel_db: np.ndarray  # [n_mels, frames], dB relative to the loudest bin, floored at -TOP_DB
    env_min: np.ndarray  # [blocks] min sample per hop
    env_max: np.ndarray
    duration_s: float
    fmax: float

    @property
    def frame_s(self) -> float:
        return self.hop / self.rate


class Analyzer:
    """Feed mono blocks at ``source_rate`` with :meth:`push`; :meth:`finish` returns the Analysis."""

    def __init__(self, source_rate: int, rate: int | None = None) -> None:
        self.rate = int(rate or min(source_rate, DEFAULT_RATE))
        self.n_fft = 1 << max(8, int(round(np.log2(self.rate * 0.093))))  # ~93 ms window
        self.hop = self.n_fft // 4
        self.window = np.hanning(self.n_fft + 1)[:-1]
        self.bank = mel_filterbank(self.rate, self.n_fft)
        self.resampler = None if self.rate == source_rate else soxr.ResampleStream(source_rate, self.rate, 1, dtype="float32", quality="HQ")
        self._buf = np.zeros(self.n_fft // 2, dtype=np.float32)  # centring pad
        self._env = np.zeros(0, dtype=np.float32)
        self._mel: list[np.ndarray] = []
        self._mins: list[np.ndarray] = []
        self._maxs: list[np.ndarray] = []
        self.samples = 0

    def push(self, block: np.ndarray) -> None:
        block = np.nan_to_num(np.asarray(block, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        if self.resampler is not None:
            block = self.resampler.resample_chunk(block)
        self.samples += len(block)
        self._stft(block)
        self._envelope(block)

    def _stft(self, x: np.ndarray) -> None:
        self._buf = np.concatenate([self._buf, x])
        if len(self._buf) < self.n_fft:
            return
        n = (len(self._buf) - self.n_fft) // self.hop + 1
        frames = np.lib.stride_tricks.sliding_window_view(self._buf, self.n_fft)[:: self.hop][:n]
        power = np.abs(np.fft.rfft(frames * self.window, axis=1)) ** 2
        self._mel.append(self.bank @ power.T)
        self._buf = self._buf[n * self.hop :]

    def _envelope(self, x: np.ndarray) -> None:
        self._env = np.concatenate([self._env, x])
        m = len(self._env) // self.hop
        if m:
            blocks = self._env[: m * self.hop].reshape(m, self.hop)
            self._mins.append(blocks.min(axis=1))
            self._maxs.append(blocks.max(axis=1))
            self._env = self._env[m * self.hop :]

    def finish(self) -> Analysis:
        if self.resampler is not None:
            tail = self.resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
            self.samples += len(tail)
            self._stft(tail)
            self._envelope(tail)
        if len(self._env):
            self._mins.append(self._env.min(keepdims=True))
            self._maxs.append(self._env.max(keepdims=True))
        self._stft(np.zeros(self.n_fft, dtype=np.float32))  # centre the last frames
        n_frames = max(1, -(-self.samples // self.hop))
        mel = np.concatenate(self._mel, axis=1)[:, :n_frames] if self._mel else np.zeros((self.bank.shape[0], 1))
        db = 10 * np.log10(np.maximum(mel, 1e-10))
        db = np.maximum(db - db.max(), -TOP_DB)
        return Analysis(
            self.rate,
            self.hop,
            db,
            np.concatenate(self._mins) if self._mins else np.zeros(1),
            np.concatenate(self._maxs) if self._maxs else np.zeros(1),
            self.samples / self.rate,
            self.rate / 2,
        )
