"""One library file -> its NDJSON file: the unit of work a ``nat batch`` worker process runs.

The lines are exactly what ``nat`` writes for the same input (the same token stream,
NDJSON writer and error_record, as in cli/nat.tokenize_items), into a temporary file renamed into place when
complete, so a killed run never leaves a half file under a final name. A rerun skips an
input whose output is complete (header ... stats) and was made from the same bytes, pack
and options; everything else is redone.
"""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from ...errors import InputError, NatError, OutputError
from ...runtime.inputs.audio import open_path, sha256_file
from ...runtime.header import Header, Stats
from ...runtime.ndjson import dumps, error_record, lines
from ...runtime.records import LineOptions
from ...runtime.sinks import AtomicFile
from ...runtime.tokenizer import Tokenizer


@dataclass(frozen=True)
class Settings:
    """What every worker needs to build its Tokenizer and lines (picklable)."""

    pack: str | None
    root: str = "."  # worker processes work from here, opening each input by its REL
    device: str = "cpu"
    threads: int = 1
    options: LineOptions = LineOptions()
    raw_rate: int = 16000


@dataclass(frozen=True)
class Job:
    index: int
    rel: str  # header name and manifest path
    path: str  # where to read it (a worker process opens REL from the root, as `cd ROOT && nat REL`)
    output: str  # where its NDJSON goes (absolute)


@dataclass
class Result:
    index: int
    status: str  # "ok" | "error" | "skipped"
    sha256: str | None = None
    frames: int | None = None
    duration_s: float | None = None
    error: str | None = None


class Worker:
    """Holds one Tokenizer, loaded once, and runs jobs with it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.tokenizer = Tokenizer.load(settings.pack, device=settings.device, threads=settings.threads, spinning=False)

    def run(self, job: Job) -> Result:
        done = self.up_to_date(job)
        return done if done is not None else self.tokenize(job)

    def up_to_date(self, job: Job) -> Result | None:
        """A Result("skipped") when ``job.output`` already holds this input's whole stream."""
        try:
            head, tail = _first_and_last_line(job.output)
            first, last = json.loads(head), json.loads(tail)
            if first.get("type") != "header" or last.get("type") != "stats":
                return None
            header, stats = Header.from_json(first), Stats.from_json(last)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        s = self.settings
        source = header.source
        same = (
            source.name == job.rel
            and header.pack is not None
            and header.pack.manifest_sha256 == self.tokenizer.pack.manifest_sha256
            and first.get("encoding") == {"mode": s.options.mode, "keyframe_interval_s": s.options.keyframe_interval_s}
            and ("measures" in first) == s.options.measures
            and (source.decoder != "raw" or source.sample_rate == s.raw_rate)
        )
        if not same or _sha256(job.path) != source.sha256:
            return None
        return Result(job.index, "skipped", source.sha256, stats.frames, stats.duration_s)

    def tokenize(self, job: Job) -> Result:
        s = self.settings
        out = Path(job.output)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot write in {out.parent}: {exc.strerror or exc}") from None
        file = AtomicFile(out)
        result = Result(job.index, "ok")
        try:
            try:
                stream = self.tokenizer.stream(open_path(job.path, s.raw_rate, name=job.rel))
                result.sha256 = stream.header.source.sha256
                for line in lines(stream, s.options):
                    file.write(dumps(line).encode("ascii"))
                result.frames, result.duration_s = stream.stats.frames, stream.stats.duration_s
            except InputError as exc:
                result.status, result.error = "error", str(exc)
                file.write(dumps(error_record(job.rel, exc)).encode("ascii"))
            file.commit()
        except NatError:
            file.discard()
            raise
        except Exception as exc:  # a bug or an odd decoder failure: lose this file, not the run
            file.discard()
            return Result(job.index, "error", result.sha256, error=f"{job.rel}: internal error ({type(exc).__name__}: {exc})")
        except BaseException:
            file.discard()
            raise
        return result


def _first_and_last_line(path: str, tail: int = 1 << 16) -> tuple[bytes, bytes]:
    with open(path, "rb") as f:
        head = f.readline()
        size = f.seek(0, os.SEEK_END)
        f.seek(max(0, size - tail))
        lines = f.read().rstrip(b"\n").rsplit(b"\n", 1)
    return head, lines[-1]


def _sha256(path: str) -> str | None:
    try:
        return sha256_file(path)[1]
    except OSError:
        return None


# --- the worker process ------------------------------------------------------------------


class _Stop(BaseException):
    """SIGTERM from the parent: drop the file in progress and exit."""


_WORKER: Worker | None = None
_INIT_ERROR: NatError | None = None


def _stop(signum, frame):  # noqa: ARG001
    raise _Stop()


def init_process(settings: Settings) -> None:
    """Pool initializer: Ctrl-C is the parent's to handle; SIGTERM ends cleanly. The worker
    moves to the root and opens inputs by REL, exactly as ``cd ROOT && nat REL`` does, so
    even a decoder message that quotes the path it was given reads the same."""
    global _WORKER, _INIT_ERROR
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)
    try:
        os.chdir(settings.root)
        _WORKER = Worker(settings)
    except NatError as exc:  # reported by the first job, not as a broken pool
        _INIT_ERROR = exc
    except OSError as exc:
        _INIT_ERROR = InputError(f"{settings.root}: cannot enter ({exc.strerror or exc})")


def run_job(job: Job) -> Result:
    if _INIT_ERROR is not None:
        raise _INIT_ERROR
    assert _WORKER is not None
    if os.environ.get("NAT_BATCH_TEST_CRASH") and os.environ["NAT_BATCH_TEST_CRASH"] == job.rel:
        os._exit(70)  # test hook: a worker dying mid-job (as a decoder segfault would)
    try:
        return _WORKER.run(job)
    except _Stop:
        _drop_partial(job.output)
        os._exit(143)


def _drop_partial(output: str) -> None:
    """Remove this job's temporary file if SIGTERM came while it was being created, before
    ``tokenize`` could discard it (seen: a .part left once in ~5 killed runs). Only this
    worker writes this output, so its ``.<name>.XXXXXXXX.part`` (mkstemp's 8 random
    characters, never a dot) is ours."""
    folder, name = os.path.split(output)
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return
    prefix = f".{name}."
    for entry in names:
        middle = entry[len(prefix) : -len(".part")]
        if entry.startswith(prefix) and entry.endswith(".part") and len(middle) == 8 and "." not in middle:
            try:
                os.unlink(os.path.join(folder, entry))
            except OSError:
                pass
