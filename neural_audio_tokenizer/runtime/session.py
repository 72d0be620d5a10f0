"""onnxruntime sessions: execution providers, threads, and the settings that keep tokens exact.

Each setting answers a measurement (figures in docs/performance.md, "Session settings"):
- CUDA: TF32, the CUDA provider's default, changes tokens, so it is always off; cuDNN's
  algorithm search is ``HEURISTIC`` so the kernels chosen do not vary run to run.
- Thread spinning is off unless asked: beside another thread pool in the process (torch, a
  host app) spinning workers slow both sides.
- CPU parallelism: by default each CPU session runs single-threaded and ``workers``
  encoder calls (one per core) run at once, on different chunks or encoders.
- Memory: ORT's memory-pattern planner keeps a block per input shape (first, middle and
  last chunks differ), so patterns are off; the arena alone reuses blocks across shapes.
  The model bytes the Python wrapper keeps are dropped on the CPU, which never needs them.
"""

from __future__ import annotations

from dataclasses import dataclass

import os

import numpy as np
import onnxruntime as ort

from ..errors import DeviceError, PackError

DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class SessionOptions:
    """How encoder sessions run: device, threads, spinning, chunks per call, calls at once."""
    device: str = "cpu"
    threads: int = 0  # intra-op threads per session; 0: all cores (see workers)
    spinning: bool = False
    batch: int = 0  # chunks per encoder call; 0: 8 on CUDA, 1 on the CPU
    workers: int = 0  # encoder calls at once; 0: on the CPU with threads 0, one per core (each single-threaded), else 1


def cores() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a container's or taskset's share)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def parallelism(options: SessionOptions, device: str) -> tuple[int, int]:
    """(workers, intra-op threads per session; 0 = onnxruntime's default) for ``options``.

    CPU, nothing set: one worker per core, each session single-threaded (measured faster
    than one call at a time on every core: docs/performance.md). ``threads`` set (e.g. by
    ``nat batch``, which splits the cores between processes): one call at a time on that
    many threads, as before, unless ``workers`` is set too. CUDA: one call at a time."""
    if device == "cuda":
        return max(1, options.workers), options.threads
    if options.workers:
        return options.workers, options.threads or 1
    if options.threads:
        return 1, options.threads
    n = cores()
    return (n, 1) if n > 1 else (1, 0)


def resolve_device(device: str) -> str:
    """'cpu' or 'cuda'; 'auto' picks CUDA when onnxruntime-gpu can use it."""
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if device == "cuda" and not has_cuda:
        raise DeviceError(
            "--device cuda needs onnxruntime-gpu (pip install onnxruntime-gpu, replacing onnxruntime); "
            f"this onnxruntime {ort.__version__} offers {', '.join(ort.get_available_providers())}"
        )
    return device


def providers(device: str) -> list:
    """onnxruntime's provider list for ``device``, with the CUDA settings that keep tokens exact."""
    if device == "cuda":
        cuda = {"use_tf32": "0", "cudnn_conv_algo_search": "HEURISTIC", "do_copy_in_default_stream": "1"}
        return [("CUDAExecutionProvider", cuda), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def create_session(model: bytes, label: str, options: SessionOptions) -> ort.InferenceSession:
    """An InferenceSession from the verified model bytes (never re-read from disk)."""
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.inter_op_num_threads = 1
    if options.threads:
        so.intra_op_num_threads = options.threads
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if options.spinning else "0")
    so.use_deterministic_compute = True
    so.enable_mem_pattern = False  # see module docstring: flat memory across chunk shapes
    device = resolve_device(options.device)
    try:
        session = ort.InferenceSession(model, sess_options=so, providers=providers(device))
    except DeviceError:
        raise
    except Exception as exc:  # onnxruntime raises several types; all mean "unusable model"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PackError(f"pack {label}: onnxruntime refused the model: {reason}") from None
    if device == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
        # onnxruntime falls back to the CPU with only a log line: --device cuda must not quietly run on the CPU.
        raise DeviceError(
            f"--device cuda: onnxruntime could not start its CUDA provider for {label} "
            "(are the CUDA and cuDNN libraries it was built for on LD_LIBRARY_PATH?); use --device cpu"
        )
    if device == "cpu" and getattr(session, "_model_bytes", None) is not None:
        # kept by onnxruntime only to rebuild the session on a provider fallback, which a CPU session never does
        session._model_bytes = None
    return session


def run_session(session: ort.InferenceSession, input_name: str, outputs: list[str], waveform: np.ndarray) -> dict[str, np.ndarray]:
    """Run one waveform [samples] -> {output: [frames, dim]}, or a batch [n, samples] ->
    {output: [n, frames, dim]}."""
    if waveform.ndim == 2:
        return dict(zip(outputs, session.run(outputs, {input_name: waveform})))
    values = session.run(outputs, {input_name: waveform[None, :]})
    return {name: value[0] for name, value in zip(outputs, values)}
