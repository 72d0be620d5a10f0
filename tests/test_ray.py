"""The Ray Data path on a local Ray instance: rows carry the very tokens, header and stats
the CLI writes (to_ndjson rebuilds nat's bytes), and ``nat batch --engine ray`` agrees with
the local engine. Skipped without the [ray] extra."""

from __future__ import annotations

import json
import re

import pytest

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'neural-audio-tokenizer[ray]'")
pytest.importorskip("ray.data", reason="needs ray[data]")
pa = pytest.importorskip("pyarrow", reason="needs pyarrow")

from batch_library import FAILING, make_library, nat_single  # noqa: E402

from neural_audio_tokenizer.integrations.ray import Tokenize, to_ndjson  # noqa: E402
from neural_audio_tokenizer.cli.batch import main as batch  # noqa: E402
from neural_audio_tokenizer.cli.batch.library import discover  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray's own, at import and init


def same(a: bytes) -> bytes:
    """Bytes with soundfile's file-object repr blanked: an older audio.py quoted it in
    decoder errors, and a row read from bytes has a BytesIO there, not a file name."""
    return re.sub(rb"<_io\.\w+ (object at 0x[0-9a-f]+|name='[^']*')>", b"<file>", a)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("library")
    return root, make_library(root)


@pytest.fixture(scope="module")
def cli_bytes(library, tiny_pack) -> dict[str, bytes]:
    root, rels = library
    return {rel: nat_single(root, rel, "--pack", str(tiny_pack))[1] for rel in rels}


def test_rows_from_bytes_hold_the_cli_tokens(library, tiny_pack, cli_bytes):
    root, rels = library
    _, entries, _ = discover(str(root))  # nat batch's choice of files (Ray would take ._song.wav too)
    files = ray.data.read_binary_files([e.path for e in entries], include_paths=True)
    tokens = files.map_batches(
        Tokenize,
        fn_constructor_kwargs={"pack": str(tiny_pack), "root": str(root), "rle": True},
        compute=ray.data.ActorPoolStrategy(size=2),
        num_cpus=0.5,  # two actors on a 2-CPU Ray leave room for the read tasks
        batch_size=4,
        batch_format="pyarrow",
    )
    table = tokens.to_arrow_refs()
    table = pa.concat_tables(ray.get(table))
    assert table.schema.field("S0").type == pa.list_(pa.int32()) and table.schema.field("t").type == pa.list_(pa.float64())
    rows = {r["name"]: r for r in table.to_pylist()}
    assert sorted(rows) == sorted(rels)
    for rel, row in rows.items():
        assert row["status"] == ("error" if rel in FAILING else "ok"), row["error"]
        if row["status"] == "ok":
            single = cli_bytes[rel]
            assert len(row["t"]) == row["frames"] == json.loads(single.splitlines()[-1])["frames"]
        # Built with --rle: rows are dense, the header and stats say rle, and the rebuilt
        # NDJSON is what `nat --rle` writes.
        assert same(to_ndjson(row)) == same(nat_single(root, rel, "--pack", str(tiny_pack), "--rle")[1]), rel


def test_nat_batch_engine_ray_agrees_with_the_local_engine(library, tiny_pack, cli_bytes, tmp_path, capsys):
    root, rels = library
    local, remote = tmp_path / "local", tmp_path / "ray"
    assert batch.main([str(root), "--out", str(local), "--workers", "2", "--pack", str(tiny_pack), "-q"]) == 1
    assert batch.main([str(root), "--out", str(remote), "--engine", "ray", "--workers", "2", "--pack", str(tiny_pack), "-q"]) == 1
    assert same((remote / "index.jsonl").read_bytes()) == same((local / "index.jsonl").read_bytes())
    table = pa.concat_tables([pa.parquet.read_table(p) for p in sorted((remote / "parquet").glob("*.parquet"))])
    rows = {r["name"]: r for r in table.to_pylist()}
    assert sorted(rows) == sorted(rels)
    for rel in rels:
        assert cli_bytes[rel] == (local / f"{rel}.ndjson").read_bytes(), rel
        assert same(to_ndjson(rows[rel])) == same(cli_bytes[rel]), rel
    err = capsys.readouterr().err.splitlines()
    assert err and all(line.startswith("nat: ") for line in err)
    # No resume on the Ray engine: a second run into the same folder is refused, in one line.
    assert batch.main([str(root), "--out", str(remote), "--engine", "ray", "--pack", str(tiny_pack)]) == 2
    assert "does not resume" in capsys.readouterr().err
