"""A hostile server or archive loses nothing and lets nothing in.

Each case is refused with one line, leaves no pack (and no temporary folder) behind, and
never touches a pack already installed under the same name. Connections beyond the loopback
address fail the test (pull_support.loopback_only), so "refused before connecting" is checked.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from conftest import run_nat
from pull_support import REPO_ID, TINY, env, installed, loopback_only, published, same_files, server, user_packs  # noqa: F401

from neural_audio_tokenizer.packs import pull as pullmod
from neural_audio_tokenizer.packs.archive import ArchiveError, Limits, _Counted, extract_archive
from neural_audio_tokenizer.runtime.pack import load_pack

HF = f"hf:{REPO_ID}"


def leftovers(tmp_path: Path) -> list[str]:
    """Hidden work folders (.pull-*, .old-*) left in the user pack folder."""
    root = user_packs(tmp_path)
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".") and p.name not in (".partial", ".lock")) if root.is_dir() else []


def kept_parts(tmp_path: Path) -> set[str]:
    """Files of the tiny pack whose download is kept in .partial (each checked to hold exactly that file)."""
    by_hash = {hashlib.sha256(data).hexdigest(): name for name, data in tiny_files().items()}
    kept = set()
    for part in (user_packs(tmp_path) / ".partial").glob("*.part"):
        name = by_hash[part.name[: -len(".part")]]
        assert part.read_bytes() == (TINY / name).read_bytes()
        kept.add(name)
    return kept


def tiny_files() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in TINY.iterdir()}


def rehashed(files: dict[str, bytes], **changes: bytes) -> dict[str, bytes]:
    """The pack's files with some replaced and the manifest's hashes updated to match."""
    files = {**files, **changes}
    manifest = json.loads(files["manifest.json"])
    for spec in [*manifest["encoders"].values(), *[v for s in manifest["streams"].values() for v in s.values() if isinstance(v, dict)]]:
        spec["sha256"] = hashlib.sha256(files[spec["file"]]).hexdigest()
    files["manifest.json"] = json.dumps(manifest, indent=2).encode()
    return files


def manifest_with(**fields) -> dict[str, bytes]:
    files = tiny_files()
    manifest = json.loads(files["manifest.json"])
    manifest.update(fields)
    files["manifest.json"] = json.dumps(manifest).encode()
    return files


@pytest.fixture()
def existing(env, tmp_path):
    """An older version of the tiny pack (another manifest) installed under the same name
    before the hostile pull, to check that it survives untouched."""
    older = tmp_path / "older"
    older.mkdir()
    for name, data in manifest_with(description="an older version").items():
        (older / name).write_bytes(data)
    pack = pullmod.pull(str(older)).path
    before = {p.name: p.read_bytes() for p in pack.iterdir()}
    yield pack
    assert {p.name: p.read_bytes() for p in pack.iterdir()} == before
    load_pack(pack)
    assert installed(tmp_path) == ["tiny-neural"] and leftovers(tmp_path) == []


def refused(match: str, source: str, **kwargs) -> str:
    with pytest.raises(pullmod.PackError, match=match) as info:
        pullmod.pull(source, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.startswith("pull ")
    return message


# --- the server lies ---------------------------------------------------------------------


def test_file_whose_hash_differs(existing, server, tmp_path):
    bad = bytearray((TINY / "S_codebooks.npy").read_bytes())
    bad[-1] ^= 1
    server.add_hub(REPO_ID, "main", {**tiny_files(), "S_codebooks.npy": bytes(bad)})
    want = hashlib.sha256((TINY / "S_codebooks.npy").read_bytes()).hexdigest()[:12]
    refused(rf"S_codebooks.npy: sha256 [0-9a-f]{{12}}\.\.\. is not the manifest's {want}\.\.\.; refused, nothing installed", HF)
    assert kept_parts(tmp_path) == {"mert.onnx", "wav2vec2.onnx", "S_normalization.npy"}  # fetched before it and verified: kept for the next try; the wrong one is not


def test_manifest_whose_hash_differs_from_the_pin(existing, server):
    server.add_hub(REPO_ID, "main", manifest_with(description="changed"))
    refused("not the pinned", HF, sha256=load_pack(TINY).manifest_sha256)


def test_body_shorter_than_declared(existing, server, tmp_path):
    server.trick(f"/{REPO_ID}/resolve/main/wav2vec2.onnx", "short")
    refused(r"wav2vec2.onnx: the server sent \d+ of 145486 bytes; run the same command again to resume", HF)


def test_body_longer_than_declared(existing, server, tmp_path):
    """Past Content-Length nothing is read; a 206 overrunning its Content-Range is refused."""
    server.trick(f"/{REPO_ID}/resolve/main/mert.onnx", "long")
    assert same_files(TINY, pullmod.pull(HF, name="other").path)
    pullmod.remove("other")
    want = json.loads((TINY / "manifest.json").read_text())["encoders"]["wav2vec2"]["sha256"]
    (user_packs(tmp_path) / ".partial" / f"{want}.part").write_bytes((TINY / "wav2vec2.onnx").read_bytes()[:1000])
    server.trick(f"/{REPO_ID}/resolve/main/wav2vec2.onnx", "range-long")
    refused("wav2vec2.onnx: Content-Range and Content-Length disagree; refused", HF)


def test_body_without_length_stops_at_the_limit(existing, server, tmp_path, monkeypatch):
    monkeypatch.setattr(pullmod, "MAX_NPY_BYTES", 1 << 20)
    server.trick(f"/{REPO_ID}/resolve/main/A_normalization.npy", "endless")
    refused("A_normalization.npy: more than the 1048576 bytes a pack file may have; refused", HF)
    assert "A_normalization.npy" not in kept_parts(tmp_path)


def test_declared_size_over_the_limit_is_refused_before_reading(existing, server, monkeypatch):
    server.trick(f"/{REPO_ID}/resolve/main/mert.onnx", "huge-length")
    refused(r"mert.onnx: 1000000000000 bytes declared, more than the \d+ a pack file may have; refused", HF)
    server.trick(f"/{REPO_ID}/resolve/main/manifest.json", "huge-length")
    refused("manifest.json: 1000000000000 bytes declared, more than 1048576; refused", HF)


def test_oversized_manifest(existing, server):
    server.add_hub(REPO_ID, "main", {**tiny_files(), "manifest.json": b" " * (1 << 20) + b"{}"})
    server.trick(f"/{REPO_ID}/resolve/main/manifest.json", "no-length")
    refused("manifest.json: more than 1048576 bytes; refused", HF)


@pytest.mark.parametrize("kind, match", [("redirect-loop", "redirect loop at http://127.0.0.1:"), ("redirect-chain", "more than 10 redirects from")])
def test_redirect_loops(existing, server, kind, match):
    server.trick(f"/{REPO_ID}/resolve/main/manifest.json", kind)
    refused(match, HF)


def test_plain_http_beyond_loopback_is_refused_without_connecting(existing, server, monkeypatch):
    refused("refused plain http:// to 192.0.2.7: only the loopback address may be reached without TLS", "http://192.0.2.7/pack.tar.gz")
    refused("refused plain http:// to hub.example", "http://hub.example/x/manifest.json")
    server.trick(f"/{REPO_ID}/resolve/main/mert.onnx", "redirect", "http://192.0.2.7/mert.onnx")  # a downgrade mid-way
    refused("refused plain http:// to 192.0.2.7", HF)
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.example")
    refused("refused plain http:// to mirror.example", HF)
    # pull_support.loopback_only would have failed the test on any connection or lookup


@pytest.mark.parametrize("file", ["../evil.onnx", "/etc/passwd", "sub/../../x.npy", "a\\b.npy"])
def test_manifest_naming_a_file_outside_the_pack(existing, server, file):
    files = tiny_files()
    manifest = json.loads(files["manifest.json"])
    manifest["encoders"]["mert"]["file"] = file
    server.add_hub(REPO_ID, "main", {**files, "manifest.json": json.dumps(manifest).encode()})
    refused("is not a plain relative name inside the pack; refused", HF)


@pytest.mark.parametrize("name", ["../../evil", "a/b", ".hidden", "", "builtin", "x" * 101])
def test_pack_name_leaving_the_pack_folder(existing, server, tmp_path, name):
    server.add_hub(REPO_ID, "main", manifest_with(name=name))
    refused("is not a plain folder name|is the pack inside NAT", HF)
    with pytest.raises(pullmod.PackError, match="is not a plain folder name|is the pack inside NAT"):
        pullmod.pull(str(TINY), name=name)


def test_pack_the_loader_refuses_is_not_installed(existing, server):
    """Every hash right, but a pickled array: the loader's own checks run before install."""
    buf = io.BytesIO()
    np.save(buf, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    server.add_hub(REPO_ID, "main", rehashed(tiny_files(), **{"S_normalization.npy": buf.getvalue()}))
    refused(r"pack S_normalization.npy: holds Python objects \(pickle\); refused; nothing installed", HF)


def test_failed_rename_puts_the_old_pack_back(existing, tmp_path, monkeypatch, published):
    real = os.replace

    def flaky(src, dst):
        if Path(dst).name == "tiny-neural" and ".pull-" in str(src):
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(pullmod.os, "replace", flaky)
    with pytest.raises(pullmod.OutputError, match="cannot install tiny-neural in .*: No space left on device; nothing changed"):
        pullmod.pull(str(published / "tiny-neural.tar.gz"))


def test_existing_folder_that_is_not_a_pack_is_never_replaced(env, tmp_path):
    mine = user_packs(tmp_path) / "tiny-neural"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")
    refused("exists and is not a pack; remove it or use --name", str(TINY))
    assert (mine / "notes.txt").read_text() == "mine"


# --- the archive lies ----------------------------------------------------------------------


def make_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], gz: bool = True) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    path.write_bytes(gzip.compress(buf.getvalue()) if gz else buf.getvalue())
    return path


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info


def pack_members(top: str = "tiny-neural") -> list[tuple[tarfile.TarInfo, bytes | None]]:
    return [(entry(f"{top}/{name}"), data) for name, data in sorted(tiny_files().items())]


HOSTILE = {
    "absolute path": ([(entry("/tmp/evil"), b"x")], "absolute path; refused"),
    "dot-dot": ([(entry("tiny-neural/../../evil"), b"x")], "'..' leaves the archive; refused"),
    "symlink": ([(entry("tiny-neural/mert.onnx", tarfile.SYMTYPE, "/etc/passwd"), None)], "symbolic link; a pack holds only files and folders"),
    "hard link": ([(entry("tiny-neural/mert.onnx", tarfile.LNKTYPE, "/etc/passwd"), None)], "hard link; a pack holds only files and folders"),
    "device": ([(entry("tiny-neural/null", tarfile.CHRTYPE), None)], "device; a pack holds only files and folders"),
    "fifo": ([(entry("tiny-neural/fifo", tarfile.FIFOTYPE), None)], "FIFO; a pack holds only files and folders"),
    "twice": ([(entry("tiny-neural/a.npy"), b"1"), (entry("tiny-neural/a.npy"), b"2")], "appears twice; refused"),
    "backslash": ([(entry("tiny-neural\\..\\evil"), b"x")], "not a plain relative name; refused"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_entries(existing, tmp_path, case):
    members, match = HOSTILE[case]
    archive = make_tar(tmp_path / "evil.tar.gz", pack_members()[:2] + members + pack_members()[2:])
    refused(match, str(archive))
    assert not (tmp_path / "evil").exists() and not Path("/tmp/evil").exists()


def test_archive_size_limits(existing, tmp_path):
    bomb = make_tar(tmp_path / "bomb.tar.gz", [*pack_members(), (entry("tiny-neural/zeros"), b"\0" * (3 << 20))])
    assert bomb.stat().st_size < 400_000  # 3 MiB of zeros compress to almost nothing
    refused(r"archive entry 'tiny-neural/zeros': 3145728 bytes, over the 2097152-byte limit; refused", str(bomb), limits=Limits(max_file_bytes=2 << 20))
    refused(r"archive: more than 2097152 bytes of files; refused", str(bomb), limits=Limits(max_total_bytes=2 << 20))
    refused(r"archive: more than 5 entries; refused", str(make_tar(tmp_path / "many.tar.gz", pack_members())), limits=Limits(max_entries=5))


def test_oversized_metadata_header_is_refused_before_it_is_read(existing, tmp_path):
    info = entry("tiny-neural/x.npy")
    info.pax_headers = {"comment": "y" * 200_000}
    refused("a 2000\\d\\d-byte metadata header; refused", str(make_tar(tmp_path / "pax.tar.gz", [(info, b"1")])))


def test_decompressed_stream_is_counted():
    stream = _Counted(io.BytesIO(b"\0" * 5000), 4096, "archive")
    with pytest.raises(ArchiveError, match="more than 4096 bytes once decompressed; refused"):
        io.BufferedReader(stream, 1024).read()


@pytest.mark.parametrize("content, match", [
    (b"this is not an archive at all" * 40, "archive: not a readable tar archive"),
    (b"\x1f\x8b" + b"\0" * 100, "archive: (not a readable tar archive|cannot be read)"),
])  # fmt: skip
def test_not_an_archive(existing, tmp_path, content, match):
    path = tmp_path / "junk.tar.gz"
    path.write_bytes(content)
    refused(match, str(path))


def test_truncated_archive_and_archive_without_a_pack(existing, published, tmp_path):
    whole = (published / "tiny-neural.tar.gz").read_bytes()
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    refused("archive", str(cut))
    refused("the archive holds no pack", str(make_tar(tmp_path / "none.tar.gz", [(entry("readme.txt"), b"hello")])))


def test_plain_and_xz_archives_with_the_pack_at_the_top_are_fine(env, tmp_path):
    plain = make_tar(tmp_path / "top.tar", [(entry(name), data) for name, data in sorted(tiny_files().items())], gz=False)
    assert same_files(TINY, pullmod.pull(str(plain), name="plain").path)
    xz = tmp_path / "tiny.tar.xz"
    with tarfile.open(xz, "w:xz") as tar:
        tar.add(TINY, arcname="tiny-neural")
    assert same_files(TINY, pullmod.pull(str(xz), name="xz").path)


def test_hostile_archive_over_http_is_discarded(existing, server, tmp_path):
    archive = make_tar(tmp_path / "evil.tar.gz", [*pack_members(), (entry("tiny-neural/../../evil"), b"x")])
    url = server.add("/archives/evil.tar.gz", archive.read_bytes())
    refused("'..' leaves the archive; refused", url)
    assert not list((user_packs(tmp_path) / ".partial").iterdir())  # not kept for a "resume"


def test_extract_writes_only_plain_files(tmp_path):
    archive = make_tar(tmp_path / "ok.tar.gz", [(entry("p", tarfile.DIRTYPE), None), *pack_members("p")])
    dest = tmp_path / "out"
    dest.mkdir()
    names = extract_archive(archive, dest)
    assert sorted(names) == sorted(f"p/{n}" for n in tiny_files())
    assert all(oct((dest / n).stat().st_mode & 0o777) == "0o644" for n in names)


def test_cli_refusals_are_one_line_with_exit_2(env, server, tmp_path):
    archive = make_tar(tmp_path / "evil.tar.gz", [(entry("/etc/cron.d/evil"), b"x")])
    for source in (str(archive), "http://192.0.2.7/x.tar.gz"):
        proc = run_nat("packs", "pull", source, env=env)
        assert proc.returncode == 2 and proc.stderr.count(b"\n") == 1 and proc.stderr.startswith(b"nat: packs: pull "), proc.stderr
    assert installed(tmp_path) == []
