"""The push API (Tokenizer.live) and live chunking: the frames encode() gives, as audio arrives."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from conftest import tone
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz import examples

from neural_audio_tokenizer.errors import InputError, PackError
from neural_audio_tokenizer.runtime.live import live_chunking
from neural_audio_tokenizer.runtime.pack import load_pack
from neural_audio_tokenizer.runtime.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def builtin() -> Tokenizer:
    return Tokenizer.load(threads=1)


def varied(seconds: float, sr: int, seed: int) -> np.ndarray:
    """A gliding tone in noise with a silent gap and a loud burst: tokens change often."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * (220 + 200 * np.sin(0.7 * t + seed)) * t) + 0.05 * rng.standard_normal(len(t))
    x[int(sr * 2.1) : int(sr * 3.3)] = 0
    x[int(sr * 5.0) : int(sr * 5.4)] *= 8
    return x.astype(np.float32)


def pushed(tok: Tokenizer, x: np.ndarray, sr: int, sizes: list[int], channels: int = 1) -> list:
    live = tok.live(sr, channels)
    out, i, k = [], 0, 0
    while i < len(x):
        n = sizes[k % len(sizes)] if sizes else len(x)
        out += live.push(x[i : i + n])
        i, k = i + n, k + 1
    return out + live.close()


def test_builtin_pack_cuts_live_chunks_of_any_frames(builtin):
    """The built-in pack declares its receptive field: live chunks hold whatever frames are
    in (from one), with 0.6 s of context instead of the file's 1 s."""
    chunking = live_chunking(builtin.pack)
    assert chunking.by_frame and chunking.window_s == 10.0 and chunking.context_s == pytest.approx(0.6)
    live = builtin.live(22050)
    got = live.push(np.zeros(int(22050 * 0.8), np.float32))
    live.wait()
    assert [f.index for f in got + live.read()] == [0]  # one frame: 0.2 s + 0.6 s
    got = live.push(np.zeros(22050 * 30, np.float32))
    live.wait()
    assert len(got + live.read()) == 150  # 30 s at once: 10 s chunks
    live.close()


@pytest.mark.parametrize("sr", [16000, 22050, 44100])
def test_live_chunked_tokens_equal_file_tokens(builtin, sr):
    x = varied(12.3, sr, seed=sr)
    want = list(builtin.encode((x, sr)))
    assert len({f.S for f in want}) > 5  # varied enough for a difference to show
    assert pushed(builtin, x, sr, [997, 3, 44100, 8000]) == want


@examples(8, 40)
@given(st.lists(st.integers(1, 30000), min_size=1, max_size=20), st.sampled_from(["float32", "int16", "float64"]))
def test_push_random_blocks_equals_encode(builtin, sizes, dtype):
    sr = 16000
    x = varied(6.1, sr, seed=len(sizes))
    if dtype == "int16":
        pcm = np.round(x * 32767).astype(np.int16)
        want = list(builtin.encode(pcm.tobytes(), raw_rate=sr))  # raw s16le: the same scaling
        got = pushed(builtin, pcm, sr, sizes)
    else:
        want = list(builtin.encode((x, sr)))
        got = pushed(builtin, x.astype(dtype), sr, sizes)
    assert got == want


@examples(5, 20)
@given(st.lists(st.integers(1, 9000), min_size=1, max_size=10))
def test_interleaved_and_2d_stereo_blocks(builtin, sizes):
    sr = 22050
    x = tone(4.0, sr, channels=2, seed=3)
    want = list(builtin.encode((x, sr)))
    assert pushed(builtin, x.reshape(-1), sr, sizes, channels=2) == want  # interleaved, split mid-frame
    assert pushed(builtin, x, sr, sizes, channels=2) == want


def test_tiny_neural_pack_keeps_its_chunking(tiny_pack):
    """Per-chunk input normalization: no receptive field, the pack's own 2 s chunks."""
    tok = Tokenizer.load(tiny_pack, threads=1)
    chunking = live_chunking(tok.pack)
    assert not chunking.by_frame and (chunking.window_s, chunking.context_s) == (tok.pack.window_s, tok.pack.context_s)
    x = tone(7.3, 16000, seed=5)[:, 0]
    assert pushed(tok, x, 16000, [1234, 77]) == list(tok.encode((x, 16000)))


def test_frames_come_before_close(builtin):
    sr = 16000
    live = builtin.live(sr)
    x = varied(3.0, sr, seed=1)
    cut = int(sr * 2.1)  # frames 0-9 whole, frame 10 begun
    got = live.push(x[:cut])  # what is ready at once, then the rest of what this block completes
    live.wait()
    got += live.read()
    # The silence floor passes a frame's samples on once the frame is whole (2.0 s here);
    # soxr holds back ~70 ms resampling to 22.05 kHz; a frame needs 0.6 s of context after
    # it: frames 0-5 (ending by 1.2 s) are final.
    assert [f.index for f in got] == list(range(6))
    rest = live.push(x[cut:]) + live.close()
    assert got + rest == list(builtin.encode((x, sr)))
    assert live.stats.frames == 15 and live.stats.duration_s == 3.0
    assert live.header.source.sha256 is None and live.header.source.sample_rate == sr


def test_two_streams_from_two_threads(builtin):
    inputs = {k: varied(8.0, 16000, seed=k) for k in (1, 2)}
    want = {k: list(builtin.encode((x, 16000))) for k, x in inputs.items()}
    got: dict[int, list] = {}

    def feed(k: int) -> None:
        got[k] = pushed(builtin, inputs[k], 16000, [160 * (k + 1)])  # 10 ms / 20 ms callbacks

    threads = [threading.Thread(target=feed, args=(k,)) for k in inputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert got == want and want[1] != want[2]


def test_bad_pushes_are_input_errors(builtin):
    live = builtin.live(16000, channels=2)
    with pytest.raises(InputError, match="shape"):
        live.push(np.zeros((10, 3), np.float32))
    with pytest.raises(InputError, match="int16"):
        live.push(np.zeros(10, np.int32))
    live.close()
    with pytest.raises(InputError, match="after close"):
        live.push(np.zeros(10, np.float32))
    with pytest.raises(InputError, match="sample rate"):
        builtin.live(10)


def _with_receptive(tiny_pack, tmp_path, encoder: str, value) -> None:
    import shutil

    folder = tmp_path / "p"
    shutil.copytree(tiny_pack, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["encoders"][encoder]["receptive_field_s"] = value
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.mark.parametrize(
    ("encoder", "value", "message"),
    [("fast", 0.2, "input_normalization"), ("slow", 0.6, "exceeds chunking.context_s"), ("slow", "1", "expected a number")],
)
def test_receptive_field_is_validated(tiny_pack, tmp_path, encoder, value, message):
    with pytest.raises(PackError, match=message):
        load_pack(_with_receptive(tiny_pack, tmp_path, encoder, value))


def test_receptive_field_on_one_encoder_of_two_keeps_the_chunking(tiny_pack, tmp_path):
    pack = load_pack(_with_receptive(tiny_pack, tmp_path, "slow", 0.2))
    assert pack.encoders["slow"].receptive_field_s == 0.2
    chunking = live_chunking(pack)
    assert not chunking.by_frame and (chunking.window_s, chunking.context_s) == (pack.window_s, pack.context_s)  # "fast" sees its whole chunk


class _GatedRunner:
    """Encoders that wait for the test's go-ahead: what a slow neural encoder looks like to push()."""

    def __init__(self, tok: Tokenizer) -> None:
        self.tok = tok
        self.go = threading.Event()
        self.calls = 0
        self.fail = False

    def __call__(self, encoder: str, waveform: np.ndarray):
        self.calls += 1
        assert self.go.wait(60), "the test never let the encoder run"
        if self.fail:
            raise RuntimeError("encoder broke")
        return self.tok.run_encoder(encoder, waveform)


def test_push_returns_while_the_encoder_is_busy(builtin):
    """push() only queues: with every encoder call blocked, pushing 3 s in 0.1 s blocks
    still returns each time, and the frames come once the encoder may run."""
    from neural_audio_tokenizer.runtime.tokenizer import RunnerTokenizer

    runner = _GatedRunner(builtin)
    runner.go.set()  # the silence probe at load runs the encoders
    tok = RunnerTokenizer(builtin.pack, runner)
    runner.go.clear()
    sr = 16000
    x = varied(3.0, sr, seed=3)
    live = tok.live(sr)
    got = []
    for i in range(0, len(x), sr // 10):
        got += live.push(x[i : i + sr // 10])  # would hang here if push ran the encoder
    assert got == [] and not live.wait(timeout=0.05)
    runner.go.set()
    assert live.wait(timeout=60)
    got += live.read()
    assert got and got == list(builtin.encode((x, sr)))[: len(got)]
    assert got + live.close() == list(builtin.encode((x, sr)))


def test_an_encoder_failure_reaches_the_producer(builtin):
    from neural_audio_tokenizer.runtime.tokenizer import RunnerTokenizer

    runner = _GatedRunner(builtin)
    runner.go.set()
    tok = RunnerTokenizer(builtin.pack, runner)
    runner.fail = True
    live = tok.live(16000)
    live.push(varied(2.0, 16000, seed=4))
    with pytest.raises(RuntimeError, match="encoder broke"):
        live.wait(timeout=60)
    with pytest.raises(RuntimeError, match="encoder broke"):
        live.close()


def test_a_dropped_live_stream_stops_its_worker(builtin):
    import gc

    live = builtin.live(16000)
    live.push(np.zeros(1600, np.float32))
    thread = live._worker.thread
    del live
    gc.collect()
    thread.join(timeout=30)
    assert not thread.is_alive()
