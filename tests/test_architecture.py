"""The layers of docs/architecture.md, checked: which package may import which, and what a
light command loads.

Imports are read from the source (every ``import`` statement, at module or function level),
so an import hidden inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA, REPO

PACKAGE = REPO / "neural_audio_tokenizer"
LIBRARY = ("runtime", "codebooks", "packs")  # what the runtime is built of: torch-free, tool-free
ALLOWED_THIRD_PARTY = {"numpy", "onnxruntime", "soundfile", "soxr", "platformdirs"}
OPTIONAL_EXTRAS = {"neural_audio_tokenizer.packs.hub": {"huggingface_hub"}}  # the [hub] extra: imported inside functions only


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports, relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from . import x` imports module x
    return found


def modules(*subpackages: str) -> list[Path]:
    return sorted(p for sub in subpackages for p in (PACKAGE / sub).rglob("*.py"))


def test_the_scan_sees_relative_and_function_level_imports(tmp_path):
    """The checks below are only as good as this reader: it must resolve what they look for."""
    probe = PACKAGE / "runtime" / "_probe_for_test.py"
    probe.write_text("def f():\n    from ..cli import diff\n    from .records import Frame\n    import onnxruntime\n")
    try:
        found = imports(probe)
    finally:
        probe.unlink()
    assert {"neural_audio_tokenizer.cli.diff", "neural_audio_tokenizer.runtime.records", "onnxruntime"} <= found


@pytest.mark.parametrize("path", modules(*LIBRARY), ids=lambda p: module_name(p))
def test_the_library_imports_no_tool_no_export_and_no_torch(path):
    bad = {
        name
        for name in imports(path)
        if name.startswith(("neural_audio_tokenizer.cli", "neural_audio_tokenizer.integrations", "neural_audio_tokenizer.export"))
        or name.split(".")[0] in ("torch", "transformers")
    }
    assert not bad, f"{module_name(path)} imports {sorted(bad)}: the library must stand without the tools and torch"


@pytest.mark.parametrize("path", modules(*LIBRARY), ids=lambda p: module_name(p))
def test_the_library_needs_only_the_runtime_dependencies(path):
    third_party = {n.split(".")[0] for n in imports(path)} - set(sys.stdlib_module_names) - {"neural_audio_tokenizer", "__future__", ""}
    optional = OPTIONAL_EXTRAS.get(module_name(path), set())
    assert third_party <= ALLOWED_THIRD_PARTY | optional, f"{module_name(path)} imports {sorted(third_party - ALLOWED_THIRD_PARTY - optional)}"
    at_import = optional & {n.split(".")[0] for n in module_level_imports(path)}
    assert not at_import, f"{module_name(path)} imports the optional {sorted(at_import)} at module level: importing it must work without the extra"


def test_the_module_level_scan_tells_function_imports_apart(tmp_path):
    """The check above is only as good as this reader: a module-level import is seen, one inside a function is not."""
    source = "import json\ntry:\n    import yaml\nexcept ImportError:\n    pass\ndef f():\n    import huggingface_hub\n"
    assert module_level_imports(PACKAGE / "packs" / "probe.py", source) == {"json", "yaml"}


def test_the_hub_extra_is_declared():
    """What OPTIONAL_EXTRAS allows is an extra users can install (pyproject.toml)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(req.startswith("huggingface_hub") for req in extras["hub"])


def test_nothing_in_the_package_imports_the_integrations():
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "integrations" in path.relative_to(PACKAGE).parts:
            continue
        names = {n for n in imports(path) if n.startswith("neural_audio_tokenizer.integrations")}
        text = path.read_text()
        if names or "neural_audio_tokenizer.integrations" in text:
            offenders[module_name(path)] = sorted(names) or ["by name, in a string"]
    assert not offenders, f"integrations build on the package, never the reverse: {offenders}"


def test_the_ray_engine_is_found_through_its_entry_point():
    from neural_audio_tokenizer.cli.batch.main import engine

    assert engine("ray").__module__ == "neural_audio_tokenizer.integrations.ray"


LOADED = (
    "import sys, io, contextlib, json\n"
    "from neural_audio_tokenizer.cli.main import main\n"
    "with contextlib.redirect_stdout(io.StringIO()):\n"
    "    try:\n"
    "        code = main(sys.argv[1:])\n"
    "    except SystemExit as exc:\n"
    "        code = exc.code\n"
    "print(json.dumps({'code': code, 'modules': sorted(sys.modules)}))\n"
)


def loaded_by(*argv: str) -> tuple[int, set[str]]:
    """(exit code, modules in sys.modules) after ``nat ARGV`` runs in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", LOADED, *argv], capture_output=True, text=True, timeout=120, cwd=REPO)
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    return doc["code"], set(doc["modules"])


@pytest.mark.parametrize(
    "argv",
    [
        ("diff", "--help"),
        ("diff", str(DATA / "clip.builtin.golden.ndjson"), str(DATA / "clip.builtin.golden.ndjson")),
        ("prompt", str(DATA / "clip.builtin.golden.ndjson"), "--budget", "2000"),
        ("packs",),
    ],
    ids=["diff --help", "diff", "prompt on ndjson", "packs"],
)
def test_light_commands_load_no_inference_or_decoding(argv):
    code, loaded = loaded_by(*argv)
    assert code == 0
    heavy = {"onnxruntime", "soundfile", "soxr", "torch"} & {m.split(".")[0] for m in loaded}
    assert not heavy, f"nat {' '.join(argv[:1])} loaded {sorted(heavy)}"


def test_tokenizing_does_load_onnxruntime():
    """The check above can fail: the same probe sees onnxruntime when nat really tokenizes."""
    code, loaded = loaded_by("-o", "/dev/null", str(DATA / "clip.flac"))
    assert code == 0 and "onnxruntime" in loaded


# --- evaluation/: torch-free, below export/ (issue #22) ---------------------------------------


def module_level_imports(path: Path, source: str | None = None) -> set[str]:
    """Like imports(), but only what runs when ``path`` is imported: nothing inside a function."""
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    package = module_name(path).split(".")[: None if path.name == "__init__.py" else -1]
    found: set[str] = set()
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        else:
            todo.extend(ast.iter_child_nodes(node))
    return found


def test_the_module_level_scan_skips_functions_only():
    probe = PACKAGE / "evaluation" / "probe.py"
    source = "import numpy\nfrom ..export import corpus\nif True:\n    import mido\nclass C:\n    import soxr\ndef f():\n    import torch\n"
    assert module_level_imports(probe, source) == {"numpy", "neural_audio_tokenizer.export", "neural_audio_tokenizer.export.corpus", "mido", "soxr"}


@pytest.mark.parametrize("path", modules("evaluation"), ids=lambda p: module_name(p))
def test_evaluation_is_torch_free_and_imports_export_only_inside_functions(path):
    anywhere = {n for n in imports(path) if n.startswith(("neural_audio_tokenizer.cli", "neural_audio_tokenizer.integrations")) or n.split(".")[0] in ("torch", "transformers")}
    assert not anywhere, f"{module_name(path)} imports {sorted(anywhere)}: evaluation needs neither the tools nor torch"
    at_import = module_level_imports(path)
    export = {n for n in at_import if n.startswith("neural_audio_tokenizer.export")}
    assert not export, f"{module_name(path)} imports {sorted(export)} when imported: evaluation sits below export (inside a function only)"
    third_party = {n.split(".")[0] for n in at_import} - set(sys.stdlib_module_names) - {"neural_audio_tokenizer", "__future__", ""}
    assert third_party <= ALLOWED_THIRD_PARTY, f"{module_name(path)} imports {sorted(third_party - ALLOWED_THIRD_PARTY)} when imported: a runtime-only venv must load it"


def test_the_library_never_imports_the_evaluation():
    offenders = {module_name(p): sorted(n for n in imports(p) if n.startswith("neural_audio_tokenizer.evaluation")) for p in modules(*LIBRARY)}
    assert not {m: n for m, n in offenders.items() if n}, "the evaluation builds on the library, never the reverse"


# --- no circles, no reaching into another module's private names (issue #22) ------------------


def package_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports by name (function-level imports included).
    A module's own parent packages are left out: ``from . import x`` names the package it is
    already inside, and Python imports a module's parents before the module anyway."""
    paths = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(p) for p in paths}
    graph = {}
    for p in paths:
        me = module_name(p)
        graph[me] = {n for n in imports(p) if n in known and n != me and not me.startswith(n + ".")}
    return graph


def test_the_package_has_no_import_circle():
    import graphlib

    try:
        tuple(graphlib.TopologicalSorter(package_graph()).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import circle: {' -> '.join(exc.args[1])}")


def test_the_circle_check_sees_a_circle():
    import graphlib

    graph = package_graph()
    graph["neural_audio_tokenizer.runtime.records"] = graph["neural_audio_tokenizer.runtime.records"] | {"neural_audio_tokenizer.runtime.stream"}
    with pytest.raises(graphlib.CycleError):
        tuple(graphlib.TopologicalSorter(graph).static_order())


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_reach_ins(source: str) -> list[str]:
    """``from m import _x``, and ``obj._x`` where no ``_x`` is defined in this module (a def,
    class, assignment, attribute store or parameter): the places that lean on another
    module's private names. Attributes of standard-library modules (``os._exit``) are theirs to publish."""
    tree = ast.parse(source)
    mine: set[str] = set()
    stdlib_modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            mine.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            mine.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
            mine.add(node.attr)
        elif isinstance(node, ast.arg):
            mine.add(node.arg)
        elif isinstance(node, ast.Import):
            stdlib_modules.update(a.asname or a.name for a in node.names if a.name.split(".")[0] in sys.stdlib_module_names)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            found += [f"line {node.lineno}: from {'.' * node.level}{node.module or ''} import {a.name}" for a in node.names if _private(a.name)]
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) and _private(node.attr) and node.attr not in mine:
            if not (isinstance(node.value, ast.Name) and node.value.id in stdlib_modules):
                found.append(f"line {node.lineno}: .{node.attr}")
    return found


def test_the_private_name_scan_finds_reach_ins():
    source = "import os\nfrom .audio import _mono\nclass C:\n    def f(self, x):\n        self._mine = 1\n        os._exit(0)\n        return x._theirs, self._mine\n"
    assert private_reach_ins(source) == ["line 2: from .audio import _mono", "line 7: ._theirs"]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: module_name(p))
def test_no_module_reaches_into_another_modules_private_names(path):
    found = private_reach_ins(path.read_text())
    assert not found, f"{module_name(path)} uses private names it does not define: {found}"
