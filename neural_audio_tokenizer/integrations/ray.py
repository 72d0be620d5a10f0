"""Ray Data: tokenize a corpus across a cluster, one row per file (the ``[ray]`` extra).

    import ray
    from neural_audio_tokenizer.integrations.ray import Tokenize, to_ndjson

    files = ray.data.read_binary_files("s3://bucket/music/", include_paths=True)  # path, bytes
    tokens = files.map_batches(Tokenize, fn_constructor_kwargs={"pack": "builtin"},
                               concurrency=8, batch_size=1, batch_format="pyarrow")
    tokens.write_parquet("s3://bucket/tokens/")

``Tokenize`` is a callable class, so Ray runs it in actors and each actor loads its
Tokenizer once, in ``__init__``. ``nat batch --engine ray`` finds :func:`run_batch` through
the ``neural_audio_tokenizer.batch_engines`` entry point: nothing in NAT imports this module. Input rows carry ``path`` and optionally ``bytes`` (else the
file is read from ``path`` on the worker, so it must be there) and ``name``.

One row per file, tokens as one list column per token (not 2-D S/A arrays): flat
``list<int32>`` columns are what Parquet readers, DuckDB and pandas handle natively
(``SELECT unnest(S0) ...``), and they carry the NDJSON keys one to one:

    path      string        the input row's path
    name      string        the header's source name (``name`` column, else relative to
                            ``root``, else as ``nat`` names a path)
    sha256    string        of the source bytes (null if unreadable)
    frame_rate int32
    frames    int32         number of frames
    duration_s float64      decoded audio seconds (from the stats line)
    t         list<double>  frame start times, k / frame_rate rounded to the ms
    S0..S3, A0..A3  list<int32>  one token per frame
    dB, hits  list<int32>   each frame's level and drum-like hits (absent with measures off)
    header    string        the NDJSON header line, exactly
    stats     string        the NDJSON stats line, exactly (null on error)
    status    string        "ok" | "error"
    error     string        one-line message (null when ok)

:func:`to_ndjson` turns a row back into the bytes ``nat`` writes for the same input; the
tests hold the two equal. Ray itself is imported only by :func:`run_batch` (``nat batch
--engine ray``); this class needs pyarrow.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time

from ..cli.batch.job import Result
from ..cli.batch.main import INDEX, summarize, write_index
from ..errors import InputError, NatError
from ..runtime.inputs.audio import RAW_RATE, display_name, open_bytes, open_path
from ..runtime.header import Header
from ..runtime.ndjson import dumps, error_record, header_line, stats_line
from ..runtime.records import MEASURE_KEYS, Frame, LineOptions, frame_lines, frame_time
from ..runtime.tokenizer import Tokenizer

INSTALL = "pip install 'neural-audio-tokenizer[ray]'"


def _require(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise NatError(f"the Ray engine needs {module.split('.')[0]}, which is not installed: {INSTALL}") from None


class Tokenize:
    """Ray Data ``map_batches`` class: rows of audio (path and/or bytes) -> token rows."""

    def __init__(self, pack=None, *, device: str = "cpu", threads: int = 1, keyframe_interval: float = 5.0, delta: bool = False, rle: bool = False, raw_rate: int = RAW_RATE, root: str | None = None, measures: bool = True) -> None:
        self.pa = _require("pyarrow")
        self.tokenizer = Tokenizer.load(pack, device=device, threads=threads, spinning=False)
        self.options = LineOptions(keyframe_interval, delta, rle, measures)
        self.raw_rate = raw_rate
        self.root = root
        self.tokens = [f"{s}{i}" for s, spec in self.tokenizer.pack.streams.items() for i in range(spec.levels)]
        self.measures = list(MEASURE_KEYS) if self.options.measures else []
        pa = self.pa
        fields = [("path", pa.string()), ("name", pa.string()), ("sha256", pa.string()), ("frame_rate", pa.int32()), ("frames", pa.int32()), ("duration_s", pa.float64()), ("t", pa.list_(pa.float64()))]
        fields += [(k, pa.list_(pa.int32())) for k in self.tokens + self.measures]
        fields += [("header", pa.string()), ("stats", pa.string()), ("status", pa.string()), ("error", pa.string())]
        self.schema = pa.schema(fields)

    def __call__(self, batch):
        cols = _columns(batch)
        paths = [str(p) for p in cols["path"]]
        data = cols.get("bytes") or [None] * len(paths)
        names = cols.get("name") or [self.name(p) for p in paths]
        rows = [self.row(p, d, n) for p, d, n in zip(paths, data, names)]
        return self.pa.Table.from_pylist(rows, schema=self.schema)

    def name(self, path: str) -> str:
        if self.root:
            return os.path.relpath(path, self.root).replace(os.sep, "/")
        return display_name(path)

    def row(self, path: str, data: bytes | None, name: str) -> dict:
        """One input's row: its header and stats lines as ``nat`` writes them, and its tokens."""
        row: dict = {"path": path, "name": name, "frame_rate": self.tokenizer.frame_rate, "status": "ok"}
        frames: list[Frame] = []
        try:
            source = open_bytes(bytes(data), name, self.raw_rate) if data is not None else open_path(path, self.raw_rate, name=name)
            stream = self.tokenizer.stream(source)
            row["header"], row["sha256"] = dumps(header_line(stream.header, self.options))[:-1], stream.header.source.sha256
            for frame in stream.frames:  # kept one by one: the frames before a failure are written too, as nat does
                frames.append(frame)
            lines = sum(1 for _ in frame_lines(frames, stream.frame_rate, self.options))
            row["stats"], row["duration_s"] = dumps(stats_line(stream.stats, lines))[:-1], stream.stats.duration_s
        except InputError as exc:
            row["status"], row["error"] = "error", str(exc)
        except Exception as exc:  # noqa: BLE001 - one bad file never fails the dataset
            row["status"], row["error"] = "error", f"{name}: internal error ({type(exc).__name__}: {exc})"
        row["frames"] = len(frames)
        row["t"] = [f.t for f in frames]
        for key in self.tokens:  # "S0" -> frame.S[0]
            stream, level = key[0], int(key[1:])
            row[key] = [getattr(f, stream)[level] for f in frames]
        for key in self.measures:
            row[key] = [f.measures().get(key) for f in frames]
        return row


def _columns(batch) -> dict:
    if hasattr(batch, "to_pydict"):  # pyarrow.Table
        return batch.to_pydict()
    if hasattr(batch, "to_dict"):  # pandas.DataFrame
        return batch.to_dict("list")
    return {k: list(v) for k, v in batch.items()}  # dict of numpy arrays


def to_ndjson(row: dict) -> bytes:
    """The NDJSON ``nat`` writes for this row's input (same pack and options)."""
    lines: list[str] = []
    if row.get("header"):
        written = json.loads(row["header"])
        enc = written["encoding"]  # the lines' encoding, beside the header proper
        modes = enc["mode"].split("+")
        header = Header.from_json(written)
        options = LineOptions(enc["keyframe_interval_s"], "delta" in modes, "rle" in modes, measures=header.measures is not None)
        rate = header.frame_rate
        S, A = header.token_names("S"), header.token_names("A")
        measured = [row.get(k) if options.measures else None for k in MEASURE_KEYS]
        frames = [
            Frame(i, frame_time(i, rate), tuple(int(row[k][i]) for k in S), tuple(int(row[k][i]) for k in A), *(None if m is None else m[i] for m in measured))
            for i in range(len(row["t"]))
        ]
        # Every frame computed, also before a mid-stream failure: nat writes them all.
        lines = [row["header"] + "\n", *(dumps(x) for x in frame_lines(frames, rate, options))]
    if row["status"] == "ok":
        lines.append(row["stats"] + "\n")
    else:
        lines.append(dumps(error_record(row["name"], InputError(row["error"]))))
    return "".join(lines).encode("ascii")


def run_batch(entries, out, settings, workers: int, address: str | None, quiet: bool) -> int:
    """``nat batch --engine ray``: the same inputs and names, tokens to ``OUT/parquet/``,
    and ``OUT/index.jsonl`` as the local engine writes it. No resume: a rerun needs an
    empty ``OUT/parquet``."""
    ray = _require("ray")
    _require("ray.data")
    pq = _require("pyarrow.parquet")
    target = out / "parquet"
    if target.exists() and any(target.iterdir()):
        raise NatError(f"{target} is not empty; the Ray engine does not resume (remove it or pick another --out)")
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # nat's stderr: one line per message
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = not quiet and sys.stderr is not None and sys.stderr.isatty()
    started = time.monotonic()
    items = [{"path": e.path, "name": e.rel} for e in entries if not e.problem]
    opts = settings.options
    kwargs = dict(pack=settings.pack, device=settings.device, threads=settings.threads, keyframe_interval=opts.keyframe_interval_s, delta=opts.delta, rle=opts.rle, raw_rate=settings.raw_rate, measures=opts.measures)
    ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), workers * 4)))
    ds = ds.map_batches(Tokenize, fn_constructor_kwargs=kwargs, compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=settings.threads, batch_size=1, batch_format="pyarrow")
    # Writing is light, and a write task that waits for a core held by the actors would stall
    # the stream once their output backs up: it reserves none.
    ds.write_parquet(str(target), min_rows_per_file=128, ray_remote_args={"num_cpus": 0})
    table = pq.read_table(str(target), columns=["name", "sha256", "frames", "duration_s", "status", "error"]).to_pylist()
    by_name = {r["name"]: r for r in table}
    results: dict[int, Result] = {}
    for i, e in enumerate(entries):
        r = by_name.get(e.rel)
        if e.problem or r is None:
            results[i] = Result(i, "error", error=e.problem or f"{e.rel}: no row came back")
        else:
            results[i] = Result(i, r["status"], r["sha256"], r["frames"] if r["status"] == "ok" else None, r["duration_s"], r["error"])
        if results[i].error:
            print(f"nat: {results[i].error}", file=sys.stderr)
    write_index(out / INDEX, entries, results)
    return summarize(results, len(entries), [], time.monotonic() - started, out / INDEX, quiet)
