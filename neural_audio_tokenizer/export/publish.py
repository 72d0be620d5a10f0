"""``nat-export publish PACK --out DIR``: what a maintainer uploads so that others pull, not rebuild.

Writes, for a verified pack named NAME:

- ``DIR/NAME/``: the manifest and exactly the files it lists, plus ``README.md``, a model
  card (what the pack is, how it was built, the license of every model in it, the exact
  ``nat packs pull ... --sha256 ...`` line). Upload this folder as a Hugging Face model
  repository (the hub shows README.md as the card).
- ``DIR/NAME.tar.gz``: the same folder as one archive for a plain web server, byte-identical
  for the same pack published with the same ``--repo`` and ``--url`` (the card inside holds
  the pull lines; packs/archive.py ``write_archive``: sorted entries, fixed times, owners and
  modes, no gzip timestamp).

Both are written under temporary names and renamed into place. Needs no torch: publishing
works on any machine that has the pack.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import NatError, OutputError
from ..packs.archive import write_archive
from ..packs import BUILTIN
from ..packs.sources import NAME, REPO, manifest_files
from ..runtime.inputs.audio import sha256_file
from ..runtime.pack import Pack, load_pack

# Licenses of the pretrained models presets use, from their model cards. A model not listed
# here is reported as unknown, never guessed.
MODEL_LICENSES = {
    "m-a-p/MERT-v1-95M": "CC-BY-NC-4.0",
    "m-a-p/MERT-v1-330M": "CC-BY-NC-4.0",
    "facebook/wav2vec2-base": "Apache-2.0",
    "facebook/wav2vec2-base-960h": "Apache-2.0",
    "facebook/wav2vec2-large-960h": "Apache-2.0",
}
NAT_LICENSE = "MIT"
HUB_LICENSE_IDS = {"CC-BY-NC-4.0": "cc-by-nc-4.0", "Apache-2.0": "apache-2.0", "MIT": "mit"}
RESTRICTIVENESS = ("MIT", "Apache-2.0", "CC-BY-NC-4.0")  # the pack's card takes the last one present
ARCHIVE_SUFFIX = ".tar.gz"


@dataclass(frozen=True)
class Published:
    folder: Path
    archive: Path
    archive_sha256: str
    manifest_sha256: str
    pull_lines: tuple[str, ...]


def publish(pack_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], repo: str | None = None, url: str | None = None, force: bool = False) -> Published:
    """Verify the pack at ``pack_path`` and write its folder, archive and card into ``out_dir``."""
    pack = load_pack(pack_path)
    if repo is not None and not REPO.match(repo):
        raise NatError(f"--repo {repo!r}: expected OWNER/NAME")
    if url is not None and not url.startswith("https://"):
        raise NatError(f"--url {url!r}: packs are pulled over https://")
    name = pack.name  # the uploaded folder and the archive are named after it
    if not NAME.match(name):
        raise NatError(f"pack name {name!r} (manifest.json) is not a plain folder name; rebuild it with another --name")
    raw = (pack.path / "manifest.json").read_bytes()
    files = {file: pack.path / file for file, _ in manifest_files(raw)}
    lines = pull_lines(pack, repo, url)
    card = model_card(pack, files, lines)
    out = Path(out_dir)
    folder, archive = out / name, out / f"{name}{ARCHIVE_SUFFIX}"
    for path in (folder, archive):
        if path.exists() and not force:
            raise OutputError(f"{path} exists; use --force to replace it")
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.publish-", dir=out))
    except OSError as exc:
        raise OutputError(f"cannot write in {out}: {exc.strerror or exc}") from None
    try:
        staged = tmp / name
        staged.mkdir(mode=0o755)
        (staged / "manifest.json").write_bytes(raw)
        for file, src in files.items():
            dest = staged.joinpath(*file.split("/"))
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
        (staged / "README.md").write_text(card, encoding="utf-8")
        load_pack(staged)  # what is uploaded is exactly what was verified
        members = {rel: staged / rel for rel in ["README.md", "manifest.json", *files]}
        write_archive(tmp / archive.name, name, members)
        for final, made in ((folder, staged), (archive, tmp / archive.name)):
            if final.is_dir():
                shutil.rmtree(final)
            elif final.exists():
                final.unlink()
            os.replace(made, final)
    except OSError as exc:
        raise OutputError(f"cannot write in {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return Published(folder, archive, sha256_file(archive)[1], pack.manifest_sha256, lines)


def install_name(pack: Pack) -> str:
    """The name a pull installs the pack under: its own, unless a pulled pack may not take it."""
    return f"{pack.name}-copy" if pack.name == BUILTIN else pack.name


def pull_lines(pack: Pack, repo: str | None, url: str | None) -> tuple[str, ...]:
    """The exact commands that install this pack, pinned to its manifest."""
    sources = [f"hf:{repo or 'OWNER/' + pack.name}"]
    if url:
        sources.append(url)
    name = install_name(pack)
    extra = f" --name {name}" if name != pack.name else ""  # 'builtin' is the pack inside NAT
    return tuple(f"nat packs pull {source} --sha256 {pack.manifest_sha256}{extra}" for source in sources)


def licenses(pack: Pack) -> list[tuple[str, str, str]]:
    """(component, what it is in the pack, license) for every model and NAT's own part."""
    prov: dict[str, Any] = pack.manifest.get("provenance") or {}
    rows: list[tuple[str, str, str]] = []
    for enc_name, enc in (prov.get("encoders") or {}).items():
        model = str((enc or {}).get("model", "?"))
        revision = (enc or {}).get("revision")
        role = f"encoder {enc_name!r} ({pack.encoders[enc_name].file})" if enc_name in pack.encoders else f"encoder {enc_name!r}"
        label = f"{model}@{revision}" if revision else model
        rows.append((label, f"{role}: ONNX conversion of its weights", MODEL_LICENSES.get(model, "unknown: see the model's own card")))
    if not rows:  # the built-in pack: fixed signal processing written by NAT, no learned weights
        rows.append(("NAT signal processing", "encoders: ONNX graphs generated by NAT, no pretrained weights", NAT_LICENSE))
    rows.append(("NAT", "manifest, normalization and codebooks (fitted by nat-export)", NAT_LICENSE))
    return rows


def hub_license(rows: list[tuple[str, str, str]]) -> str:
    """The hub's license id for the card: the most restrictive one present, or ``other``."""
    found = {lic for _, _, lic in rows}
    if not found <= set(RESTRICTIVENESS):
        return "other"
    return HUB_LICENSE_IDS[max(found, key=RESTRICTIVENESS.index)]


def model_card(pack: Pack, files: dict[str, Path], lines: tuple[str, ...]) -> str:
    """README.md for the hub repository and the archive: deterministic, no dates."""
    m = pack.manifest
    prov: dict[str, Any] = m.get("provenance") or {}
    rows = licenses(pack)
    lic = hub_license(rows)
    out = ["---", f"license: {lic}", "tags:", "- audio", "- audio-tokenizer", "- onnx", "- nat-pack", "---", ""]
    out += [f"# {pack.name}: a NAT pack", "", str(m.get("description", "")).strip(), ""]
    out += [
        "A pack for [NAT](https://pypi.org/project/neural-audio-tokenizer/) (Neural Audio Tokenizer):",
        f"ONNX encoders and fitted codebooks that turn audio into {pack.frame_rate} token frames per second,",
        "read by an LLM as text. It runs with NAT's runtime alone (numpy, onnxruntime): no torch.",
        "",
        "## Install",
        "",
        "```bash",
        "pip install neural-audio-tokenizer",
        *lines,
        f"nat --pack {install_name(pack)} song.flac",
        "```",
        "",
        "`--sha256` pins the manifest, which pins every file by its hash: anything else is refused.",
        "",
        "## What is in it",
        "",
        "| | |",
        "|---|---|",
        f"| manifest sha256 | `{pack.manifest_sha256}` |",
        f"| frame rate | {pack.frame_rate} frames/s, chunks of {pack.window_s:g} s with {pack.context_s:g} s of context |",
    ]
    for s, spec in pack.streams.items():
        enc = pack.encoders[spec.encoder]
        out.append(f"| stream {s} | {spec.levels} levels x {spec.codebook_size} codes; encoder `{enc.file}` ({enc.sample_rate} Hz) output `{spec.output}`, pooling {spec.pooling} |")
    out += ["", "| file | bytes | sha256 |", "|---|---:|---|"]
    for file, path in sorted(files.items()):
        out.append(f"| `{file}` | {path.stat().st_size} | `{sha256_file(path)[1]}` |")
    out += ["", "## How it was built", ""]
    out += _build_lines(prov)
    verification = m.get("verification") or {}
    if verification:
        out += ["", "## Verification", ""]
        agreement = verification.get("min_token_agreement")
        if agreement is not None:
            out.append(f"- token agreement with the torch reference on held-out audio: {agreement} (lowest level), precision {verification.get('precision', 'fp32')}")
        thresholds = verification.get("thresholds") or {}
        if thresholds:
            out.append("- thresholds: " + ", ".join(f"{k} {v}" for k, v in sorted(thresholds.items())))
    out += ["", "## Licenses", "", "| component | in this pack | license |", "|---|---|---|"]
    out += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    out += ["", "The pack holds converted weights of the models above, so their licenses apply to it"]
    if lic == "cc-by-nc-4.0":
        out += ["as a whole: CC-BY-NC-4.0 means attribution and **non-commercial use only**."]
    elif lic == "other":
        out += ["as a whole; check each model's own card before using this pack."]
    else:
        out += [f"as a whole ({lic})."]
    return "\n".join(out) + "\n"


def _build_lines(prov: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    exporter = prov.get("exporter") or {}
    if exporter:
        lines.append(f"- NAT {exporter.get('version', '?')}, `nat-export build --preset {exporter.get('preset', '?')}`")
    if prov.get("recipe"):
        lines.append(f"- recipe: `{prov['recipe']}`")
    for enc_name, enc in (prov.get("encoders") or {}).items():
        layers = ", ".join(f"{k} layers {v[0]}-{v[1]}" for k, v in (enc.get("layers") or {}).items() if isinstance(v, list) and len(v) == 2)
        lines.append(f"- encoder `{enc_name}`: {enc.get('model', '?')} (revision {enc.get('revision') or 'unrecorded'}), {layers or 'layers unrecorded'}, {(enc.get('onnx') or {}).get('precision', 'fp32')}")
    corpus = prov.get("corpus") or {}
    if corpus:
        if "clips" in corpus and isinstance(corpus["clips"], list):
            lines.append(f"- corpus: {len(corpus['clips'])} clips from {corpus.get('source', 'files')} ({corpus.get('training_clips', '?')} for codebooks), each recorded by sha256 in the manifest")
        else:
            lines.append(f"- corpus: {corpus.get('clips', '?')} clips of {corpus.get('clip_seconds', '?')} s rendered with {corpus.get('fluidsynth', '?')} and {corpus.get('soundfont', '?')}")
    books = prov.get("codebooks") or prov.get("fit") or {}
    seed = books.get("seed", prov.get("seed"))
    lines.append(f"- codebooks: {books.get('method') or books.get('algorithm') or 'residual k-means'}, seed {seed}, {books.get('iterations', '?')} iterations")
    libs = prov.get("libraries") or {}
    if libs:
        lines.append("- libraries: " + ", ".join(f"{k} {v}" for k, v in libs.items()))
    return lines
