"""Pack archives: read one safely (``nat packs pull``), write one reproducibly (``nat-export publish``).

Reading treats the archive as hostile. Entries are never extracted by ``tarfile`` itself:
each member is checked and then copied by this module into a fresh folder, so only plain
files and folders can come out, under the names checked here, with modes set here.
Refused, each by name: absolute paths, ``..``, backslashes and NUL bytes in names, symlinks,
hard links, devices, FIFOs, sparse files, a name given twice, more entries or bytes than
:class:`Limits` allows. The decompressed stream is counted as it is read, so a
decompression bomb stops at the limit instead of filling the disk or the memory, and tar's
own metadata headers (long names, pax records) are size-checked before ``tarfile`` reads
them into memory.

Writing (:func:`write_archive`) gives the same bytes for the same files: entries sorted by
name, ustar headers with mtime 0, owner 0/0 without names, modes 0644/0755, and a gzip
stream without a file name or timestamp.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import NatError, OutputError, PackError

COPY_BLOCK = 1 << 20
MAX_META_HEADER = 1 << 16  # a pax record or GNU long name never needs more; tarfile reads it whole
MAX_DEPTH = 4


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
    """TarInfo that refuses an oversized metadata header before tarfile reads it into memory."""

    def _proc_member(self, tarfile_):  # tarfile's hook per header block (3.8-3.13)
        if self.type in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE) and self.size > MAX_META_HEADER:
            raise ArchiveError(f"archive: a {self.size}-byte metadata header; refused")
        return super()._proc_member(tarfile_)


def _decompressed(raw: BinaryIO) -> BinaryIO:
    """The tar stream inside gzip, xz or bzip2 (or none), told apart by magic bytes."""
    head = raw.read(6)
    raw.seek(0)
    if head[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if head == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(raw)  # type: ignore[return-value]
    if head[:3] == b"BZh":
        return bz2.BZ2File(raw)  # type: ignore[return-value]
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


def extract_archive(path: Path, dest: Path, limits: Limits = Limits()) -> list[str]:
    """Extract the tar archive ``path`` (optionally gzip/xz/bzip2) into the empty folder
    ``dest``; return the relative names of the files written. Raises ArchiveError, leaving
    in ``dest`` whatever was written so far (the caller removes the folder)."""
    files: list[str] = []
    dirs: set[str] = set()
    total = 0
    try:
        with open(path, "rb") as raw:
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
                    target = dest.joinpath(*rel.split("/"))
                    _make_parents(dest, rel, dirs, files)
                    if kind == "folder":
                        target.mkdir(mode=0o755)
                        dirs.add(rel)
                        continue
                    if member.size > limits.max_file_bytes:
                        raise ArchiveError(f"archive entry {member.name!r}: {member.size} bytes, over the {limits.max_file_bytes}-byte limit; refused")
                    total += member.size
                    if total > limits.max_total_bytes:
                        raise ArchiveError(f"archive: more than {limits.max_total_bytes} bytes of files; refused")
                    source = tar.extractfile(member)
                    assert source is not None  # a regular file always has data
                    _copy_new(source, target, member.size, member.name)
                    files.append(rel)
    except NatError:
        raise
    except (tarfile.TarError, EOFError, lzma.LZMAError, ValueError) as exc:
        raise ArchiveError(f"archive: not a readable tar archive ({' '.join(str(exc).split()) or type(exc).__name__})") from None
    except OSError as exc:  # gzip.BadGzipFile and zlib errors are OSErrors without errno
        reason = exc.strerror if exc.errno is not None else " ".join(str(exc).split())
        raise ArchiveError(f"archive: cannot be read ({reason or type(exc).__name__})") from None
    return files


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


def _make_parents(dest: Path, rel: str, dirs: set[str], files: list[str]) -> None:
    parts = rel.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        sub = "/".join(parts[:i])
        if sub in files:
            raise ArchiveError(f"archive entry {rel!r}: inside {sub!r}, which is a file; refused")
        if sub not in dirs:
            dest.joinpath(*parts[:i]).mkdir(mode=0o755, exist_ok=True)
            dirs.add(sub)


def _copy_new(source: BinaryIO, target: Path, size: int, name: str) -> None:
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # never through an existing name
    except FileExistsError:
        raise ArchiveError(f"archive entry {name!r}: appears twice; refused") from None
    with os.fdopen(fd, "wb") as out:
        left = size
        while left:
            block = source.read(min(COPY_BLOCK, left))
            if not block:
                raise ArchiveError(f"archive entry {name!r}: ends before its declared {size} bytes (truncated archive)")
            try:
                out.write(block)
            except OSError as exc:
                raise OutputError(f"cannot write {target.parent}: {exc.strerror or exc}") from None
            left -= len(block)


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
