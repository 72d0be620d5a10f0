"""bench/perf.py's measuring parts, on the built-in pack and small inputs (seconds, no torch):
FLOP counting, timing of the first frame, the child's own peak RSS, token agreement, and the
clear refusal of --device cuda without a CUDA build of onnxruntime."""

from __future__ import annotations

import importlib.util
import json
import sys

import onnxruntime as ort
import pytest
from conftest import DATA, REPO

spec = importlib.util.spec_from_file_location("perf", REPO / "bench" / "perf.py")
perf = importlib.util.module_from_spec(spec)
sys.modules["perf"] = perf  # dataclasses look their module up
spec.loader.exec_module(perf)

MERT_95M = {
    "conv_dim": [512] * 7, "conv_kernel": perf.CONV_KERNEL, "conv_stride": perf.CONV_STRIDE, "hidden_size": 768,
    "intermediate_size": 3072, "num_conv_pos_embeddings": 128, "num_conv_pos_embedding_groups": 16,
}  # fmt: skip


def test_flops_of_a_mert_95m_chunk():
    # 12 s at 24 kHz: 899 frames; conv stack ~88 GFLOP, 8 layers ~122 GFLOP, positional conv ~8.5
    flops = perf.encoder_flops(MERT_95M, 12 * 24000, 8)
    assert 215e9 < flops < 225e9
    assert perf.encoder_flops(MERT_95M, 12 * 24000, 12) - flops == pytest.approx(4 * 899 * (8 * 768**2 + 4 * 899 * 768 + 4 * 768 * 3072))


def test_measure_reports_first_frame_rss_and_tokens(tmp_path):
    clip = str(DATA / "clip.flac")
    out = tmp_path / "a.ndjson"
    m = perf.measure([sys.executable, "-m", "neural_audio_tokenizer", clip], out, cpus=1)
    assert m["rc"] == 0 and m["frames"] == 15  # 3 s at 5 frames/s
    assert 0 < m["header"] <= m["first"] <= m["wall"]
    assert 20 < m["rss_mb"] < 1000  # the child's own, not this test process's
    again = tmp_path / "b.ndjson"
    perf.measure([sys.executable, "-m", "neural_audio_tokenizer", "--threads", "1", clip], again, cpus=1)
    agree = perf.agreement(out, again)
    assert agree["min"] == 1.0 and set(agree["per_token"]) == set(perf.TOKENS)
    assert len(perf.frame_tokens(out)) == 15 and json.loads(out.read_text().splitlines()[1])["t"] == 0.0


def test_cuda_mode_fails_clearly_without_a_cuda_onnxruntime(capsys):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    assert perf.main(["--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "--device cuda needs onnxruntime-gpu" in err and "CPUExecutionProvider" in err


def test_gemm_peak_is_measured_here_and_names_the_machine():
    peak = perf.gemm_peak(threads=1, repeat=1)
    assert peak["onnxruntime"] > 1 and peak["numpy"] > 1  # GFLOP/s; any CPU this runs on does more
    assert peak["peak"] == max(peak["onnxruntime"], peak["numpy"])
    info = perf.machine()
    assert info["cpu"] and isinstance(info["simd"], list)
