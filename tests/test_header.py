"""Issue #22: the typed Header and Stats (runtime/header.py). Each is built in one place
(make_header, make_stats) and goes to and from JSON in one place (to_json, from_json); what
NAT writes stays byte for byte what it was, and a file read back writes the same bytes."""

from __future__ import annotations

import dataclasses
import json

import pytest
from conftest import DATA, run_nat, tone, wav_bytes

from neural_audio_tokenizer.runtime.header import FORMAT, LEGEND, Header, PackRef, Source, Stats, StreamInfo, TokenStats
from neural_audio_tokenizer.runtime.ndjson import dumps, header_line, stats_line
from neural_audio_tokenizer.runtime.ndjson import lines as ndjson_lines
from neural_audio_tokenizer.runtime.reader import read_streams
from neural_audio_tokenizer.runtime.records import LineOptions
from neural_audio_tokenizer.runtime.stream import TokenStream
from neural_audio_tokenizer.runtime.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def tok(tiny_pack) -> Tokenizer:
    return Tokenizer.load(tiny_pack, threads=1)


def ndjson(stream: TokenStream, options: LineOptions = LineOptions()) -> str:
    return "".join(map(dumps, ndjson_lines(stream, options)))


def options_of(header_obj: dict) -> LineOptions:
    enc = header_obj["encoding"]
    modes = enc["mode"].split("+")
    return LineOptions(enc["keyframe_interval_s"], "delta" in modes, "rle" in modes)


def assert_round_trip(text: str) -> list[TokenStream]:
    """``text`` (NDJSON) read back and written again gives the same bytes; each header and
    stats object goes through from_json -> to_json unchanged."""
    objs = [json.loads(x) for x in text.splitlines()]
    streams = read_streams(text.splitlines(), "test")
    heads = [o for o in objs if o.get("type") == "header"]
    ends = [o for o in objs if o.get("type") == "stats"]
    again = ""
    for stream, head, end in zip(streams, heads, ends):
        options = options_of(head)
        assert Header.from_json(head) == stream.header and Stats.from_json(end) == stream.stats
        assert header_line(stream.header, options) == head and list(header_line(stream.header, options)) == list(head)
        assert stats_line(stream.stats, end["lines"]) == end and list(stats_line(stream.stats, end["lines"])) == list(end)
        again += ndjson(stream, options)
    assert again == text
    return streams


@pytest.mark.parametrize("golden", sorted(DATA.glob("*.golden.ndjson")), ids=lambda p: p.name)
def test_golden_files_read_back_and_write_the_same_bytes(golden):
    [stream] = assert_round_trip(golden.read_text())
    assert stream.header.format == FORMAT and stream.header.legend == LEGEND and stream.header.annotations == {}
    assert stream.stats.source is None and stream.source == stream.header.source


@pytest.mark.parametrize("options", [LineOptions(), LineOptions(2.0, delta=True, rle=True)], ids=["dense", "delta+rle"])
def test_a_file_stream_round_trips(tok, options, tmp_path):
    data = wav_bytes(tone(4.0, 16000), 16000)
    (tmp_path / "clip.wav").write_bytes(data)
    stream = tok.stream(str(tmp_path / "clip.wav")).materialized()
    text = ndjson(stream, options)
    [back] = assert_round_trip(text)
    assert back.header == stream.header and back.stats == stream.stats
    src = stream.header.source
    assert (src.name, src.decoder, src.bytes, src.duration_s) == ("clip.wav", "soundfile", len(data), 4.0)
    assert isinstance(stream.header.streams["S"], StreamInfo) and stream.s_names == ["S0", "S1", "S2", "S3"]
    assert all(isinstance(t, TokenStats) for t in stream.stats.tokens.values())


def test_a_piped_stream_round_trips_with_its_identity_in_the_stats(tmp_path):
    data = wav_bytes(tone(3.0, 16000, seed=3), 16000)
    (tmp_path / "a.wav").write_bytes(data)
    piped = run_nat("--format", "ndjson", input=data, check=True).stdout.decode()
    whole = run_nat("--format", "ndjson", str(tmp_path / "a.wav"), check=True).stdout.decode()
    [p] = assert_round_trip(piped)
    [w] = read_streams(whole.splitlines(), "whole")
    src = p.header.source
    assert (src.bytes, src.sha256, src.duration_s, src.decoder) == (None, None, None, "stream")
    assert p.stats.source is not None and (p.stats.source.bytes, p.stats.source.sha256) == (len(data), w.header.source.sha256)
    # TokenStream.source: the header's, filled in from the stats
    assert p.source.sha256 == w.source.sha256 and p.source.bytes == len(data) and p.source.name == "stdin"
    assert list(json.loads(piped.splitlines()[-1])) == ["type", "frames", "lines", "duration_s", "nonfinite_samples", "source", "tokens"]


def test_a_live_stream_round_trips_and_its_stats_are_built_as_a_files(tok):
    x = tone(3.0, 16000, seed=5)
    live = tok.live(16000, name="mic")
    frames = live.push(x[:20000]) + live.push(x[20000:]) + live.close()
    assert isinstance(live.header, Header) and isinstance(live.stats, Stats)
    src = live.header.source
    assert (src.name, src.decoder, src.format, src.bytes, src.sha256, src.duration_s) == ("mic", "live", "float32", None, None, None)
    assert live.stats.source is None and live.stats.frames == len(frames)
    # the same make_stats as a file's stream: equal for the same samples
    assert live.stats == tok.stream((x, 16000), "mic").materialized().stats
    assert_round_trip(ndjson(TokenStream.complete(live.header, frames, live.stats)))


def test_annotations_and_unknown_keys_keep_their_place(tok):
    """glossary and fit follow legend in the order they were added; a key this NAT does not
    know, in a header or stats line, is read and written again where it was."""
    stream = tok.stream((tone(2.0, 16000), 16000), "clip").materialized()
    header = stream.header.with_annotation("glossary", {"note": "g"}).with_annotation("fit", {"pool": 1})
    assert header.glossary == {"note": "g"} and header.fit == {"pool": 1}
    assert list(header.to_json())[-3:] == ["legend", "glossary", "fit"]
    assert list(header.with_annotation("glossary", {"note": "h"}).to_json())[-2:] == ["glossary", "fit"]  # replaced in place
    assert "glossary" not in header.without_annotation("glossary").to_json()
    text = ndjson(TokenStream.complete(header, list(stream.frames), stream.stats))
    objs = [json.loads(x) for x in text.splitlines()]
    objs[0]["x_later"] = {"kept": True}
    objs[-1]["x_count"] = 3
    edited = "".join(map(dumps, objs))
    [back] = assert_round_trip(edited)
    assert back.header.annotations == {"glossary": {"note": "g"}, "fit": {"pool": 1}, "x_later": {"kept": True}}
    assert back.stats.extra == {"x_count": 3}
    with pytest.raises(ValueError):
        header.with_annotation("legend", "no")


def test_encoding_and_lines_belong_to_the_writer():
    head = {
        "type": "header", "format": FORMAT, "format_version": 1,
        "source": {"name": "a", "bytes": 1, "sha256": None, "decoder": "raw", "format": "s16le", "sample_rate": 16000, "channels": 1, "duration_s": 0.0},
        "pack": {"name": "p", "manifest_sha256": "0" * 64}, "frame_rate": 5,
        "streams": {"S": {"levels": 1, "codebook_size": 2, "tokens": ["S0"]}, "A": {"levels": 1, "codebook_size": 2, "tokens": ["A0"]}},
        "encoding": {"mode": "rle", "keyframe_interval_s": 1.0}, "legend": "L",
    }
    header = Header.from_json(head)
    assert "encoding" not in header.to_json() and header.to_json(encoding=head["encoding"]) == head
    stats = Stats.from_json({"type": "stats", "frames": 2, "lines": 1, "duration_s": 0.4, "nonfinite_samples": 0, "tokens": {}})
    assert "lines" not in stats.to_json() and stats.to_json(lines=7)["lines"] == 7
    with pytest.raises(dataclasses.FrozenInstanceError):
        header.frame_rate = 10  # type: ignore[misc]


def test_a_lam_header_reads_as_a_typed_header(tok):
    from neural_audio_tokenizer.runtime import formats

    stream = tok.stream((tone(2.0, 16000), 16000), "clip").materialized()
    text = formats.render_text_of(formats.get("lam"), stream, LineOptions())
    [back] = read_streams(text.splitlines(), "lam")
    h = back.header
    assert (h.format, h.format_version, h.legend, h.frame_rate) == ("lam_audio_tokens", None, None, 5.0)
    assert h.pack == PackRef(stream.header.pack.name, stream.header.pack.manifest_sha256, h.pack.codebook_id) and h.pack.codebook_id
    assert h.source == Source("clip", sha256=stream.header.source.sha256) and back.stats is None
    assert [f.S + f.A for f in back.frames] == [f.S + f.A for f in stream.frames]
    assert back.s_names == stream.s_names
