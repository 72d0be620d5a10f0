"""CPU parallelism and memory of the runtime (issue #4): several encoder calls at once give
the very same tokens as one at a time, in order, also when the input breaks midway; the
Tokenizer does not keep a second copy of the model bytes."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import DATA, tone

from neural_audio_tokenizer.runtime.inputs.audio import from_array
from neural_audio_tokenizer.runtime.session import SessionOptions, parallelism
from neural_audio_tokenizer.runtime.tokenizer import Tokenizer

PACK = DATA / "tiny_pack"  # two encoders (24 and 16 kHz), 10 s chunks


def frames(tok: Tokenizer, samples: np.ndarray, sr: int) -> list[tuple]:
    return [(f.index, f.S, f.A) for f in tok.frames(from_array(samples, sr, "x"))]


@pytest.fixture(scope="module")
def audio() -> tuple[np.ndarray, int]:
    return tone(47.3, 22050, freq=220.0, seed=5), 22050  # five chunks, the last one short


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_give_the_same_tokens_in_order(audio, workers):
    one = Tokenizer.load(PACK, threads=1)
    many = Tokenizer.load(PACK, workers=workers)
    assert one.workers == 1 and many.workers == workers
    want = frames(one, *audio)
    assert len(want) == 237 and [f[0] for f in want] == list(range(237))
    assert frames(many, *audio) == want
    # batches of chunks through the workers too
    assert frames(Tokenizer.load(PACK, workers=2, batch=2), *audio) == want


def test_input_failing_midway_keeps_the_frames_cut_before(audio):
    samples, sr = audio

    class Broken:
        def __init__(self, source):
            self.info = source.info
            self._source = source

        def blocks(self):
            for i, block in enumerate(self._source.blocks()):
                if i * len(block) > 31 * sr:
                    raise OSError("disk went away")
                yield block

    def until_error(tok):
        got = []
        with pytest.raises(OSError, match="disk went away"):
            for f in tok.frames(Broken(from_array(samples, sr, "x"))):
                got.append(f.index)
        return got

    sequential = until_error(Tokenizer.load(PACK, threads=1))
    assert sequential and until_error(Tokenizer.load(PACK, workers=2)) == sequential


def test_default_cpu_parallelism(monkeypatch):
    from neural_audio_tokenizer.runtime import session

    monkeypatch.setattr(session, "cores", lambda: 4)
    assert parallelism(SessionOptions(), "cpu") == (4, 1)  # one single-threaded call per core
    assert parallelism(SessionOptions(threads=2), "cpu") == (1, 2)  # nat batch, explicit --threads: as before
    assert parallelism(SessionOptions(workers=2), "cpu") == (2, 1)
    assert parallelism(SessionOptions(workers=2, threads=2), "cpu") == (2, 2)
    assert parallelism(SessionOptions(), "cuda") == (1, 0)
    monkeypatch.setattr(session, "cores", lambda: 1)
    assert parallelism(SessionOptions(), "cpu") == (1, 0)


def test_tokenizer_keeps_no_copy_of_the_model_bytes():
    tok = Tokenizer.load(PACK)
    assert all(e.model_bytes == b"" for e in tok.pack.encoders.values())
    assert all(getattr(s, "_model_bytes", None) is None for s in tok._sessions.values())
    assert tok.pack.manifest_sha256 and sorted(tok.pack.encoders) == ["mert", "wav2vec2"]


def test_the_cli_runs_one_chunk_inputs_one_call_at_a_time(tmp_path):
    """Inputs no longer than one chunk get every core per encoder call (a single chunk's
    encoders cannot fill the cores one call per core); anything longer, unknown or
    undecodable keeps the default."""
    from conftest import tone, wav_bytes

    from neural_audio_tokenizer.runtime.inputs.audio import probe_seconds
    from neural_audio_tokenizer.cli.nat import _all_one_chunk
    from neural_audio_tokenizer.runtime.inputs.item import Input

    short, long_ = tmp_path / "short.wav", tmp_path / "long.wav"
    short.write_bytes(wav_bytes(tone(3.0, 16000), 16000))
    long_.write_bytes(wav_bytes(tone(12.0, 16000), 16000))
    assert probe_seconds(path=str(short)) == 3.0 and probe_seconds(data=long_.read_bytes()) == 12.0
    assert probe_seconds(path=str(tmp_path / "missing.wav")) is None and probe_seconds(data=b"not audio") is None
    one = Input("short.wav", path=str(short))
    assert _all_one_chunk([one, Input("stdin", data=short.read_bytes())], 10.0)
    assert not _all_one_chunk([one, Input("long.wav", path=str(long_))], 10.0)
    assert not _all_one_chunk([one, Input("x", data=b"raw bytes")], 10.0)
    assert not _all_one_chunk([], 10.0)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # never opened by the probe: its bytes would be gone for the real read
    assert probe_seconds(path=str(fifo)) is None
    assert _all_one_chunk([Input("long.wav", path=str(long_))], 12.0)
