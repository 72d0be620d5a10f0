"""What NAT reads, and how it refuses what it cannot: one table of limits, one error mapping.

Every way in (files, bytes, arrays, raw PCM, streamed WAV headers, pushed samples, the CLI's
flags) checks rates and channels here and turns an OS error into the same one-line
``InputError`` (docs/errors.md).
"""

from __future__ import annotations

import numpy as np

from ...errors import InputError

RAW_RATE = 16000  # sample rate of raw s16le PCM unless the user says otherwise
MIN_RATE, MAX_RATE = 1000, 768000
MAX_CHANNELS = 256
# Float files may exceed full scale (1.0); beyond 60 dB over it a value is damage, not audio,
# and squaring it (variance, energies) would overflow float32 into inf/NaN features.
MAX_AMPLITUDE = 1000.0


def rate_ok(sample_rate: object) -> bool:
    """Whether ``sample_rate`` is an integer rate NAT reads."""
    return not isinstance(sample_rate, bool) and isinstance(sample_rate, (int, np.integer)) and MIN_RATE <= sample_rate <= MAX_RATE


def channels_ok(channels: object) -> bool:
    """Whether ``channels`` is a channel count NAT reads."""
    return not isinstance(channels, bool) and isinstance(channels, (int, np.integer)) and 1 <= channels <= MAX_CHANNELS


def check_layout(sample_rate: object, channels: object, name: str) -> None:
    """InputError unless the rate and channel count are ones NAT reads."""
    if not rate_ok(sample_rate):
        raise InputError(f"{name}: sample rate {sample_rate!r} outside {MIN_RATE}-{MAX_RATE} Hz")
    if not channels_ok(channels):
        raise InputError(f"{name}: {channels!r} channels (NAT reads 1-{MAX_CHANNELS})")


def read_error(name: str, exc: OSError) -> InputError:
    """The one-line error for an OS error opening or reading input ``name``."""
    if isinstance(exc, FileNotFoundError):
        return InputError(f"{name}: no such file")
    if isinstance(exc, PermissionError):
        return InputError(f"{name}: permission denied")
    if isinstance(exc, IsADirectoryError):
        return InputError(f"{name}: is a directory")
    return InputError(f"{name}: cannot read ({exc.strerror or exc})")
