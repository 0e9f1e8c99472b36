"""Helpers shared by the CLI error tests (not a test module)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tomosim.io import write_mrc, write_text

CLASSES_CSV = "id,name,colour\n0,background,#000000\n1,ball,#ff0000\n2,rod,#00ff00\n"
TRAIN_YAML = (
    "network: {depth: 1, base_channels: 4, residual_units: 0}\n"
    "patch_size: 16\nbatch_size: 1\nepochs: 1\niterations_per_epoch: 1\n"
    "validation_fraction: 0.0\n"
)


def tree(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``roots`` with its size and modification time (ns)."""
    out = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                out[path] = (st.st_size if name in filenames else 0, st.st_mtime_ns)
    return out


def assert_clean_error(result: tuple[int, str, str], *named: str, code: int = 2) -> str:
    """Exit code 2, one error line (after at most a usage line) naming ``named``, no traceback."""
    exit_code, _, stderr = result
    assert exit_code == code, stderr
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("tomosim: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr
    others = [line for line in lines[:-1] if not line.startswith("tomosim: warning:")]
    assert all(line.startswith("Usage:") for line in others) and len(others) <= 1, stderr
    for text in named:
        assert text in errors[0], f"{text!r} not named in: {errors[0]}"
    return errors[0]


def phantom_labels(shape=(8, 16, 16)) -> np.ndarray:
    labels = np.zeros(shape, np.uint8)
    labels[2:5, 4:9, 4:9] = 1
    labels[5:7, 10:14, 2:14] = 2
    return labels


def phantom_tomogram(shape=(8, 16, 16)) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.normal(0, 0.3, shape) - phantom_labels(shape)).astype(np.float32)


def simulation_folder(root: Path, *, tomogram=None, labels=None) -> Path:
    """A simulation-like folder: tomogram.mrc, labels.mrc, classes.csv (10 Å voxels)."""
    root.mkdir(parents=True)
    write_mrc(root / "tomogram.mrc", phantom_tomogram() if tomogram is None else tomogram,
              voxel_size=10.0)
    write_mrc(root / "labels.mrc", phantom_labels() if labels is None else labels,
              voxel_size=10.0)
    write_text(root / "classes.csv", CLASSES_CSV)
    return root


def tiny_model(output: Path, run) -> Path:
    """Train a one-iteration model (seconds) with ``run(*args)`` -> (code, out, err)."""
    data = simulation_folder(output.parent / f"{output.name}_data")
    (output.parent / f"{output.name}_train.yaml").write_text(TRAIN_YAML)
    code, _, err = run("train", data, "-o", output, "--config",
                       output.parent / f"{output.name}_train.yaml", "--quiet", "--threads", "1")
    assert code == 0, err
    return output
