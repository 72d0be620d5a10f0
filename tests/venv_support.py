"""Venvs without torch for tests: made without pip and without the system's site-packages,
their site-packages linked to exactly the installed distributions NAT's runtime requirements
(and an extra's, if asked) need, resolved from installed metadata. Nothing is downloaded."""

from __future__ import annotations

import subprocess
import venv
from importlib import metadata
from pathlib import Path

import pytest
from conftest import REPO


def distributions(requirements: list[str]) -> list[metadata.Distribution]:
    """The installed distributions ``requirements`` need, recursively, without extras."""
    requirement = pytest.importorskip("packaging.requirements").Requirement
    todo, seen, dists = list(requirements), set(), []
    while todo:
        req = requirement(todo.pop())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        key = req.name.lower().replace("_", "-")
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            pytest.skip(f"{req.name} is not installed here")
        dists.append(dist)
        todo += dist.requires or []
    return dists


def project_requirements(extra: str | None) -> list[str]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return list(project["dependencies"]) + (list(project["optional-dependencies"][extra]) if extra else [])


def make_venv(root: Path, extra: str | None) -> Path:
    venv.EnvBuilder(system_site_packages=False, with_pip=False, symlinks=True).create(root)
    python = root / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
    for dist in distributions(project_requirements(extra)):
        if dist.files is None:
            pytest.skip(f"{dist.metadata['Name']} has no RECORD: cannot tell its files")
        for top in {f.parts[0] for f in dist.files if f.parts and f.parts[0] != ".." and not f.parts[0].endswith(".pth")}:
            src = Path(dist.locate_file(top))
            if src.exists() and not (site / top).exists():
                (site / top).symlink_to(src)
    (site / "neural_audio_tokenizer").symlink_to(REPO / "neural_audio_tokenizer")
    return python
