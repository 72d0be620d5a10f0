"""What ``nat packs pull`` may pull from, and which URLs it may contact.

Sources (:func:`parse_source`): ``hf:OWNER/REPO[@REVISION]`` (a hub repository holding a pack
folder, fetched through the hub client, packs/hub.py), ``https://.../manifest.json`` (a pack
folder on any web server), any other ``https://`` URL (a pack archive), or a local archive
or folder.

URL policy (:func:`check_url`, applied to every URL before it is contacted, redirects
included): printable ASCII only, no user name or password in the host part, ``https://``
anywhere and plain ``http://`` only to the loopback address. Manifests are read by
:func:`manifest_files`: only plain relative names that fit in a folder, each once.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from ..errors import PackError
from . import BUILTIN
from .archive import ArchiveError, check_member_name
from .origin import ORIGIN_FILE

HF_ENDPOINT = "https://huggingface.co"
OFFLINE_VARS = ("NAT_OFFLINE", "HF_HUB_OFFLINE")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}\Z")
SHA256 = re.compile(r"[0-9a-f]{64}\Z")
URL_CHARS = re.compile(r"[\x21-\x7e]{1,4096}\Z")  # printable ASCII without spaces: what a request line can carry
MAX_FILES = 64
MAX_NAME_PART = 100  # a listed file's folder or file name; far under any file system's 255


class PullError(PackError):
    """A pull that was refused or failed; nothing was installed or changed."""


def printable(text: object, limit: int = 200) -> str:
    """``text`` safe for one terminal line: anything but printable characters becomes ``?``."""
    out = "".join(c if c.isprintable() else "?" for c in str(text))
    return out if len(out) <= limit else out[: limit - 3] + "..."


@dataclass(frozen=True)
class Source:
    """Where a pack comes from. ``text`` is the canonical form recorded in the origin."""

    kind: str  # "hf", "url-folder", "url-archive", "folder", "archive"
    text: str
    base: str = ""  # url-folder: the URL the file names are appended to
    url: str = ""  # url-archive
    path: Path | None = None  # folder, archive
    repo: str = ""  # hf
    revision: str | None = None  # hf

    @property
    def remote(self) -> bool:
        return self.kind in ("hf", "url-folder", "url-archive")


def parse_source(text: str) -> Source:
    """``hf:OWNER/REPO[@REVISION]``, an http(s) URL, or a local archive or folder."""
    if not text.isprintable():
        raise PullError(f"pull {printable(text)}: a source holds printable characters only")
    if text.startswith("hf:"):
        repo, _, revision = text[3:].partition("@")
        if not REPO.match(repo) or ".." in repo:
            raise PullError(f"pull {text}: expected hf:OWNER/REPO[@REVISION]")
        revision = revision or "main"
        if not URL_CHARS.match(revision) or len(revision) > 256:
            raise PullError(f"pull {text}: revision {revision!r} is not a branch, tag or commit")
        return Source("hf", f"hf:{repo}@{revision}", repo=repo, revision=revision)
    scheme = text.split(":", 1)[0].lower() if "://" in text else ""
    if scheme in ("http", "https"):
        parsed = parse_url(text)
        if not parsed.hostname:
            raise PullError(f"pull {text}: a URL needs a host")
        if parsed.path.endswith("/manifest.json"):
            return Source("url-folder", text, base=text[: text.rindex("manifest.json")].split("?")[0])
        return Source("url-archive", text, url=text)
    if scheme:
        raise PullError(f"pull {text}: {scheme}:// is not a pack source (hf:OWNER/REPO, https://..., or a local archive or folder)")
    path = Path(text).expanduser()
    try:
        kind = "folder" if path.is_dir() else "archive" if path.is_file() else None
        resolved = path.resolve()
    except OSError as exc:  # a name too long for the file system, a loop of links
        raise PullError(f"pull {text}: cannot be read ({exc.strerror or exc})") from None
    if kind is None:
        raise PullError(f"pull {text}: no such pack archive or folder (remote sources are hf:OWNER/REPO[@REVISION] or https://...)")
    return Source(kind, str(resolved), path=resolved)


def parse_url(url: str) -> urllib.parse.SplitResult:
    """``url`` split, or PullError for one no request can be made from."""
    if not URL_CHARS.match(url):
        raise PullError(f"URL {printable(url)!r}: only printable ASCII without spaces (percent-encode other characters); refused")
    try:
        parsed = urllib.parse.urlsplit(url)
        parsed.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise PullError(f"URL {url!r}: malformed ({exc}); refused") from None
    if "@" in parsed.netloc:  # http.client would connect to the whole "user@host" as a host name
        raise PullError(f"URL {_without_userinfo(parsed)}: a user name or password in the URL; refused")
    return parsed


def _without_userinfo(parsed: urllib.parse.SplitResult) -> str:
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc.rpartition("@")[2], parsed.path, "", ""))


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> urllib.parse.SplitResult:
    """https anywhere; plain http only to the loopback address. Raised before any connection."""
    parsed = parse_url(url)
    if parsed.scheme == "https" and parsed.hostname:
        return parsed
    if parsed.scheme == "http" and parsed.hostname:
        if is_loopback(parsed.hostname):
            return parsed
        raise PullError(f"refused plain http:// to {parsed.hostname}: only the loopback address may be reached without TLS; use https://")
    raise PullError(f"refused {parsed.scheme or 'a'}:// URL {url!r}: only https:// (and http:// on the loopback address)")


def short(url: str) -> str:
    """A URL without its query (signed CDN URLs carry credentials there)."""
    parsed = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parsed.scheme, parsed.netloc, parsed.path, "", ""))


def offline_switch() -> str | None:
    """The variable that turns the network off, if one does (``1``, ``true``, ``yes``, ``on``)."""
    for var in OFFLINE_VARS:
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return var
    return None


def valid_name(name: str) -> str:
    """A pack name that stays a single folder inside the user pack folder."""
    if not isinstance(name, str) or not NAME.match(name):
        raise PullError(f"pack name {printable(repr(name))} is not a plain folder name (letters, digits, '.', '_', '-'; at most 100); use --name")
    if name == BUILTIN:
        raise PullError(f"pack name {name!r} is the pack inside NAT, which a pulled pack could never shadow; use --name")
    return name


def check_pin(sha256: str | None) -> str | None:
    """``--sha256`` as 64 lower-case hex digits, or None."""
    if sha256 is None:
        return None
    pin = sha256.strip().lower()
    if not SHA256.match(pin):
        raise PullError(f"--sha256 {printable(repr(sha256))}: expected the 64 hex digits of a manifest's sha256")
    return pin


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
        shown = printable(repr(entry["file"]))
        try:
            file = check_member_name(entry["file"])
        except ArchiveError:
            raise PullError(f"manifest.json: file {shown} is not a plain relative name inside the pack; refused") from None
        if any(len(part) > MAX_NAME_PART or not part.isprintable() for part in file.split("/")):
            raise PullError(f"manifest.json: file {shown} has a name part over {MAX_NAME_PART} printable characters; refused")
        want = entry["sha256"].lower()
        if not SHA256.match(want) or file in ("", "manifest.json", ORIGIN_FILE) or files.get(file, want) != want:
            raise PullError(f"manifest.json: file entry {shown} is malformed or listed twice with two hashes; refused")
        files[file] = want
    if not files or len(files) > MAX_FILES:
        raise PullError(f"manifest.json: lists {len(files)} files (a pack has 1 to {MAX_FILES}); refused")
    folders = {"/".join(f.split("/")[:i]) for f in files for i in range(1, f.count("/") + 1)}
    if clash := sorted(folders & set(files)):
        raise PullError(f"manifest.json: {printable(repr(clash[0]))} is listed as a file and holds other listed files; refused")
    return list(files.items())
