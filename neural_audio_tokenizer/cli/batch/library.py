"""Which files ``nat batch`` tokenizes, what each is called, and where its output goes.

Every input gets a *root* and a path relative to it, ``rel`` (``/``-separated). ``rel`` is
the name in the NDJSON header, the path in ``index.jsonl``, and, plus ``.ndjson``, the
output's path under ``--out``. So an output is byte-identical to ``cd ROOT && nat REL``,
names never carry a machine's absolute path, and same-named files in different folders
(or ``a.wav`` next to ``a.flac``: the suffix is kept, not replaced) never collide.

The root is the input folder, or for a list the deepest folder holding every listed file,
unless ``--root`` pins it (do that for a list that grows, so names stay put).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ...runtime.inputs.audio import AUDIO_EXTENSIONS, looks_like_audio
from ...errors import NatError

SUFFIX = ".ndjson"


@dataclass(frozen=True)
class Entry:
    """One input: ``rel`` names it; ``path`` is where it is read; ``problem`` if unusable."""

    rel: str
    path: str
    problem: str | None = None


def parse_extensions(text: str) -> frozenset[str] | None:
    """``--ext wav,flac`` -> {"wav", "flac"}; ``*`` -> None (every file)."""
    if text.strip() == "*":
        return None
    exts = frozenset(e.strip().lower().lstrip(".") for e in text.split(",") if e.strip())
    if not exts:
        raise NatError("--ext: give extensions like wav,flac (or '*' for every file)")
    return exts


def _wanted(name: str, exts: frozenset[str] | None) -> bool:
    if name.startswith("."):  # .DS_Store, macOS ._song.wav resource forks, our own .part files
        return False
    return exts is None or name.rsplit(".", 1)[-1].lower() in exts and "." in name


def walk(folder: str, exts: frozenset[str] | None, exclude: str | None) -> tuple[list[str], list[str]]:
    """Audio files under ``folder`` (hidden files and folders skipped), and unreadable folders."""
    found: list[str] = []
    unreadable: list[str] = []
    skip = os.path.realpath(exclude) if exclude else None

    def onerror(exc: OSError) -> None:
        unreadable.append(f"{exc.filename}: cannot read folder ({exc.strerror or exc})")

    for dirpath, dirnames, filenames in os.walk(folder, onerror=onerror):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and os.path.realpath(os.path.join(dirpath, d)) != skip]
        found.extend(os.path.join(dirpath, f) for f in filenames if _wanted(f, exts))
    return found, unreadable


def read_list(path: str) -> list[str]:
    """A list file (or ``-``: stdin): one path per line; blank lines and ``#`` lines skipped
    (so an .m3u playlist works). Relative paths are read from the current folder, as ``nat`` would."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read() if sys.stdin is not None else b""
        else:
            with open(path, "rb") as f:
                data = f.read()
    except OSError as exc:
        raise NatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if looks_like_audio(data[:4]) or b"\x00" in data[:65536] or path.rsplit(".", 1)[-1].lower() in AUDIO_EXTENSIONS:
        raise NatError(f"{path}: an audio file, not a folder or a list of paths (for one file: nat {path})")
    text = data.decode("utf-8", errors="surrogateescape")
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def discover(source: str, root: str | None = None, exts: frozenset[str] | None = frozenset(AUDIO_EXTENSIONS), exclude: str | None = None) -> tuple[str, list[Entry], list[str]]:
    """(root, entries in a fixed order, problems that are no input's). A folder's files are
    sorted by path components; a list keeps its order (duplicates dropped)."""
    if source != "-" and os.path.isdir(source):
        files, problems = walk(source, exts, exclude)
        base = os.path.abspath(root or source)
        entries = _entries([os.path.abspath(f) for f in files], base)
        entries.sort(key=lambda e: e.rel.split("/"))
        return base, entries, problems
    if source != "-" and not os.path.exists(source):
        raise NatError(f"{source}: no such folder or list file")
    paths = [os.path.abspath(line) for line in dict.fromkeys(read_list(source))]
    if root:
        base = os.path.abspath(root)
    elif paths:
        base = os.path.commonpath([os.path.dirname(p) for p in paths])
    else:
        base = os.getcwd()
    seen: set[str] = set()
    entries = [e for e in _entries(paths, base) if not (e.rel in seen or seen.add(e.rel))]  # a repeated file: once
    return base, entries, []


def _entries(paths: list[str], base: str) -> list[Entry]:
    out = []
    for path in paths:
        rel = os.path.relpath(path, base).replace(os.sep, "/")
        if rel == ".." or rel.startswith("../"):
            out.append(Entry(path, path, f"{path}: outside the root {base} (see --root)"))
        else:
            out.append(Entry(rel, path))
    return out


def output_path(out_dir: str | os.PathLike, rel: str) -> Path:
    """Where ``rel``'s NDJSON goes: the same relative path plus ``.ndjson``."""
    return Path(out_dir, *rel.split("/")).with_name(rel.rsplit("/", 1)[-1] + SUFFIX)
