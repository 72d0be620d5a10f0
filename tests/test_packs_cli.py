"""nat packs: listing the packs NAT can find, and verifying them."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import run_nat


@pytest.fixture()
def places(tiny_pack, tmp_path) -> dict:
    """Two NAT_PACK_PATH folders and a user folder, each with copies of the tiny pack."""
    first, second, data = tmp_path / "first", tmp_path / "second", tmp_path / "xdg"
    shutil.copytree(tiny_pack, first / "tiny")
    shutil.copytree(tiny_pack, second / "broken")
    with open(second / "broken" / "A_codebooks.npy", "ab") as f:
        f.write(b"tampered")
    user = data / "nat" / "packs"
    shutil.copytree(tiny_pack, user / "tiny")  # same name as in NAT_PACK_PATH: shadowed
    shutil.copytree(tiny_pack, user / "mine")
    (user / "not-a-pack").mkdir()
    env = {**os.environ, "NAT_PACK_PATH": os.pathsep.join([str(first), str(second)]), "XDG_DATA_HOME": str(data)}
    return {"env": env, "first": first, "second": second, "user": user}


def ours(entries: list[dict], places: dict) -> list[dict]:
    roots = (str(places["first"]), str(places["second"]), str(places["user"]))
    return [e for e in entries if e["path"].startswith(roots)]  # the built-in pack may or may not exist yet


def listing(places, *args) -> tuple[int, list[dict]]:
    proc = run_nat("packs", "--json", *args, env=places["env"])
    return proc.returncode, [json.loads(x) for x in proc.stdout.splitlines()]


def test_lists_packs_in_lookup_order_with_their_shapes(places, tiny_pack):
    code, entries = listing(places)
    assert code == 0
    mine = ours(entries, places)
    assert [(e["name"], e["origin"], e["shadowed"]) for e in mine] == [
        ("tiny", "NAT_PACK_PATH", False),
        ("broken", "NAT_PACK_PATH", False),
        ("mine", "user", False),
        ("tiny", "user", True),
    ]
    tiny = mine[0]
    assert tiny["pack_name"] == "tiny-test" and tiny["frame_rate"] == 5
    assert tiny["streams"] == {"S": {"levels": 4, "codebook_size": 16}, "A": {"levels": 4, "codebook_size": 16}}
    assert tiny["bytes"] == sum(p.stat().st_size for p in Path(tiny_pack).iterdir())
    assert "verified" not in tiny  # listing does not hash anything


def test_table_output(places):
    proc = run_nat("packs", env=places["env"])
    assert proc.returncode == 0
    lines = proc.stdout.decode().splitlines()
    assert lines[0].split() == ["NAME", "STREAMS", "RATE", "SIZE", "LOCATION"]
    row = next(x for x in lines if x.startswith("mine "))
    assert "S 4x16, A 4x16" in row and "5/s" in row and "KB" in row and str(places["user"] / "mine") in row
    assert any(x.startswith("tiny ") and "(shadowed)" in x for x in lines)


def test_verify_reports_each_pack_and_fails_on_a_damaged_one(places):
    code, entries = listing(places, "--verify")
    mine = {(e["name"], e["origin"]): e for e in ours(entries, places)}
    assert mine[("tiny", "NAT_PACK_PATH")]["verified"] == "ok"
    assert len(mine[("tiny", "NAT_PACK_PATH")]["manifest_sha256"]) == 64
    broken = mine[("broken", "NAT_PACK_PATH")]
    assert broken["verified"] == "failed" and "A_codebooks.npy: sha256 mismatch" in broken["problem"]
    assert code == 1
    proc = run_nat("packs", "--verify", env=places["env"])
    assert proc.returncode == 1
    assert "broken: pack A_codebooks.npy: sha256 mismatch" in proc.stdout.decode()
    assert proc.stderr.decode().startswith("nat: packs: 1 of ") and "failed verification: broken" in proc.stderr.decode()


def test_verify_passes_when_every_pack_is_intact(places):
    shutil.rmtree(places["second"] / "broken")
    code, entries = listing(places, "--verify")
    assert all(e["verified"] == "ok" for e in ours(entries, places))
    assert code == (1 if any(e["verified"] == "failed" for e in entries) else 0)


def test_no_packs_anywhere(tmp_path, monkeypatch, capsys):
    from neural_audio_tokenizer.cli import packs as packs_cli

    monkeypatch.setattr(packs_cli, "search_dirs", lambda: [tmp_path / "none"])
    assert packs_cli.main([]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("nat: packs: no packs found (looked in ")


def test_usage_error():
    proc = run_nat("packs", "--bogus")
    assert proc.returncode == 2 and proc.stderr.count(b"\n") == 1
