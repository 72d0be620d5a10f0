"""Regenerate tests/data/tiny_pack (a real ``nat-export build`` output) and its golden NDJSON.

The pack is built by the export side from tiny seeded random-weight MERT-style and
wav2vec2-style models (tests/tiny_models.py) on a few seconds of synthesized audio; it is
small enough to commit (about 0.4 MB) and lets runtime tests cover a neural pack's shape
(two encoders at 24 and 16 kHz, input normalization, layer-tap outputs) without torch.

The golden file is what the runtime CLI prints for the test clip, byte for byte:

    nat --pack tests/data/tiny_pack tests/data/<clip>  >  tests/data/tiny_pack.golden.ndjson

The clip is tests/data/clip.flac when present, else tests/data/tiny_clip.wav (synthesized
here). Run from anywhere: ``python tests/data/make_tiny_pack.py``. With ``--glossary-only``
only the glossary is measured again (``nat-export glossary`` on the same corpus; the
codebooks and models stay byte for byte) and the golden file rewritten: what a change to
the glossary needs, without torch.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

DATA = Path(__file__).resolve().parent
REPO = DATA.parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

PACK = DATA / "tiny_pack"
GOLDEN = DATA / "tiny_pack.golden.ndjson"
SYNTH_CLIP = DATA / "tiny_clip.wav"
MODELS = {"tiny-mert": {"seed": 1}, "tiny-w2v": {"seed": 2}}
BUILD = ["--preset", "mert-w2v", "--semantic-layers", "2-3", "--acoustic-layers", "1-2", "--codebook-size", "16", "--seed", "0", "--threads", "2"]


def clip_path() -> Path:
    """The committed test clip, or a synthesized 2.5 s one (16 kHz, 16-bit, < 100 KB)."""
    if (DATA / "clip.flac").is_file():
        return DATA / "clip.flac"
    if not SYNTH_CLIP.is_file():
        from conftest import tone

        sf.write(SYNTH_CLIP, tone(2.5, 16000, freq=261.6, seed=3), 16000, subtype="PCM_16")
    return SYNTH_CLIP


def make_models(root: Path) -> dict[str, Path]:
    from tiny_models import save_tiny_mert, save_tiny_wav2vec2

    save_tiny_mert(root / "tiny-mert", seed=MODELS["tiny-mert"]["seed"])
    save_tiny_wav2vec2(root / "tiny-w2v", seed=MODELS["tiny-w2v"]["seed"])
    return {name: root / name for name in MODELS}


def make_corpus(folder: Path) -> Path:
    from conftest import tone

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(5):
        sf.write(folder / f"train{i}.wav", tone(3.0 if i != 2 else 11.0, 22050, freq=150.0 * (1 + 0.45 * i), seed=20 + i), 22050)
    return folder


def golden_bytes(clip: Path) -> bytes:
    """What ``nat`` prints for the clip, run as a user would (from the repo root)."""
    proc = subprocess.run(
        [sys.executable, "-m", "neural_audio_tokenizer", "--pack", str(PACK.relative_to(REPO)), str(clip.relative_to(REPO))],
        cwd=REPO,
        capture_output=True,
        check=True,
    )
    return proc.stdout


def main(argv: list[str]) -> int:
    from neural_audio_tokenizer.export.cli import main as nat_export

    clip = clip_path()
    if argv == ["--glossary-only"]:
        with tempfile.TemporaryDirectory() as tmp:
            corpus = make_corpus(Path(tmp) / "corpus")
            if nat_export(["glossary", str(PACK), "--corpus", str(corpus), "--quiet"]) != 0:
                return 1
        GOLDEN.write_bytes(golden_bytes(clip))
        print(f"wrote {PACK.relative_to(REPO)}/glossary.json and {GOLDEN.relative_to(REPO)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        models = make_models(Path(tmp))
        corpus = make_corpus(Path(tmp) / "corpus")
        args = ["build", *BUILD, "--corpus", str(corpus), "--out", str(PACK), "--force", "--name", "tiny-neural",
                "--semantic-model", str(models["tiny-mert"]), "--acoustic-model", str(models["tiny-w2v"])]  # fmt: skip
        if nat_export(args) != 0:
            return 1
    GOLDEN.write_bytes(golden_bytes(clip))
    size = sum(p.stat().st_size for p in PACK.iterdir())
    print(f"wrote {PACK.relative_to(REPO)} ({size / 1e3:.0f} KB) and {GOLDEN.relative_to(REPO)} for {clip.name}")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main(sys.argv[1:]))
