"""``nat diff GOLDEN NEW``: golden-token regression checks for CI.

Token streams are compared token by token, not byte by byte, so a golden file written
dense still checks a new run written with ``--delta --rle`` (any mix of NAT encodings, and
the original script's ``lam_audio_tokens`` v1.5 files). For each stream (files with several
inputs compare stream by stream, in order) and each token level it reports the agreement,
the first time the streams diverge and the runs of disagreement.

Only like can be compared: two streams made by different packs (``manifest_sha256``), at
different frame rates, or from different audio (source ``sha256``) are reported as not
comparable, naming which differs; a token mismatch there would mean nothing.
``--any-audio`` drops the last check: the same song in two encodings (FLAC and MP3, say)
compares frame by frame; the pack and the frame rate must still match.

Exit codes: 0 every level of every stream within ``--max-mismatch`` (default 0: identical
tokens, the project's byte-identical promise), 1 some level beyond it, 2 not comparable,
unreadable file or bad usage. A frame present in only one stream counts as a mismatch at
every level, so a truncated run cannot pass.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field

from ..errors import NatError
from ..runtime.reader import pack_identity, read_path
from ..runtime.records import MEASURE_KEYS, frame_time
from ..runtime.stream import TokenStream
from . import command

EXIT_WITHIN = 0
EXIT_BEYOND = 1
EXIT_NOT_COMPARABLE = 2
MAX_RUNS_SHOWN = 8  # per level in the text report (--json lists up to MAX_RUNS_JSON)
MAX_RUNS_JSON = 1000

EPILOG = """\
examples:
  nat diff golden/song.ndjson new/song.ndjson                   # identical tokens or exit 1
  nat diff golden.ndjson new.ndjson --max-mismatch 0.5% --levels S0,S1,A0
  nat song.flac | nat diff golden.ndjson -                       # NEW from stdin
  nat diff old_lam_file.ndjson new.ndjson --json
  nat diff song.flac.ndjson song.mp3.ndjson --any-audio --max-mismatch 5%   # two encodings
exit codes: 0 within --max-mismatch, 1 beyond it, 2 not comparable (different pack, frame rate
            or, without --any-audio, audio: the message says which), unreadable file or usage error
"""


class NotComparable(NatError):
    exit_code = EXIT_NOT_COMPARABLE


@dataclass
class LevelDiff:
    level: str
    frames: int  # frames compared (the union of both streams' frames)
    mismatches: int
    first_diff_t: float | None
    runs: list[tuple[float, float, int]] = field(default_factory=list)  # (start s, end s, frames)

    @property
    def mismatch(self) -> float:
        return self.mismatches / self.frames if self.frames else 0.0

    @property
    def agreement(self) -> float:
        return 1.0 - self.mismatch


@dataclass
class StreamDiff:
    index: int
    name: str
    golden_frames: int
    new_frames: int
    levels: list[LevelDiff]


def parse_threshold(text: str) -> float:
    """'0.1%' -> 0.001, '0.001' -> 0.001; a plain number is a fraction in [0, 1]."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise NatError(f"--max-mismatch {text!r}: expected a percentage like 0.1% or a fraction like 0.001") from None
    if not 0 <= value <= 1:
        raise NatError(f"--max-mismatch {text!r}: must be between 0% and 100%")
    return value


def _short(value: str | None) -> str:
    return "none" if value is None else (value[:12] + "..." if len(value) > 15 else value)


def comparability(golden: TokenStream, new: TokenStream, any_audio: bool = False) -> str | None:
    """Why the two streams cannot be compared, or None (``any_audio``: different audio may be)."""
    if golden.error or new.error:
        which = "GOLDEN" if golden.error else "NEW"
        return f"{which} holds an error record instead of tokens ({golden.error or new.error})"
    reasons = []
    (g_label, g_pack), (n_label, n_pack) = pack_identity(golden), pack_identity(new)
    if g_pack is not None and n_pack is not None and g_pack != n_pack:
        label = g_label if g_label == n_label else "pack"
        reasons.append(f"pack {label} differs (golden {_short(g_pack)}, new {_short(n_pack)})")
    if abs(golden.frame_rate - new.frame_rate) > 1e-6:
        reasons.append(f"frame rate differs (golden {golden.frame_rate:g}/s, new {new.frame_rate:g}/s)")
    g_sha, n_sha = _source_sha256(golden), _source_sha256(new)
    if not any_audio and g_sha and n_sha and g_sha != n_sha:
        reasons.append(f"source sha256 differs (golden {_short(g_sha)}, new {_short(n_sha)}): not the same audio")
    return "; ".join(reasons) or None


def _source_sha256(stream: TokenStream) -> str | None:
    return stream.source.sha256  # piped input: from the stats line


def _levels(stream: TokenStream) -> list[str]:
    """What can be compared: the token levels, then the frame measures (dB, hits) if the stream has them."""
    return stream.s_names + stream.a_names + (list(MEASURE_KEYS) if stream.header.measures is not None else [])


def _codes(stream: TokenStream) -> dict[int, tuple]:
    """Frame index -> codes in level order (S levels, then A levels), then the measures."""
    return {f.index: f.S + f.A + (f.level, f.hits) for f in stream.frames}


def compare(golden: TokenStream, new: TokenStream, levels: list[str], index: int = 1) -> StreamDiff:
    """Per level of ``levels`` (token levels and measures): how many frames of the union of
    both streams' frames differ, and where."""
    g_codes, n_codes = _codes(golden), _codes(new)
    indices = sorted(set(g_codes) | set(n_codes))
    rate = golden.frame_rate
    out = []
    for level in levels:
        gi, ni = _levels(golden).index(level), _levels(new).index(level)
        bad = []
        for k in indices:
            g, n = g_codes.get(k), n_codes.get(k)
            if g is None or n is None or g[gi] != n[ni]:
                bad.append(k)
        runs: list[tuple[float, float, int]] = []
        start = prev = None
        for k in bad + [None]:
            if k is not None and prev is not None and k == prev + 1:
                prev = k
                continue
            if start is not None:
                runs.append((frame_time(start, rate), frame_time(prev + 1, rate), prev - start + 1))
            start = prev = k
        out.append(LevelDiff(level, len(indices), len(bad), frame_time(bad[0], rate) if bad else None, runs))
    name = golden.name if golden.name == new.name else f"{golden.name} vs {new.name}"
    return StreamDiff(index, name, len(g_codes), len(n_codes), out)


def _select_levels(golden: TokenStream, new: TokenStream, wanted: list[str] | None, index: int) -> list[str]:
    if wanted is None:
        g_tokens, n_tokens = golden.s_names + golden.a_names, new.s_names + new.a_names
        if g_tokens != n_tokens:
            raise NotComparable(f"stream {index} ({golden.name}): token levels differ (golden {' '.join(g_tokens)}, new {' '.join(n_tokens)})")
        return [name for name in _levels(golden) if name in _levels(new)]  # measures only where both have them
    for level in wanted:
        for label, stream in (("GOLDEN", golden), ("NEW", new)):
            if level not in _levels(stream):
                raise NatError(f"--levels: {label} stream {index} has no level {level} (it has {' '.join(_levels(stream))})")
    return wanted


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def text_report(golden_path: str, new_path: str, diffs: list[StreamDiff], threshold: float) -> str:
    lines = [f"nat diff: {golden_path} (golden) vs {new_path} (new), max mismatch {_pct(threshold)} per level"]
    for d in diffs:
        differing = [lv for lv in d.levels if lv.mismatches]
        frames = f"{d.golden_frames} frames" if d.golden_frames == d.new_frames else f"golden {d.golden_frames} frames, new {d.new_frames}"
        lines.append(f"stream {d.index} {d.name}: {frames}; {len(differing)} of {len(d.levels)} levels differ")
        width = max(len(lv.level) for lv in d.levels) if d.levels else 2
        for lv in d.levels:
            mark = "FAIL" if lv.mismatch > threshold else "ok"
            if not lv.mismatches:
                lines.append(f"  {lv.level:<{width}}  agree {_pct(lv.agreement):>8}  {mark}")
                continue
            runs = ", ".join(f"{s:g}-{e:g} s ({n})" for s, e, n in lv.runs[:MAX_RUNS_SHOWN])
            more = f", +{len(lv.runs) - MAX_RUNS_SHOWN} more" if len(lv.runs) > MAX_RUNS_SHOWN else ""
            lines.append(
                f"  {lv.level:<{width}}  agree {_pct(lv.agreement):>8}  {mark:<4}  first diff at {lv.first_diff_t:g} s;"
                f" {lv.mismatches} frames in {len(lv.runs)} runs: {runs}{more}"
            )
    worst = max((lv for d in diffs for lv in d.levels), key=lambda lv: lv.mismatch, default=None)
    if worst is None or worst.mismatch <= threshold:
        lines.append("result: PASS" + (f" (worst level {worst.level}: {_pct(worst.mismatch)} mismatch)" if worst and worst.mismatches else ": identical tokens"))
    else:
        lines.append(f"result: FAIL: {worst.level} mismatch {_pct(worst.mismatch)} > allowed {_pct(threshold)}")
    return "\n".join(lines) + "\n"


def json_report(golden_path: str, new_path: str, diffs: list[StreamDiff], threshold: float, result: str, reason: str | None = None) -> str:
    streams = []
    for d in diffs:
        levels = {}
        for lv in d.levels:
            entry = asdict(lv)
            entry.pop("level")
            entry["agreement"] = round(lv.agreement, 6)
            entry["mismatch"] = round(lv.mismatch, 6)
            entry["within"] = lv.mismatch <= threshold
            entry["runs_total"] = len(lv.runs)
            entry["runs"] = [list(r) for r in lv.runs[:MAX_RUNS_JSON]]
            levels[lv.level] = entry
        streams.append({"index": d.index, "name": d.name, "golden_frames": d.golden_frames, "new_frames": d.new_frames, "levels": levels})
    doc = {"golden": golden_path, "new": new_path, "max_mismatch": threshold, "result": result}
    if reason:
        doc["reason"] = reason
    doc["streams"] = streams
    return json.dumps(doc, separators=(",", ":")) + "\n"


def build_parser() -> command.Parser:
    p = command.parser(
        "nat diff",
        "Compare a token stream against a golden one, token by token (any mix of dense, "
        "delta and RLE NAT NDJSON, or the original script's lam_audio_tokens files).",
        EPILOG,
        label="diff: ",
    )
    p.add_argument("golden", metavar="GOLDEN", help="the reference token file")
    p.add_argument("new", metavar="NEW", help="the token file to check ('-': stdin)")
    p.add_argument("--max-mismatch", default="0", metavar="P", help="allowed mismatching frames per level, e.g. 0.1%% or 0.001 (default 0: identical)")
    p.add_argument("--levels", metavar="L,L", help="compare only these levels, e.g. S0,A0 (default: all)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON line instead of text")
    p.add_argument("--any-audio", action="store_true", help="compare streams of different audio (the same song in two encodings) frame by frame; the pack and frame rate must still match")
    return p


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    threshold = parse_threshold(args.max_mismatch)
    wanted = [x.strip() for x in args.levels.split(",") if x.strip()] if args.levels else None
    if wanted is not None and not wanted:
        raise NatError("--levels: name at least one level, e.g. S0,A0")
    golden = read_path(args.golden)
    new = read_path(args.new)
    diffs: list[StreamDiff] = []
    try:
        if len(golden) != len(new):
            raise NotComparable(f"GOLDEN holds {len(golden)} streams, NEW holds {len(new)}")
        for k, (g, n) in enumerate(zip(golden, new), 1):
            reason = comparability(g, n, args.any_audio)
            if reason:
                raise NotComparable(f"stream {k} ({g.name}): {reason}")
            diffs.append(compare(g, n, _select_levels(g, n, wanted, k), k))
    except NotComparable as exc:
        if args.json:
            sys.stdout.write(json_report(args.golden, args.new, diffs, threshold, "not_comparable", f"not comparable: {exc}"))
        raise NotComparable(f"not comparable: {exc}") from None
    beyond = any(lv.mismatch > threshold for d in diffs for lv in d.levels)
    if args.json:
        sys.stdout.write(json_report(args.golden, args.new, diffs, threshold, "fail" if beyond else "pass"))
    else:
        sys.stdout.write(text_report(args.golden, args.new, diffs, threshold))
    sys.stdout.flush()
    return EXIT_BEYOND if beyond else EXIT_WITHIN


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``nat diff``."""
    return command.main(run, argv, "diff: ")
