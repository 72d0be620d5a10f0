"""Output formats (--format), the original-script compatibility flags, --budget-report, progress and logs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, run_nat, tone

from neural_audio_tokenizer import Tokenizer
from neural_audio_tokenizer.runtime import formats
from neural_audio_tokenizer.runtime.inputs.audio import from_array
from neural_audio_tokenizer.cli.budget import estimate_tokens
from neural_audio_tokenizer.runtime.ndjson import lines as ndjson_lines
from neural_audio_tokenizer.runtime.reader import read_streams
from neural_audio_tokenizer.runtime.records import LineOptions, expand


@pytest.fixture(scope="module")
def tok(tiny_pack) -> Tokenizer:
    return Tokenizer.load(tiny_pack, threads=1)


@pytest.fixture(scope="module")
def half_silent() -> np.ndarray:
    x = tone(6.0, 22050)
    x[len(x) // 2 :] = 0  # runs for RLE to merge
    return x


def stream(tok, x, fmt: str, options: LineOptions = LineOptions()) -> str:
    return formats.render_text_of(formats.get(fmt), tok.stream(from_array(x, 22050, "clip.wav")), options)


def dense_rows(tok, x) -> list[dict]:
    lines = list(ndjson_lines(tok.stream(from_array(x, 22050, "clip.wav"))))
    return list(expand(lines[1:-1], tok.frame_rate))


NAMES = ["S0", "S1", "S2", "S3", "A0", "A1", "A2", "A3"]


def parse_text(text: str) -> list[dict]:
    """The text format back to dense frames (what an LLM is asked to read)."""
    rows, state = [], {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        words = line.split()
        t, n = float(words[0]), 1
        if words[-1].startswith("x"):
            n = int(words.pop()[1:])
        assert words[1] == "S" and words[6] == "A"
        pairs = list(zip(NAMES, words[2:6] + words[7:11]))
        if len(words) > 11:  # the measures: "dB -23 hits 1"
            assert words[11] == "dB" and words[13] == "hits"
            pairs += [("dB", words[12]), ("hits", words[14])]
        for name, word in pairs:
            if word != ".":
                state[name] = int(word)
        for k in range(n):
            rows.append({"t": round(t + k * 0.2, 3), **state})
    return rows


@pytest.mark.parametrize("options", [LineOptions(), LineOptions(rle=True), LineOptions(delta=True), LineOptions(1.0, delta=True, rle=True)], ids=lambda o: o.mode)
def test_text_format_holds_exactly_the_tokens_in_fewer_llm_tokens(tok, half_silent, options):
    text = stream(tok, half_silent, "text", options)
    lines = text.splitlines()
    assert lines[0].startswith("# clip.wav | 6 s | pack tiny-test | 5 frames/s | line: t S S0 S1 S2 S3 A A0 A1 A2 A3 dB LEVEL hits HITS")
    assert lines[-1] == "# end clip.wav: 30 frames, 6 s"
    assert lines[1].startswith("0 S ")
    assert parse_text(text) == dense_rows(tok, half_silent)
    ndjson = stream(tok, half_silent, "ndjson", options)
    assert len(text) < len(ndjson) and estimate_tokens(text) < estimate_tokens(ndjson)
    if options.rle:
        assert any(line.endswith(" x15") or " x" in line for line in lines[1:-1])
    if options.delta:
        assert any(" . " in line for line in lines[1:-1])


def test_seed_text_formats_have_the_seed_layout(tok, half_silent):
    rows = dense_rows(tok, half_silent)
    n = len(rows)
    hier = stream(tok, half_silent, "hierarchical").split()
    assert hier[0] == "[SEMANTIC]" and hier[1 + 4 * n] == "[ACOUSTIC]" and len(hier) == 2 + 8 * n
    assert hier[1:3] == [f"S0_{rows[0]['S0']}", f"S0_{rows[1]['S0']}"]  # level by level
    assert hier[1 + n] == f"S1_{rows[0]['S1']}"
    assert hier[2 + 4 * n] == f"A0_{rows[0]['A0']}"
    inter = stream(tok, half_silent, "interleaved").split()
    assert inter[:4] == [f"S_{rows[0]['S0']}", f"A_{rows[0]['A0']}", f"S_{rows[1]['S0']}", f"A_{rows[1]['A0']}"]
    assert len(inter) == 8 * n
    structured = stream(tok, half_silent, "structured").split(" ")
    r = rows[2]
    assert structured[2] == f"[T2][SEM:S0:{r['S0']},S1:{r['S1']},S2:{r['S2']},S3:{r['S3']}][AC:A0:{r['A0']},A1:{r['A1']},A2:{r['A2']},A3:{r['A3']}]"
    assert len(structured) == n


@pytest.mark.parametrize("rle", [False, True])
def test_lam_output_is_the_seed_event_format_and_reads_back(tok, half_silent, rle):
    text = stream(tok, half_silent, "lam", LineOptions(rle=rle))
    events = [json.loads(line) for line in text.splitlines()]
    head, end = events[0], events[-1]
    assert head["event"] == "header" and head["schema"] == "lam_audio_tokens" and head["format_version"] == "1.5"
    assert head["frames_per_second"] == 5 and head["hop_ms"] == 200.0 and head["time_units"] == "ms"
    assert [lay["name"] for lay in head["layers"]] == NAMES
    assert head["encoding_mode"] == ("rle" if rle else "dense")
    assert end["event"] == "end" and end["frames"] == 30
    assert not any(k in json.dumps(end) for k in ("time", "memory", "elapsed"))  # nothing volatile
    body = events[1:-1]
    if rle:
        assert body[0]["event"] == "frame" and body[0]["is_keyframe"]
        assert any(e["event"] == "tokens" and "A_dense" in e for e in body)
        assert len(body) < 30  # the silent half is one event
        assert sum(e["dur"] for e in body) == pytest.approx(30 * 200.0)
    else:
        assert [e["fi"] for e in body] == list(range(30))
        assert body[3] == {"event": "frame", "fi": 3, "ts": 600.0, "dur": 200.0, "S": body[3]["S"], "A": body[3]["A"]}
    back = read_streams(text.splitlines(), "lam")[0]
    assert back.header.format == "lam_audio_tokens" and back.frame_rate == 5.0
    dense = dense_rows(tok, half_silent)
    assert [f.S + f.A for f in back.frames] == [tuple(r[n] for n in NAMES) for r in dense]
    assert [f.index for f in back.frames] == list(range(30))


def test_every_format_is_byte_identical_across_processes(tiny_pack, tmp_path):
    clip = tmp_path / "clip.wav"
    sf.write(clip, tone(3.0, 44100, channels=2), 44100)
    for fmt in formats.FORMATS:
        rle = () if fmt in formats.ORIGINAL_TEXT else ("--rle",)
        args = ("--pack", str(tiny_pack), "--format", fmt, *rle, str(clip))
        a = run_nat(*args, check=True)
        b = run_nat(*args, "--threads", "1", "--deterministic", check=True)
        assert a.stdout == b.stdout and a.stdout.endswith(b"\n"), fmt
        assert a.stderr == b"", (fmt, a.stderr)


def test_format_flag_output_dir_suffix_and_errors(tiny_pack, tmp_path):
    clip = tmp_path / "clip.wav"
    sf.write(clip, tone(2.0, 16000), 16000)
    out = tmp_path / "out"
    run_nat("--pack", str(tiny_pack), "--format", "text", "--output-dir", str(out), str(clip), check=True)
    assert [p.name for p in out.iterdir()] == ["clip.txt"]
    assert (out / "clip.txt").read_text().startswith("# clip.wav | 2 s |")
    proc = run_nat("--pack", str(tiny_pack), "--format", "text", str(clip), str(tmp_path / "missing.wav"))
    assert proc.returncode == 1
    assert proc.stdout.decode().splitlines()[-1] == "# error: missing.wav: no such file"
    lam = run_nat("--pack", str(tiny_pack), "--format", "lam", str(tmp_path / "missing.wav"))
    assert json.loads(lam.stdout) == {"event": "error", "source": "missing.wav", "error": "input", "message": "missing.wav: no such file"}
    bad = run_nat("--format", "xml", str(clip))
    assert bad.returncode == 2 and bad.stderr.count(b"\n") == 1 and b"invalid choice" in bad.stderr


def test_seed_flags_are_accepted(tiny_pack, tmp_path):
    clip = tmp_path / "clip.wav"
    sf.write(clip, tone(2.0, 16000), 16000)
    plain = run_nat("--pack", str(tiny_pack), str(clip), check=True).stdout
    # A bare --resample before an input must not swallow it; tokens never change.
    for extra in (["--resample"], ["--resample", "16000"], ["--resample=8000"], ["--deterministic"], ["--log-level", "DEBUG"], ["-v"]):
        proc = run_nat("--pack", str(tiny_pack), *extra, str(clip), check=True)
        assert proc.stdout == plain, extra
    assert run_nat("--pack", str(tiny_pack), "--resample", "10", str(clip)).returncode == 2
    both = run_nat("--compat-fallback", "--pack", str(tiny_pack), str(clip))
    assert both.returncode == 2 and b"--compat-fallback" in both.stderr and both.stderr.count(b"\n") == 1


def test_compat_fallback_means_the_builtin_pack(tmp_path):
    from neural_audio_tokenizer.packs import BUILTIN_DIR

    if not (BUILTIN_DIR / "builtin" / "manifest.json").is_file():
        pytest.skip("the built-in pack is not built yet")
    clip = tmp_path / "clip.wav"
    sf.write(clip, tone(1.0, 16000), 16000)
    fallback = run_nat("--compat-fallback", str(clip), check=True).stdout
    assert fallback == run_nat("--pack", "builtin", str(clip), check=True).stdout


def test_budget_report_goes_to_stderr_and_counts_the_output(tiny_pack, tmp_path):
    clip = tmp_path / "long.wav"
    sf.write(clip, tone(40.0, 16000), 16000)
    proc = run_nat("--pack", str(tiny_pack), "--budget-report", str(clip), check=True)
    plain = run_nat("--pack", str(tiny_pack), str(clip), check=True)
    assert proc.stdout == plain.stdout  # the report never touches stdout
    report = proc.stderr.decode().splitlines()
    text = plain.stdout.decode()
    assert report[0] == f"nat: budget long.wav (--format ndjson): 202 lines, {len(text):,} chars, ~{estimate_tokens(text):,} LLM tokens (estimate)"
    assert [line.split(" context")[0] for line in report[1:]] == ["nat:   8k", "nat:   32k", "nat:   128k"]
    assert "of 200 frames" in report[1] and "(S0 A0)" in report[1] and "pooled x2" in report[1]
    assert "all 200 frames (40 s) fit with all 8 levels" in report[3]
    text_report = run_nat("--pack", str(tiny_pack), "--budget-report", "--format", "text", str(clip), check=True).stderr.decode()
    assert "(--format text)" in text_report and "8k context: all 200 frames" in text_report


def test_estimate_tracks_pretokenizer_pieces():
    assert estimate_tokens("") == 0
    assert estimate_tokens("Hello world, how are you?") == 7
    assert estimate_tokens("0.2 S 23 92 45 101") == 12  # 0 . 2 " S" then " " and a number each
    line = '{"t":123.4,"S0":23,"S1":92,"S2":45,"S3":101,"A0":48,"A1":192,"A2":129,"A3":9}\n'
    assert 40 <= estimate_tokens(line) <= 50  # docs/ndjson.md: about 45 per dense line
    assert estimate_tokens("1234567") == 3  # digits in groups of three


# --- progress bars and logs ---------------------------------------------------------------


def run_on_terminal(args: list[str], cwd: Path) -> tuple[int, bytes, bytes]:
    """Run nat with stderr on a pseudo-terminal (stdout stays a pipe): (rc, stdout, terminal)."""
    pty = pytest.importorskip("pty")
    import fcntl
    import struct
    import subprocess
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "neural_audio_tokenizer", *args], stdout=subprocess.PIPE, stderr=slave, cwd=cwd, env=env)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    out = proc.stdout.read()
    proc.wait(timeout=120)
    os.close(master)
    return proc.returncode, out, seen


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_progress_bars_only_on_a_terminal(tiny_pack, tmp_path):
    pytest.importorskip("tqdm")
    long = tmp_path / "long.wav"
    sf.write(long, tone(35.0, 16000), 16000)
    short = tmp_path / "short.wav"
    sf.write(short, tone(1.0, 16000), 16000)
    pack = str(tiny_pack)
    rc, out, terminal = run_on_terminal(["--pack", pack, "long.wav", "short.wav"], tmp_path)
    assert rc == 0 and b"inputs: 100%" in terminal and b"2/2" in terminal
    assert all(json.loads(line) for line in out.splitlines())  # stdout: NDJSON only
    rc, _, terminal = run_on_terminal(["--pack", pack, "long.wav"], tmp_path)
    assert rc == 0 and b"long.wav: 100%" in terminal and b"s audio" in terminal
    rc, _, terminal = run_on_terminal(["--pack", pack, "short.wav"], tmp_path)
    assert rc == 0 and b"%|" not in terminal  # short single input: no bar
    rc, _, terminal = run_on_terminal(["--pack", pack, "-q", "long.wav", "short.wav"], tmp_path)
    assert rc == 0 and b"%|" not in terminal
    piped = run_nat("--pack", pack, str(long), str(short), check=True)
    assert piped.stderr == b""  # not a terminal: no bar, no control characters


def test_log_levels(tiny_pack, tmp_path):
    clip = tmp_path / "clip.wav"
    sf.write(clip, tone(1.0, 16000), 16000)
    quiet = run_nat("--pack", str(tiny_pack), "--format", "structured", "--rle", "-q", str(clip), check=True)
    assert quiet.stderr == b""
    warned = run_nat("--pack", str(tiny_pack), "--format", "structured", "--rle", str(clip), check=True)
    assert warned.stderr.decode() == "nat: --delta/--rle do not apply to --format structured (it always lists every token)\n"
    info = run_nat("--pack", str(tiny_pack), "--resample", "-v", str(clip), check=True)
    assert b"--resample only changes the audio pictured by --all-outputs" in info.stderr
    assert run_nat("--pack", str(tiny_pack), "--resample", str(clip), check=True).stderr == b""


def test_help_lists_the_new_options():
    text = run_nat("--help", check=True).stdout.decode()
    for word in ("--format", "--all-outputs", "--budget-report", "--resample", "--log-level", "--compat-fallback", "nat diff", "nat prompt", "nat packs"):
        assert word in text
    for sub in ("diff", "prompt", "packs"):
        proc = run_nat(sub, "--help", check=True)
        assert proc.stdout.startswith(f"usage: nat {sub}".encode())
