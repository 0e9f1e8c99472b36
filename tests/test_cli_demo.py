"""The offline demo and the example configs run from the command line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from conftest import REPO, SHARED_STRUCTURES, shared_structure
from tomosim.config import load_config
from tomosim.io import read_mrc


def test_demo_runs_offline_and_writes_everything(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("TOMOSIM_OFFLINE", "1")
    out = tmp_path / "demo_out"
    code, stdout, err = run_cli("demo", "-o", out, "--set", "microscope.tilt.step=10", "--seed", "3")
    assert code == 0, err
    for name in ("ground_truth.mrc", "labels.mrc", "tomogram.mrc", "tiltseries.mrc", "preview.png",
                 "particles.star", "classes.csv", "config.resolved.yaml"):
        assert (out / name).is_file(), name
    labels = read_mrc(out / "labels.mrc").data
    assert labels.shape == (96, 320, 320)
    assert set(np.unique(labels)) == set(range(7)), "every demo class is present"
    assert "seed: 3" in (out / "config.resolved.yaml").read_text()


def test_help_is_fast_and_lists_commands():
    result = subprocess.run([sys.executable, "-m", "tomosim.cli", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    for command in ("potential", "simulate", "demo", "reconstruct"):
        assert command in result.stdout
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, tomosim.cli; print('torch' in sys.modules)"],
        capture_output=True, text=True, timeout=60,
    )
    assert probe.stdout.strip() == "False"


def test_example_config_is_valid():
    cfg = load_config(REPO / "examples" / "actin_cofilactin_mt.yaml")
    assert cfg.class_ids() == {"background": 0, "actin": 1, "cofilactin": 2, "microtubule": 3}


def test_example_runs_on_the_shared_structures(run_cli, tmp_path, monkeypatch):
    shared_structure("cofilactin_18mer_flow.0ns.nowater.pdb.gz")
    monkeypatch.setenv("TOMOSIM_STRUCTURES",
                       f"{SHARED_STRUCTURES}:{SHARED_STRUCTURES / 'polnet_pdbs'}")
    monkeypatch.setenv("TOMOSIM_OFFLINE", "1")
    out = tmp_path / "example"
    code, stdout, err = run_cli(
        "simulate", REPO / "examples" / "actin_cofilactin_mt.yaml", "-o", out,
        "--set", "sample.shape=[60,200,200]", "--set", "sample.ice_thickness=600",
        "--set", "filaments.0.length=[800,1200]", "--set", "filaments.0.count=4",
        "--set", "filaments.1.length=[800,1200]", "--set", "filaments.1.count=2",
        "--set", "filaments.2.count=0", "--set", "proteins.species.0.count=5",
        "--set", "proteins.species.1.count=3", "--set", "proteins.species.2.count=2",
        "--set", "microscope.tilt.step=15",
    )
    assert code == 0, err
    labels = read_mrc(out / "labels.mrc").data
    assert np.isin([1, 2], np.unique(labels)).all(), "actin and cofilactin voxels labelled"
