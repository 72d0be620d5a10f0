"""bench/listen.py: the plan's balance, the prompt parser and mechanical reader on hand-written
text (level column, RLE, delta, family and drum words), scoring, and (with FluidSynth) that the
rendered audio really carries the dynamics and the rest, and that the folders keep the truth
away from readers."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO

from neural_audio_tokenizer.export import corpus

spec = importlib.util.spec_from_file_location("listen", REPO / "bench" / "listen.py")
listen = importlib.util.module_from_spec(spec)
sys.modules["listen"] = listen  # dataclasses look their module up
spec.loader.exec_module(listen)

needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or not corpus.SOUNDFONT.is_file(),
    reason="needs fluidsynth and the GM soundfont (apt-get install fluidsynth fluid-soundfont-gm)",
)


def test_plan_is_balanced_deterministic_and_seeded():
    pieces = listen.plan(listen.EVAL_SEED)
    assert len(pieces) == 16 and pieces == listen.plan(listen.EVAL_SEED)
    assert [p.answers for p in pieces] != [p.answers for p in listen.plan(listen.DEV_SEED)]
    for key, _, options in listen.QUESTIONS:
        counts = Counter(p.answers[key] for p in pieces)
        assert set(counts) == set(range(len(options))) and max(counts.values()) - min(counts.values()) <= 1, key
    for p in pieces:
        assert p.program in listen.LEADS[p.family] and 30 <= p.seconds <= 41
        assert (p.tempo <= 80) == (p.answers["tempo"] == 0) and bool(p.drums) == (p.answers["drums"] == 0)


FUTURE = """\
Here's a stream of audio tokens. Please infer:
Glossary of level-0 codes: what the pack's fit-corpus frames behind each code measured.
S0 5 = A minor (A C E), tonal
S0 9 = silence
A0 1 = brass 70%, drum kit 30%, bright
A0 2 = piano 60%, strings 40%
A0 3 = silence

# piece01.flac | 12 s | pack builtin | 5 frames/s | line: t S S0 S1 S2 S3 A A0 A1 A2 A3 L (t start s; L level dB; xN = N identical frames)
{frames}# end piece01.flac: 60 frames, 12 s
"""


def future_prompt() -> str:
    """A prompt as a later pack might print it: a level column L, RLE, family and drum words;
    12 s: 5 s growing from -40 to -20 dB, a 2 s rest at -90 dB, 5 s at -20 dB."""
    lines = []
    for i in range(25):
        lines.append(f"{i / 5:g} S 5 {i % 7} 3 4 A 1 {i % 5} 6 7 L {round(-40 + 20 * i / 24)}\n")
    lines.append("5 S 9 0 0 0 A 3 0 0 0 L -90 x10\n")
    for i in range(35, 60):
        lines.append(f"{i / 5:g} S 5 . 3 {i % 3} A 1 . 6 7 L {-20 - i % 2}\n")
    return FUTURE.format(frames="".join(lines))


def test_parser_reads_columns_rle_delta_and_glossary():
    prompt = listen.parse_prompt(future_prompt())
    assert len(prompt.frames) == 60 and prompt.columns == ["l"]
    assert [f["t"] for f in prompt.frames[25:36]] == [5.0, 5.2, 5.4, 5.6, 5.8, 6.0, 6.2, 6.4, 6.6, 6.8, 7.0]
    assert prompt.frames[35]["S"] == [5, 0, 3, 2]  # '.': the line before's S1 (0, from the RLE line)
    assert listen.level_of(prompt)[:2] == [-40.0, -39.0]
    assert prompt.glossary[("A0", 1)].startswith("brass 70%")
    named = listen.parse_prompt(future_prompt().replace(" L -", " level -").replace(" A3 L (", " A3 (").replace("; L level dB", ""))
    assert listen.level_of(named) == listen.level_of(prompt)  # "name value" pairs too


def test_mechanical_reader_uses_level_family_and_drum_words():
    prompt = listen.parse_prompt(future_prompt())
    answers = {key: listen.READERS[key](prompt) for key in listen.QKEYS}
    assert answers["rest"] == "C"  # 5-7 s of 12: the middle third
    assert answers["instrument"] == "E"  # the frames' A0 says brass; A0 2 (piano) is in no frame
    assert answers["drums"] == "A" and answers["mode"] == "B"
    assert answers["dynamics"] == "B"  # -40 -> -20 dB over the first part, then level: a crescendo
    flat = listen.parse_prompt(future_prompt().replace("A0 1 = brass 70%, drum kit 30%, bright", "A0 1 = organ"))
    assert listen.answer_instrument(flat) == "B" and listen.answer_drums(flat) == "B"
    steady = "".join(f"{i / 5:g} S 5 {i % 7} 3 4 A 1 {i % 5} 6 7 L {-20 - i % 3}\n" for i in range(60))
    assert listen.answer_dynamics(listen.parse_prompt(FUTURE.format(frames=steady))) == "A"
    jump = "".join(f"{i / 5:g} S 5 {i % 7} 3 4 A 1 {i % 5} 6 7 L {-42 if i < 30 else -20}\n" for i in range(60))
    fade = "".join(f"{i / 5:g} S 5 {i % 7} 3 4 A 1 {i % 5} 6 7 L {round(-20 - i / 3)}\n" for i in range(60))
    assert listen.answer_dynamics(listen.parse_prompt(FUTURE.format(frames=jump))) == "D"
    assert listen.answer_dynamics(listen.parse_prompt(FUTURE.format(frames=fade))) == "C"
    words = "".join(f"{i / 5:g} S 5 {i % 7} 3 4 A 1 {i % 5} 6 7 level {'quiet' if i < 30 else 'loud'}\n" for i in range(60))
    assert listen.answer_dynamics(listen.parse_prompt(FUTURE.format(frames=words).replace(" A3 L (", " A3 ("))) == "D"  # a level in words


def test_scores_count_missing_answers_wrong(tmp_path, capsys):
    truth = {"seed": 1, "questions": {k: list(o) for k, _, o in listen.QUESTIONS},
             "answers": {"p01": {k: "A" for k in listen.QKEYS}, "p02": {k: "B" for k in listen.QKEYS}}}  # fmt: skip
    (tmp_path / "private").mkdir()
    (tmp_path / "private" / "truth.json").write_text(json.dumps(truth))
    (tmp_path / "r1.json").write_text(json.dumps({"p01": {k: "a" for k in listen.QKEYS}}))  # p02 unanswered
    (tmp_path / "r2.json").write_text(json.dumps({"p01": {k: "A" for k in listen.QKEYS}, "p02": {k: "B" for k in listen.QKEYS}}))
    assert listen.main(["score", str(tmp_path), str(tmp_path / "r1.json"), str(tmp_path / "r2.json"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["readers"]["r1"]["all"] == 0.5 and res["readers"]["r2"]["all"] == 1.0 and res["pooled"]["all"] == 0.75
    assert res["chance"]["instrument"] == pytest.approx(1 / 6) and res["chance"]["rest"] == 0.25
    (tmp_path / "bad.json").write_text("[1, 2")
    assert listen.main(["score", str(tmp_path), str(tmp_path / "bad.json")]) == 2
    assert "not a readable JSON answer file" in capsys.readouterr().err


def level_db(x: np.ndarray, sr: int, start: float, end: float) -> float:
    seg = x[int(start * sr) : int(end * sr)]
    return 20 * np.log10(np.sqrt(np.mean(seg**2)) + 1e-12)


@needs_fluidsynth
def test_rendered_dynamics_and_rest_are_in_the_audio(tmp_path):
    base = listen.plan(listen.DEV_SEED)[0]
    answers = {**base.answers, "dynamics": 1, "rest": 2, "drums": 1, "tempo": 1}
    crescendo = replace(base, answers=answers, drums="", tempo=140.0, bars=7)
    sudden = replace(crescendo, answers={**answers, "dynamics": 3, "rest": 0}, sudden_at=1)
    out = [listen.render_piece(p, tmp_path / f"{i}.flac", None) for i, p in enumerate((crescendo, sudden))]
    x, sr = sf.read(str(out[0]))
    end = crescendo.seconds
    assert 15 <= level_db(x, sr, end - 3, end - 0.5) - level_db(x, sr, 0, 3) <= 30  # a crescendo of ~22 dB
    rest = listen.rest_span(crescendo)
    start_s, end_s = (b * 60 / crescendo.tempo for b in rest)
    assert end / 3 < start_s and end_s < 2 * end / 3 and end_s - start_s == pytest.approx(3.0)
    assert np.max(np.abs(x[int((start_s + 0.5) * sr) : int(end_s * sr)])) < 1e-3  # all silent after the releases
    y, sr = sf.read(str(out[1]))
    cut = sudden.seconds / 3
    assert level_db(y, sr, cut + 0.2, cut + 1.2) - level_db(y, sr, cut - 1.2, cut - 0.2) >= 15  # suddenly loud
    assert sf.read(str(listen.render_piece(crescendo, tmp_path / "again.flac", None)))[0].tobytes() == x.tobytes()


@needs_fluidsynth
def test_render_keeps_truth_private_and_mech_reads_it(tmp_path, capsys):
    out = tmp_path / "set"
    args = ["render", "--seed", str(listen.DEV_SEED), "--pieces", "2", "--out", str(out), "--cache", str(tmp_path / "cache"), "--python", sys.executable, "--checkout", str(REPO)]
    assert listen.main(args) == 0
    reader = out / "reader"
    files = sorted(str(p.relative_to(reader)) for p in reader.rglob("*") if p.is_file())
    assert files == ["prompts-noglossary/p01.txt", "prompts-noglossary/p02.txt", "prompts/p01.txt", "prompts/p02.txt", "questions.md"]
    for p in reader.rglob("*.txt"):
        text = p.read_text()
        assert str(tmp_path) not in text and ("# piece01.flac" in text or "# piece02.flac" in text)
    assert "Glossary" in (reader / "prompts" / "p01.txt").read_text() and "Glossary" not in (reader / "prompts-noglossary" / "p01.txt").read_text()
    questions = (reader / "questions.md").read_text()
    assert all(f"**{key}**" in questions for key in listen.QKEYS) and "Do not run" in questions
    truth = json.loads((out / "private" / "truth.json").read_text())
    assert set(truth["answers"]) == {"p01", "p02"} and len(list((out / "private" / "audio").glob("piece*.flac"))) == 2
    assert len(list((tmp_path / "cache").rglob("*.flac"))) == 2
    capsys.readouterr()
    assert listen.main(["mech", str(out), "--json"]) == 0
    answers = json.loads((out / "private" / "mech-prompts.json").read_text())
    assert set(answers) == {"p01", "p02"} and all(set(a) == set(listen.QKEYS) for a in answers.values())
    assert listen.main(["render", "--out", str(out), "--checkout", str(tmp_path)]) == 2
    assert "no neural_audio_tokenizer package there" in capsys.readouterr().err
