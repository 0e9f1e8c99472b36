"""Shared test helpers: the CLI runner and the location of ../shared/structures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_STRUCTURES = Path(
    os.environ.get("TOMOSIM_SHARED_STRUCTURES", REPO.parent / "shared" / "structures")
)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own empty tomosim cache and no structure search path."""
    monkeypatch.setenv("TOMOSIM_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("TOMOSIM_STRUCTURES", raising=False)


def shared_structure(name: str) -> Path:
    """Path of a real structure from ../shared/structures, or skip the test with a reason."""
    path = SHARED_STRUCTURES / name
    if not path.exists():
        pytest.skip(f"real structure {name} not available ({SHARED_STRUCTURES} missing)")
    return path


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):
    """Run ``tomosim ARGS...`` in-process; returns (exit_code, stdout, stderr)."""
    from tomosim.cli import main

    def _run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return _run
