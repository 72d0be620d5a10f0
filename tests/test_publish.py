"""nat-export publish: the folder to upload, a byte-identical archive, and the model card."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile

import pytest
from conftest import DATA, REPO

from neural_audio_tokenizer.export.publish import hub_license, licenses, publish
from neural_audio_tokenizer.runtime.pack import load_pack

TINY = DATA / "tiny_pack"
MANIFEST_SHA = load_pack(TINY).manifest_sha256


def nat_export(*args: str, block_torch: bool = True) -> subprocess.CompletedProcess:
    """``nat-export`` in a fresh process in which ``import torch`` fails (publish must not need it)."""
    code = "import sys\nif %r: sys.modules['torch'] = None\nfrom neural_audio_tokenizer.export.cli import main\nsys.exit(main(sys.argv[1:]))" % block_torch
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, cwd=REPO, timeout=120)


def test_twice_gives_byte_identical_archives_and_folders(tmp_path):
    a = publish(TINY, tmp_path / "a", repo="nat-test/tiny-neural")
    b = publish(TINY, tmp_path / "b", repo="nat-test/tiny-neural")
    assert a.archive.read_bytes() == b.archive.read_bytes() and a.archive_sha256 == b.archive_sha256
    assert a.archive.name == "tiny-neural.tar.gz" and a.manifest_sha256 == MANIFEST_SHA
    files = sorted(p.name for p in a.folder.iterdir())
    assert files == sorted([p.name for p in TINY.iterdir()] + ["README.md"])
    assert all((a.folder / f).read_bytes() == (b.folder / f).read_bytes() for f in files)
    assert all((a.folder / p.name).read_bytes() == p.read_bytes() for p in TINY.iterdir())
    assert load_pack(a.folder).manifest_sha256 == MANIFEST_SHA


def test_archive_entries_are_sorted_with_fixed_metadata(tmp_path):
    done = publish(TINY, tmp_path)
    raw = done.archive.read_bytes()
    assert raw[:2] == b"\x1f\x8b" and raw[4:8] == b"\0\0\0\0"  # gzip without a timestamp
    with tarfile.open(done.archive) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) and names[0] == "tiny-neural"
    assert set(names[1:]) == {f"tiny-neural/{f}" for f in ["README.md", *(p.name for p in TINY.iterdir())]}
    for m in members:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")
        assert (m.isdir(), m.mode) in ((True, 0o755), (False, 0o644)) and (m.isdir() or m.isreg())


def test_only_the_manifest_and_its_files_are_published(tmp_path):
    pack = shutil.copytree(TINY, tmp_path / "pack")
    (pack / "notes.txt").write_text("private")
    (pack / ".nat-origin.json").write_text("{}")
    clean = publish(TINY, tmp_path / "clean")
    extra = publish(pack, tmp_path / "extra")
    assert extra.archive.read_bytes() == clean.archive.read_bytes()


def test_card_names_every_license_and_the_pinned_pull_line(tmp_path):
    pack = shutil.copytree(TINY, tmp_path / "mert-w2v")
    manifest = json.loads((pack / "manifest.json").read_text())
    manifest["provenance"]["encoders"]["mert"]["model"] = "m-a-p/MERT-v1-95M"
    manifest["provenance"]["encoders"]["wav2vec2"]["model"] = "facebook/wav2vec2-base"
    (pack / "manifest.json").write_text(json.dumps(manifest, indent=2))
    done = publish(pack, tmp_path / "out", repo="someone/mert-w2v", url="https://example.org/packs/tiny-neural.tar.gz")
    card = (done.folder / "README.md").read_text()
    assert card.startswith("---\nlicense: cc-by-nc-4.0\n")
    assert "| m-a-p/MERT-v1-95M | encoder 'mert' (mert.onnx): ONNX conversion of its weights | CC-BY-NC-4.0 |" in card
    assert "| facebook/wav2vec2-base | encoder 'wav2vec2' (wav2vec2.onnx): ONNX conversion of its weights | Apache-2.0 |" in card
    assert "non-commercial use only" in card
    sha = load_pack(pack).manifest_sha256
    assert f"nat packs pull hf:someone/mert-w2v --sha256 {sha}\n" in card
    assert f"nat packs pull https://example.org/packs/tiny-neural.tar.gz --sha256 {sha}\n" in card
    assert "- NAT 1.0.0, `nat-export build --preset mert-w2v`" in card and "seed 0, 25 iterations" in card
    assert "semantic layers 2-3" in card and "corpus: 5 clips" in card


def test_licenses_of_the_builtin_and_of_unknown_models():
    from neural_audio_tokenizer.packs import BUILTIN_DIR

    builtin = load_pack(BUILTIN_DIR / "builtin")
    assert hub_license(licenses(builtin)) == "mit"
    rows = licenses(load_pack(TINY))  # tiny-mert, tiny-w2v: models NAT does not know
    assert hub_license(rows) == "other" and rows[0][2].startswith("unknown")


def test_cli_publish_without_torch(tmp_path):
    proc = nat_export("publish", str(TINY), "--out", str(tmp_path), "--repo", "nat-test/tiny-neural")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert f"nat packs pull hf:nat-test/tiny-neural --sha256 {MANIFEST_SHA}" in out and "tiny-neural.tar.gz  sha256 " in out
    again = nat_export("publish", str(TINY), "--out", str(tmp_path), "--repo", "nat-test/tiny-neural")
    assert again.returncode == 3 and again.stderr.decode().startswith("nat-export: ") and "exists; use --force" in again.stderr.decode()
    assert again.stderr.count(b"\n") == 1
    forced = nat_export("publish", str(TINY), "--out", str(tmp_path), "--force", "--repo", "nat-test/tiny-neural")
    assert forced.returncode == 0 and forced.stdout == proc.stdout


@pytest.mark.parametrize("args, code, text", [
    (["--repo", "no-slash"], 2, "--repo 'no-slash': expected OWNER/NAME"),
    (["--url", "http://example.org/x.tar.gz"], 2, "packs are pulled over https://"),
])  # fmt: skip
def test_cli_usage_errors(tmp_path, args, code, text):
    proc = nat_export("publish", str(TINY), "--out", str(tmp_path / "o"), *args)
    assert proc.returncode == code and text in proc.stderr.decode() and proc.stderr.count(b"\n") == 1
    assert not (tmp_path / "o").exists()


def test_a_damaged_pack_is_not_published(tmp_path):
    pack = shutil.copytree(TINY, tmp_path / "pack")
    with open(pack / "A_codebooks.npy", "ab") as f:
        f.write(b"x")
    proc = nat_export("publish", str(pack), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and b"A_codebooks.npy: sha256 mismatch" in proc.stderr
    assert not (tmp_path / "o").exists()
