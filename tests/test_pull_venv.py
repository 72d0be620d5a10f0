"""A machine without torch, with and without the ``[hub]`` extra: the tiny pack pulled from a
loopback mirror tokenizes to its golden file, and without the extra an ``hf:`` pull says
what to install while a URL pull still works.

Each venv is made without pip and without the system's site-packages (as in
tests/test_runtime_venv.py): its site-packages gets links to exactly the distributions the
runtime needs, plus, for the first, those the ``[hub]`` extra of pyproject.toml needs.
Nothing is downloaded.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import DATA, REPO
from pack_server import PackServer
from venv_support import make_venv

from neural_audio_tokenizer.runtime.pack import load_pack

TINY = DATA / "tiny_pack"
GOLDEN = DATA / "tiny_pack.golden.ndjson"
REPO_ID = "nat-test/tiny-neural"


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    from neural_audio_tokenizer.export.publish import publish

    published = tmp_path_factory.mktemp("published")
    publish(TINY, published, repo=REPO_ID)
    server = PackServer().start()
    server.add_hub(REPO_ID, "main", published / "tiny-neural")
    server.add("/tiny-neural.tar.gz", (published / "tiny-neural.tar.gz").read_bytes())
    yield server
    server.stop()


def runner(python: Path, home: Path, endpoint: str):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "XDG_DATA_HOME": str(home / "xdg"), "HF_HOME": str(home / "hf"), "LANG": "C.UTF-8", "HF_ENDPOINT": endpoint}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([python, *args], capture_output=True, env=env, cwd=REPO, timeout=180)

    return run


def test_hub_extra_venv_pulls_from_a_loopback_mirror_and_tokenizes(tmp_path, mirror):
    run = runner(make_venv(tmp_path / "venv", "hub"), tmp_path / "home", mirror.base)
    assert b"No module named 'torch'" in run("-c", "import torch").stderr
    assert run("-c", "import huggingface_hub").returncode == 0
    pulled = run("-m", "neural_audio_tokenizer", "packs", "pull", f"hf:{REPO_ID}", "--sha256", load_pack(TINY).manifest_sha256)
    assert pulled.returncode == 0, pulled.stderr
    tokens = run("-m", "neural_audio_tokenizer", "--pack", "tiny-neural", "tests/data/clip.flac")
    assert tokens.returncode == 0, tokens.stderr
    assert tokens.stdout == GOLDEN.read_bytes()


def test_runtime_only_venv_names_the_extra_and_still_pulls_urls(tmp_path, mirror):
    run = runner(make_venv(tmp_path / "venv", None), tmp_path / "home", mirror.base)
    assert run("-c", "import huggingface_hub").returncode != 0
    hub = run("-m", "neural_audio_tokenizer", "packs", "pull", f"hf:{REPO_ID}")
    assert hub.returncode == 2 and hub.stderr.count(b"\n") == 1, hub.stderr
    assert b"pip install 'neural-audio-tokenizer[hub]'" in hub.stderr
    by_url = run("-m", "neural_audio_tokenizer", "packs", "pull", mirror.url("/tiny-neural.tar.gz"), "--sha256", load_pack(TINY).manifest_sha256)
    assert by_url.returncode == 0, by_url.stderr
    tokens = run("-m", "neural_audio_tokenizer", "--pack", "tiny-neural", "tests/data/clip.flac")
    assert tokens.returncode == 0 and tokens.stdout == GOLDEN.read_bytes()
