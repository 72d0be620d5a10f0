"""Per-level token statistics for reports: how varied and how stable each level is.

The numbers answer "is this level doing anything?" at a glance: distinct codes and entropy
(how much of the codebook it uses), change rate and run lengths (how fast it moves: a
semantic level should hold for seconds, an acoustic one may flicker), most common codes.
Entropy and change rate use the same definitions as the NDJSON stats line.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

from ...runtime.records import Frame
from ...runtime.stream import TokenStream


def runs(values: Sequence[int]) -> list[int]:
    """Lengths of the runs of equal consecutive values."""
    out: list[int] = []
    for i, v in enumerate(values):
        if i and v == values[i - 1]:
            out[-1] += 1
        else:
            out.append(1)
    return out


def level_metrics(values: Sequence[int], frame_rate: float) -> dict:
    n = len(values)
    counts = Counter(values)
    entropy = -sum(c / n * math.log2(c / n) for c in sorted(counts.values())) if n else 0.0
    changes = sum(1 for i in range(1, n) if values[i] != values[i - 1])
    lengths = sorted(runs(values))
    median = (lengths[(len(lengths) - 1) // 2] + lengths[len(lengths) // 2]) / 2 if lengths else 0
    mean = n / len(lengths) if lengths else 0.0
    return {
        "distinct": len(counts),
        "entropy_bits": round(entropy + 0.0, 4),
        "change_rate": round(changes / max(1, n - 1), 4),
        "runs": {
            "count": len(lengths),
            "mean_frames": round(mean, 3),
            "median_frames": median,
            "max_frames": lengths[-1] if lengths else 0,
            "mean_s": round(mean / frame_rate, 3),
            "max_s": round((lengths[-1] if lengths else 0) / frame_rate, 3),
        },
        "top_codes": [[int(code), count] for code, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]],
    }


def level_values(frames: Sequence[Frame], names: Sequence[str]) -> dict[str, list[int]]:
    """Columns: level name -> codes over time."""
    out: dict[str, list[int]] = {}
    for name in names:
        stream, level = name[0], int(name[1:])
        out[name] = [(f.S if stream == "S" else f.A)[level] for f in frames]
    return out


def stream_metrics(stream: TokenStream) -> dict:
    """metrics.json: the input, the pack and per-level numbers of a stream whose frames are all known."""
    header, frames, stats = stream.header, list(stream.frames), stream.stats
    fr = header.frame_rate
    columns = level_values(frames, stream.s_names + stream.a_names)
    src = header.source.to_json()
    return {
        "source": {k: src[k] for k in ("name", "sha256", "sample_rate", "channels", "duration_s")},
        "pack": header.pack.to_json() if header.pack is not None else None,
        "frame_rate": fr,
        "frames": len(frames),
        "duration_s": stats.duration_s if stats else round(len(frames) / fr, 3),
        "codebook_size": {k: header.streams[k].codebook_size for k in ("S", "A")},
        "levels": {name: level_metrics(values, fr) for name, values in columns.items()},
    }
