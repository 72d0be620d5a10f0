"""``nat packs pull`` and ``nat packs remove``: install a published pack byte for byte, or drop one.

Sources (:func:`parse_source`):

- ``hf:OWNER/REPO[@REVISION]``: a Hugging Face hub repository holding a pack folder. The
  manifest and then every file it lists are fetched through the hub's plain file URLs
  (``$HF_ENDPOINT/OWNER/REPO/resolve/REVISION/FILE``), so no hub client is needed;
  ``HF_TOKEN`` is sent to the endpoint's host only, never to the hosts it redirects to.
- ``https://.../manifest.json``: a pack folder on a web server, fetched the same way.
- any other ``https://`` URL: a pack archive (``.tar.gz``, ``.tar.xz``, ``.tar``), read by
  :mod:`.archive` as hostile input.
- a local pack archive or pack folder.

Plain ``http://`` is refused, before connecting, for anything but the loopback address.
Proxies come from the environment (urllib reads ``HTTPS_PROXY``/``NO_PROXY``). With
``NAT_OFFLINE=1`` or ``HF_HUB_OFFLINE=1`` a remote source is never contacted: the pull
succeeds only if a pack from that source is already installed, and says which.

Every pull goes the same way: the manifest first (its sha256 checked against ``--sha256``
before anything else is fetched), then each listed file into ``.partial/<sha256>.part`` in
the user pack folder (an interrupted download resumes there with an HTTP Range request; a
file is kept only if its sha256 is the manifest's), then a temporary folder holding the
manifest and the files is verified by :func:`~neural_audio_tokenizer.runtime.pack.load_pack`
(hashes, array headers, the ONNX checks) and only then renamed into place. An existing pack
of the same name is moved aside for that rename and comes back if it fails, so a failed pull
never damages it. Where the pack came from is recorded in ``.nat-origin.json`` inside it.
"""

from __future__ import annotations

import hashlib
import http.client
import ipaddress
import json
import os
import re
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OutputError, PackError
from ..runtime.inputs.audio import sha256_file
from ..runtime.pack import MAX_MANIFEST_BYTES, MAX_NPY_BYTES, MAX_ONNX_BYTES, load_pack
from . import BUILTIN, BUILTIN_DIR, user_pack_dir
from .archive import ArchiveError, Limits, check_member_name, extract_archive
from .origin import ORIGIN_FILE, read_origin, write_origin

HF_ENDPOINT = "https://huggingface.co"
OFFLINE_VARS = ("NAT_OFFLINE", "HF_HUB_OFFLINE")
PARTIAL = ".partial"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}\Z")
SHA256 = re.compile(r"[0-9a-f]{64}\Z")
MAX_FILES = 64
MAX_TOTAL_BYTES = 8 << 30
MAX_REDIRECTS = 10
TIMEOUT_S = 60.0  # per socket operation, not per file
BLOCK = 1 << 20


class PullError(PackError):
    """A pull that was refused or failed; nothing was installed or changed."""


@dataclass(frozen=True)
class Source:
    """Where a pack comes from. ``text`` is the canonical form recorded in the origin."""

    kind: str  # "hf", "url-folder", "url-archive", "folder", "archive"
    text: str
    base: str = ""  # folder sources over HTTP: the URL the file names are appended to
    url: str = ""  # url-archive
    path: Path | None = None  # folder, archive
    revision: str | None = None  # hf

    @property
    def remote(self) -> bool:
        return self.kind in ("hf", "url-folder", "url-archive")


def parse_source(text: str) -> Source:
    """``hf:OWNER/REPO[@REVISION]``, an http(s) URL, or a local archive or folder."""
    if text.startswith("hf:"):
        repo, _, revision = text[3:].partition("@")
        if not REPO.match(repo) or ".." in repo:
            raise PullError(f"pull {text}: expected hf:OWNER/REPO[@REVISION]")
        revision = revision or "main"
        if not revision.isprintable() or " " in revision or len(revision) > 256:
            raise PullError(f"pull {text}: revision {revision!r} is not a branch, tag or commit")
        endpoint = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/") or HF_ENDPOINT
        base = f"{endpoint}/{repo}/resolve/{urllib.parse.quote(revision, safe='')}/"
        return Source("hf", f"hf:{repo}@{revision}", base=base, revision=revision)
    scheme = text.split(":", 1)[0].lower() if "://" in text else ""
    if scheme in ("http", "https"):
        parsed = urllib.parse.urlsplit(text)
        if not parsed.hostname:
            raise PullError(f"pull {text}: a URL needs a host")
        if parsed.path.endswith("/manifest.json"):
            return Source("url-folder", text, base=text[: text.rindex("manifest.json")].split("?")[0])
        return Source("url-archive", text, url=text)
    if scheme:
        raise PullError(f"pull {text}: {scheme}:// is not a pack source (hf:OWNER/REPO, https://..., or a local archive or folder)")
    path = Path(text).expanduser()
    if path.is_dir():
        return Source("folder", str(path.resolve()), path=path.resolve())
    if path.is_file():
        return Source("archive", str(path.resolve()), path=path.resolve())
    raise PullError(f"pull {text}: no such pack archive or folder (remote sources are hf:OWNER/REPO[@REVISION] or https://...)")


def offline_switch() -> str | None:
    """The variable that turns the network off, if one does (``1``, ``true``, ``yes``, ``on``)."""
    for var in OFFLINE_VARS:
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return var
    return None


def check_url(url: str) -> urllib.parse.SplitResult:
    """https anywhere; plain http only to the loopback address. Raised before any connection."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "https":
        return parsed
    if parsed.scheme == "http":
        host = (parsed.hostname or "").strip("[]")
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if loopback:
            return parsed
        raise PullError(f"refused plain http:// to {parsed.hostname}: only the loopback address may be reached without TLS; use https://")
    raise PullError(f"refused {url.split(':', 1)[0]}:// URL {url!r}: only https:// (and http:// on the loopback address)")


def valid_name(name: str) -> str:
    """A pack name that stays a single folder inside the user pack folder."""
    if not isinstance(name, str) or not NAME.match(name):
        raise PullError(f"pack name {name!r} is not a plain folder name (letters, digits, '.', '_', '-'; at most 100); use --name")
    if name == BUILTIN:
        raise PullError(f"pack name {name!r} is the pack inside NAT, which a pulled pack could never shadow; use --name")
    return name


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # followed by Http.open, which checks each hop
        return None


class Http:
    """GET with the hop-by-hop checks pulling needs: scheme policy, redirect limit and loops,
    the token only for its own host, resumable downloads into ``.part`` files."""

    def __init__(self, token_host: str | None = None, token: str | None = None, progress: Progress | None = None) -> None:
        self.opener = urllib.request.build_opener(_NoRedirects)  # keeps ProxyHandler: proxies from the environment
        self.token_host, self.token = token_host, token
        self.progress = progress or Progress(False)
        self.headers: dict[str, str] = {}  # of the last response

    def open(self, url: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        seen: list[str] = []
        while True:
            parsed = check_url(url)
            if url in seen:
                raise PullError(f"redirect loop at {_short(url)}; refused")
            if len(seen) > MAX_REDIRECTS:
                raise PullError(f"more than {MAX_REDIRECTS} redirects from {_short(seen[0])}; refused")
            seen.append(url)
            request = urllib.request.Request(url, headers={"User-Agent": _user_agent(), **headers})
            if self.token and parsed.netloc == self.token_host:
                request.add_header("Authorization", f"Bearer {self.token}")
            try:
                response = self.opener.open(request, timeout=TIMEOUT_S)
            except urllib.error.HTTPError as exc:
                location = exc.headers.get("Location") if exc.code in (301, 302, 303, 307, 308) else None
                if location:
                    exc.close()
                    url = urllib.parse.urljoin(url, location)
                    continue
                self.headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
                exc.close()
                if exc.code == 416 and "Range" in headers:
                    return exc  # type: ignore[return-value]  # Range past the end: the caller decides
                hint = " (private or gated? set HF_TOKEN)" if exc.code in (401, 403) and self.token_host and not self.token else ""
                raise PullError(f"{_short(url)}: HTTP {exc.code} {exc.reason}{hint}") from None
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                reason = getattr(exc, "reason", None) or exc
                raise PullError(f"cannot reach {parsed.hostname}: {' '.join(str(reason).split())}") from None
            self.headers = {k.lower(): v for k, v in response.headers.items()}
            return response

    def fetch_small(self, url: str, limit: int, what: str) -> bytes:
        """A small file (the manifest) whole, into memory, refusing more than ``limit`` bytes."""
        with self.open(url, {"Accept-Encoding": "identity"}) as response:
            declared = _int_header(self.headers.get("content-length"))
            if declared is not None and declared > limit:
                raise PullError(f"{what}: {declared} bytes declared, more than {limit}; refused")
            data = _read_all(response, limit, what)
        if declared is not None and len(data) != declared:
            raise PullError(f"{what}: the body has {len(data)} bytes, the server declared {declared}; refused")
        return data

    def download(self, url: str, part: Path, limit: int, what: str) -> None:
        """``url`` into ``part``, continuing an existing ``part`` with a Range request."""
        have = part.stat().st_size if part.exists() else 0
        headers = {"Accept-Encoding": "identity"}
        validator = _read_validator(part)
        if have:
            headers["Range"] = f"bytes={have}-"
            if validator:
                headers["If-Range"] = validator
        response = self.open(url, headers)
        try:
            status = response.status if hasattr(response, "status") else response.code
            total = None
            if status == 416 and have:
                if _range_total(self.headers.get("content-range")) == have:
                    return  # the part was already complete
                part.unlink(missing_ok=True)  # the file changed size: start again, whole
                return self.download(url, part, limit, what)
            if status == 206:
                start, total = _range_start_total(self.headers.get("content-range"))
                if start != have:
                    raise PullError(f"{what}: asked for bytes from {have}, the server sent from {start}; refused")
            elif status == 200:
                have = 0
                _write_validator(part, self.headers)
            else:
                raise PullError(f"{what}: unexpected HTTP {status}")
            length = _int_header(self.headers.get("content-length"))
            expected = have + length if length is not None else total
            if total is not None and length is not None and have + length != total:
                raise PullError(f"{what}: Content-Range and Content-Length disagree; refused")
            if expected is not None and expected > limit:
                raise PullError(f"{what}: {expected} bytes declared, more than the {limit} a pack file may have; refused")
            self._stream(response, part, have, limit, expected, what)
        finally:
            response.close()

    def _stream(self, response, part: Path, have: int, limit: int, expected: int | None, what: str) -> None:
        got = have
        try:
            out = open(part, "ab" if have else "wb")  # noqa: SIM115
        except OSError as exc:
            raise OutputError(f"cannot write {part.parent}: {exc.strerror or exc}") from None
        with out:
            self.progress.start(what, got, expected)
            try:
                while True:
                    try:
                        block = response.read(BLOCK)
                    except http.client.IncompleteRead as exc:  # the connection closed early
                        out.write(exc.partial)
                        got += len(exc.partial)
                        break
                    if not block:
                        break
                    got += len(block)
                    if got > limit:
                        out.close()
                        part.unlink(missing_ok=True)
                        raise PullError(f"{what}: more than the {limit} bytes a pack file may have; refused")
                    out.write(block)
                    self.progress.update(got)
            except (OSError, http.client.HTTPException) as exc:
                if isinstance(exc, OSError) and exc.errno in (28, 122):  # ENOSPC, EDQUOT: our side
                    raise OutputError(f"cannot write {part.parent}: {exc.strerror}") from None
                self.progress.done()
                raise PullError(f"{what}: the connection failed after {got} bytes ({' '.join(str(exc).split()) or type(exc).__name__}); run the same command again to resume") from None
            finally:
                self.progress.done()
        if expected is not None and got < expected:
            raise PullError(f"{what}: the server sent {got} of {expected} bytes; run the same command again to resume")
        if expected is not None and got > expected:
            part.unlink(missing_ok=True)
            raise PullError(f"{what}: the server sent {got} bytes, more than the {expected} it declared; refused")


class Progress:
    """One self-overwriting line on stderr, only when stderr is a terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.what, self.total, self.last = "", None, 0.0

    def start(self, what: str, got: int, total: int | None) -> None:
        self.what, self.total, self.last = what, total, 0.0
        self.update(got)

    def update(self, got: int) -> None:
        now = time.monotonic()
        if not self.enabled or now - self.last < 0.2:
            return
        self.last = now
        total = f" / {self.total / 1e6:.1f} MB" if self.total else " MB"
        sys.stderr.write(f"\rnat: packs: pull: {self.what} {got / 1e6:.1f}{total}\x1b[K")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self.last:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.last = 0.0


@dataclass
class Result:
    """What a pull did."""

    name: str
    path: Path
    manifest_sha256: str
    source: str
    action: str  # "installed", "replaced", "unchanged", "offline"
    origin: dict = field(default_factory=dict)


def pull(
    source_text: str,
    *,
    sha256: str | None = None,
    name: str | None = None,
    dest_root: Path | None = None,
    progress: bool = False,
    limits: Limits | None = None,
) -> Result:
    """Install the pack at ``source_text`` into the user pack folder (or ``dest_root``).
    Raises PullError (one line, starting ``pull SOURCE:``) or OutputError. ``limits``:
    what an archive may hold (default :class:`~.archive.Limits`)."""
    limits = limits or Limits(max_total_bytes=MAX_TOTAL_BYTES)
    try:
        pin = _pin(sha256)
        if name is not None:
            valid_name(name)
        source = parse_source(source_text)
    except PackError as exc:
        text = str(exc)
        raise PullError(text if text.startswith("pull ") else f"pull {source_text}: {text}") from None
    root = Path(dest_root) if dest_root is not None else user_pack_dir()
    if source.remote and (var := offline_switch()):
        return _offline(source, pin, name, root, var)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the pack folder {root}: {exc.strerror or exc}") from None
    partial = root / PARTIAL
    if source.remote:
        partial.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".pull-", dir=root))
    archive_part: Path | None = None
    try:
        pack_dir = work / "pack"
        pack_dir.mkdir()
        origin: dict = {"source": source.text, "kind": source.kind}
        if source.kind in ("hf", "url-folder"):
            http = _http_for(source, progress)
            raw = http.fetch_small(source.base + "manifest.json", MAX_MANIFEST_BYTES, "manifest.json")
            if source.kind == "hf":
                origin["revision"] = source.revision
                origin["commit"] = http.headers.get("x-repo-commit")
            digest = _check_pin(raw, pin, source)
            files = manifest_files(raw)
            target = _target(root, name, raw)
            if _unchanged(root / target, digest):
                return _kept(root / target, digest, source, {**origin, "manifest_sha256": digest, "pinned": pin is not None})
            parts = {file: partial / f"{want}.part" for file, want in files}
            total = 0
            for file, want in files:
                _fetch_verified(http, source.base + urllib.parse.quote(file), parts[file], want, _file_limit(file), file)
                total += parts[file].stat().st_size
                if total > MAX_TOTAL_BYTES:
                    raise PullError(f"the files add up to more than the {MAX_TOTAL_BYTES} bytes a pack may have; refused")
            _place(pack_dir, raw, parts, move=True)
            for part in parts.values():
                _validator_path(part).unlink(missing_ok=True)
        elif source.kind == "url-archive":
            http = _http_for(source, progress)
            part = partial / f"archive-{hashlib.sha256(source.url.encode()).hexdigest()[:24]}.part"
            http.download(source.url, part, limits.max_total_bytes, _short(source.url))
            archive_part = part  # complete: from here on a refusal discards it, a retry fetches it anew
            raw, target, digest = _from_archive(part, work, pack_dir, pin, name, source, limits, root)
            _discard(part)
        elif source.kind == "archive":
            assert source.path is not None
            raw, target, digest = _from_archive(source.path, work, pack_dir, pin, name, source, limits, root)
        else:
            assert source.path is not None
            raw, target, digest = _from_folder(source.path, pack_dir, pin, name, source, move=False, root=root)
        origin.update(manifest_sha256=digest, pinned=pin is not None)
        if (root / target).is_dir() and _unchanged(root / target, digest):
            return _kept(root / target, digest, source, origin)
        try:
            load_pack(pack_dir)  # the loader's own checks: hashes, .npy headers, ONNX checks
        except PackError as exc:
            raise PullError(f"pull {source.text}: {exc}; nothing installed") from None
        try:
            write_origin(pack_dir, origin)
            action = install(pack_dir, root / target)
        except OSError as exc:
            raise OutputError(f"cannot install {target} in {root}: {exc.strerror or exc}; nothing changed") from None
        return Result(target, root / target, digest, source.text, action, origin)
    except PackError as exc:
        if archive_part is not None:
            _discard(archive_part)
        text = str(exc)
        raise PullError(text if text.startswith("pull ") else f"pull {source.text}: {text}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _http_for(source: Source, progress: bool) -> Http:
    check_url(source.base or source.url)  # before any connection
    if source.kind == "hf":
        host = urllib.parse.urlsplit(source.base).netloc
        return Http(host, os.environ.get("HF_TOKEN", "").strip() or None, Progress(progress))
    return Http(progress=Progress(progress))


def _pin(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    pin = sha256.strip().lower()
    if not SHA256.match(pin):
        raise PullError(f"--sha256 {sha256!r}: expected the 64 hex digits of a manifest's sha256")
    return pin


def _check_pin(raw: bytes, pin: str | None, source: Source) -> str:
    digest = hashlib.sha256(raw).hexdigest()
    if pin is not None and digest != pin:
        raise PullError(f"pull {source.text}: manifest.json has sha256 {digest}, not the pinned {pin}; refused, nothing installed")
    return digest


def manifest_files(raw: bytes) -> list[tuple[str, str]]:
    """(file, sha256) for every file the manifest lists, each once, in manifest order."""
    try:
        manifest = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise PullError("manifest.json: not valid JSON; refused") from None
    if not isinstance(manifest, dict) or manifest.get("format") != "nat-pack":
        raise PullError("manifest.json: not a nat-pack manifest; refused")
    encoders, streams = manifest.get("encoders"), manifest.get("streams")
    entries: list = list(encoders.values()) if isinstance(encoders, dict) else []
    for spec in streams.values() if isinstance(streams, dict) else []:
        if isinstance(spec, dict):
            entries += [spec.get(k) for k in ("normalization", "projection", "codebooks") if spec.get(k) is not None]
    if manifest.get("glossary") is not None:  # optional (runtime/glossary.py)
        entries.append(manifest["glossary"])
    files: dict[str, str] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or not isinstance(entry.get("sha256"), str):
            raise PullError("manifest.json: a file entry without 'file' and 'sha256'; refused")
        try:
            file = check_member_name(entry["file"])
        except ArchiveError:
            raise PullError(f"manifest.json: file {entry['file']!r} is not a plain relative name inside the pack; refused") from None
        want = entry["sha256"].lower()
        if not SHA256.match(want) or file in ("", "manifest.json", ORIGIN_FILE) or files.get(file, want) != want:
            raise PullError(f"manifest.json: file entry {entry['file']!r} is malformed or listed twice with two hashes; refused")
        files[file] = want
    if not files or len(files) > MAX_FILES:
        raise PullError(f"manifest.json: lists {len(files)} files (a pack has 1 to {MAX_FILES}); refused")
    return list(files.items())


def _file_limit(file: str) -> int:
    return MAX_ONNX_BYTES if file.endswith(".onnx") else MAX_NPY_BYTES


def _target(root: Path, name: str | None, raw: bytes) -> str:
    target = valid_name(name if name is not None else json.loads(raw).get("name"))
    dest = root / target
    if dest.exists() and not (dest / "manifest.json").is_file():
        raise PullError(f"{dest} exists and is not a pack; remove it or use --name")
    return target


def _unchanged(dest: Path, digest: str) -> bool:
    """The same manifest is already installed there and still verifies."""
    try:
        if hashlib.sha256((dest / "manifest.json").read_bytes()).hexdigest() != digest:
            return False
        load_pack(dest)
    except (OSError, PackError):
        return False
    return True


def _discard(part: Path) -> None:
    part.unlink(missing_ok=True)
    _validator_path(part).unlink(missing_ok=True)


def _kept(dest: Path, digest: str, source: Source, origin: dict) -> Result:
    """The same pack is installed already: only its origin record is brought up to date."""
    try:
        write_origin(dest, origin)
    except OSError as exc:
        raise OutputError(f"cannot write {dest / ORIGIN_FILE}: {exc.strerror or exc}") from None
    return Result(dest.name, dest, digest, source.text, "unchanged", origin)


def _fetch_verified(http: Http, url: str, part: Path, want: str, limit: int, what: str) -> None:
    """Download (or finish downloading) ``part`` and keep it only if its sha256 is ``want``."""
    resumed = part.exists() and part.stat().st_size > 0
    if not resumed or sha256_file(part)[1] != want:  # a complete part from an earlier pull needs no request
        http.download(url, part, limit, what)
    got = sha256_file(part)[1]
    if got != want and resumed:  # the piece kept from before may belong to another version: once more, whole
        part.unlink()
        http.download(url, part, limit, what)
        got = sha256_file(part)[1]
    if got != want:
        part.unlink(missing_ok=True)
        raise PullError(f"{what}: sha256 {got[:12]}... is not the manifest's {want[:12]}...; refused, nothing installed")


def _from_archive(archive: Path, work: Path, pack_dir: Path, pin: str | None, name: str | None, source: Source, limits: Limits, root: Path) -> tuple[bytes, str, str]:
    unpacked = work / "unpacked"
    unpacked.mkdir()
    extract_archive(archive, unpacked, limits)
    top = [p for p in unpacked.iterdir()]
    folder = unpacked if (unpacked / "manifest.json").is_file() else top[0] if len(top) == 1 and (top[0] / "manifest.json").is_file() else None
    if folder is None:
        raise PullError("the archive holds no pack (manifest.json at its top or in its one top folder)")
    return _from_folder(folder, pack_dir, pin, name, source, move=True, root=root)


def _from_folder(folder: Path, pack_dir: Path, pin: str | None, name: str | None, source: Source, move: bool, root: Path) -> tuple[bytes, str, str]:
    """Copy (or move) the manifest and the files it lists from a local pack folder."""
    manifest = folder / "manifest.json"
    if not manifest.is_file():
        raise PullError(f"{folder.name}: no manifest.json; not a pack folder")
    try:
        if manifest.stat().st_size > MAX_MANIFEST_BYTES:
            raise PullError(f"manifest.json: larger than {MAX_MANIFEST_BYTES} bytes; refused")
        raw = manifest.read_bytes()
    except OSError as exc:
        raise PullError(f"manifest.json: cannot be read ({exc.strerror or exc})") from None
    digest = _check_pin(raw, pin, source)
    files = manifest_files(raw)
    target = _target(root, name, raw)
    real = folder.resolve()
    sources: dict[str, Path] = {}
    for file, _ in files:
        path = folder / file
        if not path.resolve().is_relative_to(real):
            raise PullError(f"{file}: resolves outside the pack folder (symlink?); refused")
        if not path.is_file():
            raise PullError(f"{file}: listed in manifest.json but missing")
        if path.stat().st_size > _file_limit(file):
            raise PullError(f"{file}: larger than a pack file may be; refused")
        sources[file] = path
    _place(pack_dir, raw, sources, move)
    return raw, target, digest


def _place(pack_dir: Path, raw: bytes, files: dict[str, Path], move: bool) -> None:
    (pack_dir / "manifest.json").write_bytes(raw)
    moved: dict[Path, Path] = {}  # two files with the same bytes share one downloaded part
    for file, src in files.items():
        dest = pack_dir.joinpath(*file.split("/"))
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            if src in moved:
                shutil.copyfile(moved[src], dest)
            elif move:
                os.replace(src, dest)
                moved[src] = dest
            else:
                shutil.copyfile(src, dest)
        except OSError as exc:
            if exc.filename == str(src) and not move:  # the source's fault, not the pack folder's
                raise PullError(f"{file}: cannot be read ({exc.strerror or exc})") from None
            raise OutputError(f"cannot write {pack_dir.parent}: {exc.strerror or exc}") from None


def install(staged: Path, dest: Path) -> str:
    """Rename the verified ``staged`` folder to ``dest``; an existing pack there is moved
    aside first and put back if the rename fails. Returns "installed" or "replaced"."""
    if not (dest.exists() or dest.is_symlink()):
        os.replace(staged, dest)
        return "installed"
    aside = Path(tempfile.mkdtemp(prefix=f".old-{dest.name}-", dir=dest.parent)) / dest.name
    os.replace(dest, aside)
    try:
        os.replace(staged, dest)
    except BaseException:
        os.replace(aside, dest)
        raise
    finally:
        shutil.rmtree(aside.parent, ignore_errors=True)  # the old pack, or the empty folder after a put-back
    return "replaced"


def _offline(source: Source, pin: str | None, name: str | None, root: Path, var: str) -> Result:
    """No network: succeed only with an installed pack that came from ``source``."""
    candidates = [root / name] if name else sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    for folder in candidates:
        origin = read_origin(folder)
        if not origin or origin.get("source") != source.text:
            continue
        try:
            pack = load_pack(folder)
        except PackError:
            continue
        if pin is not None and pack.manifest_sha256 != pin:
            continue
        return Result(folder.name, folder, pack.manifest_sha256, source.text, "offline", origin)
    pinned = f" with manifest sha256 {pin}" if pin else ""
    raise PullError(f"pull {source.text}: offline ({var}=1) and no pack from it{pinned} is installed; nothing downloaded")


def remove(name: str, root: Path | None = None) -> Path:
    """Delete the pack ``name`` from the user pack folder (never a built-in or NAT_PACK_PATH pack)."""
    root = Path(root) if root is not None else user_pack_dir()
    if not isinstance(name, str) or not NAME.match(name):
        raise PackError(f"remove {name!r}: not a pack name (a pack folder's name, not a path)")
    dest = root / name
    if not (dest / "manifest.json").is_file():
        if name == BUILTIN or (BUILTIN_DIR / name / "manifest.json").is_file():
            raise PackError(f"remove {name}: the pack inside NAT cannot be removed")
        raise PackError(f"remove {name}: no pack of that name in the user pack folder {root}")
    aside = Path(tempfile.mkdtemp(prefix=f".remove-{name}-", dir=root))
    try:
        os.replace(dest, aside / name)  # gone from lookups at once, even if deleting takes a while
    except OSError as exc:
        shutil.rmtree(aside, ignore_errors=True)
        raise OutputError(f"cannot remove {dest}: {exc.strerror or exc}") from None
    shutil.rmtree(aside, ignore_errors=True)
    return dest


def clean_partial(root: Path | None = None) -> None:
    """Drop every unfinished download kept for resuming."""
    shutil.rmtree((Path(root) if root is not None else user_pack_dir()) / PARTIAL, ignore_errors=True)


def _read_all(response, limit: int, what: str) -> bytes:
    chunks, size = [], 0
    try:
        while block := response.read(min(BLOCK, limit + 1 - size)):
            chunks.append(block)
            size += len(block)
            if size > limit:
                raise PullError(f"{what}: more than {limit} bytes; refused")
    except http.client.IncompleteRead as exc:
        chunks.append(exc.partial)
    except (OSError, http.client.HTTPException) as exc:
        raise PullError(f"{what}: the connection failed ({' '.join(str(exc).split()) or type(exc).__name__})") from None
    return b"".join(chunks)


def _int_header(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


def _range_start_total(value: str | None) -> tuple[int, int | None]:
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", (value or "").strip())
    if not match:
        raise PullError(f"a partial response without a valid Content-Range ({value!r}); refused")
    total = match.group(3)
    return int(match.group(1)), None if total == "*" else int(total)


def _range_total(value: str | None) -> int | None:
    match = re.fullmatch(r"bytes \*/(\d+)", (value or "").strip())
    return int(match.group(1)) if match else None


def _validator_path(part: Path) -> Path:
    return part.with_name(part.name + ".etag")


def _read_validator(part: Path) -> str | None:
    try:
        text = _validator_path(part).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text if text and text.isprintable() and len(text) < 512 else None


def _write_validator(part: Path, headers: dict[str, str]) -> None:
    """The ETag (or Last-Modified) a resumed request sends as If-Range: a changed file comes whole."""
    value = headers.get("etag") or headers.get("last-modified")
    path = _validator_path(part)
    if value and not value.startswith("W/"):  # weak ETags are not valid for If-Range
        path.write_text(value, encoding="ascii", errors="replace")
    else:
        path.unlink(missing_ok=True)


def _short(url: str) -> str:
    """A URL without its query (signed CDN URLs carry credentials there)."""
    parsed = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path, "", ""))


def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"nat/{version('neural-audio-tokenizer')}"
    except PackageNotFoundError:
        return "nat"

