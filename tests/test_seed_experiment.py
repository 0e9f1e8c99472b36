"""The seed experiment script (examples/seed_experiment/run.py) runs end to end in quick mode.

Quick mode simulates two tiny training phantoms, one held-out and one control phantom, trains a
tiny U-Net for two iterations, segments and evaluates. The scores mean nothing; the test checks
that the pipeline connects and that the page gets its per-class table with the three classes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("monai")

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "examples" / "seed_experiment" / "run.py"
CLASSES = ("actin", "cofilactin", "microtubule")


def test_quick_mode_writes_the_table(tmp_path: Path) -> None:
    doc = tmp_path / "page.md"
    doc.write_text("# Seed experiment\n\nHand-written text that must survive.\n")
    env = {**os.environ, "TOMOSIM_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--workdir", str(tmp_path / "work"),
         "--doc", str(doc), "--threads", "1"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]

    text = doc.read_text()
    assert "Hand-written text that must survive." in text
    begin, end = "<!-- BEGIN GENERATED baseline -->", "<!-- END GENERATED baseline -->"
    generated = text.split(begin, 1)[1].split(end, 1)[0]
    table = generated.split("#### Held-out set: per-class scores", 1)[1].split("####", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| class | Dice")
    assert [row.split("|")[1].strip() for row in rows[1:]] == list(CLASSES)
    assert "quick mode" in generated

    results = json.loads((tmp_path / "work" / "results.json").read_text())
    assert set(results["heldout"]) == set(CLASSES)
    assert results["phantoms"] == {"train": 2, "heldout": 1, "control": 1}

    # a second run replaces the generated block instead of appending another one
    again = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--workdir", str(tmp_path / "work"),
         "--doc", str(doc), "--threads", "1", "--reuse-model", "--control-phantoms", "0"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    text = doc.read_text()
    assert text.count(begin) == 1
    assert "In-distribution control" not in text


STRUCTURES = REPO.parent / "shared" / "structures"


@pytest.mark.skipif(not (STRUCTURES / "cofilactin_18mer_flow.0ns.nowater.pdb.gz").is_file(),
                    reason=f"real-structure seed experiment needs {STRUCTURES} (cofilactin 18-mer)")
def test_quick_mode_real_structures_writes_its_own_block(tmp_path: Path) -> None:
    doc = tmp_path / "page.md"
    doc.write_text("# Seed experiment\n\n<!-- BEGIN GENERATED baseline -->\nold run\n"
                   "<!-- END GENERATED baseline -->\n")
    env = {**os.environ, "TOMOSIM_OFFLINE": "1", "TOMOSIM_STRUCTURES": str(STRUCTURES)}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--real", "--workdir", str(tmp_path / "work"),
         "--doc", str(doc), "--threads", "1", "--control-phantoms", "0"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    text = doc.read_text()
    assert "old run" in text  # the baseline block is left alone
    generated = text.split("<!-- BEGIN GENERATED real -->", 1)[1].split(
        "<!-- END GENERATED real -->", 1)[0]
    assert "training_real.yaml" in generated and "heldout_real.yaml" in generated
    # the phantoms were made from the real-structure configs: envelope labels, 6BNO actin
    resolved = (tmp_path / "work" / "train" / "phantom_00000" / "config.resolved.yaml").read_text()
    assert "label_rule: envelope" in resolved
    assert "cofilactin_18mer_flow.0ns.nowater.pdb.gz" in resolved
    results = json.loads((tmp_path / "work" / "results.json").read_text())
    assert results["real_structures"] is True
    assert set(results["heldout"]) == set(CLASSES)
