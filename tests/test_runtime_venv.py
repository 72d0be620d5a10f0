"""A machine without torch: a fresh venv holding only NAT's runtime pulls the tiny pack from
a loopback server and tokenizes with it, byte for byte as the folder it was published from.

The venv is made without pip and without the system's site-packages; its site-packages gets
links to exactly the distributions NAT's runtime requirements need (resolved from their
installed metadata, extras excluded) and to the ``neural_audio_tokenizer`` package. Nothing
is downloaded, and the test first checks that ``import torch`` fails in it.
"""

from __future__ import annotations

import os
import subprocess
import venv
from importlib import metadata
from pathlib import Path

import pytest
from conftest import DATA, REPO
from pack_server import PackServer

from neural_audio_tokenizer.runtime.pack import load_pack

TINY = DATA / "tiny_pack"
GOLDEN = DATA / "tiny_pack.golden.ndjson"


def runtime_distributions() -> list[metadata.Distribution]:
    """NAT's runtime requirements and theirs, recursively, without extras."""
    try:
        from packaging.requirements import Requirement
    except ImportError:
        pytest.skip("the 'packaging' library is needed to read requirements")
    todo, seen, dists = ["neural-audio-tokenizer"], set(), []
    while todo:
        name = todo.pop()
        for text in metadata.requires(name) or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue
            key = req.name.lower().replace("_", "-")
            if key in seen:
                continue
            seen.add(key)
            try:
                dist = metadata.distribution(req.name)
            except metadata.PackageNotFoundError:
                pytest.skip(f"runtime dependency {req.name} is not installed here")
            dists.append(dist)
            todo.append(req.name)
    return dists


def make_runtime_venv(root: Path) -> Path:
    venv.EnvBuilder(system_site_packages=False, with_pip=False, symlinks=True).create(root)
    python = root / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
    for dist in runtime_distributions():
        if dist.files is None:
            pytest.skip(f"{dist.metadata['Name']} has no RECORD: cannot tell its files")
        tops = {f.parts[0] for f in dist.files if f.parts and f.parts[0] != ".." and not f.parts[0].endswith(".pth")}
        for top in tops:
            src = Path(dist.locate_file(top))
            if src.exists() and not (site / top).exists():
                (site / top).symlink_to(src)
    (site / "neural_audio_tokenizer").symlink_to(REPO / "neural_audio_tokenizer")
    return python


def test_runtime_only_venv_pulls_and_tokenizes(tmp_path):
    python = make_runtime_venv(tmp_path / "venv")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "xdg"), "LANG": "C.UTF-8"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([python, *args], capture_output=True, env=env, cwd=REPO, timeout=120)

    probe = run("-c", "import torch")
    assert probe.returncode != 0 and b"No module named 'torch'" in probe.stderr
    assert run("-c", "import transformers").returncode != 0
    assert run("-c", "import numpy, onnxruntime, soundfile, soxr, platformdirs").returncode == 0

    published = tmp_path / "published"
    proc = run("-m", "neural_audio_tokenizer.export.cli", "publish", str(TINY), "--out", str(published), "--repo", "nat-test/tiny-neural")
    assert proc.returncode == 0, proc.stderr  # publishing needs no torch either

    server = PackServer().start()
    try:
        server.add_hub("nat-test/tiny-neural", "main", published / "tiny-neural")
        archive = server.add("/tiny-neural.tar.gz", (published / "tiny-neural.tar.gz").read_bytes())
        env["HF_ENDPOINT"] = server.base
        sha = load_pack(TINY).manifest_sha256
        hub = run("-m", "neural_audio_tokenizer", "packs", "pull", "hf:nat-test/tiny-neural", "--sha256", sha)
        assert hub.returncode == 2 and b"[hub]" in hub.stderr and len(hub.stderr.splitlines()) == 1  # hf: needs the extra
        folder = f"{server.base}/nat-test/tiny-neural/resolve/main/manifest.json"  # the same tree as plain files
        pulled = run("-m", "neural_audio_tokenizer", "packs", "pull", folder, "--name", "tiny-neural", "--sha256", sha)
        assert pulled.returncode == 0, pulled.stderr
        by_url = run("-m", "neural_audio_tokenizer", "packs", "pull", archive, "--name", "by-url", "--sha256", sha)
        assert by_url.returncode == 0, by_url.stderr
    finally:
        server.stop()
    clip = "tests/data/clip.flac"
    for name in ("tiny-neural", "by-url"):
        tokens = run("-m", "neural_audio_tokenizer", "--pack", name, clip)
        assert tokens.returncode == 0, tokens.stderr
        assert tokens.stdout == GOLDEN.read_bytes()
