"""Fixtures for the pull and publish tests: a loopback pack server holding the published
tiny pack, an isolated user pack folder, and a guard that fails any connection that is not
to the loopback address."""

from __future__ import annotations

import ipaddress
import shutil
import socket
from pathlib import Path

import pytest
from conftest import DATA
from pack_server import PackServer

TINY = DATA / "tiny_pack"
REPO_ID = "nat-test/tiny-neural"
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Any connection or name lookup beyond the loopback address fails the test."""
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(str(address[0])):
            raise AssertionError(f"a test tried to connect to {address}")
        return real_connect(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _loopback(host if isinstance(host, str) else host.decode()):
            raise AssertionError(f"a test tried to look up {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    """The committed tiny pack as ``nat-export publish`` writes it: folder + archive."""
    from neural_audio_tokenizer.export.publish import publish

    out = tmp_path_factory.mktemp("published")
    publish(TINY, out, repo=REPO_ID)
    return out


@pytest.fixture()
def server(published):
    srv = PackServer().start()
    srv.add_hub(REPO_ID, "main", published / "tiny-neural")
    srv.add("/archives/tiny-neural.tar.gz", (published / "tiny-neural.tar.gz").read_bytes())
    srv.add_folder("/plain/tiny-neural", published / "tiny-neural")
    yield srv
    srv.stop()


@pytest.fixture()
def env(tmp_path, monkeypatch, server) -> dict:
    """An environment whose user pack folder is under tmp_path and whose hub is the server."""
    for var in (*PROXY_VARS, "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "NAT_OFFLINE", "HF_HUB_OFFLINE", "NAT_PACK_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no token stored on this machine is sent
    try:
        from huggingface_hub import constants

        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf" / "token"))  # read when huggingface_hub was imported
    except ImportError:
        pass
    monkeypatch.setenv("HF_ENDPOINT", server.base)
    import os

    return dict(os.environ)


def user_packs(tmp_path: Path) -> Path:
    return tmp_path / "xdg" / "nat" / "packs"


def installed(tmp_path: Path) -> list[str]:
    """Pack folders in the user pack folder (hidden work folders excluded)."""
    root = user_packs(tmp_path)
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) if root.is_dir() else []


def same_files(a: Path, b: Path) -> bool:
    """Every file of the pack at ``a`` (manifest and listed files) is byte-identical in ``b``."""
    names = [p.name for p in a.iterdir() if p.is_file()]
    return all((b / n).read_bytes() == (a / n).read_bytes() for n in names)


def copy_pack(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest
