"""Token quality evaluation (evaluation/rendered.py, ``nat-export eval``): the metrics on known
inputs, the plumbing on the tiny neural pack, the quick evaluation of the built-in pack in a
process where torch cannot be imported, and one line when mido is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import DATA, REPO
from neural_audio_tokenizer.evaluation import main as eval_cli
from neural_audio_tokenizer.evaluation import measures, rendered
from neural_audio_tokenizer.export import corpus

TINY_PACK = DATA / "tiny_pack"
LEVELS = ["S0", "S1", "S2", "S3", "A0", "A1", "A2", "A3"]


def have_fluidsynth() -> bool:
    try:
        corpus.tools()
    except corpus.CorpusError:
        return False
    return True


# --- metrics -------------------------------------------------------------------------------


def test_nearest_neighbour_accuracy_and_chance():
    x = np.array([[0.0], [0.1], [5.0], [5.1], [9.0], [9.2]])
    assert measures.nn_accuracy(x, ["a", "a", "b", "b", "c", "c"]) == 1.0
    assert measures.nn_accuracy(x, ["a", "b", "a", "b", "a", "b"]) == 0.0
    assert measures.nn_chance(["a", "a", "b", "b", "c", "c"]) == pytest.approx(1 / 5)


def test_histograms_are_hellinger_embeddings():
    h = measures.histograms([np.array([0, 0, 1, 1]), np.array([2, 2, 2, 2])], 4)
    assert h.shape == (2, 4)
    np.testing.assert_allclose(np.sum(h**2, axis=1), 1.0)  # sqrt of a distribution: unit norm


def test_label_information_is_one_for_a_determined_label_and_zero_for_noise():
    rng = np.random.default_rng(0)
    labels = [i % 4 for i in range(16)]
    determined = [np.full(20, lab * 3) for lab in labels]  # each label has its own token
    info = rendered.label_information(determined, labels)
    assert info["nmi"] == pytest.approx(1.0) and info["ami"] > 0.9
    noise = [rng.integers(0, 64, 20) for _ in labels]  # tokens unrelated to the label
    info = rendered.label_information(noise, labels)
    assert info["nmi"] > 0.1  # the plug-in estimate is biased upwards...
    assert abs(info["ami"]) < 0.1  # ...which the permutation baseline removes


def test_utilization_counts_dead_codes():
    u = measures.utilization(np.array([0, 0, 1, 2, 2, 2]), 8)
    assert (u["used"], u["dead"], u["dead_share"]) == (3, 5, 5 / 8)
    assert 1.0 < u["perplexity"] < 3.0


# --- plumbing on the tiny neural pack (no FluidSynth needed) ---------------------------------


def synthetic_set() -> rendered.EvalSet:
    """Synthesized stand-ins for rendered clips: enough to run every measurement."""
    spec = rendered.SetSpec("test", (0, 1), 3.0, 2, 2.0)

    def clip(kind: str, seed: int, seconds: float, labels: dict) -> rendered.Clip:
        mono = corpus.synth_samples(kind, seconds, np.random.default_rng(seed))
        import soxr

        return rendered.Clip(f"{kind}{seed}", rendered.finish(soxr.resample(mono, corpus.SAMPLE_RATE, rendered.RATE), seconds), labels)

    stability = [clip("tones_with_gaps", 1, 3.0, {}), clip("pink_noise", 2, 3.0, {})]
    instruments = [
        clip(kind, seed, 2.0, {"instrument": kind, "melody": f"tune{seed % 2}"})
        for kind in ("sine_sweep", "synth_drums")
        for seed in (3, 4)
    ]
    return rendered.EvalSet(spec, stability, instruments)


def check_structure(result: dict) -> None:
    assert result["levels"] == LEVELS
    rows = {r["change"]: r for r in result["stability"]}
    assert list(rows) == list(rendered.CHANGES)
    for r in rows.values():
        assert r["frames"] > 0
        assert set(r["agreement"]) == set(LEVELS)
        assert all(0.0 <= v <= 1.0 for v in r["agreement"].values())
        assert all(0.0 <= v <= r["agreement"][k] for k, v in r["worst_clip"].items())
    assert 60 < rows["MP3 128 kbit/s"]["kbps"] < 200 and 40 < rows["OGG Vorbis"]["kbps"] < 250
    d = result["distinctness"]
    for feature in ["S", "A"] + LEVELS:
        assert set(d["nn_accuracy"][feature]) == {"instrument", "melody"}
        assert all(0.0 <= v <= 1.0 for v in d["nn_accuracy"][feature].values())
    for level in LEVELS:
        for info in d["information"][level].values():
            assert 0.0 <= info["nmi"] <= 1.0 + 1e-9 and info["ami"] <= 1.0 + 1e-9
    for level, u in result["utilization"]["levels"].items():
        assert 0 < u["used"] <= u["codes"] and u["used"] + u["dead"] == u["codes"]
        assert 1.0 <= u["perplexity"] <= u["used"] + 1e-9, level
    assert all({"goal", "value", "threshold", "met"} <= set(g) for g in result["goals"])
    text = rendered.format_report(result)
    for heading in ("### Stability", "### Distinctness", "### Utilization", "### Goals"):
        assert heading in text
    json.dumps(result)  # JSON-ready


def test_tiny_neural_pack_plumbing():
    """Two encoders at 24 and 16 kHz, 16 codes: every measurement runs and is well formed."""
    result = rendered.evaluate(TINY_PACK, synthetic_set(), workers=1)
    assert result["pack"]["codes"] == {"S": [16] * 4, "A": [16] * 4}  # codes per level
    check_structure(result)
    mono = next(r for r in result["stability"] if r["change"] == "mono mixdown")
    assert all(v == 1.0 for v in mono["agreement"].values())  # the runtime mixes down the same way


def test_eval_command_errors_are_one_line(capsys):
    assert eval_cli.main(["no-such-pack-anywhere", "--quick"]) == eval_cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("nat-export eval: ") and len(err.strip().splitlines()) == 1


def test_a_missing_optional_package_is_one_line(monkeypatch, capsys):
    """Whatever optional module a run finds missing is named in one line, exit 2."""

    def missing(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'matplotlib'", name="matplotlib")

    monkeypatch.setattr(rendered, "build_set", missing)
    assert eval_cli.main(["builtin", "--quick", "--json"]) == eval_cli.EXIT_USAGE  # --json: no progress lines
    err = capsys.readouterr().err
    assert err == "nat-export eval: needs the Python package 'matplotlib', which is not installed (pip install matplotlib)\n"


def test_quick_eval_without_mido_is_one_line(tmp_path):
    """A runtime-only venv has no mido: ``nat-export eval --quick`` says so in one line, exit 2
    (it died with a traceback from inside a render thread). The shim hides mido from the child."""
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['mido'] = None  # any 'import mido' now fails\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "neural_audio_tokenizer.export.cli", "eval", "--quick", "--json"], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert proc.returncode == eval_cli.EXIT_USAGE, proc.stderr[-2000:]
    assert proc.stderr == "nat-export eval: rendering the evaluation set needs mido: pip install mido (or the [export] extra)\n"
    assert proc.stdout == ""


# --- the quick evaluation of the built-in pack, without torch -----------------------------------

NO_TORCH = (
    "import sys; sys.modules['torch'] = None\n"  # any 'import torch' now fails
    "from neural_audio_tokenizer.export.cli import main\n"
    "sys.exit(main(['eval', 'builtin', '--quick', '--json']))\n"
)


@pytest.fixture(scope="module")
def quick_builtin() -> dict:
    if not have_fluidsynth():
        pytest.skip(f"needs FluidSynth and the GM soundfont ({corpus.INSTALL_HINT})")
    proc = subprocess.run([sys.executable, "-c", NO_TORCH], capture_output=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return json.loads(proc.stdout)


def test_quick_eval_of_the_builtin_pack_is_well_formed(quick_builtin):
    assert quick_builtin["pack"]["name"] == "builtin" and quick_builtin["set"]["name"] == "quick"
    assert quick_builtin["set"]["seed"] == rendered.EVAL_SEED != 0  # not the codebook corpus's seed
    check_structure(quick_builtin)
    d = quick_builtin["distinctness"]
    assert d["clips"] == len(rendered.INSTRUMENT_SET) * rendered.QUICK.tunes


def test_quick_eval_gain_and_mixdown_stability(quick_builtin):
    """Deterministic by design: every built-in feature is a ratio, and the runtime's mono
    mixdown is (L+R)/2, so gain changes keep S0/A0 and a mixdown keeps every token."""
    rows = {r["change"]: r["agreement"] for r in quick_builtin["stability"]}
    for change in ("gain -6 dB", "gain +3 dB"):
        assert rows[change]["S0"] >= 0.95 and rows[change]["A0"] >= 0.95, change
    assert all(v == 1.0 for v in rows["mono mixdown"].values())
    assert rows["resample 22.05 kHz"]["S0"] >= 0.9 and rows["resample 22.05 kHz"]["A0"] >= 0.9
