"""``nat batch``: equal to single runs byte for byte, resumable, a bad file or a crashed
worker never losing the others; on the tiny pack so it stays fast."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from batch_library import BAD, FAILING, make_library, nat_single
from conftest import REPO, run_nat, tone, wav_bytes


def index(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]


def outputs(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.ndjson"))}


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("library")
    return root, make_library(root)


@pytest.fixture(scope="module")
def first_run(library, tiny_pack, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    root, _ = library
    out = tmp_path_factory.mktemp("batch") / "tokens"
    proc = run_nat("batch", str(root), "--out", str(out), "--workers", "2", "--pack", str(tiny_pack))
    return out, proc


def test_batch_equals_thirty_single_runs(library, first_run, tiny_pack):
    root, rels = library
    out, proc = first_run
    assert proc.returncode == 1, proc.stderr.decode()  # some inputs failed
    rows = index(out)
    assert [r["path"] for r in rows] == rels  # every audio file, in the fixed order, nothing else
    assert sorted(outputs(out)) == sorted(f"{rel}.ndjson" for rel in rels)
    for row in rows:
        code, single = nat_single(root, row["path"], "--pack", str(tiny_pack))
        assert (out / f"{row['path']}.ndjson").read_bytes() == single, row["path"]
        assert row["status"] == ("error" if code else "ok"), row
        if row["status"] == "ok":
            stats = json.loads(single.splitlines()[-1])
            header = json.loads(single.splitlines()[0])
            assert header["source"]["name"] == row["path"]
            assert (row["sha256"], row["frames"], row["duration_s"]) == (header["source"]["sha256"], stats["frames"], stats["duration_s"])
    assert {r["path"] for r in rows if r["status"] == "error"} == FAILING
    midway = (out / "bad/midway.flac.ndjson").read_bytes().splitlines()
    assert json.loads(midway[0])["type"] == "header" and json.loads(midway[-1])["type"] == "error" and len(midway) > 3
    err = proc.stderr.decode().splitlines()
    assert all(line.startswith("nat: ") for line in err) and "Traceback" not in proc.stderr.decode()
    assert err[-1].startswith("nat: 26 of 30 inputs tokenized (0 already up to date), 4 failed;")


def test_a_real_cli_run_from_the_root_gives_the_same_bytes(library, first_run, tiny_pack):
    root, _ = library
    out, _ = first_run
    for rel in ("artist2/live/disc1/song.wav", BAD[3]):
        proc = subprocess.run([sys.executable, "-m", "neural_audio_tokenizer", "--pack", str(tiny_pack), rel], cwd=root, capture_output=True, timeout=120)
        assert proc.stdout == (out / f"{rel}.ndjson").read_bytes()


def test_rerun_redoes_only_what_is_missing_changed_or_failed(library, first_run, tiny_pack, tmp_path):
    root, rels = library
    src = tmp_path / "lib"
    shutil.copytree(root, src)
    out = tmp_path / "tokens"
    shutil.copytree(first_run[0], out)
    before = {rel: os.stat(out / f"{rel}.ndjson").st_mtime_ns for rel in rels}
    ok = [r["path"] for r in index(out) if r["status"] == "ok"]
    edited = next(rel for rel in ok[4:] if rel.endswith(".wav"))
    deleted, corrupted = ok[:3], ok[3]
    for rel in deleted:
        (out / f"{rel}.ndjson").unlink()
    lines = (out / f"{corrupted}.ndjson").read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    header["source"]["sha256"] = "0" * 64
    (out / f"{corrupted}.ndjson").write_text(json.dumps(header, separators=(",", ":")) + "\n" + "".join(lines[1:]))
    (src / edited).write_bytes(wav_bytes(tone(1.3, 22050, seed=1234), 22050))
    (out / f".{Path(ok[5]).name}.ndjson.x1y2.part").write_bytes(b"half")  # left by a killed run
    time.sleep(0.01)

    proc = run_nat("batch", str(src), "--out", str(out), "--workers", "2", "--pack", str(tiny_pack))
    assert proc.returncode == 1
    status = {r["path"]: r["status"] for r in index(out)}
    redone = set(deleted) | {corrupted, edited}
    assert {rel for rel, s in status.items() if s == "ok"} == redone
    assert {rel for rel, s in status.items() if s == "error"} == FAILING  # failures are retried
    assert {rel for rel, s in status.items() if s == "skipped"} == set(rels) - redone - FAILING
    for rel in set(rels) - redone - FAILING:
        assert os.stat(out / f"{rel}.ndjson").st_mtime_ns == before[rel], rel  # untouched
    fresh = outputs(first_run[0])
    for rel in set(rels) - {edited}:
        assert (out / f"{rel}.ndjson").read_bytes() == fresh[f"{rel}.ndjson"], rel
    assert nat_single(src, edited, "--pack", str(tiny_pack))[1] == (out / f"{edited}.ndjson").read_bytes()
    assert not list(out.rglob("*.part"))
    assert "26 of 30 inputs tokenized (21 already up to date), 4 failed" in proc.stderr.decode().splitlines()[-1]

    # Other encoding options make every output stale.
    again = run_nat("batch", str(src), "--out", str(out), "--workers", "2", "--pack", str(tiny_pack), "--delta", "-q")
    assert again.returncode == 1 and not {r["status"] for r in index(out)} & {"skipped"}


def test_killed_midway_then_resumed(tiny_pack, tmp_path):
    src = tmp_path / "long"
    for i in range(8):
        sub = src / f"cd{i % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"{i:02d}.wav").write_bytes(wav_bytes(tone(30.0, 16000, freq=100 + 30 * i, seed=i), 16000))
    out = tmp_path / "tokens"
    args = [sys.executable, "-m", "neural_audio_tokenizer", "batch", str(src), "--out", str(out), "--workers", "1", "--pack", str(tiny_pack)]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not list(out.rglob("*.ndjson")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    done = {p.relative_to(out).as_posix()[: -len(".ndjson")] for p in out.rglob("*.ndjson")}
    assert not list(out.rglob("*.part")), "a killed run leaves no temporary files"
    assert proc.returncode == 143 and err.decode().splitlines()[-1] == "nat: terminated", (proc.returncode, err.decode()[-2000:])
    rows = index(out)  # written on the way out: unfinished inputs are "pending"
    assert {r["path"] for r in rows if r["status"] == "ok"} <= done  # a file may land just before the kill
    assert {r["status"] for r in rows} == {"ok", "pending"} or {r["status"] for r in rows} == {"pending"}
    assert 1 <= len(done) < 8
    resumed = run_nat("batch", str(src), "--out", str(out), "--workers", "2", "--pack", str(tiny_pack), check=True)
    assert resumed.returncode == 0
    rows = index(out)
    assert {r["path"] for r in rows if r["status"] == "skipped"} == done
    assert {r["path"] for r in rows if r["status"] == "ok"} == {r["path"] for r in rows} - done
    for r in rows:
        assert (out / f"{r['path']}.ndjson").read_bytes() == nat_single(src, r["path"], "--pack", str(tiny_pack))[1]


def test_a_crashing_worker_costs_only_its_own_file(library, first_run, tiny_pack, tmp_path):
    root, rels = library
    victim = "artist2/song.aiff" if "artist2/song.aiff" in rels else rels[2]
    env = {**os.environ, "NAT_BATCH_TEST_CRASH": victim}
    out = tmp_path / "tokens"
    proc = run_nat("batch", str(root), "--out", str(out), "--workers", "2", "--pack", str(tiny_pack), env=env)
    assert proc.returncode == 1
    rows = {r["path"]: r for r in index(out)}
    assert rows[victim]["status"] == "error" and "crashed" in rows[victim]["error"]
    assert {p for p, r in rows.items() if r["status"] == "error"} == FAILING | {victim}
    fresh = outputs(first_run[0])
    got = outputs(out)
    assert got == {k: v for k, v in fresh.items() if k != f"{victim}.ndjson"}


def test_a_list_of_paths_with_a_root(library, first_run, tiny_pack, tmp_path):
    root, rels = library
    listing = tmp_path / "list.txt"
    picked = [rels[5], rels[0], rels[5], BAD[0]]  # order kept, duplicate dropped
    listing.write_text("#EXTM3U\n" + "\n".join(str(root / rel) for rel in picked) + "\n\n" + str(tmp_path / "elsewhere.wav") + "\n")
    out = tmp_path / "tokens"
    proc = run_nat("batch", str(listing), "--out", str(out), "--root", str(root), "--workers", "1", "--pack", str(tiny_pack))
    assert proc.returncode == 1
    rows = index(out)
    assert [r["path"] for r in rows[:3]] == [rels[5], rels[0], BAD[0]]
    assert rows[3]["status"] == "error" and "outside the root" in rows[3]["error"]
    for rel in (rels[5], rels[0], BAD[0]):
        assert (out / f"{rel}.ndjson").read_bytes() == (first_run[0] / f"{rel}.ndjson").read_bytes()
    # Without --root, the root is the deepest folder holding every listed file.
    listing.write_text(f"{root / rels[5]}\n{root / rels[6]}\n")
    out2 = tmp_path / "tokens2"
    run_nat("batch", str(listing), "--out", str(out2), "--workers", "1", "--pack", str(tiny_pack), "-q", check=True)
    base = os.path.commonpath([os.path.dirname(root / rels[5]), os.path.dirname(root / rels[6])])
    assert [r["path"] for r in index(out2)] == [os.path.relpath(root / rel, base) for rel in (rels[5], rels[6])]


@pytest.mark.parametrize(
    "args, message",
    [
        (["batch"], "the following arguments are required"),
        (["batch", "/no/such/folder", "--out", "{out}"], "/no/such/folder: no such folder or list file"),
        (["batch", "{song}", "--out", "{out}"], "an audio file, not a folder or a list of paths"),
        (["batch", "{lib}", "--out", "{out}", "--workers", "0"], "--workers must be >= 1"),
        (["batch", "{lib}", "--out", "{out}", "--pack", "/no/pack"], "no such folder"),
        (["batch", "{lib}", "--out", "{out}", "--engine", "spark"], "invalid choice"),
    ],
)
def test_usage_errors_are_one_line(library, tiny_pack, args, message, tmp_path):
    root, _ = library
    args = [a.format(lib=root, song=root / "song.wav", out=tmp_path / "x") for a in args]
    if "--pack" not in args and len(args) > 1:
        args += ["--pack", str(tiny_pack)]
    proc = run_nat(*args)
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("nat: ") and message in err, err


def test_engine_ray_without_ray_is_one_clear_line(library, tiny_pack, tmp_path, monkeypatch, capsys):
    from neural_audio_tokenizer.cli.batch import main as batch

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the [ray] extra were not installed
    root, _ = library
    assert batch.main([str(root), "--out", str(tmp_path / "x"), "--engine", "ray", "--pack", str(tiny_pack)]) == 2
    err = capsys.readouterr().err
    assert err == "nat: the Ray engine needs ray, which is not installed: pip install 'neural-audio-tokenizer[ray]'\n"


def test_a_stop_drops_only_its_own_partial_file(tmp_path):
    """SIGTERM while a worker is still creating its temporary file: the worker removes that
    file on the way out, and nobody else's (an output whose name extends this one's)."""
    from neural_audio_tokenizer.cli.batch.job import _drop_partial
    from neural_audio_tokenizer.runtime.sinks import AtomicFile

    ours = AtomicFile(tmp_path / "02.wav.ndjson")
    theirs = AtomicFile(tmp_path / "02.wav.ndjson.wav.ndjson")
    done = tmp_path / "02.wav.ndjson"
    _drop_partial(str(done))
    assert not ours.tmp.exists() and theirs.tmp.exists()
    theirs.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["02.wav.ndjson.wav.ndjson"]
