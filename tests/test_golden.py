"""The built-in pack on a committed real clip (3 s of a FluidSynth clarinet), byte for byte.

Regenerate after an intended change to the built-in pack or the runtime, and say why in the
commit:  nat tests/data/clip.flac > tests/data/clip.builtin.golden.ndjson
"""

from __future__ import annotations

import json

from conftest import DATA, run_nat

GOLDEN = DATA / "clip.builtin.golden.ndjson"


def test_builtin_pack_golden_ndjson_byte_for_byte():
    proc = run_nat("tests/data/clip.flac", check=True)
    assert proc.stdout == GOLDEN.read_bytes()


def test_golden_is_a_real_stream():
    lines = [json.loads(x) for x in GOLDEN.read_text().splitlines()]
    assert lines[0]["pack"]["name"] == "builtin" and lines[-1]["frames"] == 15
    tokens = lines[-1]["tokens"]
    # One clarinet: A0 (the instrument, 64 codes) may hold one code; the notes must move S0, and A1 follows detail.
    assert tokens["S0"]["distinct"] > 1 and tokens["A1"]["distinct"] > 1, "a real clip should not be one repeated token"
