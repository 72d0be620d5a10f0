"""The committed tiny neural pack (tests/data/tiny_pack, made by tests/data/make_tiny_pack.py).

The golden test needs only the runtime: ``nat`` must print the committed NDJSON byte for
byte. The reference test rebuilds the tiny models from their seeds (when this torch gives the
same weights, checked by the sha256 the manifest recorded) and checks that the torch
reference pipeline gives the golden tokens too.
"""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from conftest import DATA, REPO, run_nat

PACK = DATA / "tiny_pack"
GOLDEN = DATA / "tiny_pack.golden.ndjson"


def golden_clip() -> str:
    header = json.loads(GOLDEN.read_text().splitlines()[0])
    return header["source"]["name"]  # a path relative to the repo root, as given to nat


def test_tiny_pack_loads_and_is_small():
    from neural_audio_tokenizer.runtime.pack import load_pack

    pack = load_pack(PACK)
    assert sorted(pack.encoders) == ["mert", "wav2vec2"] and pack.manifest["verification"]["passed"]
    assert sum(p.stat().st_size for p in PACK.iterdir()) < 1_000_000


def test_tiny_pack_golden_ndjson_byte_for_byte():
    proc = run_nat("--pack", str(PACK.relative_to(REPO)), golden_clip(), check=True)
    assert proc.stdout == GOLDEN.read_bytes()


@pytest.mark.export
def test_torch_reference_gives_the_golden_tokens(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tiny_models import save_tiny_mert, save_tiny_wav2vec2

    from neural_audio_tokenizer.export.reference import TorchRunner, reference_frames, torch_modules, write_reference_ndjson
    from neural_audio_tokenizer.runtime.pack import load_pack

    pack = load_pack(PACK)
    save_tiny_mert(tmp_path / "tiny-mert", seed=1)
    save_tiny_wav2vec2(tmp_path / "tiny-w2v", seed=2)
    prov = pack.manifest["provenance"]["encoders"]
    for enc, folder in (("mert", "tiny-mert"), ("wav2vec2", "tiny-w2v")):
        for file, digest in prov[enc]["weights_sha256"].items():
            if hashlib.sha256((tmp_path / folder / file).read_bytes()).hexdigest() != digest:
                pytest.skip(f"this torch initializes the tiny {enc} differently ({file} differs)")
    runner = TorchRunner(torch_modules(pack, {"mert": str(tmp_path / "tiny-mert"), "wav2vec2": str(tmp_path / "tiny-w2v")}), threads=1)
    frames = reference_frames(pack, REPO / golden_clip(), runner)
    golden = [json.loads(line) for line in GOLDEN.read_text().splitlines()[1:-1]]
    assert len(frames) == len(golden)
    for frame, line in zip(frames, golden):  # dense lines: every token present
        assert frame.values() == {k: v for k, v in line.items() if k not in ("t", "kf")}
    # and through the runtime's NDJSON writer: the reference's stream is the golden file
    monkeypatch.chdir(REPO)
    out = io.StringIO()
    write_reference_ndjson(pack, golden_clip(), out, runner)
    assert out.getvalue().encode() == GOLDEN.read_bytes()
