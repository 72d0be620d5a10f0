"""How fast the runtime is against the torch pipeline it replaces, and how much memory it takes (issue #4).

    python bench/perf.py                  # full-size models, 10 s / 60 s / 600 s, CPU (~15 min on 2 cores)
    python bench/perf.py --quick          # smoke run: tiny models, 10 s (about a minute)
    python bench/perf.py --json           # the results as JSON on stdout instead of the table
    python bench/perf.py --sizes          # installed size of a runtime venv vs an export venv (slow; cached, then shown in the table)
    python bench/perf.py --device cuda    # the CUDA execution provider, chunks batched, tokens vs the CPU provider

What is measured, on the same audio (44.1 kHz stereo FLAC rendered from the seeded General MIDI
corpus of export/corpus.py, or synthesized when FluidSynth is missing):

- ``torch``: the torch pipeline a user would write: transformers HubertModel (MERT-v1-95M
  shape) and Wav2Vec2Model (wav2vec2-base) in fp32, **all 12 layers** each with
  ``output_hidden_states``, sdpa attention, ``inference_mode``, the same chunking through
  FeaturePipeline, the same layer means, normalization and RVQ. The baseline.
- ``torch-whole``: the original script's way: each model once over the whole file (no chunking), where
  memory allows (10 s and 60 s).
- ``runtime``: ``nat --pack PACK FILE`` (the real CLI, default settings), fp32, CPU provider.
- variants of the runtime, each with its token agreement against ``runtime`` on the same
  file: the previous default (one encoder call at a time on every core), int8 encoders,
  the encoders as onnxruntime's optimizer saves them, and 20 s chunks instead of 10 s.
- ``builtin``: the built-in pack (fixed DSP, no learned weights).

Each backend runs in its own process (torch and onnxruntime in one process slow each other
2-3x), pinned to ``--cpus`` CPUs (default 2). Reported per run: real-time factor (audio
seconds per wall second, process start to exit) and the same after start-up (from the NDJSON
header line, i.e. after imports and model loading), time to first frame (process start to the
first frame line on stdout), peak RSS of the child (wait4 rusage), achieved GFLOP/s (FLOPs
counted analytically from the models' shapes and the chunks actually cut, over the time after
start-up), and token agreement.

The models are full-size random-weight models built from transformers config objects with a
fixed seed (no download). They are exported with the project's own exporter
(``nat-export build`` on a small corpus, 32-code books): it is the pack's encoders that are
timed. Everything built is cached under ``--work`` (default: a folder in the temp dir), so a
second run only measures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# The matrix products of a MERT-95M layer over one 12 s chunk (899 frames): what "% of peak"
# is measured with, through onnxruntime (its MLAS kernels run the model) and numpy (BLAS).
PEAK_SHAPES = ((899, 768, 3072), (899, 3072, 768), (899, 768, 768))
SEED = 95
TOKENS = [f"{s}{i}" for s in "SA" for i in range(4)]

# Full size: MERT-v1-95M (HuBERT base shape, 24 kHz) and wav2vec2-base (16 kHz).
FULL = {"hidden": 768, "layers": 12, "heads": 12, "ffn": 3072, "conv": 512, "pos_kernel": 128, "pos_groups": 16}
# --quick: the same graph structure, tiny widths; 8 and 4 layers so the preset's spans fit.
QUICK = {"hidden": 32, "layers": 8, "heads": 2, "ffn": 64, "conv": 16, "pos_kernel": 16, "pos_groups": 4, "w2v_layers": 4}
CONV_KERNEL = [10, 3, 3, 3, 3, 2, 2]
CONV_STRIDE = [5, 2, 2, 2, 2, 2, 2]


# --- building what is measured ----------------------------------------------------------------


def make_models(root: Path, size: dict) -> dict[str, Path]:
    """A MERT-v1-style folder (HubertModel weights, MERT config keys) and a wav2vec2-base-style
    folder (Wav2Vec2ForPreTraining), seeded random weights, the way the hub stores them."""
    import torch
    from safetensors.torch import save_file
    from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2ForPreTraining

    sys.path.insert(0, str(REPO / "tests"))
    from tiny_models import checkpoint_state_dict, mert_config_json

    common = dict(
        hidden_size=size["hidden"], num_attention_heads=size["heads"], intermediate_size=size["ffn"],
        conv_dim=[size["conv"]] * 7, conv_kernel=CONV_KERNEL, conv_stride=CONV_STRIDE,
        num_conv_pos_embeddings=size["pos_kernel"], num_conv_pos_embedding_groups=size["pos_groups"],
        attn_implementation="eager",
    )  # fmt: skip
    out = {"mert": root / "mert", "w2v": root / "w2v"}
    torch.manual_seed(SEED)
    config = HubertConfig(num_hidden_layers=size["layers"], **common)
    model = HubertModel(config).eval()
    out["mert"].mkdir(parents=True, exist_ok=True)
    save_file(checkpoint_state_dict(model, old_style=False), str(out["mert"] / "model.safetensors"))
    (out["mert"] / "config.json").write_text(json.dumps(mert_config_json(config), indent=2))
    pre = {"do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1, "padding_side": "right", "padding_value": 0.0, "return_attention_mask": True, "sampling_rate": 24000}
    (out["mert"] / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))
    torch.manual_seed(SEED + 1)
    small = {} if size is FULL else {"codevector_dim": 16, "proj_codevector_dim": 16, "num_codevectors_per_group": 8}
    wconfig = Wav2Vec2Config(num_hidden_layers=size.get("w2v_layers", size["layers"]), **common, **small)
    Wav2Vec2ForPreTraining(wconfig).eval().save_pretrained(out["w2v"])
    pre.update(sampling_rate=16000, return_attention_mask=False)
    (out["w2v"] / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))
    return out


def make_audio(folder: Path, lengths: list[int]) -> tuple[dict[int, Path], list[Path], str]:
    """44.1 kHz stereo 16-bit FLACs of each length (prefixes of one long rendering) and the
    30 s clips they are made of. Rendered General MIDI music when FluidSynth is there."""
    import numpy as np
    import soundfile as sf
    import soxr

    from neural_audio_tokenizer.export import corpus

    clip_s = 30.0
    n = max(2, -(-max(lengths) // int(clip_s)))
    clips_dir = folder / "clips"
    try:
        clips = corpus.render_corpus(clips_dir, n, seed=4, clip_seconds=clip_s)
        kind = f"{n} clips of {clip_s:g} s rendered by FluidSynth from the seeded General MIDI corpus (export/corpus.py, seed 4)"
    except (corpus.CorpusError, OSError):
        clips_dir.mkdir(parents=True, exist_ok=True)
        kinds = list(corpus.SYNTH_KINDS)
        clips = []
        for i in range(n):
            try:
                clips.append(corpus.synth_clip(kinds[i % len(kinds)], clip_s, i, clips_dir / f"{i:04d}.wav"))
            except (ValueError, KeyError):
                rng = np.random.default_rng(i)
                t = np.arange(int(clip_s * corpus.SAMPLE_RATE)) / corpus.SAMPLE_RATE
                x = 0.3 * np.sin(2 * np.pi * (110 + 40 * i) * t * (1 + 0.1 * np.sin(t))) + 0.02 * rng.standard_normal(len(t))
                clips.append(corpus.finish_clip(x.astype(np.float32), clip_s, clips_dir / f"{i:04d}.wav"))
        kind = f"{n} synthesized clips of {clip_s:g} s (FluidSynth not found)"
    mono = np.concatenate([sf.read(p, dtype="float32")[0] for p in clips])
    wide = soxr.resample(mono, corpus.SAMPLE_RATE, 44100)
    stereo = np.stack([wide, 0.9 * np.roll(wide, 7)], axis=1)
    files = {}
    for seconds in lengths:
        files[seconds] = folder / f"audio_{seconds}s.flac"
        sf.write(files[seconds], stereo[: seconds * 44100], 44100, subtype="PCM_16")
    return files, [Path(p) for p in clips], kind + "; 44.1 kHz stereo 16-bit FLAC"


def build_pack(models: dict[str, Path], corpus_clips: list[Path], out: Path, quick: bool) -> None:
    """``nat-export build`` (its own process) of the mert-w2v preset from the bench models."""
    corpus_dir = out.parent / "pack-corpus"
    corpus_dir.mkdir(parents=True, exist_ok=True)
    for clip in corpus_clips[: 3 if quick else 6]:
        target = corpus_dir / clip.name
        if not target.exists():
            os.symlink(clip.resolve(), target)
    cmd = [
        sys.executable, "-m", "neural_audio_tokenizer.export.cli", "build", "--preset", "mert-w2v",
        "--corpus", str(corpus_dir), "--semantic-model", str(models["mert"]), "--acoustic-model", str(models["w2v"]),
        "--codebook-size", "32", "--iterations", "10", "--threads", "2", "--out", str(out), "--force", "--quiet",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"perf: nat-export build failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")


def derive_pack(src: Path, dst: Path, note: str, transform=None, chunking: dict | None = None) -> Path:
    """A copy of pack ``src`` with each encoder's ONNX bytes passed through ``transform`` and/or
    other chunking; same codebooks, so its tokens are comparable with ``src``'s."""
    import hashlib

    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    manifest = json.loads((src / "manifest.json").read_text())
    for item in src.iterdir():
        if item.name != "manifest.json" and not item.name.endswith(".onnx"):
            shutil.copy2(item, dst / item.name)
    for name, enc in manifest["encoders"].items():
        data = (src / enc["file"]).read_bytes()
        if transform is not None:
            data = transform(data)
        (dst / enc["file"]).write_bytes(data)
        enc["sha256"] = hashlib.sha256(data).hexdigest()
    if chunking:
        manifest["chunking"] = chunking
    manifest["name"] = f"{manifest['name']}-{dst.name}"
    manifest.setdefault("provenance", {})["bench_variant"] = note
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return dst


def ort_optimized(data: bytes) -> bytes:
    """The graph as onnxruntime's own optimizer saves it (EXTENDED level: the fusions that do
    not depend on this CPU; ALL writes the same bytes for these 1-D conv models), with the
    opset imports of domains no node uses dropped (ORT lists every domain it knows, and the
    pack loader refuses custom ones)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        so.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        so.log_severity_level = 3
        ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        model = onnx.load(so.optimized_model_filepath)
    used = {n.domain for n in model.graph.node} | {""}
    keep = [o for o in model.opset_import if o.domain in used or o.domain == "ai.onnx"]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    return model.SerializeToString()


def int8(data: bytes) -> bytes:
    from neural_audio_tokenizer.export.onnx_export import quantize_int8

    return quantize_int8(data)


def fp16(data: bytes) -> bytes:
    from neural_audio_tokenizer.export.onnx_export import convert_fp16

    return convert_fp16(data)


def prepare(work: Path, quick: bool, lengths: list[int], log) -> dict:
    """Models, audio and packs under ``work``, built once and reused (``setup.json`` records them)."""
    key = {"quick": quick, "lengths": lengths, "seed": SEED, "version": 3}
    record = work / "setup.json"
    if record.is_file():
        setup = json.loads(record.read_text())
        if setup.get("key") == key and all(Path(p).exists() for p in setup["paths"]):
            return _with_fp16(setup, work, record, log)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    log("building the models (seeded random weights)")
    models = make_models(work / "models", QUICK if quick else FULL)
    log("rendering the audio")
    audio, clips, audio_kind = make_audio(work / "audio", lengths)
    log("exporting and building the mert-w2v pack (nat-export build)")
    packs = {"fp32": work / "packs" / "fp32"}
    build_pack(models, clips, packs["fp32"], quick)
    log("deriving the variant packs (int8, onnxruntime-optimized, 20 s chunks)")
    packs["int8"] = derive_pack(packs["fp32"], work / "packs" / "int8", "encoders quantized by export.onnx_export.quantize_int8; fp32 codebooks", int8)
    packs["ortopt"] = derive_pack(packs["fp32"], work / "packs" / "ortopt", "encoders saved by onnxruntime's optimizer (EXTENDED)", ort_optimized)
    packs["chunk20"] = derive_pack(packs["fp32"], work / "packs" / "chunk20", "chunking 20 s + 1 s context", chunking={"window_s": 20.0, "context_s": 1.0})
    setup = {
        "key": key,
        "models": {k: str(v) for k, v in models.items()},
        "audio": {str(k): str(v) for k, v in audio.items()},
        "audio_kind": audio_kind,
        "packs": {k: str(v) for k, v in packs.items()},
        "built_in_s": round(time.monotonic() - t0, 1),
    }
    setup["paths"] = [*setup["models"].values(), *setup["audio"].values(), *setup["packs"].values()]
    record.write_text(json.dumps(setup, indent=1))
    return _with_fp16(setup, work, record, log)


def _with_fp16(setup: dict, work: Path, record: Path, log) -> dict:
    """The fp16 variant (a GPU option, export.onnx_export.convert_fp16), derived once and added
    to a setup that an older bench version built without it."""
    if "fp16" not in setup["packs"] or not Path(setup["packs"]["fp16"]).exists():
        log("deriving the fp16 variant pack")
        path = derive_pack(Path(setup["packs"]["fp32"]), work / "packs" / "fp16", "encoders converted by export.onnx_export.convert_fp16; fp32 codebooks", fp16)
        setup["packs"]["fp16"] = str(path)
        setup["paths"] = sorted(set(setup["paths"]) | {str(path)})
        record.write_text(json.dumps(setup, indent=1))
    return setup


# --- FLOPs ------------------------------------------------------------------------------------


def encoder_flops(config: dict, samples: int, layers: int) -> float:
    """Multiply-adds x 2 of a wav2vec2/HuBERT forward pass over ``samples`` up to ``layers``:
    conv feature encoder, feature projection, positional conv, and per layer the Q/K/V/O
    projections, the two attention products and the feed-forward (elementwise ops ignored)."""
    t, cin, flops = samples, 1, 0.0
    for cout, k, s in zip(config["conv_dim"], config["conv_kernel"], config["conv_stride"]):
        t = (t - k) // s + 1
        flops += 2.0 * cin * cout * k * t
        cin = cout
    d, ffn = config["hidden_size"], config["intermediate_size"]
    flops += 2.0 * cin * d * t
    flops += 2.0 * d * (d // config["num_conv_pos_embedding_groups"]) * config["num_conv_pos_embeddings"] * t
    flops += layers * (8.0 * t * d * d + 4.0 * t * t * d + 4.0 * t * d * ffn)
    return flops


def segment_lengths(pack_dir: Path, audio: Path, whole: bool = False) -> dict[str, list[int]]:
    """{encoder: [samples fed per call]} for this pack and file: the chunks the runtime cuts
    (found by running FeaturePipeline with a stand-in encoder), or one call per file."""
    import numpy as np

    from neural_audio_tokenizer.runtime.features import pipeline_for
    from neural_audio_tokenizer.runtime.inputs.audio import open_path
    from neural_audio_tokenizer.runtime.pack import load_pack

    pack = load_pack(pack_dir)
    pipeline = pipeline_for(pack)
    if whole:
        info = open_path(str(audio)).info
        return {n: [int(round(info.duration_s * e.sample_rate))] for n, e in pack.encoders.items()}
    lengths: dict[str, list[int]] = {n: [] for n in pack.encoders}

    def run(name, waveform):
        lengths[name].append(waveform.shape[-1])
        enc = pack.encoders[name]
        frames = (waveform.shape[-1] - enc.window) // enc.hop + 1
        return {o: np.zeros((frames, 1), np.float32) for o in enc.outputs}

    for _ in pipeline.iter_chunks(open_path(str(audio)), run):
        pass
    return lengths


def run_flops(setup: dict, pack_key: str, audio: Path, full_models: bool, whole: bool = False) -> float:
    """FLOPs of one run: the pack's encoders (only the layers they run) or the full models."""
    pack_dir = Path(setup["packs"][pack_key])
    manifest = json.loads((pack_dir / "manifest.json").read_text())
    total = 0.0
    for name, lengths in segment_lengths(pack_dir, audio, whole).items():
        prov = manifest["provenance"]["encoders"][name]
        folder = setup["models"]["mert" if name == "mert" else "w2v"]
        config = json.loads((Path(folder) / "config.json").read_text())
        layers = prov["num_layers"] if full_models else prov["layers_run"]
        total += sum(encoder_flops(config, n, layers) for n in lengths)
    return total


# --- running one backend in its own process ----------------------------------------------------


@dataclass
class Run:
    label: str
    backend: str
    seconds: int
    wall_s: float = 0.0
    startup_s: float | None = None  # process start -> NDJSON header line
    ttff_s: float | None = None  # process start -> first frame line
    peak_rss_mb: float = 0.0
    frames: int = 0
    rtf: float = 0.0
    rtf_after_startup: float | None = None
    gflops: float | None = None  # FLOPs of the run / 1e9
    gflop_s: float | None = None
    agreement: dict = field(default_factory=dict)  # vs -> {"min": ..., "per_token": {...}}
    cpu_s: float = 0.0  # the child's user + system CPU time
    others_load: float = 0.0  # share of the machine's CPUs other processes used during the run
    repeats: int = 1  # runs made; these numbers are the fastest one's
    note: str = ""
    error: str = ""


# A few lines of Python between the bench and each child: it pins the child to its CPUs,
# starts it, and reports the child's own peak RSS. Started straight from this (large) process,
# the child's ru_maxrss would include this process's memory: Linux records the pre-exec
# memory's high-water mark in the child's maxrss at exec time.
LAUNCHER = """
import os, sys
cpus, report, cmd = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
allowed = sorted(os.sched_getaffinity(0))
os.sched_setaffinity(0, set(allowed[:cpus]) if cpus else set(allowed))
pid = os.posix_spawnp(cmd[0], cmd, os.environ)
_, status, usage = os.wait4(pid, 0)
with open(report, "w") as f:
    f.write(f"{usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def gemm_peak(threads: int, repeat: int = 5) -> dict:
    """fp32 GEMM GFLOP/s on PEAK_SHAPES with ``threads`` threads: onnxruntime (a MatMul graph
    run as the runtime runs models) and numpy; the best of ``repeat`` rounds each."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    flops = sum(2.0 * m * k * n for m, k, n in PEAK_SHAPES)
    inputs, ort_runs = [], []
    for i, (m, k, n) in enumerate(PEAK_SHAPES):
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        inputs.append((a, b))
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["a", "b"], ["c"])],
            f"gemm{i}",
            [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
            [helper.make_tensor_value_info("c", TensorProto.FLOAT, [m, n])],
            initializer=[numpy_helper.from_array(b, "b")],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
        ort_runs.append((session, a))

    def best(run) -> float:
        run()  # warm-up: first-call allocations and thread start
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
        return flops / min(times) / 1e9

    result = {"threads": threads, "shapes": [list(s) for s in PEAK_SHAPES]}
    result["onnxruntime"] = round(best(lambda: [sess.run(None, {"a": a}) for sess, a in ort_runs]), 1)
    result["numpy"] = round(best(lambda: [a @ b for a, b in inputs]), 1)
    result["peak"] = max(result["onnxruntime"], result["numpy"])
    return result


def child_peak(args: argparse.Namespace) -> int:
    print(json.dumps(gemm_peak(args.threads or len(os.sched_getaffinity(0)))))
    return 0


def measure_peak(cpus: int, log) -> dict:
    """gemm_peak in its own process, pinned like the children (torch is not loaded there)."""
    out = subprocess.run(
        [sys.executable, "-S", "-c", LAUNCHER, str(cpus), os.devnull, sys.executable, str(Path(__file__).resolve()), "--child", "peak"],
        capture_output=True, text=True, cwd=REPO,
    )
    if out.returncode:
        log(f"GEMM peak not measured: {out.stderr.strip()[-300:]}")
        return {}
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(cmd: list[str], out_path: Path, cpus: int, timeout: float | None = None) -> dict:
    """Run ``cmd``; timestamps of its first stdout lines, its NDJSON saved, its peak RSS."""
    report = out_path.with_suffix(".rusage")
    report.unlink(missing_ok=True)
    stat0 = cpu_stat()
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-S", "-c", LAUNCHER, str(cpus), str(report), *cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    header = first = None
    frames = 0
    with open(out_path, "wb") as sink:
        for line in proc.stdout:
            sink.write(line)
            if line.startswith(b'{"t"'):
                frames += 1
                if first is None:
                    first = time.monotonic() - start
            elif header is None and line.startswith(b'{"type":"header"'):
                header = time.monotonic() - start
            if timeout and time.monotonic() - start > timeout:
                proc.kill()
                break
    err = proc.stderr.read().decode(errors="replace")
    proc.wait()
    wall = time.monotonic() - start
    stat1 = cpu_stat()
    maxrss, cpu = (float(v) for v in report.read_text().split()) if report.is_file() else (0.0, 0.0)
    # Other people's processes during the run: all CPU time the machine spent, less the child's.
    busy = (stat1[0] - stat0[0]) - (stat1[1] - stat0[1])
    others = max(0.0, busy / os.sysconf("SC_CLK_TCK") - cpu) / (wall * os.cpu_count())
    return {"rc": proc.returncode, "wall": wall, "header": header, "first": first, "frames": frames, "rss_mb": maxrss / 1024,
            "cpu_s": cpu, "others": others, "stderr": err.strip()}  # fmt: skip


def cpu_stat() -> tuple[int, int]:
    """(all, idle) jiffies of the machine since boot."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    return sum(vals[:8]), vals[3] + vals[4]


def frame_tokens(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text().splitlines():
        if line.startswith('{"t"'):
            d = json.loads(line)
            rows.append({k: d[k] for k in TOKENS if k in d})
    return rows


def agreement(a: Path, b: Path) -> dict:
    ta, tb = frame_tokens(a), frame_tokens(b)
    if not ta or len(ta) != len(tb):
        return {"min": None, "note": f"{len(ta)} vs {len(tb)} frames"}
    per = {k: sum(x.get(k) == y.get(k) for x, y in zip(ta, tb)) / len(ta) for k in TOKENS}
    return {"min": min(per.values()), "per_token": {k: round(v, 5) for k, v in per.items()}}


# --- the torch children -------------------------------------------------------------------------


def child_torch(args: argparse.Namespace) -> int:
    """The torch pipeline (see module docstring); NDJSON on stdout through the runtime's writer."""
    import numpy as np
    import torch

    from neural_audio_tokenizer.export.models import load_encoder
    from neural_audio_tokenizer.export.reference import encoder_provenance
    from neural_audio_tokenizer.runtime.inputs.audio import open_path
    from neural_audio_tokenizer.runtime.ndjson import write_ndjson
    from neural_audio_tokenizer.runtime.pack import load_pack
    from neural_audio_tokenizer.runtime.tokenizer import RunnerTokenizer, token_stream

    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)))
    device = torch.device(args.device)
    pack = load_pack(args.pack)
    prov = encoder_provenance(pack)
    sources = {"mert": args.mert, "wav2vec2": args.w2v}
    models, taps = {}, {}
    for name in pack.encoders:
        model = load_encoder(sources[name]).model  # the full model: every layer
        model.set_attn_implementation("sdpa")
        models[name] = model.to(device).eval()
        taps[name] = {out: tuple(span) for out, span in prov[name]["layers"].items()}

    def run(name: str, waveform: np.ndarray) -> dict[str, np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32)).to(device)
        with torch.inference_mode():
            states = models[name](x if x.ndim == 2 else x[None], output_hidden_states=True).hidden_states
            outs = {o: torch.stack(states[a : b + 1]).mean(0) for o, (a, b) in taps[name].items()}
        return {o: (v if x.ndim == 2 else v[0]).float().cpu().numpy() for o, v in outs.items()}

    tok = RunnerTokenizer(pack, run)
    tok.batch = args.batch
    source = open_path(args.audio)
    if args.whole:
        metered = tok.silence.meter(source)
        chunk = whole_file(tok.pipeline, metered, run)
        stream = token_stream(pack, source, iter(tok.chunk_frames(chunk, metered.silent(chunk.first_frame, chunk.n_frames), metered.gate.measured(chunk.first_frame, chunk.n_frames))))
    else:
        stream = tok.stream(source)
    out = open(sys.stdout.fileno(), "w", buffering=1, closefd=False)  # line-buffered: frames as they come
    write_ndjson(stream, out)
    return 0


def whole_file(pipeline, source, run):
    """The original script's way: each encoder once over the whole (resampled, normalized) file, then the
    same pooling to the frame grid. Returns one ChunkFeatures for all frames."""
    import numpy as np
    import soxr

    from neural_audio_tokenizer.runtime.features import ChunkFeatures, frame_count, normalize_input
    from neural_audio_tokenizer.runtime.framing import Segment, pool

    audio = np.concatenate(list(source.blocks()))
    rate = source.info.sample_rate
    n_frames = frame_count(len(audio), rate, pipeline.frame_rate)
    encoded = {}
    for name, enc in pipeline.encoders.items():
        grid = pipeline.grids[name]
        x = audio if enc.sample_rate == rate else soxr.resample(audio, rate, enc.sample_rate, quality="HQ").astype(np.float32)
        x = normalize_input(x) if enc.input_normalization == "zero_mean_unit_variance" else x
        needed = (n_frames * grid.per_frame - 1) * grid.hop + grid.window
        x = np.pad(x, (0, max(0, needed - len(x))))
        encoded[name] = (run(name, x), Segment(0, 0, n_frames, x, len(x), 0))
    streams = {}
    for stream, route in pipeline.routes.items():
        outputs, segment = encoded[route.encoder]
        streams[stream] = pool(outputs[route.output], segment, pipeline.grids[route.encoder].per_frame, route.pooling)
    return ChunkFeatures(0, n_frames, streams)


# --- the benchmark --------------------------------------------------------------------------------


SIMD_FLAGS = ("avx512f", "avx512_bf16", "avx512_vnni", "avx512vl", "avx2", "fma", "avx", "sse4_2", "amx_tile", "asimd", "sve")


def machine() -> dict:
    """The CPU (``lscpu`` model name and its SIMD flags) and the library versions."""
    model, flags = "", []
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        fields = dict(ln.split(":", 1) for ln in out.splitlines() if ":" in ln)
        model = fields.get("Model name", "").strip()
        have = set(fields.get("Flags", "").split())
        flags = [f for f in SIMD_FLAGS if f in have]
    except OSError:
        pass
    import onnxruntime as ort

    info = {"cpu": model, "simd": flags, "cpus_available": len(os.sched_getaffinity(0)), "python": platform.python_version(), "onnxruntime": ort.__version__}
    try:
        from importlib.metadata import version

        info["torch"], info["transformers"] = version("torch"), version("transformers")
    except Exception:
        pass
    return info


def torch_sees_cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def plan(args: argparse.Namespace, lengths: list[int]) -> list[tuple[str, str, int, dict]]:
    """(label, backend, seconds, options) in run order."""
    runs = []
    long = max(lengths)
    for s in lengths:
        if args.device == "cuda":
            runs.append(("runtime cpu", "runtime", s, {"pack": "fp32"}))
            for b in (1, 8, 16):
                runs.append((f"runtime cuda batch {b}", "runtime", s, {"pack": "fp32", "extra": ["--device", "cuda"], "batch": b, "vs": "runtime cpu"}))
            # the faster-but-approximate GPU variant, with its agreement beside it (never a default)
            runs.append(("runtime cuda fp16 batch 8", "runtime", s, {"pack": "fp16", "extra": ["--device", "cuda"], "batch": 8, "vs": "runtime cpu"}))
            if args.torch and torch_sees_cuda():
                runs.append(("torch cuda batch 8", "torch", s, {"pack": "fp32", "device": "cuda", "batch": 8, "vs": "runtime cpu"}))
            continue
        if args.torch and (s < long or not args.skip_long_torch):
            runs.append(("torch", "torch", s, {"pack": "fp32"}))
        if args.torch and s <= 60:
            runs.append(("torch-whole", "torch", s, {"pack": "fp32", "whole": True}))
        runs.append(("runtime", "runtime", s, {"pack": "fp32", "vs": "torch"}))
        if s < long or len(lengths) == 1:
            runs.append(("runtime 1 call x 2 threads", "runtime", s, {"pack": "fp32", "extra": ["--threads", str(args.cpus or 2)], "vs": "runtime"}))
            runs.append(("runtime ort-optimized", "runtime", s, {"pack": "ortopt", "vs": "runtime"}))
            runs.append(("runtime int8", "runtime", s, {"pack": "int8", "vs": "runtime"}))
            if s > 20:
                runs.append(("runtime 20 s chunks", "runtime", s, {"pack": "chunk20", "vs": "runtime"}))
        runs.append(("builtin", "builtin", s, {}))
    return runs


def execute(args, setup, label, backend, seconds, opts, results, outdir: Path, log) -> Run:
    audio = Path(setup["audio"][str(seconds)])
    r = Run(label, backend, seconds)
    out = outdir / f"{label.replace(' ', '_')}.{seconds}s.ndjson"
    if backend == "torch":
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "torch", "--pack", setup["packs"][opts["pack"]],
               "--mert", setup["models"]["mert"], "--w2v", setup["models"]["w2v"], "--audio", str(audio),
               "--device", opts.get("device", "cpu"), "--batch", str(opts.get("batch", 1))]  # fmt: skip
        if opts.get("whole"):
            cmd.append("--whole")
    elif backend == "runtime" and "batch" in opts:  # the API, for an explicit device and batch
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "runtime", "--pack", setup["packs"][opts["pack"]],
               "--audio", str(audio), "--device", "cuda", "--batch", str(opts["batch"])]  # fmt: skip
    elif backend == "runtime":  # the CLI, as a user runs it
        cmd = [sys.executable, "-m", "neural_audio_tokenizer", "--pack", setup["packs"][opts["pack"]], *opts.get("extra", []), str(audio)]
    else:
        cmd = [sys.executable, "-m", "neural_audio_tokenizer", str(audio)]
    m = measure(cmd, out, args.cpus)
    if m["rc"] != 0:
        r.error = f"exit {m['rc']}: {m['stderr'][-300:]}"
        log(f"{label} {seconds}s: FAILED {r.error}")
        return r
    r.wall_s, r.startup_s, r.ttff_s, r.peak_rss_mb, r.frames = m["wall"], m["header"], m["first"], m["rss_mb"], m["frames"]
    r.rtf = seconds / r.wall_s
    if r.startup_s is not None:
        r.rtf_after_startup = seconds / (r.wall_s - r.startup_s)
    if backend != "builtin":
        whole = bool(opts.get("whole"))
        r.gflops = run_flops(setup, opts["pack"], audio, full_models=backend == "torch", whole=whole) / 1e9
        if r.startup_s is not None:
            r.gflop_s = r.gflops / (r.wall_s - r.startup_s)
    r.cpu_s, r.others_load = m["cpu_s"], m["others"]
    vs = opts.get("vs")
    if vs and (vs, seconds) in results:
        ref = results[(vs, seconds)]
        r.agreement[vs] = agreement(out, outdir / f"{ref.label.replace(' ', '_')}.{seconds}s.ndjson")
    results[(label, seconds)] = r
    log(summary_line(r))
    return r


def child_runtime(args: argparse.Namespace) -> int:
    """The runtime through the API with an explicit device and batch (the CUDA runs)."""
    from neural_audio_tokenizer.runtime.ndjson import write_ndjson
    from neural_audio_tokenizer.runtime.tokenizer import Tokenizer

    tok = Tokenizer.load(args.pack, device=args.device, batch=args.batch)
    out = open(sys.stdout.fileno(), "w", buffering=1, closefd=False)
    write_ndjson(tok.stream(args.audio), out)
    return 0


def fmt(v, spec: str, none: str = "-") -> str:
    return none if v is None else format(v, spec)


def summary_line(r: Run) -> str:
    agree = "  ".join(f"vs {k}: {fmt(v.get('min'), '.2%', v.get('note', '-'))}" for k, v in r.agreement.items())
    return (
        f"{r.label:28s} {r.seconds:4d} s  RTF {r.rtf:6.2f}x  (after start-up {fmt(r.rtf_after_startup, '6.2f')}x)  "
        f"TTFF {fmt(r.ttff_s, '5.2f')} s  RSS {r.peak_rss_mb:6.0f} MB  GFLOP/s {fmt(r.gflop_s, '5.0f')}  {agree}  (others' load {r.others_load:.0%})"
    )


def table(runs: list[Run], peak: float | None) -> str:
    head = "| run | audio | RTF | RTF after start-up | vs torch | TTFF s | peak RSS MB | GFLOP | GFLOP/s (% of peak) | min token agreement | others' load |"
    lines = [head, "|" + "---|" * 11]
    torch_rtf = {r.seconds: r.rtf for r in runs if r.label == "torch" and not r.error}
    for r in runs:
        if r.error:
            lines.append(f"| {r.label} | {r.seconds} s | failed: {r.error[:80]} |" + " |" * 8)
            continue
        comparable = r.backend in ("runtime", "torch") and r.label != "torch"  # the same pack's work (not builtin)
        ratio = f"{r.rtf / torch_rtf[r.seconds]:.2f}x" if comparable and r.seconds in torch_rtf else "-"
        gf = "-" if r.gflop_s is None else f"{r.gflop_s:.0f} ({r.gflop_s / peak:.0%})" if peak else f"{r.gflop_s:.0f}"
        agree = ", ".join(f"{fmt(v.get('min'), '.2%', v.get('note', '-'))} vs {k}" for k, v in r.agreement.items()) or "-"
        lines.append(
            f"| {r.label} | {r.seconds} s | {r.rtf:.2f}x | {fmt(r.rtf_after_startup, '.2f')}x | {ratio} | {fmt(r.ttff_s, '.2f')} | "
            f"{r.peak_rss_mb:.0f} | {fmt(r.gflops, '.0f')} | {gf} | {agree} | {r.others_load:.0%} |"
        )
    return "\n".join(lines)


def venv_sizes(work: Path, log) -> dict:
    """Installed size (du) of ``pip install .`` vs ``pip install '.[export]'`` in fresh venvs
    (cached in ``work/sizes.json``; torch comes from the local wheel pip is pointed at)."""
    cache = work / "sizes.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    sizes = {}
    for label, spec in (("runtime", "."), ("export", ".[export]")):
        venv = work / f"venv-{label}"
        if venv.exists():
            shutil.rmtree(venv)
        log(f"creating {venv.name}: pip install '{spec}'")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        wheel = sorted(Path("/opt/wheels").glob("torch-*+cpu-*.whl")) if label == "export" else []
        cmd = [str(venv / "bin" / "pip"), "install", "-q", *map(str, wheel), spec]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
        if proc.returncode != 0:
            sizes[label] = {"error": proc.stderr.strip()[-500:]}
            continue
        du = subprocess.run(["du", "-sm", str(venv)], capture_output=True, text=True).stdout.split()[0]
        sizes[label] = {"mb": int(du)}
        shutil.rmtree(venv)
    cache.write_text(json.dumps(sizes))
    return sizes


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny models and 10 s of audio: checks the harness, measures nothing useful")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    p.add_argument("--sizes", action="store_true", help="only measure the installed size of a runtime venv vs an export venv (slow; cached, then shown with every table)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--cpus", type=int, default=2, help="CPUs each child may use (default 2; 0: all)")
    p.add_argument("--lengths", default=None, help="audio lengths in seconds (default 10,60,600; --quick: 10)")
    p.add_argument("--work", default=None, help="folder for models, audio, packs and outputs (kept; reused by later runs)")
    p.add_argument("--no-torch", dest="torch", action="store_false", help="skip the torch baselines")
    p.add_argument("--skip-long-torch", action="store_true", help="no torch run on the longest file")
    p.add_argument("--repeat", type=int, default=1, help="run each measurement on files up to 60 s this many times, keep the fastest (a busy machine)")
    # internal: the child processes
    p.add_argument("--child", choices=("torch", "runtime", "peak"), help=argparse.SUPPRESS)
    p.add_argument("--pack", help=argparse.SUPPRESS)
    p.add_argument("--mert", help=argparse.SUPPRESS)
    p.add_argument("--w2v", help=argparse.SUPPRESS)
    p.add_argument("--audio", help=argparse.SUPPRESS)
    p.add_argument("--whole", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child == "torch":
        return child_torch(args)
    if args.child == "runtime":
        return child_runtime(args)
    if args.child == "peak":
        return child_peak(args)

    def log(msg: str) -> None:
        print(f"perf: {msg}", file=sys.stderr, flush=True)

    if args.device == "cuda":
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            print(
                f"perf: --device cuda needs onnxruntime-gpu and an NVIDIA GPU; this onnxruntime {ort.__version__} "
                f"offers only {', '.join(ort.get_available_providers())} (pip install onnxruntime-gpu, on a GPU machine)",
                file=sys.stderr,
            )
            return 2
    lengths = [int(x) for x in args.lengths.split(",")] if args.lengths else ([10] if args.quick else [10, 60, 600])
    work = Path(args.work) if args.work else Path(tempfile.gettempdir()) / ("nat-perf-quick" if args.quick else "nat-perf")
    if args.sizes:  # on its own: two fresh venvs, minutes of pip; the answer is kept in WORK/sizes.json
        work.mkdir(parents=True, exist_ok=True)
        sizes = venv_sizes(work, log)
        print(json.dumps(sizes) if args.json else "installed size: " + ", ".join(f"{k} venv {v.get('mb', v)} MB" for k, v in sizes.items()))
        return 0 if all("mb" in v for v in sizes.values()) else 1
    t0 = time.monotonic()
    setup = prepare(work, args.quick, lengths, log)
    log("measuring this machine's fp32 GEMM peak (onnxruntime and numpy, the model's matrix shapes)")
    peak = measure_peak(args.cpus, log)
    outdir = work / "out"
    outdir.mkdir(exist_ok=True)
    results: dict = {}
    runs = []
    for label, backend, seconds, opts in plan(args, lengths):
        tries = [execute(args, setup, label, backend, seconds, opts, results, outdir, log) for _ in range(args.repeat if seconds <= 60 else 1)]
        best = min(tries, key=lambda r: (bool(r.error), r.wall_s))
        best.repeats = len(tries)
        results[(label, seconds)] = best
        runs.append(best)
    report = {
        "machine": machine(),
        "cpus_per_child": args.cpus,
        "device": args.device,
        "quick": args.quick,
        "audio": setup["audio_kind"],
        "gemm_peak": peak,
        "runs": [asdict(r) for r in runs],
        "bench_s": round(time.monotonic() - t0, 1),
    }
    if (work / "sizes.json").is_file():  # from an earlier --sizes
        report["venv_sizes_mb"] = json.loads((work / "sizes.json").read_text())
    (work / "report.json").write_text(json.dumps(report, indent=1))
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        m = report["machine"]
        print(f"machine: {m['cpu']} ({' '.join(m['simd']) or 'no SIMD flags read'}), {m['cpus_available']} CPUs (children pinned to {args.cpus or 'all'}); onnxruntime {m['onnxruntime']}, torch {m.get('torch', '-')}")
        if peak:
            print(f"fp32 GEMM peak, measured now on {peak['threads']} threads: {peak['peak']:.0f} GFLOP/s (onnxruntime {peak['onnxruntime']:.0f}, numpy {peak['numpy']:.0f}); % of peak below is against it")
        print(f"audio: {report['audio']}")
        print(table(runs, peak.get("peak")))
        if "venv_sizes_mb" in report:
            print("installed size: " + ", ".join(f"{k} venv {v.get('mb', '?')} MB" for k, v in report["venv_sizes_mb"].items()))
        print(f"bench took {report['bench_s']:.0f} s")
    return 1 if any(r.error for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
