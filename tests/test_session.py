"""Execution-provider settings (runtime/session.py). The CUDA settings are checked here as
what is handed to onnxruntime; whether a GPU then gives the CPU's tokens is measured by
``bench/perf.py --device cuda`` on a machine that has one (docs/performance.md)."""

from __future__ import annotations

import pytest

from neural_audio_tokenizer.runtime import session
from neural_audio_tokenizer.errors import DeviceError
from neural_audio_tokenizer.runtime.session import SessionOptions, create_session, providers


def test_cuda_provider_turns_tf32_off_and_fixes_the_algorithm_search():
    (name, options), fallback = providers("cuda")
    assert name == "CUDAExecutionProvider" and fallback == "CPUExecutionProvider"
    assert options["use_tf32"] == "0"  # TF32 changed 0.6 % of frames' tokens (issue #4)
    assert options["cudnn_conv_algo_search"] == "HEURISTIC"  # no timing-dependent choice
    assert providers("cpu") == ["CPUExecutionProvider"]


class _FakeSession:
    def __init__(self, model, sess_options, providers):
        self.sess_options, self.requested = sess_options, providers
        self._model_bytes = model

    def get_providers(self):  # what onnxruntime does when the CUDA provider cannot start
        return ["CPUExecutionProvider"]


def test_cuda_that_falls_back_to_the_cpu_is_an_error(monkeypatch):
    monkeypatch.setattr(session.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(session.ort, "InferenceSession", _FakeSession)
    with pytest.raises(DeviceError, match=r"^--device cuda: onnxruntime could not start its CUDA provider for fast\.onnx"):
        create_session(b"model", "fast.onnx", SessionOptions(device="cuda"))
    made = create_session(b"model", "fast.onnx", SessionOptions(device="cpu"))
    assert made.requested == ["CPUExecutionProvider"] and made._model_bytes is None


def test_session_options_keep_tokens_exact_and_memory_flat(monkeypatch):
    monkeypatch.setattr(session.ort, "InferenceSession", _FakeSession)
    so = create_session(b"model", "m.onnx", SessionOptions(threads=1)).sess_options
    assert so.use_deterministic_compute and not so.enable_mem_pattern and so.intra_op_num_threads == 1
