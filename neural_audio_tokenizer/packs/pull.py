"""``nat packs pull``: install a published pack byte for byte.

Sources and the URL policy are in :mod:`.sources`, HTTP and resumable downloads in
:mod:`.transport`, the hub's addressing (the optional huggingface_hub) in :mod:`.hub`, and
putting a folder in place in :mod:`.install`. This module is the pull itself:

1. the manifest first, its sha256 checked against ``--sha256`` before anything else is fetched;
2. each file it lists (and only those) into ``.partial/<sha256>.part`` in the user pack
   folder, kept only if its sha256 is the manifest's; an interrupted download resumes there.
   From an archive, the listed entries only, within the sizes a pack file may have;
3. a temporary folder holding the manifest and the files is verified by
   :func:`~neural_audio_tokenizer.runtime.pack.load_pack` (hashes, array headers, ONNX checks);
4. it is renamed into place (:func:`.install.replace_folder`: the pack before it comes back
   if that fails), with ``.nat-origin.json`` saying where it came from.

One pull at a time per user pack folder (:func:`.install.locked`), all of it within one
deadline (``timeout_s``). Failures raise PullError (exit 2) or OutputError (exit 3), one
line each, with nothing installed and the pack before untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import OutputError, PackError
from ..runtime.pack import MAX_MANIFEST_BYTES, MAX_NPY_BYTES, MAX_ONNX_BYTES, load_pack
from . import user_pack_dir
from .archive import Limits, extract_archive, scan_archive
from .install import PARTIAL, clean_partial, locked, remove, replace_folder
from .origin import read_origin, write_origin
from .sources import NAME, REPO, SHA256, PullError, Source, check_pin, manifest_files, offline_switch, parse_source, printable, short, valid_name
from .transport import DEADLINE_S, Deadline, Http, Progress, discard_part, part_sha256, part_size

__all__ = ["pull", "remove", "clean_partial", "manifest_files", "Result", "PullError", "NAME", "REPO", "SHA256"]

MAX_TOTAL_BYTES = 8 << 30
MAX_UNLISTED_BYTES = 16 << 20  # what an archive may carry besides the pack (its model card)


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
    progress: Progress | None = None,
    limits: Limits | None = None,
    timeout_s: float = DEADLINE_S,
) -> Result:
    """Install the pack at ``source_text`` into the user pack folder (or ``dest_root``).
    Raises PullError (one line, starting ``pull SOURCE:``) or OutputError. ``progress(file,
    bytes, total)`` is called as files download; ``limits``: what an archive may hold;
    ``timeout_s``: the whole pull, waiting for another pull included."""
    deadline = Deadline(timeout_s)
    limits = limits or Limits(max_total_bytes=MAX_TOTAL_BYTES)
    try:
        pin = check_pin(sha256)
        if name is not None:
            valid_name(name)
        source = parse_source(source_text)
    except PackError as exc:
        raise _labelled(exc, printable(source_text)) from None
    root = Path(dest_root) if dest_root is not None else user_pack_dir()
    if source.remote and (var := offline_switch()):
        return _offline(source, pin, name, root, var)
    try:
        hub = None
        if source.kind == "hf":
            from .hub import hub_for

            hub = hub_for(source)
    except PackError as exc:
        raise _labelled(exc, source.text) from None
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the pack folder {root}: {exc.strerror or exc}; nothing changed") from None
    with locked(root, max(0.0, deadline.left())):
        try:
            return _pull(source, pin, name, root, progress, limits, deadline, hub)
        except PackError as exc:
            raise _labelled(exc, source.text) from None
        except OSError as exc:  # this side: the pack folder cannot be written (disk full, read-only)
            raise OutputError(f"cannot write in {root}: {exc.strerror or exc}; nothing changed") from None


def _labelled(exc: PackError, source: str) -> PullError:
    """One printable line starting ``pull SOURCE:``, whatever a server or archive put in the text."""
    text = str(exc)
    return PullError(printable(text if text.startswith("pull ") else f"pull {source}: {text}", 2000))


def _pull(source: Source, pin: str | None, name: str | None, root: Path, progress: Progress | None, limits: Limits, deadline: Deadline, hub) -> Result:
    partial = root / PARTIAL
    if source.remote:
        _own_folder(partial)
    work = Path(tempfile.mkdtemp(prefix=".pull-", dir=root))
    archive_part: Path | None = None
    try:
        pack_dir = work / "pack"
        pack_dir.mkdir()
        origin: dict = {"source": source.text, "kind": source.kind}
        if source.kind in ("hf", "url-folder"):
            if hub is not None:
                http = Http(deadline, hub.host, hub.token, progress, _user_agent())
                url_of = hub.url
            else:
                http = Http(deadline, progress=progress, user_agent=_user_agent())
                url_of = lambda file: source.base + urllib.parse.quote(file)  # noqa: E731
            raw, headers = http.fetch_small(url_of("manifest.json"), MAX_MANIFEST_BYTES, "manifest.json")
            if hub is not None:
                from .hub import commit_of

                origin["revision"] = source.revision
                origin["commit"] = commit_of(headers)
            digest = _check_pin(raw, pin, source)
            files = manifest_files(raw)
            target = _target(root, name, raw)
            if _unchanged(root / target, digest):
                return _kept(root / target, digest, source, {**origin, "manifest_sha256": digest, "pinned": pin is not None})
            parts = {file: partial / f"{want}.part" for file, want in files}
            total = 0
            for file, want in files:
                _fetch_verified(http, url_of(file), parts[file], want, _file_limit(file), file)
                total += part_size(parts[file])
                if total > MAX_TOTAL_BYTES:
                    raise PullError(f"the files add up to more than the {MAX_TOTAL_BYTES} bytes a pack may have; refused")
            _place(pack_dir, raw, parts, move=True)
            for part in parts.values():
                discard_part(part)  # moved already; this drops its ETag record
        elif source.kind == "url-archive":
            http = Http(deadline, progress=progress, user_agent=_user_agent())
            part = partial / f"archive-{hashlib.sha256(source.url.encode()).hexdigest()[:24]}.part"
            http.download(source.url, part, limits.max_total_bytes, short(source.url))
            archive_part = part  # complete: from here on a refusal discards it, a retry fetches it anew
            raw, target, digest = _from_archive(part, work, pack_dir, pin, name, source, limits, root)
            discard_part(part)
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
            raise PullError(f"{exc}; nothing installed") from None
        try:
            write_origin(pack_dir, origin)
            action = replace_folder(pack_dir, root / target)
        except OSError as exc:
            raise OutputError(f"cannot install {target} in {root}: {exc.strerror or exc}; nothing changed") from None
        return Result(target, root / target, digest, source.text, action, origin)
    except PackError:
        if archive_part is not None:
            discard_part(archive_part)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _own_folder(folder: Path) -> None:
    """``folder`` exists as a real folder (not a file or a link put in its place)."""
    try:
        folder.mkdir(exist_ok=True)
        is_dir = stat.S_ISDIR(os.lstat(folder).st_mode)
    except FileExistsError:
        is_dir = False
    except OSError as exc:
        raise OutputError(f"cannot create {folder}: {exc.strerror or exc}; nothing changed") from None
    if not is_dir:
        raise OutputError(f"{folder} is not a folder; remove it (it only holds unfinished downloads); nothing changed")


def _check_pin(raw: bytes, pin: str | None, source: Source) -> str:
    digest = hashlib.sha256(raw).hexdigest()
    if pin is not None and digest != pin:
        raise PullError(f"pull {source.text}: manifest.json has sha256 {digest}, not the pinned {pin}; refused, nothing installed")
    return digest


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


def _kept(dest: Path, digest: str, source: Source, origin: dict) -> Result:
    """The same pack is installed already: only its origin record is brought up to date."""
    try:
        write_origin(dest, origin)
    except OSError as exc:
        raise OutputError(f"cannot write {dest}: {exc.strerror or exc}") from None
    return Result(dest.name, dest, digest, source.text, "unchanged", origin)


def _fetch_verified(http: Http, url: str, part: Path, want: str, limit: int, what: str) -> None:
    """Download (or finish downloading) ``part`` and keep it only if its sha256 is ``want``."""
    resumed = part_size(part) > 0
    if not resumed or part_sha256(part) != want:  # a complete part from an earlier pull needs no request
        http.download(url, part, limit, what)
    got = part_sha256(part)
    if got != want and resumed:  # the piece kept from before may belong to another version: once more, whole
        discard_part(part)
        http.download(url, part, limit, what)
        got = part_sha256(part)
    if got != want:
        discard_part(part)
        raise PullError(f"{what}: sha256 {got[:12]}... is not the manifest's {want[:12]}...; refused, nothing installed")


def _from_archive(archive: Path, work: Path, pack_dir: Path, pin: str | None, name: str | None, source: Source, limits: Limits, root: Path) -> tuple[bytes, str, str]:
    """The pack in an archive: the manifest found by a first read, then only the files it lists."""
    try:
        listing = scan_archive(archive, limits)
    except PackError as exc:
        hint = "; a pack folder on a web server is pulled by its manifest.json URL (https://HOST/PATH/NAME/manifest.json)"
        raise PullError(f"{exc}{hint}" if source.kind == "url-archive" and "not a readable tar archive" in str(exc) else str(exc)) from None
    if listing.manifest is None:
        raise PullError("the archive holds no pack (manifest.json at its top or in its one top folder)")
    digest = _check_pin(listing.manifest, pin, source)
    files = manifest_files(listing.manifest)
    _target(root, name, listing.manifest)
    wanted = {listing.prefix + "manifest.json"} | {listing.prefix + file for file, _ in files}
    for file, _ in files:
        size = listing.sizes.get(listing.prefix + file)
        if size is None:
            raise PullError(f"{file}: listed in manifest.json but not in the archive")
        if size > _file_limit(file):
            raise PullError(f"{file}: {size} bytes in the archive, more than the {_file_limit(file)} a pack file may have; refused")
    unlisted = {member: size for member, size in listing.sizes.items() if member not in wanted}
    if sum(unlisted.values()) > MAX_UNLISTED_BYTES:
        biggest = max(unlisted, key=lambda member: unlisted[member])
        raise PullError(f"archive entry {biggest!r}: {unlisted[biggest]} bytes that manifest.json does not list (an archive may carry {MAX_UNLISTED_BYTES} such bytes); refused")
    unpacked = work / "unpacked"
    unpacked.mkdir()
    extract_archive(archive, unpacked, limits, only=wanted)
    raw, target, got = _from_folder(unpacked / listing.prefix if listing.prefix else unpacked, pack_dir, pin, name, source, move=True, root=root)
    if got != digest:
        raise PullError("the archive changed while it was read; refused")
    return raw, target, got


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
        try:
            if not path.resolve().is_relative_to(real):
                raise PullError(f"{file}: resolves outside the pack folder (symlink?); refused")
            if not path.is_file():
                raise PullError(f"{file}: listed in manifest.json but missing")
            if path.stat().st_size > _file_limit(file):
                raise PullError(f"{file}: larger than a pack file may be; refused")
        except OSError as exc:
            raise PullError(f"{file}: cannot be read ({exc.strerror or exc})") from None
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


def _offline(source: Source, pin: str | None, name: str | None, root: Path, var: str) -> Result:
    """No network: succeed only with an installed pack that came from ``source``."""
    try:
        candidates = [root / name] if name else sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    except OSError:
        candidates = []
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


def _user_agent() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"nat/{version('neural-audio-tokenizer')}"
    except PackageNotFoundError:
        return "nat"
