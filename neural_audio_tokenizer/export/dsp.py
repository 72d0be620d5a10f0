"""The built-in pack's encoder: fixed signal processing written as an ONNX graph.

No learned weights: the graph is STFTs, constant matrices (mel, DCT, chroma, smoothing
kernels) and elementwise arithmetic, built with ``onnx.helper`` at opset 17 (the first
opset with ``STFT``), so it runs in any onnxruntime >= 1.17 and weighs about 0.2 MB.

Input ``waveform`` float32 [batch, samples] at 22050 Hz; hop 441 samples (50 Hz frames, ten
per 5 Hz pack frame). Two outputs, each [batch, frames, dim] float32:

- ``acoustic`` (timbre, 9 dims): 1024-point Hann STFT -> 40 mel bands (40 Hz-8 kHz) ->
  divided by the frame's level -> log -> DCT-II -> cepstra c0..c7 (c0 is the spectral
  flatness here, since the level is divided out first); and the level envelope, the log of
  the frame's level over its local level (Hann over 0.5 s): attack, decay, sustain.
- ``semantic`` (harmony over about a second, 12 dims): 12-bin chroma from the magnitude of a
  4096-point STFT between 100 Hz and 2 kHz, Hann-smoothed over 1 s, compressed (``**
  CHROMA_POWER``), L1-normalized. It is computed at 10 Hz (hop
  ``CHROMA_HOP`` = 5 frames) and each value is repeated for its 5 frames: the 1 s smoothing
  leaves nothing above ~2 Hz to resolve, and the 4096-point STFT at 50 Hz was 85 % of the
  encoder's time (issue #4: the built-in pack went from ~180x to 340-370x real time on 2
  cores; its S codebooks were refitted). Segments always start on a pack frame (0.2 s, a multiple of
  ``CHROMA_HOP``, docs/pack-format.md), so the 10 Hz grid is the same in every chunk.

What each stream keeps was chosen by measuring it (``nat-export eval``, docs/quality.md:
eight General MIDI instruments each playing twelve tunes in all twelve keys, none of them
in the codebook corpus). Cepstra above c7 follow the harmonics, i.e. the *pitch*: with
c0..c19, A0 histograms told the tune better than the instrument, and the A stream found a
clip's instrument by nearest neighbour 82 % of the time; c0..c7 plus the level envelope
give 100 %, with fewer dead codes. The semantic output used to carry spectral flux (onset
strength in three bands, 6 dims); quantized on its own it named the instrument for 95 % of
clips and the tune for 2 % (attack shape, not rhythm; measured on a development set rendered
like the evaluation set with another seed), so S tokens told who plays more than what is
played. Chroma alone puts S0 at 73 % tune vs 25 % instrument. The band stops at 2 kHz and
the chroma is compressed (issue #15) so that S0 codes keep triads apart: up to 5 kHz and
uncompressed, upper harmonics and one loud note of a chord decided the profile, and S0
merged a chord with its relative minor or its other-mode twin (docs/quality.md, "Glossary").

Robustness is designed in for the token-stability goals (gain -6/+3 dB, resampling, codecs,
40 dB SNR noise, mono vs stereo). Level-0 agreement on held-out clips at the time of
writing (``nat-export eval`` full set, S0 / A0): gain -6 and +3 dB >= 0.996; 44.1 -> 22.05
-> 44.1 kHz and mono mixdown 1.00; MP3 128 kbit/s 0.98 / 0.97; OGG Vorbis 0.99 / 0.965;
40 dB SNR white noise 0.93 / 0.92; a 10 ms shift 0.96 / 0.81.

- Gain: every feature is a ratio. Mel power is divided by the frame's level before the log,
  the envelope divides two levels, chroma is compressed by a power and L1-normalized.
- Noise and codecs: log floors are *relative*: ``FLOOR`` (-20 dB under the frame's mean band
  power) for cepstra, ``ENVELOPE_FLOOR`` for the envelope, so detail that noise or a lossy
  codec rewrites sits on the floor instead of deciding tokens. -30 dB floors measured worse
  under noise and OGG with no gain in telling instruments apart. Bands stop at 8 kHz, so a
  16 kHz round trip or an MP3 lowpass leaves them intact.
- Pauses: a frame far below its surroundings (the Hann-weighted level over ``LEVEL_FRAMES``
  = 0.5 s) is measured against ``QUIET`` x that local level, not its own, so the gaps between
  notes read as quiet rather than being amplified until added noise decides their tokens
  (this took A's 40 dB-noise agreement from 0.95 to 0.98 and S's from 0.90 to 0.94 when
  it was introduced).
- Silence: every division adds an absolute ``TINY`` (white noise near -86 dBFS), so digital
  silence gives finite, constant features and a 16-bit dither floor reads as silence.

Time alignment: frame ``i`` is *centred* at sample ``i*hop + CENTRE`` (mid-hop), so pack
frame ``k`` (mean of frames ``10k..10k+9``) is centred on ``k/5 + 0.1`` s, the middle of its
interval, for both outputs (a frame starting at ``i*hop`` would put the 1 s semantic context
half a second late); the chroma frame standing for frames ``5j..5j+4`` is centred where
frame ``5j+2`` is (``CHROMA_CENTRE``). Each branch needs ``T`` samples around the centre
``C`` of its first frame, so it pads ``T//2 - C`` zeros on the left inside the graph and the
encoder declares ``window = max(C + T - T//2)``: the first frame needs that many samples and
``frames = (samples - window) // hop + 1`` holds exactly (every output is sliced to it). A
frame thus looks back ``T//2 - C`` samples (< 1 s); the pack's 1 s chunk context covers
that, so only frames at the very start of a file see the padding, which stands for the
silence before it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # opset 17 needs IR >= 8; onnxruntime 1.17 (our floor) reads up to IR 9
SAMPLE_RATE = 22050
HOP = 441  # 20 ms: 50 encoder frames per second, 10 per 5 Hz pack frame
CENTRE = HOP // 2  # frame i is centred at i*HOP + CENTRE

N_FFT_ACOUSTIC = 1024
N_MELS = 40
MEL_FMIN, MEL_FMAX = 40.0, 8000.0
N_CEPSTRA = 8  # c0..c7: the spectral envelope; higher cepstra follow the harmonics, i.e. the pitch

N_FFT_CHROMA = 4096  # 5.4 Hz bins: semitones resolved from about 100 Hz up
CHROMA_FMIN, CHROMA_FMAX = 100.0, 2000.0  # fundamentals and low harmonics: above, harmonics blur major vs minor
CHROMA_REPEAT = 5  # chroma frames are 5 encoder frames apart (10 Hz): see the module docstring
CHROMA_HOP = CHROMA_REPEAT * HOP
# chroma frame j stands for encoder frames 5j..5j+4, so it is centred where their middle one is
CHROMA_CENTRE = (CHROMA_REPEAT // 2) * HOP + CENTRE
CHROMA_POWER = 0.3  # smoothed chroma ** 0.3 before normalizing: a chord's quieter notes still count
SMOOTH_FRAMES = 9  # Hann kernel over 9 chroma frames: zero to zero (9 + 1) / 10 Hz = 1 s
LEVEL_FRAMES = 25  # local loudness (quiet frames, level envelope): Hann over 0.5 s (odd, >= 3)

FLOOR = 1e-2  # cepstra: log floor -20 dB under the frame's level
QUIET = 1e-2  # a frame more than 20 dB under its local level is measured against that level
ENVELOPE_FLOOR = 1e-2  # level envelope: frames more than 20 dB under their surroundings read as -20 dB
TINY = 1e-6  # absolute power floor: mel-band power of white noise near -86 dBFS
TINY_CHROMA = 1e-3  # the same role for the (compressed) chroma's normalization: silence stays finite

OUTPUT_DIMS = {"acoustic": N_CEPSTRA + 1, "semantic": 12}


@dataclass(frozen=True)
class DspEncoder:
    """The built ONNX model and the facts a pack manifest records about it."""

    model_bytes: bytes
    input: str
    sample_rate: int
    hop: int
    window: int
    outputs: tuple[str, ...]
    dims: dict[str, int]

    def spec(self) -> dict:
        """The ``encoders[name]`` entry :func:`~neural_audio_tokenizer.export.pack_writer.write_pack` takes."""
        return {
            "model_bytes": self.model_bytes,
            "input": self.input,
            "sample_rate": self.sample_rate,
            "hop": self.hop,
            "window": self.window,
            "input_normalization": "none",  # level is handled inside by ratio features
            "outputs": list(self.outputs),
        }


# --- constant matrices -------------------------------------------------------------------


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_fft: int = N_FFT_ACOUSTIC, n_mels: int = N_MELS) -> np.ndarray:
    """[bins, n_mels] triangles (HTK mel scale), each normalized to sum 1 so a band holds the
    *average* power of its bins and white noise gives the same value in every band."""
    freqs = np.arange(n_fft // 2 + 1) * SAMPLE_RATE / n_fft
    edges = _mel_to_hz(np.linspace(_hz_to_mel(MEL_FMIN), _hz_to_mel(MEL_FMAX), n_mels + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    tri = np.maximum(0.0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
    if np.any(tri.sum(axis=1) <= 0):
        raise AssertionError("a mel band holds no FFT bin; lower N_MELS or raise MEL_FMIN")
    return (tri / tri.sum(axis=1, keepdims=True)).T


def dct_matrix(n_in: int = N_MELS, n_out: int = N_CEPSTRA) -> np.ndarray:
    """[n_in, n_out] orthonormal DCT-II: cepstra = log_mel @ dct."""
    n = np.arange(n_in)[:, None]
    k = np.arange(n_out)[None, :]
    mat = np.cos(np.pi * (n + 0.5) * k / n_in) * np.sqrt(2.0 / n_in)
    mat[:, 0] /= np.sqrt(2.0)
    return mat


def chroma_filterbank(n_fft: int = N_FFT_CHROMA) -> np.ndarray:
    """[bins, 12] pitch-class weights (C=0): each bin between CHROMA_FMIN and CHROMA_FMAX
    splits linearly between its two nearest pitch classes; columns sum to 1 so no pitch
    class is favoured by how many bins land on it."""
    freqs = np.arange(n_fft // 2 + 1) * SAMPLE_RATE / n_fft
    inside = (freqs >= CHROMA_FMIN) & (freqs <= CHROMA_FMAX)
    pitch = 69.0 + 12.0 * np.log2(np.where(inside, freqs, 440.0) / 440.0)
    dist = (pitch[:, None] - np.arange(12)[None, :] + 6.0) % 12.0 - 6.0
    weights = np.maximum(0.0, 1.0 - np.abs(dist)) * inside[:, None]
    return weights / weights.sum(axis=0, keepdims=True)


def hann(n: int) -> np.ndarray:
    """Periodic Hann window (the STFT convention)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def smoothing_kernel(n: int = SMOOTH_FRAMES) -> np.ndarray:
    """Symmetric Hann over ``n`` frames (no zero ends), summing to 1."""
    w = np.sin(np.pi * (np.arange(n) + 1) / (n + 1)) ** 2
    return w / w.sum()


# --- graph building ----------------------------------------------------------------------


class _Graph:
    """A tiny builder: unique names, float32 constants, one call per node."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0
        self._shared: dict[str, str] = {}

    def shared(self, key: str, make) -> str:
        """One initializer for a constant several branches use (keeps the file small)."""
        if key not in self._shared:
            self._shared[key] = self.const(make(), key)
        return self._shared[key]

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value: np.ndarray | float | int, hint: str, dtype=np.float32) -> str:
        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs) -> str:
        out = self._name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def _power_spectrum(g: _Graph, waveform: str, n_fft: int, hop: int, left_pad: int, hint: str) -> str:
    """[B, frames, n_fft/2+1] power of a Hann STFT of the waveform padded ``left_pad`` zeros left."""
    padded = g.op("Pad", [waveform, g.const([0, left_pad, 0, 0], "pads", np.int64)], f"{hint}_pad")
    signal = g.op("Unsqueeze", [padded, g.const([2], "axes", np.int64)], f"{hint}_signal")
    stft = g.op(
        "STFT",
        [signal, g.const(hop, "hop", np.int64), g.const(hann(n_fft), f"{hint}_hann"), g.const(n_fft, "n_fft", np.int64)],
        f"{hint}_stft",
        onesided=1,
    )
    squared = g.op("Mul", [stft, stft])
    return g.op("ReduceSum", [squared, g.const([3], "axes", np.int64)], f"{hint}_power", keepdims=0)


def _over_time(g: _Graph, frames: str, dim: int, kernel: np.ndarray, hint: str) -> str:
    """Valid depthwise convolution along time: [B, F, dim] -> [B, F - len(kernel) + 1, dim]."""
    weights = np.tile(kernel[None, None, :], (dim, 1, 1))
    channels_first = g.op("Transpose", [frames], perm=[0, 2, 1])
    conv = g.op("Conv", [channels_first, g.const(weights, f"{hint}_kernel")], f"{hint}_conv", group=dim)
    return g.op("Transpose", [conv], hint, perm=[0, 2, 1])


def _frames(g: _Graph, tensor: str, count: str) -> str:
    """The first ``count`` frames of [B, F, dim]."""
    zero = g.const([0], "start", np.int64)
    return g.op("Slice", [tensor, zero, count, g.const([1], "axis", np.int64)])


def _acoustic(g: _Graph, waveform: str) -> tuple[str, tuple[int, int]]:
    h = LEVEL_FRAMES // 2
    span = N_FFT_ACOUSTIC + (LEVEL_FRAMES - 1) * HOP
    power = _power_spectrum(g, waveform, N_FFT_ACOUSTIC, HOP, span // 2 - CENTRE, "acoustic")
    all_mel = g.op("MatMul", [power, g.shared("mel", mel_filterbank)], "acoustic_mel")
    level = g.op("ReduceMean", [all_mel], "acoustic_level", axes=[2], keepdims=1)
    local = _over_time(g, level, 1, smoothing_kernel(LEVEL_FRAMES), "acoustic_local")
    axis = g.const([1], "axis", np.int64)
    start, end = g.const([h], "start", np.int64), g.const([-h], "end", np.int64)
    mel = g.op("Slice", [all_mel, start, end, axis], "acoustic_mel_centre")
    # Divide by the frame's own level, but never by less than QUIET x the local level: a
    # pause or decay far below its surroundings reads as quiet (near the floor) instead of
    # being amplified to full scale, where noise or codec artefacts would decide its tokens.
    own = g.op("Slice", [level, start, end, axis], "acoustic_level_centre")
    reference = g.op("Max", [own, g.op("Mul", [local, g.const(QUIET, "quiet")])])
    relative = g.op("Div", [mel, g.op("Add", [reference, g.const(TINY, "tiny")])])
    log_mel = g.op("Log", [g.op("Add", [relative, g.const(FLOOR, "floor")])], "acoustic_log_mel")
    cepstra = g.op("MatMul", [log_mel, g.const(dct_matrix(), "dct")], "acoustic_cepstra")
    # Level envelope: the frame's level against its 0.5 s surroundings (attack, decay, sustain).
    ratio = g.op("Div", [own, g.op("Add", [local, g.const(TINY, "tiny")])])
    envelope = g.op("Log", [g.op("Add", [ratio, g.const(ENVELOPE_FLOOR, "envelope_floor")])], "acoustic_envelope")
    return g.op("Concat", [cepstra, envelope], "acoustic_features", axis=2), (CENTRE, span)


def _chroma(g: _Graph, waveform: str) -> tuple[str, tuple[int, int]]:
    span = N_FFT_CHROMA + (SMOOTH_FRAMES - 1) * CHROMA_HOP
    power = _power_spectrum(g, waveform, N_FFT_CHROMA, CHROMA_HOP, span // 2 - CHROMA_CENTRE, "chroma")
    magnitude = g.op("Sqrt", [power])  # magnitude, not power: one loud partial must not own the frame
    chroma = g.op("MatMul", [magnitude, g.const(chroma_filterbank(), "chroma_fb")], "chroma_raw")
    smooth = _over_time(g, chroma, 12, smoothing_kernel(), "chroma_smooth")
    # Compressed after smoothing, so still a ratio (gain cancels in the normalization): one
    # loud note of a chord no longer owns the profile.
    smooth = g.op("Pow", [smooth, g.const(CHROMA_POWER, "chroma_power")], "chroma_compressed")
    total = g.op("ReduceSum", [smooth, g.const([2], "axes", np.int64)], keepdims=1)
    normalized = g.op("Div", [smooth, g.op("Add", [total, g.const(TINY_CHROMA, "tiny")])], "chroma_10hz")
    # [B, F, 12] -> [B, F, 5, 12] -> [B, 5F, 12]: each chroma frame for its 5 encoder frames
    stacked = g.op("Unsqueeze", [normalized, g.const([2], "axes", np.int64)])
    tiled = g.op("Tile", [stacked, g.const([1, 1, CHROMA_REPEAT, 1], "repeats", np.int64)])
    return g.op("Reshape", [tiled, g.const([0, -1, 12], "shape", np.int64)], "chroma"), (CHROMA_CENTRE, span)


def window_for(branches: list[tuple[int, int]]) -> int:
    """Samples the first frame needs when each branch's first frame is centred at sample
    ``centre`` and sees ``span`` samples around it (``span // 2`` before the centre)."""
    return max(centre + span - span // 2 for centre, span in branches)


def receptive_field_s() -> float:
    """Seconds of audio before a pack frame's start or after its end that its features depend
    on (the manifest's ``receptive_field_s``): the wider of the two branches' reach beyond the
    ten encoder frames a pack frame pools, rounded up to the ms."""
    reach = []
    for centre, span, step in (
        (CENTRE, N_FFT_ACOUSTIC + (LEVEL_FRAMES - 1) * HOP, HOP),
        (CHROMA_CENTRE, N_FFT_CHROMA + (SMOOTH_FRAMES - 1) * CHROMA_HOP, CHROMA_HOP),
    ):
        reach += [span // 2 - centre, centre + span - span // 2 - step]  # before the first frame, after the last
    return math.ceil(max(reach) / SAMPLE_RATE * 1000) / 1000


def build_dsp_encoder() -> DspEncoder:
    """Build, check and serialize the graph. Same code -> same bytes."""
    g = _Graph()
    acoustic, branch_a = _acoustic(g, "waveform")
    chroma, branch_c = _chroma(g, "waveform")
    window = window_for([branch_a, branch_c])

    # frames = (samples - window) // hop + 1, as the pack contract says; every branch makes at
    # least that many (its own span is <= window) and is cut to exactly that many.
    samples = g.op("Gather", [g.op("Shape", ["waveform"]), g.const([1], "index", np.int64)], "samples")
    count = g.op("Add", [g.op("Div", [g.op("Sub", [samples, g.const([window], "window", np.int64)]), g.const([HOP], "hop", np.int64)]), g.const([1], "one", np.int64)], "frame_count")
    g.nodes.append(helper.make_node("Identity", [_frames(g, chroma, count)], ["semantic"], name="semantic"))
    g.nodes.append(helper.make_node("Identity", [_frames(g, acoustic, count)], ["acoustic"], name="acoustic"))

    def frames_out(name: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", "frames", OUTPUT_DIMS[name]])

    graph = helper.make_graph(
        g.nodes,
        "nat_builtin_dsp",
        [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", "samples"])],
        [frames_out("semantic"), frames_out("acoustic")],
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="neural_audio_tokenizer.export.dsp",
        ir_version=IR_VERSION,
        doc_string="NAT built-in encoder: fixed DSP (mel cepstra and level envelope; chroma). No learned weights.",
    )
    onnx.checker.check_model(model, full_check=True)
    return DspEncoder(
        model_bytes=model.SerializeToString(),
        input="waveform",
        sample_rate=SAMPLE_RATE,
        hop=HOP,
        window=window,
        outputs=("semantic", "acoustic"),
        dims=dict(OUTPUT_DIMS),
    )
