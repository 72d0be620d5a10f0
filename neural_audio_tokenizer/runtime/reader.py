"""Read token streams back from files: NAT NDJSON v1 in any encoding, and the original
script's ``lam_audio_tokens`` v1.5 NDJSON, so old files can still be compared and read.

A file may hold several streams (several inputs, one after another). Each becomes a
:class:`~.stream.TokenStream` of dense frames in time order, like the ones a Tokenizer
makes. A lam stream gets a NAT-shaped header (``"format": "lam_audio_tokens"``) carrying
what identifies it: its pack (``manifest_sha256`` where it names one, else the original
script's ``codebook_id``), frame rate, token names and the source's sha256. Problems
raise :class:`ReadError` with the line number.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Iterator

from ..errors import NatError
from .header import FORMAT, Header, PackRef, Source, Stats, StreamInfo
from .records import HITS_KEY, LEVEL_KEY, Frame, expand, frame_time
from .stream import TokenStream


class ReadError(NatError):
    """A token file that cannot be read or parsed (exit 2)."""


LAM = "lam_audio_tokens"


def pack_identity(stream: TokenStream) -> tuple[str, str | None]:
    """(what it is, value) naming the pack a stream was made with: its manifest_sha256, or
    for the original script's files, which have none, its codebook_id."""
    pack = stream.header.pack
    if pack is None or pack.manifest_sha256 or not pack.codebook_id:
        return "manifest_sha256", pack.manifest_sha256 if pack is not None else None
    return "codebook_id", pack.codebook_id


def _dense(frames: dict[int, tuple], frame_rate: float, n_s: int) -> list[Frame]:
    """Frames by index (a later line wins) -> Frame records in time order. A frame is its
    codes, S then A, optionally followed by ``(level, hits)`` as a last item."""
    out = []
    for k, codes in sorted(frames.items()):
        measures: tuple = (None, None)
        if codes and isinstance(codes[-1], tuple):
            codes, measures = codes[:-1], codes[-1]
        out.append(Frame(k, frame_time(k, frame_rate), codes[:n_s], codes[n_s:], *measures))
    return out


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
    """Every stream in NDJSON text ``lines`` (``label`` names the file in errors)."""
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
        # other lam events (the original script never wrote any) are skipped
    if current is not None:
        streams.append(current.finish())  # a stream cut short: compare what is there
    if not streams:
        raise ReadError(f"{label}: no token stream in it (empty?)")
    return streams


def _error_stream(kind: str, obj: dict) -> TokenStream:
    header = Header(
        source=Source(str(obj.get("source", "?"))), pack=None, frame_rate=0.0, streams={},
        legend=None, format=LAM if kind == "lam" else FORMAT, format_version=None,
    )
    return TokenStream.complete(header, [], None, error=str(obj.get("message", "error")))


class _Builder:
    def __init__(self, kind: str, header: dict, where: str) -> None:
        self.kind = kind
        self.header = header
        self.where = where
        self.lines: list[tuple[str, dict]] = []
        self.end: dict | None = None
        self.error: str | None = None

    def finish(self) -> TokenStream:
        header, frames, n_s = self._nat() if self.kind == "nat" else self._lam()
        stats = self._stats() if self.kind == "nat" else None
        return TokenStream.complete(header, _dense(frames, header.frame_rate, n_s), stats, self.error)

    def _stats(self) -> Stats | None:
        if self.end is None:
            return None
        try:
            return Stats.from_json(self.end)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ReadError(f"{self.where}: its stats line lacks frames or has malformed token figures") from None

    def _nat(self) -> tuple[Header, dict[int, tuple[int, ...]], int]:
        try:
            header = Header.from_json(self.header)
            frame_rate = header.frame_rate
            s_names, a_names = list(header.streams["S"].tokens), list(header.streams["A"].tokens)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ReadError(f"{self.where}: header lacks frame_rate or streams") from None
        if not isinstance(frame_rate, (int, float)) or frame_rate <= 0:
            raise ReadError(f"{self.where}: bad frame_rate {frame_rate!r}")
        levels = s_names + a_names
        frames: dict[int, tuple[int, ...]] = {}
        try:
            for frame in expand([obj for _, obj in self.lines], frame_rate):
                measures = (frame.get(LEVEL_KEY), frame.get(HITS_KEY))
                frames[round(frame["t"] * frame_rate)] = (*(frame[k] for k in levels), measures)
        except KeyError as exc:
            what = "t" if exc.args[0] == "t" else f"token {exc.args[0]} (a delta stream must start with a keyframe)"
            raise ReadError(f"{self.where}: a frame line of this stream lacks {what}") from None
        except (TypeError, ValueError):
            raise ReadError(f"{self.where}: a frame line has a bad t, n or token") from None
        return header, frames, len(s_names)

    def _lam(self) -> tuple[Header, dict[int, tuple[int, ...]], int]:
        h = self.header
        fps = h.get("frames_per_second")
        layers = h.get("layers")
        if not isinstance(fps, (int, float)) or fps <= 0 or not isinstance(layers, list):
            raise ReadError(f"{self.where}: lam header lacks frames_per_second or layers")
        s_layers = [lay for lay in layers if str(lay.get("name", "")).startswith("S")]
        a_layers = [lay for lay in layers if str(lay.get("name", "")).startswith("A")]
        levels = [lay["name"] for lay in s_layers] + [lay["name"] for lay in a_layers]
        meta = h.get("metadata") if isinstance(h.get("metadata"), dict) else {}
        end_stats = self.end.get("stats") if isinstance(self.end, dict) and isinstance(self.end.get("stats"), dict) else {}
        late = end_stats.get("source") if isinstance(end_stats.get("source"), dict) else {}
        header = Header(
            source=Source(str(meta.get("file_path") or "?"), sha256=h.get("audio_sha256") or late.get("sha256")),
            pack=PackRef(meta.get("pack"), meta.get("pack_manifest_sha256"), h.get("codebook_id")),
            frame_rate=float(fps),
            streams={
                key: StreamInfo(len(group), group[0].get("vocab") if group else None, tuple(lay["name"] for lay in group))
                for key, group in (("S", s_layers), ("A", a_layers))
            },
            legend=None,
            format=LAM,
            format_version=None,
        )
        frames: dict[int, tuple[int, ...]] = {}
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
                frames[index] = codes
        return header, frames, len(s_layers)
