"""nat packs pull / remove against a loopback server: hub and URL sources, pins, resume,
offline mode, origins, and a pulled pack tokenizing exactly like the folder it came from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import DATA, REPO, run_nat
from pull_support import REPO_ID, TINY, env, installed, loopback_only, published, same_files, server, user_packs  # noqa: F401

from neural_audio_tokenizer.packs import pull as pullmod
from neural_audio_tokenizer.runtime.pack import load_pack

MANIFEST_SHA = load_pack(TINY).manifest_sha256
GOLDEN = DATA / "tiny_pack.golden.ndjson"


def test_pull_from_the_hub_installs_the_published_bytes(env, server, tmp_path):
    result = pullmod.pull(f"hf:{REPO_ID}")
    dest = user_packs(tmp_path) / "tiny-neural"
    assert (result.action, result.name, result.path, result.manifest_sha256) == ("installed", "tiny-neural", dest, MANIFEST_SHA)
    assert same_files(TINY, dest) and installed(tmp_path) == ["tiny-neural"]
    assert sorted(p.name for p in dest.iterdir()) == sorted([p.name for p in TINY.iterdir()] + [".nat-origin.json"])  # no README, no leftovers
    origin = json.loads((dest / ".nat-origin.json").read_text())
    assert origin == {"source": f"hf:{REPO_ID}@main", "kind": "hf", "revision": "main", "commit": "c0ffee" * 6 + "beef", "manifest_sha256": MANIFEST_SHA, "pinned": False}
    fetched = [s.path.rsplit("/", 1)[1] for s in server.seen]
    assert fetched[0] == "manifest.json" and sorted(fetched[1:]) == sorted(p.name for p in TINY.iterdir() if p.name != "manifest.json")
    assert not list((user_packs(tmp_path) / ".partial").iterdir())  # nothing kept once installed


def test_pulled_pack_tokenizes_byte_identically_to_its_source(env, server, tmp_path):
    """The committed golden stream is what `nat --pack tests/data/tiny_pack` prints."""
    proc = run_nat("packs", "pull", f"hf:{REPO_ID}", "--sha256", MANIFEST_SHA, env=env)
    assert proc.returncode == 0, proc.stderr
    assert b"installed tiny-neural" in proc.stdout and proc.stderr == b""
    clip = json.loads(GOLDEN.read_text().splitlines()[0])["source"]["name"]
    pulled = run_nat("--pack", "tiny-neural", clip, env=env, check=True)
    assert pulled.stdout == GOLDEN.read_bytes()
    listed = run_nat("packs", "--json", env=env, check=True)
    entry = next(json.loads(x) for x in listed.stdout.splitlines() if json.loads(x)["name"] == "tiny-neural")
    assert entry["origin"] == "user" and entry["pulled"]["source"] == f"hf:{REPO_ID}@main" and entry["pulled"]["pinned"] is True
    table = run_nat("packs", env=env, check=True).stdout.decode().splitlines()
    assert table[0].split()[-1] == "SOURCE"
    assert any(row.startswith("tiny-neural ") and row.endswith(f"hf:{REPO_ID}@main (c0ffeec0ffee) pinned {MANIFEST_SHA[:12]}") for row in table)


@pytest.mark.parametrize("kind", ["archive", "folder-url"])
def test_pull_by_url(env, server, tmp_path, kind):
    url = server.url("/archives/tiny-neural.tar.gz") if kind == "archive" else server.url("/plain/tiny-neural/manifest.json")
    result = pullmod.pull(url, sha256=MANIFEST_SHA.upper())
    assert result.action == "installed" and result.origin["source"] == url and result.origin["pinned"] is True
    assert same_files(TINY, result.path) and load_pack(result.path).manifest_sha256 == MANIFEST_SHA
    assert not [p for p in user_packs(tmp_path).iterdir() if p.name.startswith(".") and p.name not in (".partial", ".lock")]
    assert not list((user_packs(tmp_path) / ".partial").iterdir())


def test_pull_local_archive_and_folder_and_name(env, published, tmp_path):
    a = pullmod.pull(str(published / "tiny-neural.tar.gz"), name="from-archive")
    b = pullmod.pull(str(TINY), name="from-folder")
    assert same_files(TINY, a.path) and same_files(TINY, b.path)
    assert installed(tmp_path) == ["from-archive", "from-folder"]
    assert not (user_packs(tmp_path) / ".partial").exists()  # local sources never download


def test_wrong_pin_fetches_nothing_but_the_manifest(env, server, tmp_path):
    with pytest.raises(pullmod.PullError, match=f"manifest.json has sha256 {MANIFEST_SHA}, not the pinned 0{{64}}; refused, nothing installed"):
        pullmod.pull(f"hf:{REPO_ID}", sha256="0" * 64)
    assert [s.path.rsplit("/", 1)[1] for s in server.seen] == ["manifest.json"]
    assert installed(tmp_path) == []
    for bad in ("abc", "g" * 64):
        with pytest.raises(pullmod.PullError, match="expected the 64 hex digits"):
            pullmod.pull(f"hf:{REPO_ID}", sha256=bad)


def test_same_pack_again_downloads_only_the_manifest(env, server, tmp_path, monkeypatch):
    first = pullmod.pull(str(TINY))
    assert first.origin["kind"] == "folder"
    again = pullmod.pull(f"hf:{REPO_ID}", sha256=MANIFEST_SHA)
    assert again.action == "unchanged" and [s.path.rsplit("/", 1)[1] for s in server.seen] == ["manifest.json"]
    origin = json.loads((first.path / ".nat-origin.json").read_text())  # now says where it was last pulled from
    assert origin["source"] == f"hf:{REPO_ID}@main" and origin["pinned"] is True and origin == again.origin
    monkeypatch.setenv("NAT_OFFLINE", "1")
    assert pullmod.pull(f"hf:{REPO_ID}").action == "offline"


def test_interrupted_download_resumes_with_a_range_request(env, server, tmp_path):
    path = f"/{REPO_ID}/resolve/main/mert.onnx"
    size = (TINY / "mert.onnx").stat().st_size
    server.trick(path, "cut-once")
    with pytest.raises(pullmod.PullError, match=f"mert.onnx: the server sent {size // 2} of {size} bytes; run the same command again to resume"):
        pullmod.pull(f"hf:{REPO_ID}")
    assert installed(tmp_path) == []
    partial = user_packs(tmp_path) / ".partial"
    assert [p.stat().st_size for p in partial.glob("*.part")] == [size // 2]
    result = pullmod.pull(f"hf:{REPO_ID}")
    assert result.action == "installed" and same_files(TINY, result.path)
    second = server.requests_for("mert.onnx")[-1]
    assert second.headers["Range"] == f"bytes={size // 2}-" and second.headers["If-Range"].startswith('"')
    assert not list(partial.iterdir())


def test_a_stale_partial_file_is_replaced_not_trusted(env, server, tmp_path):
    """A piece left from another version of the file: the hash fails, the file comes again whole."""
    want = json.loads((TINY / "manifest.json").read_text())["encoders"]["mert"]["sha256"]
    partial = user_packs(tmp_path) / ".partial"
    partial.mkdir(parents=True)
    (partial / f"{want}.part").write_bytes(b"not the start of the model" * 100)
    result = pullmod.pull(f"hf:{REPO_ID}")
    assert same_files(TINY, result.path)
    ranges = [s.headers.get("Range") for s in server.requests_for("mert.onnx")]
    assert ranges == ["bytes=2600-", None]


def test_a_stale_part_of_full_length_is_fetched_again(env, server, tmp_path):
    """The server answers the Range request past its end with 416; the piece is dropped and fetched whole."""
    want = json.loads((TINY / "manifest.json").read_text())["encoders"]["wav2vec2"]["sha256"]
    partial = user_packs(tmp_path) / ".partial"
    partial.mkdir(parents=True)
    (partial / f"{want}.part").write_bytes(b"\0" * (TINY / "wav2vec2.onnx").stat().st_size)
    result = pullmod.pull(f"hf:{REPO_ID}")
    assert same_files(TINY, result.path)
    size = (TINY / "wav2vec2.onnx").stat().st_size
    assert [s.headers.get("Range") for s in server.requests_for("wav2vec2.onnx")] == [f"bytes={size}-", None]


def test_offline_uses_only_what_is_installed(env, server, tmp_path, monkeypatch):
    for var in ("NAT_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(var, "1")
        with pytest.raises(pullmod.PullError, match=rf"offline \({var}=1\) and no pack from it is installed; nothing downloaded"):
            pullmod.pull(f"hf:{REPO_ID}")
        monkeypatch.delenv(var)
    assert server.seen == []
    pullmod.pull(f"hf:{REPO_ID}")
    server.seen.clear()
    monkeypatch.setenv("HF_HUB_OFFLINE", "true")
    result = pullmod.pull(f"hf:{REPO_ID}", sha256=MANIFEST_SHA)
    assert result.action == "offline" and result.name == "tiny-neural"
    with pytest.raises(pullmod.PullError, match="offline"):
        pullmod.pull(f"hf:{REPO_ID}", sha256="1" * 64)  # installed, but not the pinned pack
    with pytest.raises(pullmod.PullError, match="offline"):
        pullmod.pull(f"hf:{REPO_ID}@v2")  # another revision was never installed
    assert server.seen == []
    proc = run_nat("packs", "pull", f"hf:{REPO_ID}", env={**env, "NAT_OFFLINE": "1"})
    assert proc.returncode == 0 and proc.stdout.startswith(b"offline: tiny-neural is installed from hf:")
    assert server.seen == []


def test_offline_still_installs_local_sources(env, published, tmp_path, monkeypatch):
    monkeypatch.setenv("NAT_OFFLINE", "1")
    assert pullmod.pull(str(published / "tiny-neural.tar.gz")).action == "installed"


def test_hf_token_goes_to_the_hub_only(env, server, tmp_path, monkeypatch):
    """The hub redirects big files to a CDN host; the token must not follow."""
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    cdn = server.url("/cdn/mert.onnx").replace("127.0.0.1", "localhost")
    server.add("/cdn/mert.onnx", (TINY / "mert.onnx").read_bytes())
    server.trick(f"/{REPO_ID}/resolve/main/mert.onnx", "redirect", cdn)
    pullmod.pull(f"hf:{REPO_ID}")
    assert server.requests_for("manifest.json")[0].headers["Authorization"] == "Bearer hf_secret"
    assert server.requests_for("/resolve/main/mert.onnx")[0].headers["Authorization"] == "Bearer hf_secret"
    assert "Authorization" not in server.requests_for("/cdn/mert.onnx")[0].headers


def test_the_token_hf_auth_login_stored_is_used(env, server, tmp_path):
    """huggingface_hub's get_token: without HF_TOKEN, the token a login stored."""
    from huggingface_hub import constants

    Path(constants.HF_TOKEN_PATH).parent.mkdir(parents=True, exist_ok=True)
    Path(constants.HF_TOKEN_PATH).write_text("hf_stored\n")
    pullmod.pull(f"hf:{REPO_ID}")
    assert server.requests_for("manifest.json")[0].headers["Authorization"] == "Bearer hf_stored"


def test_revision_and_missing_repo(env, server, tmp_path):
    server.add_hub(REPO_ID, "refs/pr/1", TINY, commit="1" * 40)
    result = pullmod.pull(f"hf:{REPO_ID}@refs/pr/1", name="pr1")
    assert result.origin["revision"] == "refs/pr/1" and result.origin["commit"] == "1" * 40
    assert server.seen[-1].path.startswith(f"/{REPO_ID}/resolve/refs%2Fpr%2F1/")
    with pytest.raises(pullmod.PullError, match=r"nat-test/none/resolve/main/manifest.json: HTTP 404"):
        pullmod.pull("hf:nat-test/none")


def test_remove(env, server, tmp_path):
    pullmod.pull(f"hf:{REPO_ID}")
    proc = run_nat("packs", "remove", "tiny-neural", env=env)
    assert proc.returncode == 0 and proc.stdout.startswith(b"removed tiny-neural")
    assert installed(tmp_path) == [] and sorted(p.name for p in user_packs(tmp_path).iterdir()) == [".lock", ".partial"]
    for name, why in (("tiny-neural", "no pack of that name in the user pack folder"), ("builtin", "the pack inside NAT cannot be removed"), ("../x", "not a pack name")):
        proc = run_nat("packs", "remove", name, env=env)
        assert proc.returncode == 2 and why in proc.stderr.decode() and proc.stderr.count(b"\n") == 1, proc.stderr


def test_cli_errors_are_one_line(env, server, tmp_path):
    cases = [
        (["pull"], 2, "nat: packs: the following arguments are required: SOURCE"),
        (["pull", "hf:nat-test"], 2, "expected hf:OWNER/REPO[@REVISION]"),
        (["pull", "ftp://127.0.0.1/x"], 2, "ftp:// is not a pack source"),
        (["pull", str(REPO / "no-such-pack")], 2, "no such pack archive or folder"),
        (["pull", f"hf:{REPO_ID}", "--sha256", "1" * 64], 2, "not the pinned"),
        (["pull", f"hf:{REPO_ID}", "--name", "../up"], 2, "is not a plain folder name"),
    ]
    for args, code, text in cases:
        proc = run_nat("packs", *args, env=env)
        assert proc.returncode == code and text in proc.stderr.decode() and proc.stderr.count(b"\n") == 1, (args, proc.stderr)
        assert proc.stderr.startswith(b"nat: packs: ")
    assert installed(tmp_path) == []


def test_progress_is_reported_to_the_caller_not_drawn_by_the_library(env, server, tmp_path, capsys):
    calls = []
    pullmod.pull(f"hf:{REPO_ID}", progress=lambda *args: calls.append(args))
    size = (TINY / "mert.onnx").stat().st_size
    assert ("mert.onnx", 0, size) in calls and ("mert.onnx", size, size) in calls
    assert {c[0] for c in calls} == {p.name for p in TINY.iterdir() if p.name != "manifest.json"}
    assert capsys.readouterr().err == ""  # the bar is the CLI's (cli/packs.py), drawn only on a terminal


def test_the_cli_draws_a_bar_per_file_on_a_terminal(env, server, monkeypatch, capsys):
    pytest.importorskip("tqdm")
    import io

    from neural_audio_tokenizer.cli import packs as packs_cli
    from neural_audio_tokenizer.cli.progress import Progress

    terminal = io.StringIO()
    monkeypatch.setattr(packs_cli.Progress, "for_stderr", lambda quiet: Progress(not quiet, terminal))  # as if stderr were a terminal
    assert packs_cli.main(["pull", f"hf:{REPO_ID}", "-q"]) == 0 and terminal.getvalue() == ""
    pullmod.remove("tiny-neural")
    assert packs_cli.main(["pull", f"hf:{REPO_ID}"]) == 0
    drawn = terminal.getvalue()
    assert "mert.onnx:" in drawn and "/190k" in drawn and capsys.readouterr().err == ""  # tqdm redraws at most every 0.1 s


def test_https_verifies_the_certificate(env, published, tmp_path, monkeypatch):
    """A self-signed certificate is refused unless trusted (SSL_CERT_FILE), as for any https pull."""
    import shutil
    import subprocess

    from pack_server import PackServer

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)  # fmt: skip
    tls = PackServer().start(tls=(cert, key))
    try:
        url = tls.add("/tiny-neural.tar.gz", (published / "tiny-neural.tar.gz").read_bytes())
        assert url.startswith("https://127.0.0.1:")
        with pytest.raises(pullmod.PullError, match="cannot reach 127.0.0.1: .*CERTIFICATE_VERIFY_FAILED"):
            pullmod.pull(url)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        assert same_files(TINY, pullmod.pull(url, sha256=MANIFEST_SHA).path)
    finally:
        tls.stop()


def test_two_files_with_the_same_bytes(env, server, tmp_path):
    """S and A may share identical arrays; they download once and install as both files."""
    files = {p.name: p.read_bytes() for p in TINY.iterdir()}
    files["A_normalization.npy"] = files["S_normalization.npy"]
    manifest = json.loads(files["manifest.json"])
    manifest["streams"]["A"]["normalization"]["sha256"] = manifest["streams"]["S"]["normalization"]["sha256"]
    files["manifest.json"] = json.dumps(manifest).encode()
    server.add_hub(REPO_ID, "v2", files)
    result = pullmod.pull(f"hf:{REPO_ID}@v2", name="same-bytes")
    assert (result.path / "A_normalization.npy").read_bytes() == (TINY / "S_normalization.npy").read_bytes()
    assert (result.path / "S_normalization.npy").read_bytes() == (TINY / "S_normalization.npy").read_bytes()
