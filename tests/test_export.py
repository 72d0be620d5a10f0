"""Export side: MERT/wav2vec2 loading, layer taps, ONNX export, pack build and verification.

Everything runs on tiny seeded random-weight models saved the way the real hub repos store
them (tests/tiny_models.py): real conv strides and kernels (hop 320, window 400), small
widths. No network: models are local folders; nothing is ever downloaded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.export
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnx")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import soundfile as sf  # noqa: E402
from conftest import tone  # noqa: E402
from tiny_models import checkpoint_state_dict, hubert_config, save_tiny_mert, save_tiny_wav2vec2  # noqa: E402

from neural_audio_tokenizer.export import build as build_mod  # noqa: E402
from neural_audio_tokenizer.export.cli import main  # noqa: E402
from neural_audio_tokenizer.export.models import ModelError, conv_geometry, load_encoder  # noqa: E402
from neural_audio_tokenizer.export.onnx_export import export_onnx, layer_taps, onnx_opset, quantize_int8  # noqa: E402
from neural_audio_tokenizer.export.reference import TorchRunner, reference_frames, torch_modules  # noqa: E402
from neural_audio_tokenizer.runtime.pack import load_pack  # noqa: E402
from neural_audio_tokenizer.runtime.tokenizer import Tokenizer  # noqa: E402

FEATURE_TOL = 1e-4
LAYERS = ["--semantic-layers", "2-3", "--acoustic-layers", "1-2"]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("models")
    mert = save_tiny_mert(root / "tiny-mert")
    w2v = save_tiny_wav2vec2(root / "tiny-w2v")
    return {"root": root, "mert": root / "tiny-mert", "w2v": root / "tiny-w2v", "mert_model": mert, "w2v_model": w2v}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Six clips at 22.05 kHz (resampled to both encoders); one is 13 s, so chunks of 10 s
    with 1 s context are crossed during training and verification."""
    folder = tmp_path_factory.mktemp("corpus")
    for i in range(6):
        seconds = 13.0 if i == 3 else 3.0
        sf.write(folder / f"clip{i}.wav", tone(seconds, 22050, freq=180.0 * (1 + 0.37 * i), seed=i), 22050)
    return folder


def build_args(models: dict, corpus: Path, out: Path, *extra: str) -> list[str]:
    return [
        "build", "--preset", "mert-w2v", "--corpus", str(corpus), "--out", str(out),
        "--semantic-model", str(models["mert"]), "--acoustic-model", str(models["w2v"]),
        *LAYERS, "--codebook-size", "16", "--quiet", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def pack(models, corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("packs") / "tiny-mert-w2v"
    assert main(build_args(models, corpus, out)) == 0
    return out


@pytest.fixture
def fresh_clip(tmp_path) -> Path:
    """Audio the codebooks never saw: stereo, 44.1 kHz, 11.3 s."""
    path = tmp_path / "fresh.flac"
    sf.write(path, tone(11.3, 44100, freq=330.0, channels=2, seed=11), 44100)
    return path


def hidden_mean(model, x, first: int, last: int):
    with torch.no_grad():
        states = model(x, output_hidden_states=True).hidden_states
    return torch.stack(states[first : last + 1]).mean(0)


# --- loading ---------------------------------------------------------------------------


def test_conv_geometry_is_320_hop_400_window():
    assert conv_geometry([10, 3, 3, 3, 3, 2, 2], [5, 2, 2, 2, 2, 2, 2]) == (320, 400)


def test_mert_checkpoint_loads_as_hubert(models):
    """config.json with MERT keys + pytorch_model.bin with weight_g/weight_v -> HubertModel
    whose hidden states equal the network the checkpoint was saved from."""
    enc = load_encoder(str(models["mert"]))
    assert (enc.kind, enc.sample_rate, enc.hop, enc.window, enc.num_layers) == ("mert", 24000, 320, 400, 4)
    assert enc.input_normalization == "zero_mean_unit_variance"  # preprocessor_config do_normalize true
    assert list(enc.weights) == ["pytorch_model.bin"] and enc.model_id == "tiny-mert"
    x = torch.randn(1, 24000)
    with torch.no_grad():
        got = enc.model(x, output_hidden_states=True).hidden_states
    want = models["mert_model"](x, output_hidden_states=True).hidden_states
    assert len(got) == 5
    assert max(float((g - w).abs().max()) for g, w in zip(got, want)) < 1e-5
    conv = enc.model.encoder.pos_conv_embed.conv
    assert not hasattr(conv, "parametrizations") and not hasattr(conv, "weight_g")  # weight norm folded


def test_mert_safetensors_prefixed_parametrized_pre_ln(tmp_path):
    """MERT-v1-330M shape (pre-LN, layer-norm convs), safetensors, a ``mert_model.`` prefix
    and the new-style parametrizations keys: all mapped explicitly."""
    original = save_tiny_mert(tmp_path / "m", stable=True, fmt="safetensors", prefix="mert_model.", old_style=False, seed=5)
    enc = load_encoder(str(tmp_path / "m"))
    x = torch.randn(1, 30000)
    for first, last in ((0, 2), (3, 4)):  # 4 = last layer: includes the final LayerNorm
        with torch.no_grad():
            got = layer_taps(enc.model, {"x": (first, last)})(x)[0]
        assert float((got - hidden_mean(original, x, first, last)).abs().max()) < 1e-5


def _tamper(folder: Path, dst: Path, edit) -> Path:
    shutil.copytree(folder, dst)
    state = torch.load(dst / "pytorch_model.bin", weights_only=True)
    edit(state)
    torch.save(state, dst / "pytorch_model.bin")
    return dst


def test_strict_loading_refuses_missing_and_unexpected_keys(models, tmp_path):
    missing = _tamper(models["mert"], tmp_path / "missing", lambda s: s.pop("encoder.layers.1.attention.q_proj.weight"))
    with pytest.raises(ModelError, match=r"1 missing \(e\.g\. encoder\.layers\.1\.attention\.q_proj\.weight\)"):
        load_encoder(str(missing))
    extra = _tamper(models["mert"], tmp_path / "extra", lambda s: s.update({"encoder.layers.9.fc.weight": torch.zeros(2)}))
    with pytest.raises(ModelError, match=r"1 unexpected \(e\.g\. encoder\.layers\.9\.fc\.weight\)"):
        load_encoder(str(extra))
    shaped = _tamper(models["mert"], tmp_path / "shape", lambda s: s.update({"encoder.layer_norm.weight": torch.ones(7)}))
    with pytest.raises(ModelError, match="has shape"):
        load_encoder(str(shaped))


@pytest.mark.parametrize("key", ["feature_extractor_cqt", "deepnorm"])
def test_cqt_and_deepnorm_refused_in_one_line(models, tmp_path, capsys, key):
    folder = tmp_path / key
    shutil.copytree(models["mert"], folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg[key] = True
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match=key):
        load_encoder(str(folder))
    out = tmp_path / "pack"
    rc = main(["build", "--corpus", str(tmp_path), "--out", str(out), "--semantic-model", str(folder), "--acoustic-model", str(models["w2v"]), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and not out.exists()
    assert err.count("\n") == 1 and err.startswith("nat-export: MERT config has " + key) and "Traceback" not in err


def test_hub_cache_folder_records_repo_id_and_commit(tmp_path):
    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = tmp_path / "hub" / "models--m-a-p--MERT-v1-95M" / "snapshots" / commit
    save_tiny_mert(folder)
    enc = load_encoder(str(folder))
    assert (enc.model_id, enc.revision) == ("m-a-p/MERT-v1-95M", commit)


def test_hub_id_goes_through_snapshot_download(tmp_path, monkeypatch):
    """A hub id is resolved to a snapshot folder (faked here: tests never download), fetching
    config, preprocessor config and one weights format, then loaded like any folder."""
    import huggingface_hub

    commit = "fedcba9876543210fedcba9876543210fedcba98"
    snapshot = tmp_path / "models--someone--tiny-mert" / "snapshots" / commit
    save_tiny_mert(snapshot, fmt="safetensors")
    calls = {}

    def list_repo_files(repo, revision=None):
        calls["list"] = (repo, revision)
        return ["README.md", "config.json", "configuration_MERT.py", "modeling_MERT.py", "preprocessor_config.json", "pytorch_model.bin", "model.safetensors"]

    def snapshot_download(repo, revision=None, allow_patterns=None):
        calls["download"] = (repo, revision, allow_patterns)
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "list_repo_files", list_repo_files)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    enc = load_encoder("someone/tiny-mert")
    assert calls["download"] == ("someone/tiny-mert", None, ["config.json", "preprocessor_config.json", "model.safetensors"])
    assert (enc.model_id, enc.revision, enc.kind) == ("someone/tiny-mert", commit, "mert")

    def offline(repo, revision=None):
        raise OSError("We couldn't connect to 'https://huggingface.co'.\nmore")

    def cached(repo, revision=None, allow_patterns=None, local_files_only=False):
        return str(snapshot) if local_files_only else pytest.fail("tried to download")

    monkeypatch.setattr(huggingface_hub, "list_repo_files", offline)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", cached)
    assert load_encoder("someone/tiny-mert").revision == commit  # offline, from the cache

    def not_cached(repo, revision=None, allow_patterns=None, local_files_only=False):
        assert local_files_only  # offline: only the cache is consulted
        raise FileNotFoundError("not in cache")

    monkeypatch.setattr(huggingface_hub, "list_repo_files", offline)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", not_cached)
    with pytest.raises(ModelError, match=r"^model 'someone/tiny-mert': download failed \(We couldn't connect to 'https://huggingface.co'.\)$"):
        load_encoder("someone/tiny-mert")


def test_wav2vec2_pretraining_checkpoint_loads(models):
    enc = load_encoder(str(models["w2v"]))
    assert (enc.kind, enc.sample_rate, enc.hop, enc.window, enc.input_normalization) == ("wav2vec2", 16000, 320, 400, "zero_mean_unit_variance")
    x = torch.randn(1, 16000)
    with torch.no_grad():
        got = layer_taps(enc.model, {"x": (0, 3)})(x)[0]
    assert float((got - hidden_mean(models["w2v_model"], x, 0, 3)).abs().max()) < 1e-5


# --- ONNX export -----------------------------------------------------------------------


@pytest.mark.parametrize("stable", [False, True])
def test_layer_taps_match_transformers_hidden_states(stable):
    from transformers import HubertModel

    torch.manual_seed(3)
    model = HubertModel(hubert_config(layers=4, stable=stable)).eval()
    taps = {"low": (0, 1), "mid": (2, 3), "last": (4, 4)}
    x = torch.randn(2, 20000)
    with torch.no_grad():
        outs = layer_taps(model, taps)(x)
    for out, (first, last) in zip(outs, taps.values()):
        assert float((out - hidden_mean(model, x, first, last)).abs().max()) < 1e-5


def test_onnx_export_truncates_and_matches_torch(models):
    enc = load_encoder(str(models["mert"]))
    wrapper = layer_taps(enc.model, {"semantic": (2, 3), "acoustic": (1, 1)})
    assert len(wrapper.layers) == 3  # layer 4 is never run
    data = export_onnx(wrapper, enc.sample_rate)
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model)
    assert onnx_opset(data) == 17
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert sum(n.op_type == "Softmax" for n in model.graph.node) == 3  # one attention per layer run
    assert [o.name for o in model.graph.output] == ["semantic", "acoustic"]
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for batch, samples in ((1, 24000), (2, 31234), (1, 400)):  # dynamic batch and time
        x = rng.standard_normal((batch, samples)).astype(np.float32)
        got = session.run(None, {"waveform": x})
        with torch.no_grad():
            want = wrapper(torch.from_numpy(x))
        for g, w in zip(got, want):
            assert g.shape == (batch, (samples - 400) // 320 + 1, 32)
            assert np.abs(g - w.numpy()).max() < FEATURE_TOL


def test_optimum_onnx_peer_agrees_with_our_export(models, tmp_path):
    """optimum-onnx exports only last_hidden_state; our exporter with the last layer tapped
    must give the same numbers: an independent check of our graph."""
    main_export = pytest.importorskip("optimum.exporters.onnx").main_export
    main_export(model_name_or_path=str(models["w2v"]), output=str(tmp_path / "optimum"), task="feature-extraction", local_files_only=True)
    peer = ort.InferenceSession(str(tmp_path / "optimum" / "model.onnx"), providers=["CPUExecutionProvider"])
    enc = load_encoder(str(models["w2v"]))
    ours = ort.InferenceSession(export_onnx(layer_taps(enc.model, {"last": (3, 3)}), 16000), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((1, 37000)).astype(np.float32)
    want = peer.run(["last_hidden_state"], {"input_values": x})[0]
    got = ours.run(["last"], {"waveform": x})[0]
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-5


def test_int8_variant_quantizes_matmul_only(models):
    enc = load_encoder(str(models["w2v"]))
    wrapper = layer_taps(enc.model, {"acoustic": (1, 2)})
    fp32 = export_onnx(wrapper, 16000)
    int8 = quantize_int8(fp32)
    ops32 = [n.op_type for n in onnx.load_from_string(fp32).graph.node]
    ops8 = [n.op_type for n in onnx.load_from_string(int8).graph.node]
    assert "MatMulInteger" in ops8 and ops8.count("LayerNormalization") == ops32.count("LayerNormalization") > 0
    x = np.random.default_rng(2).standard_normal((1, 16000)).astype(np.float32)
    a = ort.InferenceSession(fp32).run(None, {"waveform": x})[0]
    b = ort.InferenceSession(int8).run(None, {"waveform": x})[0]
    assert a.shape == b.shape and np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95


# --- build and verify ------------------------------------------------------------------


def test_build_writes_a_verified_pack(pack):
    loaded = load_pack(pack)
    m = loaded.manifest
    assert sorted(loaded.encoders) == ["mert", "wav2vec2"]
    assert loaded.encoders["mert"].sample_rate == 24000 and loaded.encoders["wav2vec2"].sample_rate == 16000
    assert all(e.hop == 320 and e.window == 400 and e.input_normalization == "zero_mean_unit_variance" for e in loaded.encoders.values())
    assert (loaded.frame_rate, loaded.window_s, loaded.context_s) == (5, 10.0, 1.0)
    assert [s.codebooks.shape for s in loaded.streams.values()] == [(4, 16, 32), (4, 16, 32)]
    prov = m["provenance"]
    assert prov["encoders"]["mert"]["model"] == "tiny-mert" and prov["encoders"]["mert"]["layers"] == {"semantic": [2, 3]}
    assert prov["encoders"]["wav2vec2"]["layers_run"] == 2 and prov["encoders"]["wav2vec2"]["onnx"]["opset"] == 17
    assert set(prov["encoders"]["mert"]["weights_sha256"]) == {"pytorch_model.bin"}
    assert {"torch", "transformers", "onnx", "onnxruntime", "numpy"} <= set(prov["libraries"])
    assert prov["corpus"]["held_out_clips"] and len(prov["corpus"]["clips"]) == 6
    ver = m["verification"]
    assert ver["passed"] and ver["min_token_agreement"] >= 0.999 and ver["thresholds"]["min_token_agreement"] == 0.999
    assert all(o["max_abs_diff"] < FEATURE_TOL for e in ver["encoder_outputs"].values() for o in e.values())
    assert "/" not in json.dumps(prov["corpus"]["clips"])  # no absolute paths in the manifest
    assert loaded.glossary is not None and m["glossary"]["file"] == "glossary.json"  # issue #15


def test_runtime_tokens_match_torch_reference(pack, models, fresh_clip):
    loaded = load_pack(pack)
    runtime = list(Tokenizer.load(pack, threads=1).encode(str(fresh_clip)))
    runner = TorchRunner(torch_modules(loaded, {"mert": str(models["mert"]), "wav2vec2": str(models["w2v"])}), threads=1)
    reference = reference_frames(loaded, fresh_clip, runner)
    assert len(runtime) == len(reference) == 57  # ceil(11.3 * 5)
    tokens = [f"{s}{i}" for s in "SA" for i in range(4)]
    agree = {k: np.mean([a.tokens()[k] == b.tokens()[k] for a, b in zip(runtime, reference)]) for k in tokens}
    assert min(agree.values()) >= 0.999, agree
    assert len({f.S for f in runtime}) > 1 and len({f.A for f in runtime}) > 1  # tokens do change


def test_second_build_gives_identical_bytes(pack, models, corpus, tmp_path):
    again = tmp_path / "again"
    assert main(build_args(models, corpus, again)) == 0
    for name in ("S_codebooks.npy", "A_codebooks.npy", "S_normalization.npy", "A_normalization.npy", "mert.onnx", "wav2vec2.onnx"):
        assert (pack / name).read_bytes() == (again / name).read_bytes(), name


def test_build_refuses_to_write_a_pack_that_disagrees(models, corpus, tmp_path, monkeypatch, capsys):
    class Skewed(TorchRunner):  # a reference that no longer matches the exported graphs
        def __call__(self, encoder, waveform):
            return {k: v + 0.5 for k, v in super().__call__(encoder, waveform).items()}

    monkeypatch.setattr(build_mod, "TorchRunner", Skewed)
    out = tmp_path / "bad"
    assert main(build_args(models, corpus, out)) == 1
    err = capsys.readouterr().err
    assert "pack not written" in err and "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no staging left either


def test_build_refuses_existing_output(pack, models, corpus, tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    assert main(build_args(models, corpus, tmp_path / "x", "--force")) == 2
    assert "not a pack folder" in capsys.readouterr().err and (tmp_path / "x" / "keep.txt").exists()


def test_verify_cli_reports_and_uses_manifest_models(pack, models, fresh_clip, monkeypatch, capsys):
    monkeypatch.chdir(models["root"])  # provenance names the folders as tiny-mert / tiny-w2v
    assert main(["verify", str(pack), str(fresh_clip), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "encoder mert.semantic: max abs diff" in out and "encoder wav2vec2.acoustic" in out
    assert "S0 100.0000%" in out and "A3 " in out and "PASS" in out


def test_verify_cli_fails_on_other_model(pack, models, fresh_clip, tmp_path, capsys):
    save_tiny_wav2vec2(tmp_path / "other", seed=99)
    rc = main(["verify", str(pack), str(fresh_clip), "--semantic-model", str(models["mert"]), "--acoustic-model", str(tmp_path / "other")])
    assert rc == 1 and "FAIL" in capsys.readouterr().out


def test_mert_preset_shares_one_encoder(models, corpus, tmp_path):
    out = tmp_path / "mert"
    args = ["build", "--preset", "mert", "--corpus", str(corpus), "--out", str(out), "--semantic-model", str(models["mert"]),
            "--acoustic-model", str(models["mert"]), "--semantic-layers", "3-4", "--acoustic-layers", "0-1",
            "--s-codebook-size", "16", "--a-codebook-size", "8", "--quiet"]  # fmt: skip
    assert main(args) == 0
    loaded = load_pack(out)
    assert list(loaded.encoders) == ["mert"] and loaded.encoders["mert"].outputs == ("semantic", "acoustic")
    assert loaded.streams["S"].codebook_size == 16 and loaded.streams["A"].codebook_size == 8
    assert loaded.manifest["provenance"]["encoders"]["mert"]["layers_run"] == 4


def test_int8_build_records_measured_agreement(models, corpus, tmp_path, capsys):
    out = tmp_path / "int8"
    assert main(build_args(models, corpus, out, "--int8", "--min-agreement", "0")) == 0
    m = load_pack(out).manifest
    assert m["provenance"]["encoders"]["mert"]["onnx"]["precision"].startswith("int8")
    ver = m["verification"]
    assert ver["precision"] == "int8" and ver["thresholds"] == {"min_token_agreement": 0.0, "max_abs_feature_diff": None}
    assert 0.0 <= ver["min_token_agreement"] <= 1.0 and set(ver["token_agreement"]) == {f"{s}{i}" for s in "SA" for i in range(4)}


def test_fp16_build_keeps_normalization_fp32_and_records_agreement(models, corpus, tmp_path):
    out = tmp_path / "fp16"
    assert main(build_args(models, corpus, out, "--fp16")) == 0  # default bar for reduced precision: 90%
    pack = load_pack(out)
    ver = pack.manifest["verification"]
    assert ver["precision"] == "fp16" and ver["thresholds"]["max_abs_feature_diff"] is None
    assert ver["min_token_agreement"] >= 0.90
    graph = onnx.load_from_string(pack.encoders["mert"].model_bytes).graph
    init_types = {t.data_type for t in graph.initializer}
    assert onnx.TensorProto.FLOAT16 in init_types, "weights should be half precision"
    norms = [n for n in graph.node if n.op_type in ("LayerNormalization", "ReduceMean")]
    assert norms, "the tiny model has normalization ops"
    assert main(build_args(models, corpus, tmp_path / "both", "--fp16", "--int8")) == 2


def test_builtin_corpus_when_no_corpus_given(models, tmp_path, monkeypatch):
    if shutil.which("fluidsynth") is None or not Path("/usr/share/sounds/sf2/FluidR3_GM.sf2").is_file():
        pytest.skip("needs fluidsynth and the FluidR3 soundfont")
    monkeypatch.setattr(build_mod, "BUILTIN_CLIPS", 5)
    monkeypatch.setattr(build_mod, "BUILTIN_CLIP_S", 3.0)
    out = tmp_path / "p"
    args = ["build", "--out", str(out), "--semantic-model", str(models["mert"]), "--acoustic-model", str(models["w2v"]), *LAYERS, "--codebook-size", "8", "--quiet"]
    assert main(args) == 0
    assert load_pack(out).manifest["provenance"]["corpus"]["source"] == "builtin"


def test_cli_usage_errors(models, corpus, tmp_path, capsys):
    assert main(["build", "--out", str(tmp_path / "p"), "--semantic-model", str(tmp_path / "nope"), "--corpus", str(corpus), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such folder" in err and "Traceback" not in err
    assert main([*build_args(models, corpus, tmp_path / "p"), "--frame-rate", "7"]) == 2
    assert "frame rate 7 Hz does not fit encoder 'mert'" in capsys.readouterr().err and not (tmp_path / "p").exists()
    assert main(["verify", str(tmp_path / "nope"), "x.wav"]) == 2
    assert capsys.readouterr().err.startswith("nat-export: pack")
    assert main(["eval", "no-such-pack-anywhere"]) == 2  # dispatched to evaluation/main.py
    err = capsys.readouterr().err
    assert err.startswith("nat-export eval: ") and err.count("\n") == 1
    with pytest.raises(SystemExit) as exc:
        main(["build", "--preset", "nope", "--out", "x"])
    assert exc.value.code == 2
