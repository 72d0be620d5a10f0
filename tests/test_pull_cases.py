"""The attacks of issue #21 on ``nat packs pull``, one test each (cases 1-8), and the
documentation items that came with them.

Each refusal is checked through the CLI in this process (``cli.packs.main``): exit 2 or 3,
exactly one line on stderr, printable characters only, no pack installed and the pack
installed before untouched (the ``existing`` fixture). Connections beyond the loopback
address fail the test (pull_support.loopback_only).
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import json
import lzma
import os
import sys
import tarfile
import threading
import time
import zlib
from pathlib import Path

import pytest
from pull_support import REPO_ID, TINY, env, installed, loopback_only, published, same_files, server, user_packs  # noqa: F401
from test_pull_hostile import entry, existing, make_tar, manifest_with, pack_members, tiny_files  # noqa: F401

from neural_audio_tokenizer.cli import packs as packs_cli
from neural_audio_tokenizer.packs import archive as archivemod
from neural_audio_tokenizer.packs import install as installmod
from neural_audio_tokenizer.packs import pull as pullmod
from neural_audio_tokenizer.packs import transport
from neural_audio_tokenizer.runtime.pack import load_pack

HF = f"hf:{REPO_ID}"
MANIFEST_SHA = load_pack(TINY).manifest_sha256
RESOLVE = f"/{REPO_ID}/resolve/main"


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = packs_cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def refused(capsys, codes: tuple[int, ...], *argv: str, match: str = "") -> str:
    """``nat packs pull ARGV`` refuses: an exit code in ``codes``, one printable line naming ``match``."""
    code, out, err = cli(capsys, "pull", *argv)
    assert code in codes, (code, err)
    assert err.startswith("nat: packs: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert err[:-1].isprintable(), ascii(err)
    assert match in err, err
    assert out == ""
    return err


def raw_response(*lines: str, body: str = "") -> str:
    return "\r\n".join(lines) + "\r\n\r\n" + body


# --- 1. the loopback check and a user part in the URL --------------------------------------


def test_case1_a_user_part_before_the_loopback_address_is_refused(existing, server, capsys):
    port = server.httpd.server_address[1]
    server.trick(f"{RESOLVE}/manifest.json", "redirect", f"http://evil.example@127.0.0.1:{port}/x/manifest.json")
    refused(capsys, (2,), HF, match="a user name or password in the URL; refused")
    refused(capsys, (2,), f"http://evil.example@127.0.0.1:{port}/archives/tiny-neural.tar.gz", match="a user name or password")
    # connecting to "evil.example@127.0.0.1" would have looked the name up: loopback_only fails that


# --- 2. what used to end in a traceback (exit 70) -------------------------------------------


def test_case2_malformed_redirect(existing, server, capsys):
    server.trick(f"{RESOLVE}/manifest.json", "raw", raw_response("HTTP/1.1 302 Found", "Location: http://[::1", "Content-Length: 0"))
    refused(capsys, (2,), HF, match="malformed")


def test_case2_non_ascii_in_a_location_a_url_or_hf_endpoint(existing, server, capsys, monkeypatch):
    server.trick(f"{RESOLVE}/manifest.json", "raw", raw_response("HTTP/1.1 302 Found", "Location: /caf\xe9/manifest.json", "Content-Length: 0"))
    refused(capsys, (2,), HF, match="only printable ASCII without spaces")
    refused(capsys, (2,), server.url("/caf\xe9/manifest.json"), match="only printable ASCII without spaces")
    monkeypatch.setenv("HF_ENDPOINT", server.base + "/caf\xe9")
    refused(capsys, (2,), HF, match="only printable ASCII without spaces")


@pytest.mark.parametrize("length", ["\xb2", "9" * 5000])
def test_case2_unreadable_content_length(existing, server, capsys, length):
    server.trick(f"{RESOLVE}/manifest.json", "raw", raw_response("HTTP/1.1 200 OK", f"Content-Length: {length}", body="{}"))
    refused(capsys, (2,), HF, match="unreadable Content-Length")
    server.trick(f"{RESOLVE}/manifest.json", "")
    server.trick(f"{RESOLVE}/mert.onnx", "raw", raw_response("HTTP/1.1 200 OK", f"Content-Length: {length}", body="x"))
    refused(capsys, (2,), HF, match="mert.onnx: unreadable Content-Length")


def test_case2_content_range_of_5000_digits_on_resume(existing, server, capsys, tmp_path):
    want = hashlib.sha256((TINY / "mert.onnx").read_bytes()).hexdigest()
    partial = user_packs(tmp_path) / ".partial"
    partial.mkdir(exist_ok=True)
    (partial / f"{want}.part").write_bytes((TINY / "mert.onnx").read_bytes()[:1000])
    server.trick(f"{RESOLVE}/mert.onnx", "raw", raw_response("HTTP/1.1 206 Partial Content", f"Content-Range: bytes 1000-{'9' * 5000}/{'9' * 5000}", "Content-Length: 4", body="abcd"))
    refused(capsys, (2,), HF, match="mert.onnx: a partial response without a valid Content-Range")


def test_case2_a_name_listed_as_file_and_folder(existing, server, capsys, tmp_path):
    files = tiny_files()
    manifest = json.loads(files["manifest.json"])
    manifest["streams"]["S"]["normalization"]["file"] = "x"
    manifest["streams"]["A"]["normalization"]["file"] = "x/n.npy"
    server.add_hub(REPO_ID, "main", {**files, "manifest.json": json.dumps(manifest).encode()})
    refused(capsys, (2,), HF, match="'x' is listed as a file and holds other listed files; refused")
    folder = tmp_path / "clash"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    refused(capsys, (2,), str(folder), "--name", "clash", match="is listed as a file and holds other listed files")


def test_case2_a_300_character_folder_name(existing, server, capsys, tmp_path):
    files = tiny_files()
    manifest = json.loads(files["manifest.json"])
    manifest["encoders"]["mert"]["file"] = "d" * 300 + "/mert.onnx"
    server.add_hub(REPO_ID, "main", {**files, "manifest.json": json.dumps(manifest).encode()})
    refused(capsys, (2,), HF, match="has a name part over 100 printable characters; refused")
    folder = tmp_path / "long"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    refused(capsys, (2,), str(folder), "--name", "long", match="has a name part over 100 printable characters")
    refused(capsys, (2,), str(tmp_path / ("e" * 300)), match="cannot be read")


def test_case2_partial_is_a_file_or_a_part_is_a_folder(existing, server, capsys, tmp_path):
    partial = user_packs(tmp_path) / ".partial"
    partial.write_bytes(b"not a folder")
    refused(capsys, (3,), HF, match=".partial is not a folder")
    partial.unlink()
    want = hashlib.sha256((TINY / "mert.onnx").read_bytes()).hexdigest()
    (partial / f"{want}.part").mkdir(parents=True)
    refused(capsys, (3,), HF, match=f"{want}.part is not a regular file")


def test_case2_a_read_only_pack_folder(existing, capsys, monkeypatch, published):
    real_open = os.open

    def read_only_lock(path, flags, *args):
        if str(path).endswith(installmod.LOCK_FILE):
            raise OSError(errno.EROFS, "Read-only file system")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only_lock)  # the first thing a pull writes
    refused(capsys, (3,), str(published / "tiny-neural.tar.gz"), match="Read-only file system; nothing changed")
    monkeypatch.undo()

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(pullmod.tempfile, "mkdtemp", read_only)  # the next one
    refused(capsys, (3,), str(published / "tiny-neural.tar.gz"), match="Read-only file system; nothing changed")


def _path_of(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to tell which file a write goes to")
@pytest.mark.parametrize("where", ["part", "validator", "manifest"])
def test_case2_disk_full(existing, server, capsys, monkeypatch, where):
    real_write, real_write_bytes = os.write, Path.write_bytes

    def write(fd, data):
        path = _path_of(fd)
        if (where == "part" and path.endswith(".part")) or (where == "validator" and path.endswith(".etag")):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    def write_bytes(self, data):
        if where == "manifest" and self.name == "manifest.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_bytes(self, data)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    refused(capsys, (3,), HF, match="No space left on device")


# --- 3. terminal escapes from the server ---------------------------------------------------


def test_case3_escapes_in_a_reason_phrase_or_a_commit_are_not_printed(existing, server, capsys, tmp_path):
    server.trick(f"{RESOLVE}/manifest.json", "raw", raw_response("HTTP/1.1 404 \x1b]0;owned\x07Not \x1b[2JFound", "Content-Length: 0"))
    refused(capsys, (2,), HF, match="HTTP 404 ?]0;owned?Not ?[2JFound")
    server.trick(f"{RESOLVE}/manifest.json", "")
    server.add_hub(REPO_ID, "main", TINY, commit="\x1b[31mc0ffee\x1b[0m")
    code, out, err = cli(capsys, "pull", HF, "--name", "escaped")
    assert code == 0 and "\x1b" not in out + err, ascii(out + err)
    origin = json.loads((user_packs(tmp_path) / "escaped" / ".nat-origin.json").read_text())
    assert origin["commit"] is None  # not a commit hash: not recorded
    origin["commit"] = "\x1b[2J\x1b]0;owned\x07"  # a stored record tampered with
    (user_packs(tmp_path) / "escaped" / ".nat-origin.json").write_text(json.dumps(origin))
    code, out, err = cli(capsys)  # nat packs: the SOURCE column
    assert code == 0 and "\x1b" not in out and "\x07" not in out and "hf:nat-test/tiny-neural@main (?[2J?]0;owne)" in out, ascii(out)
    code, out, err = cli(capsys, "--json")
    assert code == 0 and "\x1b" not in out
    pullmod.remove("escaped")


# --- 4. archives ------------------------------------------------------------------------------


def chained_long_names(count: int) -> bytes:
    """A tar of ``count`` GNU long-name headers in a row, then one file: tarfile reads the chain recursively."""
    blocks = b""
    for _ in range(count):
        info = tarfile.TarInfo("././@LongLink")
        info.type, info.size = tarfile.GNUTYPE_LONGNAME, 100
        blocks += info.tobuf(tarfile.USTAR_FORMAT) + b"n" * 99 + b"\0" + b"\0" * 412
    info = tarfile.TarInfo("x")
    info.size = 1
    return blocks + info.tobuf(tarfile.USTAR_FORMAT) + b"x" + b"\0" * 511 + b"\0" * 1024


def test_case4_a_chain_of_long_name_headers(existing, server, capsys, tmp_path):
    evil = tmp_path / "chain.tar.gz"
    evil.write_bytes(gzip.compress(chained_long_names(300)))
    assert evil.stat().st_size < 4000
    refused(capsys, (2,), str(evil), match="more than 4 metadata headers before one entry; refused")
    url = server.add("/archives/chain.tar.gz", evil.read_bytes())
    for _ in range(2):  # the bad download is not kept: the second try is the same refusal, not a crash
        refused(capsys, (2,), url, match="more than 4 metadata headers before one entry")
    assert not list((user_packs(tmp_path) / ".partial").iterdir())


def test_case4_an_unlisted_member_is_never_written(existing, tmp_path, capsys, monkeypatch):
    """The archive carries a file the manifest does not list: refused from the sizes in the
    headers, and nothing but listed files is ever written."""
    written = []
    real_copy = archivemod._copy_new
    monkeypatch.setattr(archivemod, "_copy_new", lambda source, target, size, name: (written.append(name), real_copy(source, target, size, name)))
    monkeypatch.setattr(pullmod, "MAX_UNLISTED_BYTES", 1 << 20)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:bz2") as tar:
        for info, data in [*pack_members(), (entry("tiny-neural/zzz.bin"), b"\0" * (3 << 20))]:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    evil = tmp_path / "unlisted.tar.bz2"
    evil.write_bytes(buf.getvalue())
    refused(capsys, (2,), str(evil), match="archive entry 'tiny-neural/zzz.bin': 3145728 bytes that manifest.json does not list")
    assert written == []
    monkeypatch.setattr(pullmod, "MAX_UNLISTED_BYTES", 4 << 20)  # within the allowance: installed, the extra file never written
    assert same_files(TINY, pullmod.pull(str(evil), name="with-extra").path)
    assert sorted(written) == sorted(f"tiny-neural/{name}" for name in tiny_files())
    pullmod.remove("with-extra")


def xz_with_dictionary(data: bytes, dict_bits: int) -> bytes:
    """``data`` as .xz whose block header asks for a 2**dict_bits-byte dictionary (the
    encoder used a small one: the stream decodes the same, with more memory)."""
    raw = bytearray(lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32, filters=[{"id": lzma.FILTER_LZMA2, "dict_size": 1 << 20}]))
    size = (raw[12] + 1) * 4
    assert raw[13] == 0 and raw[14] == 0x21 and raw[15] == 1  # no size fields; one filter, LZMA2, one property byte
    raw[16] = (dict_bits - 12) * 2  # LZMA2's dictionary size code for 2**dict_bits
    raw[12 + size - 4 : 12 + size] = zlib.crc32(bytes(raw[12 : 12 + size - 4])).to_bytes(4, "little")
    return bytes(raw)


def test_case4_an_xz_header_asking_for_a_1_gib_dictionary(existing, tmp_path, capsys):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(TINY, arcname="tiny-neural")
    evil = tmp_path / "dict.tar.xz"
    evil.write_bytes(xz_with_dictionary(buf.getvalue(), 30))
    assert lzma.decompress(evil.read_bytes()) == buf.getvalue()  # a valid stream, just a greedy one
    refused(capsys, (2,), str(evil), match="xz needs more than 128 MiB of memory to decompress")
    fine = tmp_path / "fine.tar.xz"
    fine.write_bytes(xz_with_dictionary(buf.getvalue(), 26))  # 64 MiB, what xz -9 uses
    assert same_files(TINY, pullmod.pull(str(fine), name="xz-9").path)
    pullmod.remove("xz-9")


# --- 5. two pulls at once ---------------------------------------------------------------------


def test_case5_two_pulls_of_one_pack_run_one_after_the_other(env, server, tmp_path):
    server.trick(f"{RESOLVE}/mert.onnx", "slow-once")  # the first pull is still downloading when the second starts
    results, errors = [], []

    def one() -> None:
        try:
            results.append(pullmod.pull(HF))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.3)
    for t in threads:
        t.join(60)
    assert errors == [] and sorted(r.action for r in results) == ["installed", "unchanged"]
    assert len(server.requests_for("mert.onnx")) == 1  # the second found the pack installed
    dest = user_packs(tmp_path) / "tiny-neural"
    assert same_files(TINY, dest) and load_pack(dest).manifest_sha256 == MANIFEST_SHA


def test_case5_a_pull_that_cannot_wait_refuses_cleanly(existing, server, capsys, tmp_path):
    with installmod.locked(user_packs(tmp_path), 0):
        refused(capsys, (2,), HF, "--timeout", "0.5", match="another pull or remove is working in")


# --- 6. planted partial files -------------------------------------------------------------------


def test_case6_a_part_that_is_a_symlink_or_a_fifo(existing, server, capsys, tmp_path):
    want = hashlib.sha256((TINY / "mert.onnx").read_bytes()).hexdigest()
    partial = user_packs(tmp_path) / ".partial"
    partial.mkdir(exist_ok=True)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (partial / f"{want}.part").symlink_to(victim)
    refused(capsys, (3,), HF, match="is not a regular file")
    assert victim.read_text() == "keep me"
    (partial / f"{want}.part").unlink()
    os.mkfifo(partial / f"{want}.part")
    started = time.monotonic()
    refused(capsys, (3,), HF, match="is not a regular file")
    assert time.monotonic() - started < 10


# --- 7. one deadline for the whole pull -------------------------------------------------------


@pytest.mark.parametrize("kind", ["drip", "endless-continue", "endless-trailers"])
def test_case7_a_server_that_never_finishes(existing, server, capsys, kind):
    server.trick(f"{RESOLVE}/mert.onnx", kind)
    started = time.monotonic()
    refused(capsys, (2,), HF, "--timeout", "2", match="not finished within the 2 s a pull may take (--timeout); run the same command again to resume")
    assert time.monotonic() - started < 8


def test_case7_timeout_must_be_positive(env, capsys):
    with pytest.raises(SystemExit) as exit_:
        packs_cli.main(["pull", HF, "--timeout", "0"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "expected a number of seconds above 0" in err and err.count("\n") == 1


# --- 8. proxies ------------------------------------------------------------------------------


def test_case8_no_proxy_for_plain_http_and_no_token_to_a_proxy(existing, server, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("HTTP_PROXY", server.base)  # a proxy that would record what it sees
    monkeypatch.setenv("http_proxy", server.base)
    pullmod.pull(HF, name="direct")
    assert server.seen and not any(s.proxied for s in server.seen)
    assert server.requests_for("manifest.json")[0].headers["Authorization"] == "Bearer hf_secret"
    monkeypatch.setenv("HTTP_PROXY", "http://192.0.2.7:3128")  # contacting it would fail the test
    monkeypatch.setenv("http_proxy", "http://192.0.2.7:3128")
    assert pullmod.pull(HF, name="direct").action == "unchanged"
    pullmod.remove("direct")


@pytest.fixture()
def tls(tmp_path, published):
    import shutil
    import subprocess

    from pack_server import PackServer

    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)  # fmt: skip
    srv = PackServer().start(tls=(cert, key))
    srv.add_hub(REPO_ID, "main", published / "tiny-neural")
    srv.cert = cert
    yield srv
    srv.stop()


def test_case8_https_goes_through_the_proxy_as_a_tunnel(env, server, tls, monkeypatch):
    """The proxy sees CONNECT 127.0.0.1:PORT and nothing else: the token travels inside TLS."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.cert))
    monkeypatch.setenv("HF_ENDPOINT", tls.base)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("HTTPS_PROXY", server.base)
    result = pullmod.pull(HF, sha256=MANIFEST_SHA)
    assert same_files(TINY, result.path)
    port = tls.httpd.server_address[1]
    assert server.seen and all(s.method == "CONNECT" and s.path == f"127.0.0.1:{port}" for s in server.seen)
    assert all("Authorization" not in s.headers for s in server.seen)
    assert tls.requests_for("manifest.json")[0].headers["Authorization"] == "Bearer hf_secret"


# --- the hub client is an extra; documentation items ------------------------------------------


def test_without_the_hub_extra_hf_sources_say_what_to_install(env, capsys, monkeypatch, tmp_path, published):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if not installed
    refused(capsys, (2,), HF, match="hf: sources need the Hugging Face hub client: pip install 'neural-audio-tokenizer[hub]'")
    assert not user_packs(tmp_path).exists()
    assert pullmod.pull(str(published / "tiny-neural.tar.gz")).action == "installed"  # local sources need nothing more


def test_a_folder_url_without_manifest_json_gets_a_hint(env, server, capsys):
    server.add("/plain/tiny-neural/", b"<html><body>an index page</body></html>")
    refused(capsys, (2,), server.url("/plain/tiny-neural/"), match="a pack folder on a web server is pulled by its manifest.json URL")


def test_the_builtin_pack_publishes_a_pull_line_that_works(env, tmp_path, capsys):
    from neural_audio_tokenizer.export.publish import publish
    from neural_audio_tokenizer.packs import BUILTIN_DIR

    done = publish(BUILTIN_DIR / "builtin", tmp_path / "out")
    line = done.pull_lines[0]
    assert line.endswith(" --name builtin-copy") and "nat --pack builtin-copy song.flac" in (done.folder / "README.md").read_text()
    args = line.split()[3:]  # after "nat packs pull"; the hub source is swapped for the archive
    code, out, err = cli(capsys, "pull", str(done.archive), *args[1:])
    assert code == 0, err
    assert installed(tmp_path) == ["builtin-copy"]


def test_pack_writer_installs_through_the_same_path_and_puts_the_old_pack_back(tmp_path, monkeypatch):
    import shutil

    from neural_audio_tokenizer.export import pack_writer

    assert pack_writer.replace_folder is installmod.replace_folder and pack_writer.staging is installmod.staging
    out = shutil.copytree(TINY, tmp_path / "out")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    manifest = json.loads((TINY / "manifest.json").read_text())
    manifest["description"] = "a newer build"
    real = os.replace

    def full(src, dst):
        if Path(dst) == out and ".tmp-" in str(src):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError, match="No space left"):
        with pack_writer.staging(out) as tmp:
            for p in TINY.iterdir():
                if p.name != "manifest.json":
                    shutil.copyfile(p, tmp / p.name)
            pack_writer.install(tmp, manifest, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging or set-aside folder left
