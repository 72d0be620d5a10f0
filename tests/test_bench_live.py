"""bench/live.py's measuring parts on a few seconds of audio: it reads frame lines while it
writes, ties each to the block that completed it, and reads the child's peak RSS."""

from __future__ import annotations

import importlib.util
import sys

from conftest import REPO

spec = importlib.util.spec_from_file_location("bench_live", REPO / "bench" / "live.py")
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_live"] = bench
spec.loader.exec_module(bench)


def test_latency_measures_frames_written_before_the_end():
    result = bench.latency("builtin", seconds=4.0, block_ms=100, speed=4.0)
    # 20 frames in 4 s; those whose 0.6 s context had not arrived when the input ended are left out
    assert 10 <= result["frames_measured"] < 20
    assert 0 < result["median_s"] <= result["worst_s"]


def test_rss_reports_the_childs_peak():
    result = bench.rss("builtin", minutes=0.2)
    assert result["rc"] == 0 and 20 < result["peak_rss_mb"] < 1000


def test_push_times_calls_and_checks_the_tokens():
    result = bench.push("builtin", seconds=3.0, block_ms=100, speed=4.0)
    assert result["tokens_equal_encode"]
    assert 0 < result["push_median_ms"] <= result["push_worst_ms"]
    assert result["frames_measured"] > 0 and result["lag_median_s"] <= result["lag_worst_s"]
