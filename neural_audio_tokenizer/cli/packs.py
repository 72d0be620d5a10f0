"""``nat packs [--verify] [--json]``: which packs NAT can find, and whether they are intact.
``nat packs pull SOURCE`` and ``nat packs remove NAME`` install and delete packs in the user
pack folder (packs/pull.py, packs/install.py); a pulled pack's listing says where it came
from. The download bar (tqdm, the ``[progress]`` extra, on a terminal only) is drawn here.

Listing reads each ``manifest.json`` only (fast, no hashing), in lookup order: the packs
inside NAT, each folder of ``NAT_PACK_PATH``, then the user's pack folder. A name found
again later in that order is shadowed (``--pack NAME`` takes the first), and says so.
``--verify`` loads every pack exactly as tokenizing would (sha256 of every file, array
shapes and dtypes, finite values; see pack.py) and exits 1 if any fails, so CI or an
installer can check a pack folder before use.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

from ..errors import EXIT_INPUT_FAILED, EXIT_OK, NatError
from ..packs import BUILTIN_DIR, search_dirs
from ..packs.origin import read_origin
from ..packs.sources import printable
from . import command
from .progress import Progress

EPILOG = """\
pack folders, in lookup order: the packs inside NAT, each folder in NAT_PACK_PATH
(separated by ':', ';' on Windows), then the user folder shown below.
install and remove (docs/distribution.md):
  nat packs pull hf:OWNER/REPO[@REVISION] [--sha256 MANIFEST_SHA256] [--name NAME]
  nat packs pull https://host/pack.tar.gz | pack.tar.gz | path/to/pack-folder
  nat packs remove NAME
exit codes: 0 listed (and, with --verify, all intact), 1 some pack failed --verify, 2 usage error
"""

PULL_EPILOG = """\
sources: hf:OWNER/REPO[@REVISION] (a Hugging Face hub repository holding a pack folder;
needs the [hub] extra: pip install 'neural-audio-tokenizer[hub]'; HF_ENDPOINT and HF_TOKEN
are honoured), https://.../manifest.json (a pack folder on any web server),
https://.../NAME.tar.gz (a pack archive), or a local archive or folder.
The pack is verified (pinned manifest hash, every file's sha256, the loader's checks) in a
temporary folder and only then renamed into the user pack folder; an interrupted download
resumes when the same command is run again. One pull at a time per user pack folder (a
second one waits). NAT_OFFLINE=1 or HF_HUB_OFFLINE=1: no network;
succeeds only if a pack from SOURCE is already installed.
exit codes: 0 installed (or already installed), 2 refused or failed (nothing changed),
            3 the user pack folder cannot be written
"""


def find_packs() -> list[dict]:
    """One entry per pack folder (a folder holding manifest.json), in lookup order."""
    found: list[dict] = []
    seen: set[str] = set()
    for root in search_dirs():
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and (p / "manifest.json").is_file()):
            entry = describe(folder)
            entry["origin"] = "built-in" if root == BUILTIN_DIR else "NAT_PACK_PATH" if root != search_dirs()[-1] else "user"
            entry["shadowed"] = folder.name in seen
            seen.add(folder.name)
            found.append(entry)
    return found


def describe(folder: Path) -> dict:
    """What the manifest says, without verifying anything."""
    entry: dict = {"name": folder.name, "pack_name": None, "path": str(folder), "bytes": _size(folder)}
    try:
        manifest = json.loads((folder / "manifest.json").read_bytes())
        entry["pack_name"] = manifest.get("name")
        entry["frame_rate"] = manifest.get("frame_rate")
        entry["description"] = manifest.get("description")
        entry["streams"] = {name: _shape(folder, spec) for name, spec in manifest.get("streams", {}).items()}
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        entry["problem"] = f"unreadable manifest.json ({exc})"
    if (origin := read_origin(folder)) is not None:
        entry["pulled"] = origin
    return entry


def source_text(entry: dict) -> str:
    """Where a pulled pack came from: source (commit), and the manifest hash when it was pinned."""
    origin = entry.get("pulled")
    if not origin:
        return ""
    commit = origin.get("commit")
    text = printable(origin.get("source", "?")) + (f" ({printable(commit)[:12]})" if commit else "")
    return text + (f" pinned {printable(origin.get('manifest_sha256'))[:12]}" if origin.get("pinned") else "")


def _shape(folder: Path, spec: dict) -> dict:
    """levels x codebook size of a stream, from the manifest or the .npy header."""
    books = spec.get("codebooks", {})
    shape = books.get("shape")
    if shape is None:
        try:
            import numpy as np

            with open(folder / books["file"], "rb") as f:
                version = np.lib.format.read_magic(f)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape = list(read(f)[0])
        except Exception:  # noqa: BLE001 - listing is best effort; --verify says what is wrong
            return {"levels": None, "codebook_size": None}
    return {"levels": shape[0], "codebook_size": shape[1]}


def _size(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            if path.is_file():
                total += path.stat().st_size
        except OSError:
            pass
    return total


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def verify(entry: dict) -> None:
    from ..runtime.pack import load_pack

    try:
        pack = load_pack(entry["path"])
        entry["verified"] = "ok"
        entry["manifest_sha256"] = pack.manifest_sha256
    except NatError as exc:
        entry["verified"] = "failed"
        entry["problem"] = str(exc)


def streams_text(entry: dict) -> str:
    parts = []
    for name, shape in (entry.get("streams") or {}).items():
        levels, size = shape.get("levels"), shape.get("codebook_size")
        parts.append(f"{name} {levels if levels is not None else '?'}x{size if size is not None else '?'}")
    return ", ".join(parts) or "?"


def table(entries: list[dict], verified: bool) -> str:
    pulled = any(e.get("pulled") for e in entries)
    rows = [("NAME", "STREAMS", "RATE", "SIZE", "STATUS" if verified else "", "LOCATION", "SOURCE" if pulled else "")]
    for e in entries:
        status = e.get("verified", "") if verified else ""
        if e.get("shadowed"):
            status = (status + " " if status else "") + "(shadowed)"
        rate = f"{e['frame_rate']}/s" if e.get("frame_rate") else "?"
        rows.append((e["name"], streams_text(e), rate, _human(e["bytes"]), status, e["path"], source_text(e)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = io.StringIO()
    for r in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths) if w).rstrip() + "\n")
    for e in entries:
        if e.get("problem"):
            out.write(f"{e['name']}: {e['problem']}\n")
    return out.getvalue()


def build_parser() -> command.Parser:
    p = command.parser("nat packs", "List the packs NAT can use: name, streams (levels x codebook size), frame rate, size, location.", EPILOG, label="packs: ")
    p.add_argument("--verify", action="store_true", help="load every pack as tokenizing would (hashes, shapes); exit 1 if any fails")
    p.add_argument("--json", action="store_true", help="one JSON object per pack (NDJSON) instead of a table")
    return p


def pull_parser() -> command.Parser:
    from ..packs.transport import DEADLINE_S

    p = command.parser("nat packs pull", "Install a published pack into the user pack folder, verified byte for byte.", PULL_EPILOG, label="packs: ")
    p.add_argument("source", metavar="SOURCE", help="hf:OWNER/REPO[@REVISION], an https:// URL, or a local pack archive or folder")
    p.add_argument("--sha256", metavar="HASH", help="the manifest's sha256: refuse any other pack")
    p.add_argument("--name", metavar="NAME", help="install under this name (default: the manifest's name)")
    p.add_argument("--timeout", metavar="SECONDS", type=_seconds, default=DEADLINE_S, help=f"give up when the whole pull takes longer (default {DEADLINE_S:g}); run it again to resume")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return p


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1e7:
        raise argparse.ArgumentTypeError(f"--timeout {text!r}: expected a number of seconds above 0")
    return value


class DownloadBar:
    """One tqdm bar per file while it downloads; nothing without a terminal or tqdm."""

    def __init__(self, quiet: bool) -> None:
        progress = Progress.for_stderr(quiet)
        self.tqdm, self.stream = progress.tqdm, progress.stream
        self.bar, self.what = None, None

    def __call__(self, what: str, got: int, total: int | None) -> None:
        if self.tqdm is None:
            return
        if what != self.what:
            self.close()
            self.bar = self.tqdm(total=total, initial=got, desc=what[-30:], unit="B", unit_scale=True, leave=False, file=self.stream, dynamic_ncols=True)
            self.what = what
        else:
            self.bar.update(got - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar, self.what = None, None


def run_pull(argv: list[str]) -> int:
    from ..packs.pull import pull

    args = pull_parser().parse_args(argv)
    bar = DownloadBar(args.quiet)
    try:
        result = pull(args.source, sha256=args.sha256, name=args.name, progress=bar, timeout_s=args.timeout)
    finally:
        bar.close()
    said = {
        "installed": f"installed {result.name}",
        "replaced": f"replaced {result.name} (the pack installed under that name before)",
        "unchanged": f"{result.name} is already installed with this manifest; nothing downloaded",
        "offline": f"offline: {result.name} is installed from {result.source}; nothing downloaded",
    }[result.action]
    sys.stdout.write(f"{said}\n  from {result.source}\n  at {result.path}\n  manifest sha256 {result.manifest_sha256}\n")
    if not args.sha256 and result.source.startswith(("hf:", "http")):
        sys.stdout.write(f"  pin it: nat packs pull {result.source} --sha256 {result.manifest_sha256}\n")
    return EXIT_OK


def run_remove(argv: list[str]) -> int:
    from ..packs.install import remove

    p = command.parser("nat packs remove", "Delete a pack from the user pack folder (never the built-in pack or a NAT_PACK_PATH folder).", label="packs: ")
    p.add_argument("name", metavar="NAME")
    args = p.parse_args(argv)
    sys.stdout.write(f"removed {args.name} ({remove(args.name)})\n")
    return EXIT_OK


def run(argv: list[str]) -> int:
    if argv and argv[0] in ("pull", "remove"):
        return run_pull(argv[1:]) if argv[0] == "pull" else run_remove(argv[1:])
    args = build_parser().parse_args(argv)
    entries = find_packs()
    if args.verify:
        for entry in entries:
            verify(entry)
    if args.json:
        for entry in entries:
            sys.stdout.write(json.dumps(entry, separators=(",", ":"), ensure_ascii=True) + "\n")
    elif entries:
        sys.stdout.write(table(entries, args.verify))
    dirs = ", ".join(str(d) for d in search_dirs())
    if not entries:
        print(f"nat: packs: no packs found (looked in {dirs})", file=sys.stderr)
    failed = [e for e in entries if e.get("verified") == "failed"]
    if failed:
        print(f"nat: packs: {len(failed)} of {len(entries)} packs failed verification: {', '.join(e['name'] for e in failed)}", file=sys.stderr)
        return EXIT_INPUT_FAILED
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``nat packs``."""
    return command.main(run, argv, "packs: ")
