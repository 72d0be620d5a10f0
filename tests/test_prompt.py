"""nat prompt: the original script's question plus the stream, fitted to an LLM token budget."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import numpy as np
import soundfile as sf
from conftest import REPO, run_nat, tone

from neural_audio_tokenizer.cli.budget import estimate_tokens, pool_frames
from neural_audio_tokenizer.runtime.records import Frame, expand

SCHEMA = json.loads((REPO / "neural_audio_tokenizer" / "schema" / "ndjson-v1.schema.json").read_text())
NAMES = ["S0", "S1", "S2", "S3", "A0", "A1", "A2", "A3"]


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prompt") / "song.wav"
    sf.write(path, tone(40.0, 16000), 16000)  # 200 frames at 5 Hz: ~10k tokens dense
    return path


@pytest.fixture(scope="module")
def dense(tiny_pack, song) -> list[dict]:
    lines = [json.loads(x) for x in run_nat("--pack", str(tiny_pack), str(song), check=True).stdout.splitlines()]
    return list(expand(lines[1:-1], 5))


def prompt(tiny_pack, *args) -> str:
    return run_nat("prompt", *args, "--pack", str(tiny_pack), check=True).stdout.decode()


def split(text: str) -> tuple[str, list[dict]]:
    question, _, stream = text.partition("\n\n{")
    return question, [json.loads(x) for x in ("{" + stream).splitlines()]


def test_large_budget_gives_the_dense_stream_after_the_question(tiny_pack, song, dense):
    text = prompt(tiny_pack, str(song), "--budget", "50000")
    question, lines = split(text)
    assert question.startswith("Here's a stream of audio tokens from a musical recording. Each line is a 0.2-second slice described by 4 semantic and 4 acoustic tokens.")
    for item in ("1. The type or genre of sound", "2. What mood or emotion it conveys", "3. Likely instruments", "4. Imagery it evokes", "5. How it evolves over time"):
        assert item in question
    header = lines[0]
    assert header["legend"].startswith("Each frame line is one time slice")
    assert header["fit"]["pool"] == 1 and header["fit"]["rle"] is False and header["fit"]["budget"] == 50000
    assert header["fit"]["estimated_tokens"] == estimate_tokens(text)
    assert [{k: v for k, v in x.items() if k != "kf"} for x in lines[1:-1]] == dense
    assert lines[-1]["type"] == "stats" and lines[-1]["lines"] == 200


def test_small_budget_pools_frames_by_the_most_common_token(tiny_pack, song, dense):
    import jsonschema

    text = prompt(tiny_pack, str(song), "--budget", "3000")
    assert estimate_tokens(text) <= 3000
    _, lines = split(text)
    fit = lines[0]["fit"]
    pool = fit["pool"]
    assert pool > 1 and fit["rle"] is True and fit["line_s"] == round(pool * 0.2, 3)
    assert f"Each line is a {fit['line_s']:g}-second slice" in text
    validator = jsonschema.Draft202012Validator(SCHEMA)
    for line in lines:
        validator.validate(line)
    rebuilt = []
    for line in lines[1:-1]:
        state = {**(rebuilt[-1] if rebuilt else {}), **{k: v for k, v in line.items() if k in NAMES}}
        for _ in range(line.get("n", 1)):
            rebuilt.append(state)
    groups = [dense[i : i + pool] for i in range(0, len(dense), pool)]
    assert len(rebuilt) == len(groups)
    for got, group in zip(rebuilt, groups):
        for name in NAMES:
            assert got[name] == Counter(f[name] for f in group).most_common(1)[0][0]
    times = [line["t"] for line in lines[1:-1]]
    assert all(round(t / (0.2 * pool)) * 0.2 * pool == pytest.approx(t) for t in times)
    assert lines[-1]["frames"] == 200


def test_text_format_fits_with_less_pooling(tiny_pack, song):
    ndjson = prompt(tiny_pack, str(song), "--budget", "3000")
    text = prompt(tiny_pack, str(song), "--budget", "3000", "--format", "text")
    assert estimate_tokens(text) <= 3000
    legend = text.split("Just guess.\n\n", 1)[1].splitlines()[0]
    assert legend.startswith("# song.wav | 40 s | pack tiny-test | 5 frames/s | line: t S S0 S1 S2 S3 A A0 A1 A2 A3")
    pool_text = int(legend.split("each line pools ")[1].split()[0]) if "pools" in legend else 1
    pool_json = split(ndjson)[1][0]["fit"]["pool"]
    assert pool_text < pool_json


def test_refitting_a_token_file_equals_prompting_the_audio(tiny_pack, song, tmp_path):
    tokens = tmp_path / "song.ndjson"
    tokens.write_bytes(run_nat("--pack", str(tiny_pack), "--delta", "--rle", str(song), check=True).stdout)
    from_audio = prompt(tiny_pack, str(song), "--budget", "4000")
    from_file = run_nat("prompt", str(tokens), "--budget", "4000", check=True).stdout.decode()
    assert from_file == from_audio
    assert prompt(tiny_pack, str(song), "--budget", "4000") == from_audio  # deterministic
    out = tmp_path / "prompt.txt"
    run_nat("prompt", str(tokens), "--budget", "4000", "-o", str(out), check=True)
    assert out.read_text() == from_audio


def test_budget_too_small_and_bad_inputs(tiny_pack, song, tmp_path):
    proc = run_nat("prompt", str(song), "--pack", str(tiny_pack), "--budget", "100")
    assert proc.returncode == 2 and proc.stdout == b""
    assert proc.stderr.decode().startswith("nat: prompt: --budget 100 is too small") and proc.stderr.count(b"\n") == 1
    missing = run_nat("prompt", str(tmp_path / "nope.wav"), "--pack", str(tiny_pack))
    assert missing.returncode == 1 and missing.stderr.decode() == "nat: prompt: nope.wav: no such file\n"
    two = tmp_path / "two.ndjson"
    two.write_bytes(run_nat("--pack", str(tiny_pack), str(song), str(song), check=True).stdout)
    proc = run_nat("prompt", str(two))
    assert proc.returncode == 2 and b"holds 2 streams" in proc.stderr
    assert run_nat("prompt", str(song), "--budget", "0").returncode == 2


def test_pool_frames_takes_the_mode_and_the_group_start():
    frames = [Frame(i, round(i / 5, 3), (s, 1), (a,)) for i, (s, a) in enumerate([(1, 9), (2, 9), (2, 8), (3, 7), (3, 7), (4, 6), (5, 5)])]
    pooled = pool_frames(frames, 3, 5)
    assert [(f.index, f.t, f.S, f.A) for f in pooled] == [(0, 0.0, (2, 1), (9,)), (1, 0.6, (3, 1), (7,)), (2, 1.2, (5, 1), (5,))]
    tie = pool_frames(frames[:2], 2, 5)[0]
    assert tie.S == (1, 1)  # a tie goes to the token seen first
    assert pool_frames(frames, 1, 5) == frames


@pytest.mark.parametrize("budget", [1000, 999, 500, 334, 333, 101, 100, 37, 2, 1])
def test_fit_finds_the_smallest_pooling_factor_that_fits(budget):
    import math

    from neural_audio_tokenizer.cli.budget import fit_stream
    from neural_audio_tokenizer.runtime.records import runs
    from neural_audio_tokenizer.runtime.header import Header, Source, Stats
    from neural_audio_tokenizer.runtime.stream import TokenStream

    n = 1000
    frames = [Frame(i, round(i / 5, 3), (i,), (i,)) for i in range(n)]  # all distinct: RLE merges nothing
    header = Header(source=Source("x"), pack=None, frame_rate=5, streams={})

    def render(stream, options):  # one token per frame line
        return " a" * sum(1 for _ in runs(stream.frames, stream.frame_rate, options))

    stream = TokenStream.complete(header, frames, Stats(frames=n, duration_s=n / 5, nonfinite_samples=0, tokens={}))
    fit = fit_stream(stream, budget, render)
    assert fit.pool == math.ceil(n / budget) and fit.estimated_tokens <= budget
    assert fit.rle == (fit.pool > 1 or budget < n)
    assert fit_stream(stream, 0, render) is None


def test_prompt_says_the_warnings_nat_says(tmp_path):
    """Raw-PCM fallback, truncation, NaN samples: what nat warns about, nat prompt warns about too."""
    data = tmp_path / "noise.bin"
    data.write_bytes(np.random.default_rng(0).integers(-3000, 3000, 32000, dtype="<i2").tobytes())
    nat = run_nat(str(data))
    prompt = run_nat("prompt", str(data), "--format", "text", "--budget", "4000")
    assert nat.returncode == prompt.returncode == 0
    assert b"no audio format recognized" in nat.stderr
    assert b"nat prompt: " + str(data).encode() in prompt.stderr or b"nat prompt: noise.bin" in prompt.stderr
    assert b"warning: no audio format recognized; read as raw 16-bit PCM" in prompt.stderr
