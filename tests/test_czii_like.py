"""The CZII-like example: offline stand-ins are chosen, and its configs draw valid phantoms.

The whole experiment (examples/czii_like/run.py) takes minutes even in --quick mode, so this test
checks the parts that can break without running it: the structure choice and the configs.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from conftest import SHARED_STRUCTURES
from tomosim.config import apply_overrides, read_config_tree
from tomosim.dataset import draw_phantom
from tomosim.train.config import load_train_config
from tomosim.train.picking_metrics import CZII_RADII

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "czii_like"


def load_script():
    spec = importlib.util.spec_from_file_location("czii_like_run", EXAMPLE / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_offline_stand_ins_and_valid_configs(monkeypatch):
    if not (SHARED_STRUCTURES / "4v1w.cif.gz").is_file():
        pytest.skip(f"real structures not available ({SHARED_STRUCTURES} missing)")
    monkeypatch.setenv("TOMOSIM_OFFLINE", "1")
    monkeypatch.setenv("TOMOSIM_STRUCTURES", str(SHARED_STRUCTURES))
    script = load_script()
    monkeypatch.setattr(script, "SHARED", SHARED_STRUCTURES)
    overrides, rows = script.choose_structures("auto")
    used = {r["class"]: r["used"] for r in rows}
    assert list(used) == list(CZII_RADII)  # the six challenge classes, in the challenge's order
    assert used["apo-ferritin"] == "pdb:4V1W"  # the real entry is in ../shared
    assert all(u.startswith("stand-in ") for c, u in used.items() if c != "apo-ferritin")
    with pytest.raises(SystemExit, match="1FA2 is not available"):
        script.choose_structures("ids")
    for name, k in (("training.yaml", 0), ("heldout.yaml", 1)):
        tree = apply_overrides(read_config_tree(EXAMPLE / name), list(overrides))
        config, _ = draw_phantom(tree, 1, k, source=name)
        assert config.sample.shape == (184, 630, 630) and config.sample.pixel_size == 10.012
        labels = {s.label or s.name for s in config.proteins.species}
        assert set(CZII_RADII) <= labels and "background" in labels
    train = load_train_config(EXAMPLE / "train.yaml")
    assert train.task == "picking" and train.picking.radii == CZII_RADII
