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

from conftest import DATA, REPO
from pack_server import PackServer
from venv_support import make_venv

from neural_audio_tokenizer.runtime.pack import load_pack

TINY = DATA / "tiny_pack"
GOLDEN = DATA / "tiny_pack.golden.ndjson"


def test_runtime_only_venv_pulls_and_tokenizes(tmp_path):
    python = make_venv(tmp_path / "venv", None)
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
