"""Pack archives: read one safely (``nat packs pull``), write one reproducibly (``nat-export publish``).

Reading treats the archive as hostile. Entries are never extracted by ``tarfile`` itself:
each member is checked and then copied by this module into a fresh folder, so only plain
files and folders can come out, under the names checked here, with modes set here.
Refused, each by name: absolute paths, ``..``, backslashes and NUL bytes in names, symlinks,
hard links, devices, FIFOs, sparse files, a name given twice, more entries or bytes than
:class:`Limits` allows. The decompressed stream is counted as it is read, so a
decompression bomb stops at the limit instead of filling the disk or the memory, and tar's
own metadata headers (long names, pax records) are size-checked before ``tarfile`` reads
them into memory, and at most ``MAX_META_CHAIN`` of them may precede one entry (``tarfile``
reads a chain of them recursively). xz streams are decompressed within ``XZ_MEMLIMIT`` of
memory whatever dictionary their header asks for; bzip2 needs at most a few MiB by design.

A pull reads an archive twice: :func:`scan_archive` finds the manifest and every entry's
declared size without writing anything, and :func:`extract_archive` then writes only the
entries the manifest lists (``only``).

Writing (:func:`write_archive`) gives the same bytes for the same files: entries sorted by
name, ustar headers with mtime 0, owner 0/0 without names, modes 0644/0755, and a gzip
stream without a file name or timestamp.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import NatError, OutputError, PackError

COPY_BLOCK = 1 << 20
MAX_META_HEADER = 1 << 16  # a pax record or GNU long name never needs more; tarfile reads it whole
MAX_META_CHAIN = 4  # pax + long name + long link is the most a real entry carries
MAX_DEPTH = 4
MAX_SCANNED_MANIFEST = 1 << 20  # runtime/pack.py's MAX_MANIFEST_BYTES
XZ_MEMLIMIT = 128 << 20  # xz -9 needs 65 MiB to decompress
READ_BLOCK = 1 << 16
META_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)


@dataclass(frozen=True)
class Limits:
    """What a pack archive may hold. The defaults fit the largest real pack (mert-w2v-330m
    at about 1.3 GB) several times over."""

    max_entries: int = 256
    max_file_bytes: int = (2 << 30) - 1  # an ONNX model's limit (runtime/pack.py)
    max_total_bytes: int = 8 << 30


class ArchiveError(PackError):
    """An archive that cannot be read or holds something a pack never needs."""


class _Counted(io.RawIOBase):
    """Reads through ``inner`` and refuses to hand out more than ``limit`` bytes in total."""

    def __init__(self, inner: BinaryIO, limit: int, what: str) -> None:
        self.inner, self.limit, self.what, self.count = inner, limit, what, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.inner.read(len(buffer))
        self.count += len(data)
        if self.count > self.limit:
            raise ArchiveError(f"{self.what}: more than {self.limit} bytes once decompressed; refused (decompression bomb?)")
        buffer[: len(data)] = data
        return len(data)


class _CheckedInfo(tarfile.TarInfo):
    """TarInfo that refuses an oversized metadata header before tarfile reads it into memory,
    and a chain of them longer than any real entry needs."""

    def _proc_member(self, tarfile_):  # tarfile's hook per header block (3.8-3.13)
        if self.type not in META_TYPES:
            return super()._proc_member(tarfile_)
        if self.size > MAX_META_HEADER:
            raise ArchiveError(f"archive: a {self.size}-byte metadata header; refused")
        depth = getattr(tarfile_, "_nat_meta_chain", 0)
        if depth >= MAX_META_CHAIN:
            raise ArchiveError(f"archive: more than {MAX_META_CHAIN} metadata headers before one entry; refused")
        tarfile_._nat_meta_chain = depth + 1
        try:
            return super()._proc_member(tarfile_)
        finally:
            tarfile_._nat_meta_chain = depth


class _Decompressing(io.RawIOBase):
    """The decompressed bytes of ``raw`` (concatenated streams too), through decompressors
    made by ``factory``: unlike lzma.LZMAFile, this one can be given a memory limit."""

    def __init__(self, raw: BinaryIO, factory) -> None:
        self.raw, self.factory, self.decomp, self.pending, self.ended = raw, factory, factory(), b"", False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while not self.ended:
            if self.decomp.eof:
                rest = self.decomp.unused_data + self.raw.read(READ_BLOCK)
                if not rest.strip(b"\0"):  # xz stream padding, or the end
                    self.ended = True
                    break
                self.decomp, self.pending = self.factory(), rest
            data = self.pending or (self.raw.read(READ_BLOCK) if self.decomp.needs_input else b"")
            self.pending = b""
            if not data and self.decomp.needs_input:
                raise EOFError("the compressed stream ends before its end marker (truncated archive)")
            out = self.decomp.decompress(data, max_length=len(buffer))
            if out:
                buffer[: len(out)] = out
                return len(out)
        return 0


def _decompressed(raw: BinaryIO) -> BinaryIO:
    """The tar stream inside gzip, xz or bzip2 (or none), told apart by magic bytes."""
    head = raw.read(6)
    raw.seek(0)
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if head == b"\xfd7zXZ\x00":
        return _Decompressing(raw, lambda: lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=XZ_MEMLIMIT))  # type: ignore[return-value]
    if head[:3] == b"BZh":
        return _Decompressing(raw, bz2.BZ2Decompressor)  # type: ignore[return-value]
    return raw


def check_member_name(name: str) -> str:
    """The member's relative path inside the archive, or ArchiveError."""
    if not name or "\0" in name or "\\" in name:
        raise ArchiveError(f"archive entry {name!r}: not a plain relative name; refused")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ArchiveError(f"archive entry {name!r}: absolute path; refused")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"archive entry {name!r}: '..' leaves the archive; refused")
    if not parts:
        return ""
    if len(parts) > MAX_DEPTH:
        raise ArchiveError(f"archive entry {name!r}: nested deeper than a pack needs; refused")
    return "/".join(parts)


@dataclass
class Listing:
    """What :func:`scan_archive` saw: every file's declared size, and the manifest found."""

    sizes: dict[str, int]
    prefix: str  # "" or "TOP/": where the pack's files are
    manifest: bytes | None


def _members(path: Path, limits: Limits):
    """(relative name, kind, member, open tar) for each entry, every header check passed."""
    files: set[str] = set()
    dirs: set[str] = set()
    total = 0
    with _read_errors(), open(path, "rb") as raw:
        stream = _Counted(_decompressed(raw), limits.max_total_bytes + (1 << 20), "archive")
        with tarfile.open(fileobj=io.BufferedReader(stream, COPY_BLOCK), mode="r|", tarinfo=_CheckedInfo) as tar:
            for count, member in enumerate(tar, 1):
                if count > limits.max_entries:
                    raise ArchiveError(f"archive: more than {limits.max_entries} entries; refused")
                rel = check_member_name(member.name)
                kind = _kind(member)
                if kind != "file" and kind != "folder":
                    raise ArchiveError(f"archive entry {member.name!r}: {kind}; a pack holds only files and folders")
                if not rel:
                    continue
                if rel in dirs or rel in files:
                    raise ArchiveError(f"archive entry {member.name!r}: appears twice; refused")
                parts = rel.split("/")
                for i in range(1, len(parts)):
                    if "/".join(parts[:i]) in files:
                        raise ArchiveError(f"archive entry {rel!r}: inside {'/'.join(parts[:i])!r}, which is a file; refused")
                if kind == "folder":
                    dirs.add(rel)
                else:
                    if member.size > limits.max_file_bytes:
                        raise ArchiveError(f"archive entry {member.name!r}: {member.size} bytes, over the {limits.max_file_bytes}-byte limit; refused")
                    total += member.size
                    if total > limits.max_total_bytes:
                        raise ArchiveError(f"archive: more than {limits.max_total_bytes} bytes of files; refused")
                    files.add(rel)
                yield rel, kind, member, tar


@contextlib.contextmanager
def _read_errors() -> Iterator[None]:
    """A failure to read or decompress the archive, as one ArchiveError."""
    try:
        yield
    except NatError:
        raise
    except (tarfile.TarError, EOFError, lzma.LZMAError, ValueError) as exc:
        if isinstance(exc, lzma.LZMAError) and "memory" in str(exc).lower():
            raise ArchiveError(f"archive: xz needs more than {XZ_MEMLIMIT >> 20} MiB of memory to decompress (a huge dictionary); refused") from None
        raise ArchiveError(f"archive: not a readable tar archive ({' '.join(str(exc).split()) or type(exc).__name__})") from None
    except RecursionError:
        raise ArchiveError("archive: metadata headers nested too deeply; refused") from None
    except OSError as exc:  # gzip.BadGzipFile and zlib errors are OSErrors without errno
        reason = exc.strerror if exc.errno is not None else " ".join(str(exc).split())
        raise ArchiveError(f"archive: cannot be read ({reason or type(exc).__name__})") from None


def scan_archive(path: Path, limits: Limits = Limits()) -> Listing:
    """Read the archive through without writing anything: each file's declared size, and the
    pack's manifest (``manifest.json`` at the top, or in the archive's one top folder)."""
    sizes: dict[str, int] = {}
    manifests: dict[str, bytes] = {}
    with _read_errors():
        for rel, kind, member, tar in _members(path, limits):
            if kind != "file":
                continue
            sizes[rel] = member.size
            if rel.split("/")[-1] == "manifest.json" and rel.count("/") <= 1 and member.size <= MAX_SCANNED_MANIFEST:
                source = tar.extractfile(member)
                assert source is not None  # a regular file always has data
                manifests[rel] = source.read(member.size)
    tops = {rel.split("/")[0] for rel in sizes}
    if "manifest.json" in manifests:
        return Listing(sizes, "", manifests["manifest.json"])
    if len(tops) == 1 and f"{next(iter(tops))}/manifest.json" in manifests:
        top = next(iter(tops))
        return Listing(sizes, f"{top}/", manifests[f"{top}/manifest.json"])
    return Listing(sizes, "", None)


def extract_archive(path: Path, dest: Path, limits: Limits = Limits(), only: set[str] | None = None) -> list[str]:
    """Extract the tar archive ``path`` (optionally gzip/xz/bzip2) into the empty folder
    ``dest``: every file, or only those named in ``only`` (the others are read past, never
    written). Returns the relative names of the files written. Raises ArchiveError, leaving
    in ``dest`` whatever was written so far (the caller removes the folder)."""
    written: list[str] = []
    made: set[str] = set()
    with _read_errors():
        for rel, kind, member, tar in _members(path, limits):
            if kind != "file" or (only is not None and rel not in only):
                continue
            parts = rel.split("/")
            for i in range(1, len(parts)):
                sub = "/".join(parts[:i])
                if sub not in made:
                    try:
                        dest.joinpath(*parts[:i]).mkdir(mode=0o755, exist_ok=True)
                    except OSError as exc:
                        raise OutputError(f"cannot write {dest}: {exc.strerror or exc}") from None
                    made.add(sub)
            source = tar.extractfile(member)
            assert source is not None  # a regular file always has data
            _copy_new(source, dest.joinpath(*parts), member.size, member.name)
            written.append(rel)
    return written


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return "symbolic link"
    if member.islnk():
        return "hard link"
    if member.ischr() or member.isblk():
        return "device"
    if member.isfifo():
        return "FIFO"
    if member.issparse():
        return "sparse file"
    if member.isdir():
        return "folder"
    if member.isreg():
        return "file"
    return f"entry of type {member.type!r}"


def _copy_new(source: BinaryIO, target: Path, size: int, name: str) -> None:
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # never through an existing name
    except FileExistsError:
        raise ArchiveError(f"archive entry {name!r}: appears twice; refused") from None
    except OSError as exc:
        raise OutputError(f"cannot write {target.parent}: {exc.strerror or exc}") from None
    try:
        left = size
        while left:
            block = source.read(min(COPY_BLOCK, left))
            if not block:
                raise ArchiveError(f"archive entry {name!r}: ends before its declared {size} bytes (truncated archive)")
            try:
                view = memoryview(block)
                while view:
                    view = view[os.write(fd, view) :]
            except OSError as exc:
                raise OutputError(f"cannot write {target.parent}: {exc.strerror or exc}") from None
            left -= len(block)
    finally:
        os.close(fd)


def write_archive(out: Path, top: str, files: Mapping[str, Path]) -> None:
    """A reproducible ``.tar.gz`` holding the folder ``top/`` with each of ``files``
    (``{relative name: file to copy}``, names ``/``-separated) inside it, streamed."""
    names = {top: None} | {f"{top}/{rel}": src for rel, src in files.items()}
    for rel in files:  # the folders between top and each file
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            names.setdefault(f"{top}/" + "/".join(parts[:i]), None)
    with open(out, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for name in sorted(names):
                info = tarfile.TarInfo(name)
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                src = names[name]
                if src is None:
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                    continue
                info.size, info.mode = Path(src).stat().st_size, 0o644
                with open(src, "rb") as f:
                    tar.addfile(info, f)
