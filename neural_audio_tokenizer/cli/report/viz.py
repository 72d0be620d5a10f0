"""Pictures of a tokenized input (matplotlib, the optional ``[viz]`` extra).

The overview stacks waveform, log-mel spectrogram and the token levels on one time axis in
seconds, so a change in the sound and a change in the tokens line up vertically. Token
numbers are labels, not quantities, so colours come from a scrambled index (code times the
golden ratio, modulo 1, on a perceptual colour map): neighbouring codes get unrelated
colours and equal codes the same colour, which makes runs and repeats visible.

Figures are drawn with the Agg canvas directly (no pyplot global state, safe in threads and
headless) and saved without the Software/date metadata, so the same tokens give the same PNG
bytes on the same matplotlib.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from ...errors import NatError
from ...runtime.records import Frame
from .spectrum import Analysis, mel_to_hz

INSTALL_HINT = "pictures need matplotlib: pip install 'neural-audio-tokenizer[viz]' (or pip install matplotlib)"
GOLDEN = 0.6180339887498949
DPI = 100


def require_matplotlib() -> None:
    """Fail early, with how to fix it, before any audio is tokenized."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise NatError(INSTALL_HINT) from None


def code_colours(codes: np.ndarray):
    """RGBA for each code: equal codes equal colours, neighbouring codes unrelated ones."""
    from matplotlib import colormaps

    return colormaps["turbo"]((np.asarray(codes, dtype=np.float64) * GOLDEN) % 1.0 * 0.9 + 0.05)


def token_matrix(frames: Sequence[Frame], names: Sequence[str]) -> np.ndarray:
    """[levels, frames] codes, rows in ``names`` order (S0..S3, A0..A3)."""
    rows = []
    for name in names:
        stream, level = name[0], int(name[1:])
        rows.append([(f.S if stream == "S" else f.A)[level] for f in frames])
    return np.array(rows, dtype=np.int64).reshape(len(names), len(frames))


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def overview_png(title: str, analysis: Analysis, frames: Sequence[Frame], names: Sequence[str], frame_rate: int) -> bytes:
    """Waveform, log-mel spectrogram and token rows on a shared time axis (seconds)."""
    from matplotlib.figure import Figure

    n = len(frames)
    end = max(analysis.duration_s, n / frame_rate, 1e-3)
    fig = Figure(figsize=(14, 8), layout="constrained")
    ax_wave, ax_mel, ax_tok = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [1.0, 2.2, 0.34 * len(names) + 0.4]})
    fig.suptitle(title, fontsize=13)

    t_env = (np.arange(len(analysis.env_min)) + 0.5) * analysis.frame_s
    ax_wave.fill_between(t_env, analysis.env_min, analysis.env_max, color="#1f5fa8", linewidth=0, step="mid")
    peak = float(max(np.abs(analysis.env_min).max(), np.abs(analysis.env_max).max(), 1e-6))
    ax_wave.set_ylim(-1.05 * peak, 1.05 * peak)
    ax_wave.set_ylabel("amplitude")
    ax_wave.set_title("waveform", loc="left", fontsize=10)
    ax_wave.grid(True, alpha=0.25)

    n_mels, n_cols = analysis.mel_db.shape
    half = analysis.frame_s / 2
    ax_mel.imshow(
        analysis.mel_db,
        origin="lower",
        aspect="auto",
        cmap="magma",
        interpolation="nearest",
        extent=(-half, n_cols * analysis.frame_s - half, 0, n_mels),
        vmin=-80,
        vmax=0,
    )
    mel_top = mel_to_hz(np.linspace(0, 2595.0 * np.log10(1 + analysis.fmax / 700.0), n_mels + 2))
    ticks = [f for f in (100, 250, 500, 1000, 2000, 4000, 8000, 16000) if f < analysis.fmax]
    centres = mel_top[1:-1]
    ax_mel.set_yticks([np.interp(f, centres, np.arange(n_mels) + 0.5) for f in ticks])
    ax_mel.set_yticklabels([f"{f // 1000}k" if f >= 1000 else str(f) for f in ticks])
    ax_mel.set_ylabel("frequency (Hz, mel scale)")
    ax_mel.set_title("log-mel spectrogram (dB below the loudest bin; brighter = louder)", loc="left", fontsize=10)

    matrix = token_matrix(frames, names)
    ax_tok.imshow(
        code_colours(matrix) if n else np.zeros((len(names), 1, 4)),
        aspect="auto",
        interpolation="nearest",
        extent=(0, n / frame_rate, len(names), 0),
    )
    ax_tok.set_yticks(np.arange(len(names)) + 0.5)
    ax_tok.set_yticklabels(names)
    s_levels = sum(1 for name in names if name.startswith("S"))
    if 0 < s_levels < len(names):
        ax_tok.axhline(s_levels, color="white", linewidth=2)
    ax_tok.set_ylabel("token level")
    ax_tok.set_title(f"tokens, {frame_rate} frames/s (colour = code: same colour, same token)", loc="left", fontsize=10)
    ax_tok.set_xlabel("time (s)")
    ax_tok.set_xlim(0, end)
    return _png(fig)


def histograms_png(title: str, frames: Sequence[Frame], names: Sequence[str], codebook_sizes: dict[str, int]) -> bytes:
    """One bar chart per level: how often each code occurs."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    s_names = [n for n in names if n.startswith("S")]
    a_names = [n for n in names if n.startswith("A")]
    cols = max(len(s_names), len(a_names), 1)
    fig = Figure(figsize=(3.6 * cols, 6.4), layout="constrained")
    axes = np.array(fig.subplots(2, cols, squeeze=False))
    fig.suptitle(f"{title}: how often each token occurs", fontsize=13)
    matrix = token_matrix(frames, names)
    for row, group in enumerate((s_names, a_names)):
        for col in range(cols):
            ax = axes[row, col]
            if col >= len(group):
                ax.set_visible(False)
                continue
            name = group[col]
            values = matrix[names.index(name)]
            size = codebook_sizes[name[0]]
            counts = np.bincount(values, minlength=size)[:size] if len(values) else np.zeros(size)
            codes = np.arange(size)
            if size <= 64:
                ax.bar(codes, counts, width=1.0, color=code_colours(codes), edgecolor="none")
            else:  # a bar one code wide would be thinner than a pixel: draw used codes as lines
                used_codes = codes[counts > 0]
                ax.vlines(used_codes, 0, counts[counts > 0], colors=code_colours(used_codes), linewidth=2.0)
                ax.set_ylim(0, max(1, counts.max()) * 1.05)
            used = int(np.count_nonzero(counts))
            ax.set_title(f"{name}: {used} of {size} codes used", fontsize=10)
            ax.set_xlim(-0.5, size - 0.5)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("code")
            if col == 0:
                ax.set_ylabel("frames")
            ax.grid(True, axis="y", alpha=0.25)
    return _png(fig)
