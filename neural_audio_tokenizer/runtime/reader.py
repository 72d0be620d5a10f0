"""Read token streams back from files: NAT NDJSON v1 in any encoding, and the original
script's ``lam_audio_tokens`` v1.5 NDJSON, so old files can still be compared and read.

A file may hold several streams (several inputs, one after another). Each becomes a
:class:`TokenStream` of dense frames keyed by frame index, with what identifies it: pack
(``manifest_sha256``; for the seed's files, which have none, its ``codebook_id``), frame
rate and the source's sha256. Problems raise :class:`ReadError` with the line number.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .errors import NatError
from .records import Frame, expand


class ReadError(NatError):
    """A token file that cannot be read or parsed (exit 2)."""


@dataclass
class TokenStream:
    """One stream, dense: ``frames[index]`` is the tuple of codes in ``levels`` order."""

    kind: str  # "nat" | "lam"
    name: str
    frame_rate: float
    levels: list[str]
    pack: str | None  # manifest_sha256, or the seed's codebook_id
    pack_label: str  # what ``pack`` is: "manifest_sha256" or "codebook_id"
    source_sha256: str | None
    frames: dict[int, tuple[int, ...]] = field(default_factory=dict)
    header: dict = field(default_factory=dict)
    stats: dict | None = None
    error: str | None = None  # an error record in place of (or ending) the stream

    def time(self, index: int) -> float:
        return round(index / self.frame_rate, 3)

    def frame_objects(self) -> list[Frame]:
        """Frames as records.Frame (S levels, then A levels), in time order."""
        s_idx = [i for i, n in enumerate(self.levels) if n.startswith("S")]
        a_idx = [i for i, n in enumerate(self.levels) if n.startswith("A")]
        return [
            Frame(k, self.time(k), tuple(codes[i] for i in s_idx), tuple(codes[i] for i in a_idx))
            for k, codes in sorted(self.frames.items())
        ]


def parse_lines(lines: Iterable[str], label: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank JSON line."""
    for number, text in enumerate(lines, 1):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except ValueError:
            raise ReadError(f"{label}: line {number}: not JSON (is this a token stream?)") from None
        if not isinstance(obj, dict):
            raise ReadError(f"{label}: line {number}: not a JSON object")
        yield number, obj


def read_path(path: str) -> list[TokenStream]:
    """Every stream in a file ('-': stdin)."""
    import sys

    label = "stdin" if path == "-" else path
    try:
        if path == "-":
            return read_streams(sys.stdin.buffer.read().decode("utf-8", "replace").splitlines(), label)
        with open(path, encoding="utf-8", errors="replace") as f:
            return read_streams(f, label)
    except FileNotFoundError:
        raise ReadError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise ReadError(f"{label}: is a directory") from None
    except OSError as exc:
        raise ReadError(f"{label}: cannot read ({exc.strerror or exc})") from None


def read_streams(lines: Iterable[str], label: str) -> list[TokenStream]:
    streams: list[TokenStream] = []
    current: _Builder | None = None
    for number, obj in parse_lines(lines, label):
        where = f"{label}: line {number}"
        if "event" in obj:
            kind, event = "lam", obj["event"]
        elif "type" in obj or "t" in obj:
            kind, event = "nat", obj.get("type", "frame")
        else:
            raise ReadError(f"{where}: neither a NAT nor a lam_audio_tokens line")
        if event == "header":
            if current is not None:
                streams.append(current.finish())
            current = _Builder(kind, obj, where)
            continue
        if event == "error":
            if current is not None:
                current.error = str(obj.get("message", "error"))
                streams.append(current.finish())
                current = None
            else:
                streams.append(_error_stream(kind, obj))
            continue
        if current is None:
            raise ReadError(f"{where}: {event} line before any header")
        if kind != current.kind:
            raise ReadError(f"{where}: a {kind} line inside a {current.kind} stream")
        if event in ("stats", "end"):
            current.end = obj
            streams.append(current.finish())
            current = None
        elif event in ("frame", "tokens"):
            current.lines.append((where, obj))
        # other lam events (the seed never wrote any) are skipped
    if current is not None:
        streams.append(current.finish())  # a stream cut short: compare what is there
    if not streams:
        raise ReadError(f"{label}: no token stream in it (empty?)")
    return streams


def _error_stream(kind: str, obj: dict) -> TokenStream:
    return TokenStream(kind, str(obj.get("source", "?")), 0.0, [], None, "manifest_sha256", None, error=str(obj.get("message", "error")))


class _Builder:
    def __init__(self, kind: str, header: dict, where: str) -> None:
        self.kind = kind
        self.header = header
        self.where = where
        self.lines: list[tuple[str, dict]] = []
        self.end: dict | None = None
        self.error: str | None = None

    def finish(self) -> TokenStream:
        stream = self._nat() if self.kind == "nat" else self._lam()
        stream.error = self.error
        return stream

    def _nat(self) -> TokenStream:
        h = self.header
        try:
            frame_rate = h["frame_rate"]
            levels = list(h["streams"]["S"]["tokens"]) + list(h["streams"]["A"]["tokens"])
        except (KeyError, TypeError):
            raise ReadError(f"{self.where}: header lacks frame_rate or streams") from None
        if not isinstance(frame_rate, (int, float)) or frame_rate <= 0:
            raise ReadError(f"{self.where}: bad frame_rate {frame_rate!r}")
        stream = TokenStream(
            "nat",
            str(h.get("source", {}).get("name", "?")),
            float(frame_rate),
            levels,
            h.get("pack", {}).get("manifest_sha256"),
            "manifest_sha256",
            h.get("source", {}).get("sha256"),
            header=h,
            stats=self.end,
        )
        lines = [obj for _, obj in self.lines]
        try:
            for frame in expand(lines, frame_rate):
                index = round(frame["t"] * frame_rate)
                stream.frames[index] = tuple(frame[k] for k in levels)
        except KeyError as exc:
            what = "t" if exc.args[0] == "t" else f"token {exc.args[0]} (a delta stream must start with a keyframe)"
            raise ReadError(f"{self.where}: a frame line of this stream lacks {what}") from None
        except (TypeError, ValueError):
            raise ReadError(f"{self.where}: a frame line has a bad t, n or token") from None
        return stream

    def _lam(self) -> TokenStream:
        h = self.header
        fps = h.get("frames_per_second")
        layers = h.get("layers")
        if not isinstance(fps, (int, float)) or fps <= 0 or not isinstance(layers, list):
            raise ReadError(f"{self.where}: lam header lacks frames_per_second or layers")
        s_layers = [lay for lay in layers if str(lay.get("name", "")).startswith("S")]
        a_layers = [lay for lay in layers if str(lay.get("name", "")).startswith("A")]
        levels = [lay["name"] for lay in s_layers] + [lay["name"] for lay in a_layers]
        meta = h.get("metadata") if isinstance(h.get("metadata"), dict) else {}
        manifest = meta.get("pack_manifest_sha256")
        stream = TokenStream(
            "lam",
            str(meta.get("file_path") or "?"),
            float(fps),
            levels,
            manifest or h.get("codebook_id"),
            "manifest_sha256" if manifest else "codebook_id",
            h.get("audio_sha256"),
            header=h,
            stats=self.end,
        )
        frame_ms = 1000.0 / fps
        dense_s = [lay["name"] for lay in s_layers if lay.get("encoding") != "rle"]
        dense_a = [lay["name"] for lay in a_layers if lay.get("encoding") != "rle"]
        state: dict[str, int] = {}
        events: list[tuple[int, dict[str, int], float]] = []
        try:
            for where, ev in self.lines:
                fi = int(ev["fi"])
                if ev["event"] == "frame":
                    state.update(zip([lay["name"] for lay in s_layers], map(int, ev["S"])))
                    state.update(zip([lay["name"] for lay in a_layers], map(int, ev["A"])))
                else:
                    state.update({k: int(v) for k, v in ev.items() if k in levels})
                    state.update(zip(dense_s, map(int, ev.get("S_dense", []))))
                    state.update(zip(dense_a, map(int, ev.get("A_dense", []))))
                if len(state) < len(levels):
                    missing = [n for n in levels if n not in state]
                    raise ReadError(f"{where}: no value yet for {', '.join(missing)}")
                events.append((fi, dict(state), float(ev.get("dur", frame_ms))))
        except (KeyError, TypeError, ValueError):
            raise ReadError(f"{self.where}: a lam frame/tokens event lacks fi, S or A") from None
        total = self.end.get("frames") if isinstance(self.end, dict) else None
        for k, (fi, tokens, dur) in enumerate(events):
            if k + 1 < len(events):
                stop = events[k + 1][0]
            elif isinstance(total, int) and total > fi:
                stop = total
            else:
                stop = fi + max(1, math.floor(dur / frame_ms + 0.5))
            codes = tuple(tokens[n] for n in levels)
            for index in range(fi, stop):
                stream.frames[index] = codes
        return stream
