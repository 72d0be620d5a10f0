"""``nat batch``: tokenize a whole library (a folder, or a list of paths) with worker processes.

Each input's output, ``OUT/REL.ndjson``, is byte-identical to ``cd ROOT && nat REL`` (see
library.py for ROOT and REL), and ``OUT/index.jsonl`` lists every input in input order.
The manifest is JSON Lines, not Parquet: the runtime stays numpy + onnxruntime, and any
tool (jq, pandas, DuckDB) reads it. ``--engine ray`` writes Parquet (integrations/ray.py).

Workers are processes (forkserver, else spawn: never fork, which would copy onnxruntime's
thread pools mid-flight), each loading its own Tokenizer once with a fair share of the
cores and ORT spinning off, so N workers never oversubscribe the machine. A worker that
dies (a decoder crash) costs only its own file: the files it shared the pool with are
retried, each alone, and only the one that kills its worker again is reported.

Exit codes (as errors.py): 0 every input tokenized or already up to date, 1 some inputs
failed (the others were written; index.jsonl says which), 2 usage/pack/device error,
3 output not writable, 130 Ctrl-C, 143 SIGTERM.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from importlib.metadata import entry_points
from pathlib import Path

from ...errors import EXIT_INPUT_FAILED, EXIT_OK, NatError, OutputError
from ...packs import resolve_pack
from ...runtime.inputs.audio import AUDIO_EXTENSIONS, RAW_RATE
from ...runtime.pack import load_pack
from ...runtime.records import LineOptions
from ...runtime.session import cores, resolve_device
from ...runtime.sinks import AtomicFile
from .. import command
from .job import Job, Result, Settings, init_process, run_job
from .library import discover, output_path, parse_extensions

INDEX = "index.jsonl"
ENGINES = "neural_audio_tokenizer.batch_engines"  # entry points: name -> run_batch(entries, out, settings, workers, address, quiet)

EPILOG = """\
OUT/REL.ndjson equals `cd ROOT && nat [options] REL`; ROOT is INPUT itself for a folder.
A rerun skips inputs whose output is complete and made from the same bytes, pack and options.
examples:
  nat batch ~/Music --out tokens/ --workers 4
  find /data -name '*.flac' > list.txt && nat batch list.txt --out tokens/ --root /data
  nat batch /shared/music --out /shared/tokens --engine ray --workers 32  # Parquet, on Ray
exit codes: 0 ok, 1 some inputs failed, 2 usage/pack/device error, 3 output not writable,
            130 interrupted, 143 terminated
"""


def build_parser() -> command.Parser:
    p = command.parser("nat batch", "Tokenize every audio file in a folder (recursively) or a list of paths, one NDJSON per file.", EPILOG)
    p.add_argument("input", metavar="INPUT_DIR|LIST", help="a folder, or a text file with one path per line ('-': stdin)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (mirrors the input tree)")
    p.add_argument("--workers", type=int, default=cores(), metavar="N", help=f"worker processes (default: one per core, here {cores()})")
    p.add_argument("--threads", type=int, default=0, metavar="N", help="onnxruntime threads per worker (default: cores // workers)")
    p.add_argument("--pack", default=None, metavar="NAME|PATH", help="pack name or folder (default: builtin)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"), help="execution device (default: cpu)")
    p.add_argument("--root", default=None, metavar="DIR", help="names are paths relative to DIR (default: INPUT, or the folder holding every listed file)")
    p.add_argument("--ext", default=",".join(AUDIO_EXTENSIONS), metavar="LIST", help="file extensions to take from a folder, comma-separated, or '*' (default: what NAT decodes)")
    enc = p.add_argument_group("encoding (as in nat)")
    enc.add_argument("--keyframe-interval", type=float, default=5.0, metavar="S", help="seconds between keyframes (default: 5; 0: first frame only)")
    enc.add_argument("--delta", action="store_true", help="non-keyframe lines carry only changed tokens")
    enc.add_argument("--rle", action="store_true", help="runs of identical frames become one line with n")
    enc.add_argument("--no-measures", action="store_true", help="leave out each frame's level (dB) and drum hits: tokens only")
    enc.add_argument("--raw-rate", type=int, default=RAW_RATE, metavar="HZ", help=f"sample rate for undecodable input read as raw s16le PCM (default: {RAW_RATE})")
    eng = p.add_argument_group("engine")
    eng.add_argument("--engine", default="local", choices=("local", "ray"), help="local worker processes (default), or Ray Data writing Parquet (pip install 'neural-audio-tokenizer[ray]')")
    eng.add_argument("--address", default=None, metavar="ADDR", help="Ray cluster to join, e.g. ray://head:10001 (default: RAY_ADDRESS, else the cluster running here, else a new local one)")
    p.add_argument("-q", "--quiet", action="store_true", help="no messages on stderr except errors")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point for ``nat batch``."""
    return command.main(run, argv)


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.workers < 1 or args.threads < 0:
        raise NatError("--workers must be >= 1 and --threads >= 0")
    threads = args.threads or max(1, cores() // args.workers)
    options = LineOptions(args.keyframe_interval, args.delta, args.rle, measures=not args.no_measures)
    pack = _check_pack(args.pack, args.device)
    root, entries, problems = discover(args.input, args.root, parse_extensions(args.ext), exclude=args.out)
    settings = Settings(pack, root, args.device, threads, options, args.raw_rate)
    out = _make_out(args.out).resolve()  # absolute: workers run from the root
    for problem in problems:
        print(f"nat: {problem}", file=sys.stderr)
    if not entries:
        if not args.quiet:
            print(f"nat: {args.input}: no audio files (extensions: {args.ext}; see --ext)", file=sys.stderr)
        return EXIT_INPUT_FAILED if problems else EXIT_OK
    if args.engine != "local":
        code = engine(args.engine)(entries, out, settings, args.workers, args.address, args.quiet)
        return code or (EXIT_INPUT_FAILED if problems else EXIT_OK)
    jobs = [Job(i, e.rel, e.rel, str(output_path(out, e.rel))) for i, e in enumerate(entries)]
    results: dict[int, Result] = {i: Result(i, "error", error=e.problem) for i, e in enumerate(entries) if e.problem}
    todo = [j for j in jobs if j.index not in results]
    started = time.monotonic()
    progress = _Progress(len(jobs), args.quiet)
    for r in results.values():
        progress.update(r)
    try:
        schedule(todo, settings, args.workers, lambda r: (results.__setitem__(r.index, r), progress.update(r)))
    finally:
        progress.close()
        write_index(out / INDEX, entries, results)
    return summarize(results, len(jobs), problems, time.monotonic() - started, Path(args.out, INDEX), args.quiet)


def engine(name: str):
    """The ``run_batch`` of an engine plugged in under ENGINES (the Ray integration is one):
    integrations build on this tool, so it finds them by name instead of importing them."""
    for point in entry_points(group=ENGINES):
        if point.name == name:
            return point.load()
    raise NatError(f"--engine {name}: not installed (pip install 'neural-audio-tokenizer[{name}]')")


def _check_pack(pack: str | None, device: str) -> str:
    """Fail once, in the parent, on a bad pack or device, rather than in every worker; the
    pack's absolute folder, since workers run from the root."""
    folder = resolve_pack(pack).resolve()
    load_pack(folder)
    resolve_device(device)
    return str(folder)


def _make_out(folder: str) -> Path:
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"--out {folder}: {exc.strerror or exc}") from None
    if not os.access(out, os.W_OK):
        raise OutputError(f"--out {folder}: not writable")
    for dirpath, _, files in os.walk(out):  # temporary files a killed run left behind
        for name in files:
            if name.startswith(".") and name.endswith(".part") and ".ndjson." in name:
                Path(dirpath, name).unlink(missing_ok=True)
    return out


def schedule(jobs: list[Job], settings: Settings, workers: int, on_result) -> None:
    """Run every job in a pool of ``workers``; after a worker crash, retry its companions."""
    pending = deque(jobs)
    while pending:
        lost = _run_pool(pending, settings, workers, on_result)
        for job in lost:  # alone, so a second crash points at the one file that causes it
            if _run_pool(deque([job]), settings, 1, on_result):
                on_result(Result(job.index, "error", error=f"{job.rel}: the worker tokenizing it crashed"))


def _context():
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["neural_audio_tokenizer.cli.batch.job", "neural_audio_tokenizer.runtime.tokenizer"])
        return ctx
    return mp.get_context("spawn")


def _run_pool(jobs: deque, settings: Settings, workers: int, on_result) -> list[Job]:
    """Feed ``jobs`` to a fresh pool until it is empty or a worker dies; returns the jobs
    that were in flight when one died (the rest stay in ``jobs``)."""
    pool = ProcessPoolExecutor(min(workers, len(jobs)), mp_context=_context(), initializer=init_process, initargs=(settings,))
    inflight: dict = {}
    lost: list[Job] = []
    try:
        while inflight or (jobs and not lost):
            while jobs and not lost and len(inflight) < 2 * workers:
                job = jobs.popleft()
                inflight[pool.submit(run_job, job)] = job
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            for future in done:
                job = inflight.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    lost.append(job)
                    continue
                on_result(result)
        pool.shutdown()
    except BaseException:
        _kill(pool)
        raise
    return lost


def _kill(pool) -> None:
    """Ctrl-C, SIGTERM or a fatal error: stop workers now; they drop their unfinished files."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for p in processes:
        if p.is_alive():
            p.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        p.join(5)


def write_index(path: Path, entries, results: dict[int, Result]) -> None:
    """One line per input, in input order; inputs an interrupted run never reached: "pending"."""
    file = AtomicFile(path)
    for i, entry in enumerate(entries):
        r = results.get(i) or Result(i, "pending")
        row = {"path": entry.rel, "sha256": r.sha256, "frames": r.frames, "duration_s": r.duration_s, "status": r.status, "error": r.error}
        file.write((json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8", "surrogateescape"))
    file.commit()


def summarize(results: dict[int, Result], total: int, problems: list[str], seconds: float, index: Path, quiet: bool) -> int:
    count = {s: sum(r.status == s for r in results.values()) for s in ("ok", "skipped", "error")}
    audio = sum(r.duration_s or 0 for r in results.values() if r.status == "ok")
    if not quiet or count["error"]:
        print(
            f"nat: {count['ok'] + count['skipped']} of {total} inputs tokenized ({count['skipped']} already up to date), "
            f"{count['error']} failed; {audio:.1f} s of audio in {seconds:.1f} s ({audio / max(seconds, 1e-9):.1f} audio-s/s); index: {index}",
            file=sys.stderr,
        )
    return EXIT_INPUT_FAILED if count["error"] or problems else EXIT_OK


class _Progress:
    """A tqdm bar (files/s, audio-seconds/s) when tqdm is installed and stderr is a terminal;
    error lines always, printed above the bar."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.bar = None
        self.audio = 0.0
        self.started = time.monotonic()
        if not quiet and sys.stderr is not None and sys.stderr.isatty():
            try:
                from tqdm import tqdm

                size = shutil.get_terminal_size((100, 24))  # a pty may report 0x0: tqdm would hide the bar
                self.bar = tqdm(total=total, unit="file", ncols=min(size.columns, 120), nrows=size.lines, file=sys.stderr)
            except ImportError:
                pass

    def update(self, result: Result) -> None:
        if result.status == "error" and result.error:
            self._say(f"nat: {result.error}")
        if self.bar is not None:
            self.audio += (result.duration_s or 0) if result.status == "ok" else 0
            self.bar.update(1)
            self.bar.set_postfix_str(f"{self.audio / max(time.monotonic() - self.started, 1e-9):.1f} audio-s/s", refresh=False)

    def _say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
