"""Hostile packs (issue #8): refused before anything runs, with one PackError line (exit 2)
naming the file and the reason. docs/pack-format.md, "Trust model", says what is checked."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import conv_encoder, run_nat, tone, wav_bytes
from onnx import TensorProto, helper, numpy_helper

from neural_audio_tokenizer import Tokenizer
from neural_audio_tokenizer.runtime import session
from neural_audio_tokenizer.errors import PackError
from neural_audio_tokenizer.runtime.onnx_check import OnnxCheckError, inspect_model
from neural_audio_tokenizer.runtime.pack import load_pack


@pytest.fixture
def pack(tiny_pack, tmp_path) -> Path:
    """A private copy of the tiny pack to tamper with."""
    return Path(shutil.copytree(tiny_pack, tmp_path / "pack"))


def manifest(pack: Path) -> dict:
    return json.loads((pack / "manifest.json").read_text())


def save(pack: Path, m: dict) -> None:
    (pack / "manifest.json").write_text(json.dumps(m))


def replace(pack: Path, name: str, data: bytes) -> None:
    """Write ``name`` and update every manifest entry pointing at it (a *consistent* tamper)."""
    (pack / name).write_bytes(data)
    m = manifest(pack)
    digest = hashlib.sha256(data).hexdigest()
    for group in ("encoders", "streams"):
        for spec in m[group].values():
            for entry in [spec] + [v for v in spec.values() if isinstance(v, dict)]:
                if entry.get("file") == name:
                    entry["sha256"] = digest
                    entry.pop("shape", None)
    save(pack, m)


def npy(arr: np.ndarray, **kwargs) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, **kwargs)
    return buf.getvalue()


def refused(pack: Path, pattern: str) -> PackError:
    with pytest.raises(PackError, match=pattern) as info:
        load_pack(pack)
    assert "\n" not in str(info.value)
    return info.value


def refused_in_peak(pack: Path, pattern: str) -> int:
    """Peak bytes Python allocated while the pack was being refused."""
    tracemalloc.start()
    try:
        refused(pack, pattern)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def fast_model() -> onnx.ModelProto:
    return onnx.load_from_string(conv_encoder(16000, 320, 400, 8, 1))


# --- paths ---------------------------------------------------------------------------------


def test_parent_traversal(pack):
    (pack.parent / "outside.onnx").write_bytes((pack / "fast.onnx").read_bytes())
    m = manifest(pack)
    m["encoders"]["fast"]["file"] = "../outside.onnx"
    save(pack, m)
    refused(pack, r"^pack manifest\.json encoders\.fast: '\.\./outside\.onnx' leaves the pack folder$")


def test_absolute_path(pack):
    m = manifest(pack)
    m["streams"]["S"]["codebooks"]["file"] = str(pack / "S_codebooks.npy")
    save(pack, m)
    refused(pack, r"is an absolute path; pack files must be inside the pack$")


def test_symlink_leaving_the_pack(pack):
    outside = pack.parent / "elsewhere.npy"
    outside.write_bytes((pack / "S_codebooks.npy").read_bytes())  # same bytes: the hash matches
    (pack / "S_codebooks.npy").unlink()
    (pack / "S_codebooks.npy").symlink_to(outside)
    refused(pack, r"'S_codebooks\.npy' resolves outside the pack folder \(symlink\?\)$")


def test_manifest_symlink_leaving_the_pack(pack):
    real = pack.parent / "real-manifest.json"
    (pack / "manifest.json").rename(real)
    (pack / "manifest.json").symlink_to(real)
    refused(pack, r"^pack manifest\.json: 'manifest\.json' resolves outside the pack folder")


def test_symlink_inside_the_pack_is_fine(pack):
    (pack / "books").mkdir()
    (pack / "S_codebooks.npy").rename(pack / "books" / "S.npy")
    (pack / "S_codebooks.npy").symlink_to(pack / "books" / "S.npy")
    assert load_pack(pack).streams["S"].levels == 4


def test_missing_file(pack):
    (pack / "A_normalization.npy").unlink()
    refused(pack, r"missing file 'A_normalization\.npy'$")


# --- contents ------------------------------------------------------------------------------


def test_hash_mismatch(pack):
    data = bytearray((pack / "slow.onnx").read_bytes())
    data[-1] ^= 1
    (pack / "slow.onnx").write_bytes(bytes(data))
    refused(pack, r"^pack slow\.onnx: sha256 mismatch \(manifest [0-9a-f]{12}\.\.\., file [0-9a-f]{12}\.\.\.\)$")


def test_two_bad_encoders_name_the_first_in_manifest_order(pack):
    """Encoders are read and hashed at once; the error must not depend on which thread
    finishes first."""
    for name in ("fast.onnx", "slow.onnx"):
        data = bytearray((pack / name).read_bytes())
        data[-1] ^= 1
        (pack / name).write_bytes(bytes(data))
    first = next(iter(manifest(pack)["encoders"].values()))["file"]
    for _ in range(5):
        refused(pack, rf"^pack {first}: sha256 mismatch")
    m = manifest(pack)
    m["encoders"] = dict(reversed(list(m["encoders"].items())))
    save(pack, m)
    refused(pack, rf"^pack {next(iter(m['encoders'].values()))['file']}: sha256 mismatch")


def test_malformed_sha256(pack):
    m = manifest(pack)
    m["encoders"]["slow"]["sha256"] = 42
    save(pack, m)
    refused(pack, r"missing or malformed sha256$")


@pytest.mark.parametrize(
    ("arr", "pattern"),
    [
        (np.zeros((4, 16), "<f4"), r"expected 3 dimensions, found shape \(4, 16\)"),
        (np.zeros((4, 16, 8), "<f8"), r"dtype float64 is not little-endian float32"),
        (np.zeros((4, 16, 8), ">f4"), r"dtype >f4 is not little-endian float32"),
        (np.zeros((4, 16, 8), "<i4"), r"dtype int32 is not little-endian float32"),
        (np.zeros((4, 16, 5), "<f4"), r"shape \[4, 16, 5\] must be \[1\.\.16, 2\.\.65536, 8\]"),
        (np.zeros((4, 1, 8), "<f4"), r"shape \[4, 1, 8\] must be"),
        (np.full((4, 16, 8), np.nan, "<f4"), r"contains NaN or infinite values"),
        (np.full((4, 16, 8), np.inf, "<f4"), r"contains NaN or infinite values"),
    ],
    ids=["2d", "float64", "big-endian", "int32", "wrong-dim", "one-code", "nan", "inf"],
)
def test_wrong_codebooks(pack, arr, pattern):
    replace(pack, "S_codebooks.npy", npy(arr))
    refused(pack, r"^pack S_codebooks\.npy: " + pattern)


def test_declared_shape_must_match(pack):
    m = manifest(pack)
    m["streams"]["A"]["codebooks"]["shape"] = [4, 16, 9]
    save(pack, m)
    refused(pack, r"shape \[4, 16, 8\] differs from manifest \[4, 16, 9\]")


def test_normalization_that_does_not_fit_the_encoder_output(pack):
    replace(pack, "A_normalization.npy", npy(np.ones((2, 6), "<f4")))
    refused(pack, r"^pack A_normalization\.npy: dim 6 does not match fast\.onnx output 'feat' \(dim 8, pooling mean\)$")


def test_pickled_objects(pack):
    replace(pack, "S_codebooks.npy", npy(np.array([{"evil": 1}, None], dtype=object), allow_pickle=True))
    refused(pack, r"^pack S_codebooks\.npy: holds Python objects \(pickle\); refused$")


def test_not_an_npy(pack):
    replace(pack, "S_codebooks.npy", b"PK\x03\x04 this is a zip")
    refused(pack, r"^pack S_codebooks\.npy: not a valid \.npy file")


def test_data_shorter_than_the_header_says(pack):
    replace(pack, "S_codebooks.npy", npy(np.zeros((4, 16, 8), "<f4"))[:-4])
    refused(pack, r"holds 2044 data bytes, its header shape \(4, 16, 8\) needs 2048")


def test_a_billion_entry_codebook_is_refused_from_its_header(pack):
    header = npy(np.zeros((4, 16, 8), "<f4"))
    fake = header.replace(b"(4, 16, 8)", b"(4, 250000000, 1)")[: len(header) - 4 * 16 * 8]
    replace(pack, "S_codebooks.npy", fake)
    assert refused_in_peak(pack, r"shape \(4, 250000000, 1\) is larger than any pack needs; refused") < 20 << 20  # 10^9 float32 would be 4 GB


def test_a_huge_file_is_refused_before_it_is_read(pack):
    path = pack / "S_codebooks.npy"
    with open(path, "r+b") as f:
        f.truncate(8 << 30)  # sparse: 8 GiB on paper, nothing on disk
    assert refused_in_peak(pack, r"^pack S_codebooks\.npy: 8589934592 bytes is larger than any pack needs") < 20 << 20


# --- manifest ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [2, 0, "1", 1.5, True, None])
def test_unknown_format_version(pack, version):
    m = manifest(pack)
    m["format_version"] = version
    save(pack, m)
    refused(pack, r"^pack manifest\.json: format_version .* is not supported \(this NAT reads \[1\]\)$")


def test_truncated_manifest(pack):
    text = (pack / "manifest.json").read_bytes()
    (pack / "manifest.json").write_bytes(text[: len(text) // 2])
    refused(pack, r"^pack manifest\.json: not valid JSON \(truncated\?\): ")


def test_huge_manifest(pack):
    (pack / "manifest.json").write_bytes(b" " * (2 << 20))
    refused(pack, r"^pack manifest\.json: larger than 1 MiB; refused$")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("streams", "S", "encoder"), ["slow"]),  # unhashable where a name belongs
        (("streams", "S", "output"), {"a": 1}),
        (("streams", "S", "pooling"), [1]),
        (("streams", "S", "codebooks"), "S_codebooks.npy"),
        (("streams", "S", "codebooks", "shape"), 7),
        (("encoders", "fast", "outputs"), "feat"),
        (("encoders", "fast", "hop"), 3.5),
        (("chunking",), [2.0, 0.4]),
        (("frame_rate",), 10**100),
    ],
)
def test_type_confusion_is_a_pack_error(pack, path, value):
    m = manifest(pack)
    target = m
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    save(pack, m)
    refused(pack, r"^pack ")


# --- ONNX ----------------------------------------------------------------------------------


def test_custom_operator_domain_is_refused_before_any_session(pack, monkeypatch):
    model = fast_model()
    model.graph.node.append(helper.make_node("Backdoor", ["waveform"], ["unused"], domain="evil.ops"))
    model.opset_import.append(helper.make_opsetid("evil.ops", 1))
    replace(pack, "fast.onnx", model.SerializeToString())
    sessions = []
    monkeypatch.setattr(session.ort, "InferenceSession", lambda *a, **k: sessions.append(a))
    with pytest.raises(PackError, match=r"^pack fast\.onnx: imports custom operator domain 'evil\.ops'; NAT runs only onnxruntime's built-in operators$"):
        Tokenizer.load(pack)
    assert sessions == []


def test_custom_operator_inside_a_subgraph(pack):
    model = fast_model()
    branch = helper.make_graph(
        [helper.make_node("Backdoor", [], ["y"], domain="evil.ops")], "then", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]
    )
    model.graph.initializer.append(numpy_helper.from_array(np.array(True), "cond"))
    model.graph.node.append(helper.make_node("If", ["cond"], ["unused"], then_branch=branch, else_branch=branch))
    replace(pack, "fast.onnx", model.SerializeToString())
    refused(pack, r"^pack fast\.onnx: uses custom operator evil\.ops::Backdoor; NAT runs only")


def test_external_data_is_refused(pack):
    model = fast_model()
    weight = next(t for t in model.graph.initializer if t.name == "w")
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    weight.external_data.add(key="location", value="../../../etc/passwd")
    replace(pack, "fast.onnx", model.SerializeToString())
    refused(pack, r"^pack fast\.onnx: tensor 'w' keeps its data in an external file; pack models must be self-contained$")


def test_model_io_must_match_the_manifest(pack):
    m = manifest(pack)
    m["encoders"]["fast"]["input"] = "audio"
    save(pack, m)
    refused(pack, r"^pack fast\.onnx: has no input 'audio' \(inputs: waveform\)$")
    m["encoders"]["fast"]["input"] = "waveform"
    m["encoders"]["fast"]["outputs"] = ["feat", "secret"]
    save(pack, m)
    refused(pack, r"^pack fast\.onnx: has no output 'secret' \(outputs: feat\)$")


@pytest.mark.parametrize("cut", [0, 3, 40, -20])
def test_truncated_or_foreign_model(pack, cut):
    data = (pack / "fast.onnx").read_bytes()
    replace(pack, "fast.onnx", data[:cut] if cut else b"not a model at all")
    refused(pack, r"^pack fast\.onnx: ")


def test_model_local_functions_are_allowed_and_run(pack, tiny_pack):
    """A domain that only names functions defined in the model is not a custom op library."""
    model = fast_model()
    feat = next(n for n in model.graph.node if n.output[0] == "feat")
    feat.op_type, feat.domain = "Scale", "local.fn"
    del feat.input[1:]
    function = helper.make_function(
        "local.fn", "Scale", ["x"], ["y"], [helper.make_node("Identity", ["x"], ["y"])], [helper.make_opsetid("", 17)]
    )
    model.functions.append(function)
    model.opset_import.append(helper.make_opsetid("local.fn", 1))
    onnx.checker.check_model(model)
    replace(pack, "fast.onnx", model.SerializeToString())
    tok = Tokenizer.load(pack, threads=1)
    assert len(list(tok.encode((tone(1.0, 16000), 16000)))) == 5
    # ...but a function body cannot smuggle a custom op in
    model.functions[0].node.append(helper.make_node("Backdoor", ["x"], ["z"], domain="evil.ops"))
    replace(pack, "fast.onnx", model.SerializeToString())
    refused(pack, r"uses custom operator evil\.ops::Backdoor")


def test_allowed_domains():
    model = fast_model()
    model.graph.node.append(helper.make_node("Gelu", ["waveform"], ["g"], domain="com.microsoft"))
    model.graph.node.append(helper.make_node("LabelEncoder", ["waveform"], ["l"], domain="ai.onnx.ml"))
    model.opset_import.extend([helper.make_opsetid("com.microsoft", 1), helper.make_opsetid("ai.onnx.ml", 3)])
    info = inspect_model(model.SerializeToString())
    assert info.opset_domains == {"", "com.microsoft", "ai.onnx.ml"}


def test_inspect_reads_what_onnx_reads():
    data = conv_encoder(22050, 441, 882, 8, 2, outputs=("a", "b"))
    info = inspect_model(data)
    model = onnx.load_from_string(data)
    assert info.ir_version == model.ir_version
    assert list(info.inputs) == [i.name for i in model.graph.input]
    assert list(info.outputs) == ["a", "b"]
    assert info.inputs["waveform"].shape == ("batch", "samples") and info.inputs["waveform"].elem_type == 1
    assert info.outputs["a"].shape == ("batch", "frames", 8)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (hand-made: protobuf itself refuses deep nesting)."""
    length = len(payload)
    varint = b""
    while True:
        byte, length = length & 0x7F, length >> 7
        varint += bytes([byte | (0x80 if length else 0)])
        if not length:
            break
    return bytes([number << 3 | 2]) + varint + payload


def test_deeply_nested_subgraphs_are_refused():
    graph = b""
    for _ in range(80):  # GraphProto.node -> NodeProto.attribute -> AttributeProto.g -> GraphProto
        graph = _field(1, _field(4, b"If") + _field(5, _field(1, b"then_branch") + _field(6, graph)))
    model = bytes([1 << 3, 8]) + _field(7, graph)  # ir_version 8, graph
    with pytest.raises(OnnxCheckError, match="nested deeper than 64"):
        inspect_model(model)


def test_the_runtime_needs_no_onnx_package(pack):
    import subprocess
    import sys

    code = (
        "import sys\n"
        "sys.modules['onnx'] = None  # any import of onnx now fails\n"
        "from neural_audio_tokenizer.runtime.pack import load_pack\n"
        f"load_pack({str(pack)!r})\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, cwd=Path(__file__).parents[1])
    assert proc.stdout.strip() == b"ok", proc.stderr.decode()


# --- the CLI -------------------------------------------------------------------------------


def test_cli_refuses_a_hostile_pack_with_one_line_and_exit_2(pack, tmp_path):
    model = fast_model()
    model.graph.node.append(helper.make_node("Backdoor", ["waveform"], ["unused"], domain="evil.ops"))
    replace(pack, "fast.onnx", model.SerializeToString())
    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav_bytes(tone(0.5, 16000), 16000))
    out = tmp_path / "out"
    proc = run_nat("--pack", str(pack), "--output-dir", str(out), str(clip))
    assert proc.returncode == 2 and proc.stdout == b""
    assert proc.stderr.decode() == "nat: pack fast.onnx: uses custom operator evil.ops::Backdoor; NAT runs only onnxruntime's built-in operators\n"
    assert not out.exists()  # refused before any output was opened
