"""nat diff: token-level comparison of token files for CI, across encodings and the original script's format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
from conftest import run_nat, tone

from neural_audio_tokenizer.cli.diff import main as diff_main
from neural_audio_tokenizer.cli.diff import parse_threshold

NAMES = ["S0", "S1", "S2", "S3", "A0", "A1", "A2", "A3"]


@pytest.fixture(scope="module")
def files(tiny_pack, tmp_path_factory) -> dict[str, Path]:
    """Token files of two clips in several encodings, written by the CLI."""
    d = tmp_path_factory.mktemp("diff")
    x = tone(6.0, 22050)
    x[len(x) // 2 :] = 0
    sf.write(d / "a.wav", x, 22050)
    sf.write(d / "b.wav", tone(6.0, 22050, freq=300, seed=3), 22050)
    pack = str(tiny_pack)
    out = {}
    for name, args in {
        "dense": ["a.wav"],
        "delta_rle": ["--delta", "--rle", "--keyframe-interval", "0", "a.wav"],
        "rle": ["--rle", "a.wav"],
        "lam": ["--format", "lam", "--rle", "a.wav"],
        "other_audio": ["b.wav"],
        "two": ["a.wav", "b.wav"],
        "two_rle": ["--rle", "a.wav", "b.wav"],
    }.items():
        path = d / f"{name}.ndjson"
        proc = run_nat("--pack", pack, *[str(d / a) if a.endswith(".wav") else a for a in args], check=True)
        path.write_bytes(proc.stdout)
        out[name] = path
    return out


def diff(*args, capsys=None) -> tuple[int, str, str]:
    code = diff_main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tamper(src: Path, dst: Path, frames: dict[int, dict], header: dict | None = None) -> Path:
    """Copy a dense NAT file, overriding tokens of some frames (by line index) or header fields."""
    lines = [json.loads(x) for x in src.read_text().splitlines()]
    for k, change in frames.items():
        lines[1 + k].update(change)
    if header:
        for key, value in header.items():
            target = lines[0]
            *path, last = key.split(".")
            for p in path:
                target = target[p]
            target[last] = value
    dst.write_text("".join(json.dumps(x, separators=(",", ":")) + "\n" for x in lines))
    return dst


def test_same_tokens_in_any_encoding_pass(files, capsys):
    for other in ("delta_rle", "rle", "lam"):
        code, out, err = diff(files["dense"], files[other], capsys=capsys)
        assert code == 0, (other, out, err)
        assert out.splitlines()[-1] == "result: PASS: identical tokens"
        levels = 8 if other == "lam" else 10  # the original script's format has no measures: tokens only
        assert f"stream 1 a.wav: 30 frames; 0 of {levels} levels differ" in out and err == ""
    assert diff(files["two"], files["two_rle"], capsys=capsys)[0] == 0


def test_measures_are_compared_where_both_files_have_them(files, tmp_path, capsys):
    """A golden file made without measures (--no-measures, or an older NAT) still compares
    token by token with one that has them; a changed dB fails and is located."""
    lines = [json.loads(x) for x in Path(files["dense"]).read_text().splitlines()]
    assert "measures" in lines[0] and all("dB" in x and "hits" in x for x in lines[1:-1])
    bare = tmp_path / "bare.ndjson"
    bare.write_text("".join(json.dumps({k: v for k, v in x.items() if k not in ("measures", "dB", "hits")}) + "\n" for x in lines))
    code, out, _ = diff(bare, files["dense"], capsys=capsys)
    assert code == 0 and "0 of 8 levels differ" in out
    lines[3]["dB"] += 3
    louder = tmp_path / "louder.ndjson"
    louder.write_text("".join(json.dumps(x) + "\n" for x in lines))
    code, out, _ = diff(files["dense"], louder, capsys=capsys)
    assert code == 1 and "1 of 10 levels differ" in out and "dB" in out.splitlines()[-1]


def test_a_changed_token_fails_and_is_located(files, tmp_path, capsys):
    dense = [json.loads(x) for x in files["dense"].read_text().splitlines()]
    bad = tamper(files["dense"], tmp_path / "bad.ndjson", {7: {"A0": (dense[8]["A0"] + 1) % 16}, 8: {"A0": (dense[9]["A0"] + 1) % 16}, 20: {"S2": (dense[21]["S2"] + 1) % 16}})
    code, out, err = diff(files["dense"], bad, capsys=capsys)
    assert code == 1 and err == ""
    lines = out.splitlines()
    a0 = next(x for x in lines if x.strip().startswith("A0"))
    assert "agree   93.33%  FAIL" in a0 and "first diff at 1.4 s" in a0 and "2 frames in 1 runs: 1.4-1.8 s (2)" in a0
    s2 = next(x for x in lines if x.strip().startswith("S2"))
    assert "first diff at 4 s" in s2 and "4-4.2 s (1)" in s2
    assert lines[-1] == "result: FAIL: A0 mismatch 6.67% > allowed 0.00%"
    # within a threshold, or on levels that agree, it passes
    assert diff(files["dense"], bad, "--max-mismatch", "7%", capsys=capsys)[0] == 0
    assert diff(files["dense"], bad, "--max-mismatch", "0.05", capsys=capsys)[0] == 1
    code, out, _ = diff(files["dense"], bad, "--levels", "S0,A3", capsys=capsys)
    assert code == 0 and "A0" not in out
    # and the delta/RLE form of the golden gives the same verdict
    assert diff(files["delta_rle"], bad, capsys=capsys)[0] == 1


def test_json_report(files, tmp_path, capsys):
    bad = tamper(files["dense"], tmp_path / "bad.ndjson", {0: {"S0": 15 if json.loads(files["dense"].read_text().splitlines()[1])["S0"] != 15 else 14}})
    code, out, _ = diff(files["rle"], bad, "--json", "--max-mismatch", "0.1%", capsys=capsys)
    doc = json.loads(out)
    assert code == 1 and out.count("\n") == 1
    assert doc["result"] == "fail" and doc["max_mismatch"] == 0.001
    s0 = doc["streams"][0]["levels"]["S0"]
    assert s0 == {"frames": 30, "mismatches": 1, "first_diff_t": 0.0, "runs": [[0.0, 0.2, 1]], "agreement": round(29 / 30, 6), "mismatch": round(1 / 30, 6), "within": False, "runs_total": 1}
    assert doc["streams"][0]["levels"]["A3"]["mismatches"] == 0


def test_missing_frames_count_as_mismatches(files, tmp_path, capsys):
    lines = files["dense"].read_text().splitlines()
    short = tmp_path / "short.ndjson"
    short.write_text("\n".join(lines[:-6] + lines[-1:]) + "\n")  # last 5 frames gone
    code, out, _ = diff(files["dense"], short, capsys=capsys)
    assert code == 1
    assert "golden 30 frames, new 25" in out and "first diff at 5 s" in out


@pytest.mark.parametrize(
    "change, says",
    [
        ({"pack.manifest_sha256": "0" * 64}, "pack manifest_sha256 differs (golden"),
        ({"frame_rate": 10}, "frame rate differs (golden 5/s, new 10/s)"),
        ({"source.sha256": "f" * 64}, "source sha256 differs"),
    ],
)
def test_not_comparable_says_which(files, tmp_path, capsys, change, says):
    other = tamper(files["dense"], tmp_path / "other.ndjson", {}, change)
    code, out, err = diff(files["dense"], other, capsys=capsys)
    assert code == 2 and out == ""
    assert err.startswith("nat: diff: not comparable: stream 1 (a.wav): ") and says in err and err.count("\n") == 1


def test_different_audio_and_stream_counts(files, capsys):
    code, _, err = diff(files["dense"], files["other_audio"], capsys=capsys)
    assert code == 2 and "source sha256 differs" in err and "not the same audio" in err
    code, out, err = diff(files["dense"], files["two"], "--json", capsys=capsys)
    assert code == 2 and "GOLDEN holds 1 streams, NEW holds 2" in err
    assert json.loads(out)["result"] == "not_comparable"


def test_multi_stream_files_compare_stream_by_stream(files, tmp_path, capsys):
    lines = [json.loads(x) for x in files["two"].read_text().splitlines()]
    second = [i for i, x in enumerate(lines) if x.get("type") == "header"][1]
    lines[second + 3]["A1"] = (lines[second + 3]["A1"] + 1) % 16
    bad = tmp_path / "two_bad.ndjson"
    bad.write_text("".join(json.dumps(x) + "\n" for x in lines))
    code, out, _ = diff(files["two_rle"], bad, capsys=capsys)
    assert code == 1
    assert "stream 1 a.wav: 30 frames; 0 of 10 levels differ" in out
    assert "stream 2 b.wav: 30 frames; 1 of 10 levels differ" in out and "first diff at 0.4 s" in out


def test_unreadable_and_usage_errors(files, tmp_path, capsys):
    junk = tmp_path / "junk.ndjson"
    junk.write_text('{"type":"header"}\nnot json\n')
    code, _, err = diff(files["dense"], junk, capsys=capsys)
    assert code == 2 and err == f"nat: diff: {junk}: line 2: not JSON (is this a token stream?)\n"
    code, _, err = diff(files["dense"], tmp_path / "nope.ndjson", capsys=capsys)
    assert code == 2 and "no such file" in err
    empty = tmp_path / "empty.ndjson"
    empty.write_text("")
    assert diff(files["dense"], empty, capsys=capsys)[0] == 2
    code, _, err = diff(files["dense"], files["rle"], "--levels", "S9", capsys=capsys)
    assert code == 2 and "has no level S9" in err
    code, _, err = diff(files["dense"], files["rle"], "--max-mismatch", "lots", capsys=capsys)
    assert code == 2 and err.count("\n") == 1
    with pytest.raises(SystemExit) as exc:
        diff_main([str(files["dense"])])
    assert exc.value.code == 2


def test_thresholds():
    assert parse_threshold("0") == 0
    assert parse_threshold("0.1%") == pytest.approx(0.001)
    assert parse_threshold("0.25") == 0.25
    assert parse_threshold("100%") == 1


# --- the original script's lam_audio_tokens v1.5 files ------------------------------------


def seed_lam(frames: list[tuple[int, ...]], rle: bool, fps: float = 43.066, sha: str = "ab" * 32) -> str:
    """A file as the original script wrote it: no pack hash, ms times, S layers RLE-coded as
    'tokens' events carrying changed S<i> and A_dense, keyframe 'frame' events every 5 s, and
    its end event with wall-clock stats."""
    ms = 1000 / fps
    head = {
        "event": "header", "format_version": "1.5", "schema": "lam_audio_tokens", "model_id": "tims-ears-v0.1.7.mert",
        "codebook_id": "tims-ears-v0.1.7.mert-cb-4096", "sr": 22050, "hop": 512, "hop_ms": round(ms, 3),
        "frames_per_second": fps, "encoding_mode": "rle" if rle else "dense", "time_units": "ms", "start_ts": 0.0,
        "layers": [{"name": n, "type": "semantic" if n[0] == "S" else "acoustic", "vocab": 4096, "encoding": "rle" if rle and n[0] == "S" else "dense"} for n in NAMES],
        "duration_seconds": round(len(frames) / fps, 3), "audio_sha256": sha, "metadata": {"file_path": "/home/tim/song.wav"},
    }
    out, buffered, prev, last_kf = [head], None, None, 0.0
    for fi, codes in enumerate(frames):
        t = fi * ms
        keyframe = rle and t / 1000 - last_kf >= 5.0
        if keyframe:
            last_kf = t / 1000
        if not rle or keyframe:
            if buffered:
                out.append(buffered)
                buffered = None
            event = {"event": "frame", "fi": fi, "ts": round(t, 3), "dur": round(ms, 3), "S": list(codes[:4]), "A": list(codes[4:])}
            if keyframe:
                event["is_keyframe"] = True
            out.append(event)
        elif prev is None or codes != prev:
            if buffered:
                out.append(buffered)
            buffered = {"event": "tokens", "fi": fi, "ts": round(t, 3), "dur": round(ms, 3)}
            buffered.update({NAMES[i]: codes[i] for i in range(4) if prev is None or codes[i] != prev[i]})
            buffered["A_dense"] = list(codes[4:])
        elif buffered:
            buffered["dur"] += ms
        prev = codes
    if buffered:
        out.append(buffered)
    out.append({"event": "end", "stats": {"processing_time": 12.3, "tokens_per_second": 99.1}})
    return "".join(json.dumps(x) + "\n" for x in out)


def test_reads_the_original_scripts_lam_files(tmp_path, capsys):
    frames = [tuple([i // 60, 7, (i // 10) % 3, 1, i % 5, 2, 3, i % 2]) for i in range(500)]  # > 5 s at 43 fps
    dense = tmp_path / "old_dense.ndjson"
    dense.write_text(seed_lam(frames, rle=False))
    rle = tmp_path / "old_rle.ndjson"
    rle.write_text(seed_lam(frames, rle=True))
    assert '"is_keyframe": true' in rle.read_text() and '"S0"' in rle.read_text()
    code, out, _ = diff(dense, rle, capsys=capsys)
    assert code == 0, out
    assert "stream 1 /home/tim/song.wav: 500 frames; 0 of 8 levels differ" in out
    changed = list(frames)
    changed[300] = (9,) + changed[300][1:]
    moved = tmp_path / "old_changed.ndjson"
    moved.write_text(seed_lam(changed, rle=True))
    code, out, _ = diff(dense, moved, capsys=capsys)
    assert code == 1 and "first diff at 6.966 s" in out
    other = tmp_path / "other_song.ndjson"
    other.write_text(seed_lam(frames, rle=True, sha="cd" * 32))
    code, _, err = diff(dense, other, capsys=capsys)
    assert code == 2 and "source sha256 differs" in err


def test_nat_lam_output_compares_with_nat_ndjson(files, tmp_path, capsys):
    lam = [json.loads(x) for x in files["lam"].read_text().splitlines()]
    assert lam[0]["metadata"]["pack_manifest_sha256"] == json.loads(files["dense"].read_text().splitlines()[0])["pack"]["manifest_sha256"]
    assert diff(files["lam"], files["dense"], capsys=capsys)[0] == 0


def test_through_the_nat_cli_with_stdin(files):
    proc = run_nat("diff", str(files["dense"]), "-", input=files["delta_rle"].read_bytes())
    assert proc.returncode == 0 and proc.stdout.decode().endswith("result: PASS: identical tokens\n")
    proc = run_nat("diff", str(files["dense"]), str(files["other_audio"]))
    assert proc.returncode == 2 and proc.stdout == b"" and proc.stderr.count(b"\n") == 1


def test_any_audio_compares_two_encodings_of_one_song(tmp_path, capsys):
    """The committed clip as FLAC and as MP3, built-in pack: not comparable by default, frame
    by frame with --any-audio (the codec changes some fine-level tokens, not level 0's)."""
    x, sr = sf.read("tests/data/clip.flac", dtype="float32")
    sf.write(tmp_path / "clip.mp3", x, sr, format="MP3", subtype="MPEG_LAYER_III", bitrate_mode="CONSTANT", compression_level=0.65)
    flac, mp3 = tmp_path / "flac.ndjson", tmp_path / "mp3.ndjson"
    flac.write_bytes(run_nat("tests/data/clip.flac", check=True).stdout)
    mp3.write_bytes(run_nat(str(tmp_path / "clip.mp3"), check=True).stdout)
    code, _, err = diff(flac, mp3, capsys=capsys)
    assert code == 2 and "not the same audio" in err
    code, out, _ = diff(flac, mp3, "--any-audio", "--json", "--max-mismatch", "100%", capsys=capsys)
    report = json.loads(out)
    assert code == 0 and report["result"] == "pass"
    levels = report["streams"][0]["levels"]
    assert levels["S0"]["frames"] == 15 and levels["S0"]["agreement"] >= 0.8
    code, out, _ = diff(flac, mp3, "--any-audio", "--levels", "S0", capsys=capsys)
    assert code in (0, 1) and "clip.flac vs clip.mp3" in out


def test_any_audio_still_needs_the_same_pack_and_frame_rate(files, tmp_path, capsys):
    for change, says in (({"pack.manifest_sha256": "0" * 64}, "pack manifest_sha256 differs"), ({"frame_rate": 10}, "frame rate differs")):
        other = tamper(files["other_audio"], tmp_path / "other.ndjson", {}, change)
        code, out, err = diff(files["dense"], other, "--any-audio", capsys=capsys)
        assert code == 2 and out == "" and says in err and "sha256 differs (golden" not in err.replace("manifest_sha256", "")
    code, out, _ = diff(files["dense"], files["other_audio"], "--any-audio", capsys=capsys)
    assert code == 1 and "a.wav vs b.wav" in out and "result: FAIL" in out
