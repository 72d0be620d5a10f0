"""One input as a command names it: a path, bytes, or a part of a pipe, opened into a source."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ...errors import InputError
from .audio import AudioSource, open_bytes, open_path, open_raw_path, probe_seconds
from .piped import PipedSource


@dataclass
class Input:
    """One input: a path, bytes held in memory, or a part of a pipe (its bytes as they arrive);
    ``raw`` = (rate, channels) reads it as raw s16le PCM (``--raw``)."""

    name: str
    path: str | None = None
    data: bytes | None = None
    part: Iterator[bytes] | None = None
    raw: tuple[int, int] | None = None

    def open(self, raw_rate: int) -> AudioSource | PipedSource:
        """The decoded input (``raw_rate``: the rate of bytes no decoder recognizes)."""
        if self.part is not None:
            return PipedSource(self.name, self.part, self.raw, raw_rate)
        if self.data is not None:
            return open_bytes(self.data, self.name, raw_rate)
        if self.path is None:
            raise InputError(f"{self.name}: empty input (0 bytes)")
        if self.raw is not None:
            return open_raw_path(self.path, self.raw[0], self.raw[1], name=self.name)
        return open_path(self.path, raw_rate, name=self.name)

    def seconds(self) -> float | None:
        """The duration its header declares, without reading more than the header (None:
        a pipe, raw PCM, unknown)."""
        if self.part is not None or self.raw is not None:
            return None
        return probe_seconds(path=self.path) if self.path is not None else probe_seconds(data=self.data)
