"""Bytes -> mono float32 waveform blocks, with a record of where they came from.

Decoding uses soundfile (libsndfile): one library reads WAV/RF64, FLAC, OGG/Vorbis/Opus,
MP3, AIFF and more, streams block by block (memory stays flat however long the file), and
ships as a self-contained wheel; no ffmpeg needed. Input that no decoder recognizes is
read as raw PCM (signed 16-bit little-endian mono at ``raw_rate``, 16 kHz by default), as
the original script promised for "arbitrary non-audio data"; the header says so. Input that *looks*
like a known format (by its magic bytes) but fails to decode is an error, not raw noise.

Blocks have a fixed size in source samples for a given sample rate (:func:`block_size`), so
everything downstream sees the same sequence for the same bytes: the root of byte-identical
output. (Tokens do not depend on the block size: soxr's streaming output and the chunker's
cuts are the same however the samples arrive; blocks only bound memory.)

Hostile or damaged input (docs/errors.md) must end in one clean ``InputError`` line, never
a traceback: decoder messages are reduced to libsndfile's reason (no object addresses or
absolute paths), NaN/Inf samples become silence and absurd amplitudes are clipped to
``MAX_AMPLITUDE`` so the float arithmetic downstream stays finite; both are counted and
reported as warnings, as are files shorter than their header declares.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import soundfile as sf

from ...errors import InputError
from . import callbacks, stderr_guard
from .limits import MAX_AMPLITUDE, MAX_CHANNELS, MAX_RATE, MIN_RATE, RAW_RATE, channels_ok, check_layout, rate_ok, read_error
from .pcm import PcmFormat, raw_blocks, raw_format
from .riff import PLACEHOLDER_SIZES

BLOCK = 1 << 16  # most source samples per block
_HASH_BLOCK = 1 << 20

# File extensions of what libsndfile decodes (nat batch's default --ext, nat-export's corpus). Others (m4a, aac, wma) are left out by default: NAT has no
# decoder for them and would read their bytes as raw PCM noise.
AUDIO_EXTENSIONS = (
    "aif", "aifc", "aiff", "au", "bwf", "caf", "flac", "mp3", "oga", "ogg", "opus",
    "rf64", "snd", "w64", "wav", "wave",
)  # fmt: skip
# Magic bytes of formats libsndfile reads; such input that fails to decode is reported as
# corrupt rather than tokenized as raw PCM (and stdin.py splits piped input at them).
AUDIO_MAGIC = (b"RIFF", b"RIFX", b"RF64", b"FORM", b"fLaC", b"OggS", b"ID3", b"caff", b".snd", b"wvpk")


@dataclass
class SourceInfo:
    """What the header says about an input."""

    name: str
    bytes: int
    sha256: str
    decoder: str  # "soundfile" | "raw" | "array"
    format: str  # e.g. "WAV/PCM_16", "MP3/MPEG_LAYER_III", "s16le"
    sample_rate: int
    channels: int
    duration_s: float


@dataclass
class Damage:
    """What :func:`repair` changed in a stream's blocks so far: NaN/Inf samples replaced by
    0, samples clipped to +-MAX_AMPLITUDE. Files, pipes and pushed audio each keep one."""

    nonfinite: int = 0
    clipped: int = 0

    def repaired(self, block: np.ndarray) -> np.ndarray:
        """``block`` repaired, counted."""
        block, nonfinite, clipped = repair(block)
        self.nonfinite += nonfinite
        self.clipped += clipped
        return block

    def notes(self) -> list[str]:
        """The warnings for what was replaced or clipped."""
        notes = []
        if self.nonfinite:
            notes.append(f"{self.nonfinite} NaN or infinite samples replaced by silence")
        if self.clipped:
            notes.append(f"{self.clipped} samples beyond +-{MAX_AMPLITUDE:g} (full scale is 1) clipped")
        return notes


@dataclass
class AudioSource:
    """A decoded input: its info and a one-shot iterator of mono float32 blocks."""

    info: SourceInfo
    _blocks: Iterator[np.ndarray]
    decoded: int = 0  # mono samples delivered so far
    damage: Damage = field(default_factory=Damage)  # samples replaced or clipped so far
    header_note: str | None = None  # what the container header says is wrong, if anything
    declared_raw: bool = False  # raw because the user said so (--raw), not as a fallback

    def blocks(self) -> Iterator[np.ndarray]:
        """The mono float32 blocks, once; NaN/Inf become 0 and absurd amplitudes are clipped (counted)."""
        for block in self._blocks:
            block = self.damage.repaired(block)
            self.decoded += len(block)
            yield block

    def warnings(self) -> list[str]:
        """One-line notes for the user about this input, once it has been read to the end."""
        info = self.info
        notes = []
        if info.decoder == "raw" and not self.declared_raw:
            notes.append(f"no audio format recognized; read as raw 16-bit PCM at {info.sample_rate} Hz (see --raw-rate)")
        if self.header_note:
            notes.append(self.header_note)
        elif info.decoder == "soundfile" and info.duration_s > 0:
            got = self.decoded / info.sample_rate
            if got < info.duration_s - max(0.05, 0.01 * info.duration_s):
                notes.append(f"decoded {got:.3f} s of the {info.duration_s:.3f} s its header declares (truncated?)")
        return notes + self.damage.notes()


def repair(block: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(``block`` with NaN/Inf set to 0 and amplitudes clipped to MAX_AMPLITUDE, how many
    samples were replaced, how many clipped): either would poison a whole chunk's features."""
    nonfinite = clipped = 0
    bad = ~np.isfinite(block)
    if bad.any():
        nonfinite = int(bad.sum())
        block = np.where(bad, np.float32(0), block)
    if len(block) and np.abs(block).max() > MAX_AMPLITUDE:
        clipped = int(np.count_nonzero(np.abs(block) > MAX_AMPLITUDE))
        block = np.clip(block, -MAX_AMPLITUDE, MAX_AMPLITUDE)
    return block, nonfinite, clipped


def display_name(path: str) -> str:
    """The name as given, but never an absolute path (it would differ between machines)."""
    return os.path.basename(path) if os.path.isabs(path) else path


def block_size(sample_rate: int) -> int:
    """Samples per block: about one second, at most BLOCK. A fixed 65,536 samples would be
    65 s at 1 kHz; resampled to an encoder's rate and cut into chunks, one such block held
    ~250 MB at once, where a one-second block keeps the peak near that of 44.1 kHz input."""
    return max(1024, min(BLOCK, int(sample_rate)))


def looks_like_audio(head: bytes) -> bool:
    """Whether the first bytes are the magic of a format libsndfile reads (AUDIO_MAGIC, or an MPEG frame sync)."""
    if head.startswith(AUDIO_MAGIC):
        return True
    return len(head) >= 2 and head[0] == 0xFF and (head[1] & 0xE0) == 0xE0  # MPEG frame sync


def mono_of(block: np.ndarray) -> np.ndarray:
    """[samples, channels] float32 -> mono float32 [samples]: the channels' mean."""
    if block.shape[1] == 1:
        return np.ascontiguousarray(block[:, 0], dtype=np.float32)
    # Channel by channel in float64, then / channels: mean(axis=1, dtype=float64)'s arithmetic
    # for up to 8 channels (numpy sums short rows in order), without its slow 2-wide reduction.
    with np.errstate(invalid="ignore", over="ignore"):  # +inf and -inf channels mix to NaN, zeroed later
        acc = block[:, 0].astype(np.float64)
        for c in range(1, block.shape[1]):
            acc += block[:, c]
        return (acc / block.shape[1]).astype(np.float32)


def _reason(exc: BaseException) -> str:
    """libsndfile's reason alone: soundfile's message embeds the file object's repr
    (a memory address, an absolute path), which would make messages differ run to run."""
    text = getattr(exc, "error_string", None) or str(exc)
    if "not a regular file" in text:
        text = "unrecognized or damaged data"  # mpg123 giving up on garbage, via virtual I/O
    text = " ".join(text.split()).rstrip(".")
    return text.removeprefix("Error : ").removeprefix("Error: ") or type(exc).__name__


_SHORT_CHUNK = re.compile(r"^\s*(data|SSND) : (\d+) \(should be (\d+)\)", re.M)


def _header_note(handle: sf.SoundFile) -> str | None:
    """A truncation libsndfile noticed while parsing the header (it then reads what is there)."""
    try:
        log = handle.extra_info
    except Exception:  # noqa: BLE001 - diagnostics only
        return None
    match = _SHORT_CHUNK.search(log)
    if match:
        declared, held = int(match.group(2)), int(match.group(3))
        if declared > held and declared not in PLACEHOLDER_SIZES:
            return f"header declares {declared} bytes of audio data, the file holds {held} (truncated?)"
    if "lacks an end-of-stream bit" in log:
        return "the stream ends without an end-of-stream marker (truncated?)"
    return None


@contextlib.contextmanager
def _decoder_call() -> Iterator[None]:
    """Around every libsndfile call: C chatter kept off stderr (when the CLI asks), and
    exceptions raised in its Python read callbacks (Ctrl-C, SIGTERM, I/O errors) raised here
    instead of being swallowed as a short read (see callbacks.py)."""
    with stderr_guard.quiet(), callbacks.reraised():
        yield


def _soundfile_blocks(handle: sf.SoundFile, name: str, owned: BinaryIO | None) -> Iterator[np.ndarray]:
    done = 0
    size = block_size(handle.samplerate)
    try:
        while True:
            try:
                with _decoder_call():
                    block = handle.read(size, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, ValueError, MemoryError, OSError) as exc:
                at = f" at {done / handle.samplerate:.3f} s" if done else ""
                raise InputError(f"{name}: decoding failed{at} ({_reason(exc)})") from None
            if not len(block):
                return
            done += len(block)
            yield mono_of(block)
    finally:
        handle.close()
        if owned is not None:
            owned.close()


class _SeekGuard:
    """The file object libsndfile reads through (soundfile's virtual I/O).

    A damaged header can make libsndfile ask for a negative position. The seek then raises
    inside a C callback, where cffi prints a traceback to stderr and returns 0; clamping to
    position 0 here gives libsndfile the same answer without the noise."""

    def __init__(self, fileobj: BinaryIO) -> None:
        self._f = fileobj
        self.name = getattr(fileobj, "name", "<bytes>")

    def read(self, n: int = -1) -> bytes:
        return self._f.read(n)

    def readinto(self, buffer) -> int:
        return self._f.readinto(buffer)

    def tell(self) -> int:
        return self._f.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        try:
            return self._f.seek(offset, whence)
        except (ValueError, OSError):
            return self._f.seek(0)


def _open_soundfile(fileobj: BinaryIO, name: str, size: int, digest: str, owned: BinaryIO | None) -> AudioSource:
    try:
        with _decoder_call():
            handle = sf.SoundFile(_SeekGuard(fileobj))
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OverflowError, MemoryError, OSError) as exc:
        if owned is not None:
            owned.close()
        raise InputError(f"{name}: not decodable audio ({_reason(exc)})") from None
    sr, ch = handle.samplerate, handle.channels
    if not rate_ok(sr) or not channels_ok(ch):
        handle.close()
        if owned is not None:
            owned.close()
        what = f"sample rate {sr} Hz" if not rate_ok(sr) else f"{ch} channels"
        raise InputError(f"{name}: unsupported {what} (NAT reads {MIN_RATE}-{MAX_RATE} Hz, 1-{MAX_CHANNELS} channels)")
    frames = handle.frames if handle.frames and handle.frames > 0 else 0
    info = SourceInfo(name, size, digest, "soundfile", f"{handle.format}/{handle.subtype}", sr, ch, round(frames / sr, 6))
    source = AudioSource(info, _soundfile_blocks(handle, name, owned), header_note=_header_note(handle))
    return _checked(source)


def _checked(source: AudioSource) -> AudioSource:
    """Decode the first block now, so an unreadable or empty input fails before any output."""
    blocks = source._blocks
    try:
        first = next(blocks)
    except StopIteration:
        raise InputError(f"{source.info.name}: no audio samples") from None

    def chained() -> Iterator[np.ndarray]:
        yield first
        yield from blocks

    source._blocks = chained()
    return source


def _raw_source(name: str, size: int, digest: str, read: Callable[[int], bytes], fmt: PcmFormat, close: Callable[[], None] | None = None, declared: bool = False) -> AudioSource:
    """Bytes read as raw PCM of layout ``fmt`` (``declared``: the user said so, not a fallback)."""
    frames = -(-size // fmt.frame_bytes)
    info = SourceInfo(name, size, digest, "raw", fmt.label, fmt.sample_rate, fmt.channels, round(frames / fmt.sample_rate, 6))

    def blocks() -> Iterator[np.ndarray]:
        try:
            for block in raw_blocks(read, fmt, block_size(fmt.sample_rate)):
                yield mono_of(block)
        except OSError as exc:
            raise read_error(name, exc) from None
        finally:
            if close is not None:
                close()

    return _checked(AudioSource(info, blocks(), declared_raw=declared))


def _fallback_format(name: str, raw_rate: object, close: Callable[[], None] | None = None) -> PcmFormat:
    """Mono s16le at ``raw_rate``: how input no decoder recognizes is read."""
    if not rate_ok(raw_rate) or not isinstance(raw_rate, int):
        if close is not None:
            close()
        raise InputError(f"{name}: raw rate {raw_rate} Hz outside {MIN_RATE}-{MAX_RATE}")
    return raw_format(raw_rate, 1, name)


def probe_seconds(path: str | None = None, data: bytes | None = None) -> float | None:
    """The duration a decodable input's header declares, or None (unknown, raw, unreadable).
    Only a scheduling hint (cli/nat.py): never an error, never output."""
    if path is not None and not os.path.isfile(path):
        return None  # a FIFO (``nat <(sox ...)``) would lose the bytes read here; a device, a folder
    try:
        with _decoder_call():
            info = sf.info(path if path is not None else io.BytesIO(data or b""))
        return float(info.frames) / info.samplerate if info.samplerate > 0 and info.frames >= 0 else None
    except Exception:  # noqa: BLE001 - whatever is wrong is reported when the input is read
        return None


def open_bytes(data: bytes, name: str, raw_rate: int = RAW_RATE) -> AudioSource:
    """Decode audio held in memory (a stdin part, an upload)."""
    if not data:
        raise InputError(f"{name}: empty input (0 bytes)")
    digest = hashlib.sha256(data).hexdigest()
    if looks_like_audio(data[:4]):
        return _open_soundfile(io.BytesIO(data), name, len(data), digest, None)
    try:
        return _open_soundfile(io.BytesIO(data), name, len(data), digest, None)
    except InputError:
        return _raw_source(name, len(data), digest, io.BytesIO(data).read, _fallback_format(name, raw_rate))


def _open_binary(path: str) -> BinaryIO:
    """The one place input files are opened (tests replace it to simulate EACCES as root)."""
    return open(path, "rb")  # noqa: SIM115


def sha256_file(path: str | os.PathLike) -> tuple[int, str]:
    """(size in bytes, sha256 hex digest) of a file, read in blocks. Raises OSError."""
    h = hashlib.sha256()
    size = 0
    with _open_binary(path) as f:
        while chunk := f.read(_HASH_BLOCK):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def open_path(path: str, raw_rate: int = RAW_RATE, name: str | None = None) -> AudioSource:
    """Decode a file, streaming; FIFOs and character devices are read into memory first.

    ``name`` (default: :func:`display_name` of ``path``) is what the header and error
    messages call the input; ``nat batch`` passes the path relative to the library root,
    so its output equals ``nat REL`` run from that root."""
    name = display_name(path) if name is None else name
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{name}: is a directory")
        if not stat.S_ISREG(st.st_mode):  # FIFO, /dev/stdin, ...: not seekable, read it whole
            with _open_binary(path) as f:
                data = f.read()
            return open_bytes(data, name, raw_rate)
        size, digest = sha256_file(path)
        if size == 0:
            raise InputError(f"{name}: empty input (0 bytes)")
        handle = _open_binary(path)
    except OSError as exc:
        raise read_error(name, exc) from None
    try:
        head = handle.read(4)
        handle.seek(0)
    except OSError as exc:  # EIO and the like, after a successful open
        handle.close()
        raise read_error(name, exc) from None
    try:
        return _open_soundfile(handle, name, size, digest, handle)
    except InputError:
        if looks_like_audio(head):
            raise
    try:
        handle = _open_binary(path)
    except OSError as exc:  # the file went away between the two opens
        raise read_error(name, exc) from None
    return _raw_source(name, size, digest, handle.read, _fallback_format(name, raw_rate, handle.close), handle.close)


def from_array(samples: np.ndarray, sample_rate: int, name: str = "array") -> AudioSource:
    """Wrap a waveform already in memory: [samples] or [samples, channels]."""
    arr = np.asarray(samples)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or not channels_ok(arr.shape[1]):
        raise InputError(f"{name}: expected [samples] or [samples, channels], got shape {np.shape(samples)}")
    check_layout(sample_rate, arr.shape[1], name)
    if arr.shape[0] == 0:
        raise InputError(f"{name}: no audio samples")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    digest = hashlib.sha256(arr.astype("<f4").tobytes()).hexdigest()
    sr = int(sample_rate)
    info = SourceInfo(name, arr.nbytes, digest, "array", "float32", sr, arr.shape[1], round(arr.shape[0] / sr, 6))

    def blocks() -> Iterator[np.ndarray]:
        size = block_size(sr)
        for start in range(0, arr.shape[0], size):
            yield mono_of(arr[start : start + size])

    return AudioSource(info, blocks())


def open_raw_path(path: str, sample_rate: int, channels: int = 1, name: str | None = None) -> AudioSource:
    """A regular file read as raw s16le PCM (``--raw``): no format detection, every byte a
    sample byte. Its header is whole (size and sha256 are read first, as for any file)."""
    name = display_name(path) if name is None else name
    check_layout(sample_rate, channels, name)
    try:
        size, digest = sha256_file(path)
        handle = _open_binary(path)
    except OSError as exc:
        raise read_error(name, exc) from None
    if size == 0:
        handle.close()
        raise InputError(f"{name}: empty input (0 bytes)")
    return _raw_source(name, size, digest, handle.read, raw_format(sample_rate, channels, name), handle.close, declared=True)
