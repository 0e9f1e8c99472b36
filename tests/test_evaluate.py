"""Segmentation scores on hand-made masks with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tomosim.errors import TomosimError
from tomosim.io import write_mrc, write_text
from tomosim.train.metrics import cl_dice, segmentation_scores, summarise_scores


def hand_made() -> tuple[np.ndarray, np.ndarray]:
    """(prediction, truth) of shape (1, 4, 5) with counts worked out by hand."""
    truth = np.zeros((1, 4, 5), np.uint8)
    prediction = np.zeros_like(truth)
    truth[0, 0, 0:4] = 1  # |T1| = 4
    prediction[0, 0, 2:5] = 1  # |P1| = 3, overlap 2
    truth[0, 2, 0:2] = 2  # |T2| = 2, never predicted
    truth[0, 3, 4] = 255  # not labelled: the class-1 prediction here must not count
    prediction[0, 3, 4] = 1
    return prediction, truth


def test_scores_on_hand_made_masks_are_exact():
    prediction, truth = hand_made()
    scores = segmentation_scores(
        prediction, truth, classes={0: "background", 1: "ribosome", 2: "actin", 3: "membrane"}
    )
    assert [s.name for s in scores] == ["ribosome", "actin", "membrane"]
    ribosome, actin, membrane = scores
    assert (ribosome.true_voxels, ribosome.predicted_voxels, ribosome.overlap_voxels) == (4, 3, 2)
    assert ribosome.dice == pytest.approx(4 / 7, abs=0, rel=1e-15)
    assert ribosome.iou == pytest.approx(2 / 5, rel=1e-15)
    assert ribosome.precision == pytest.approx(2 / 3, rel=1e-15)
    assert ribosome.recall == pytest.approx(1 / 2, rel=1e-15)
    assert (actin.dice, actin.iou, actin.recall, actin.precision) == (0.0, 0.0, 0.0, None)
    assert (membrane.dice, membrane.iou, membrane.precision, membrane.recall) == (None,) * 4
    summary = summarise_scores(scores)
    assert summary["mean_dice"] == pytest.approx((4 / 7 + 0) / 2)
    assert summary["mean_precision"] == pytest.approx(2 / 3) and summary["mean_cl_dice"] is None


def test_identical_masks_score_one_and_shapes_must_match():
    _, truth = hand_made()
    scores = segmentation_scores(np.where(truth == 255, 0, truth), truth, classes={1: "a", 2: "b"})
    assert all(s.dice == s.iou == s.precision == s.recall == 1.0 for s in scores)
    with pytest.raises(TomosimError, match="shape"):
        segmentation_scores(truth[:, :3], truth, classes={1: "a"})


def test_cl_dice_of_a_one_voxel_line():
    """A one-voxel-thick line is its own skeleton, so Tprec and Tsens are simple fractions."""
    truth = np.zeros((3, 5, 16), bool)
    truth[1, 2, 3:13] = True  # 10 voxels
    assert cl_dice(truth, truth) == 1.0
    half = truth.copy()
    half[1, 2, 8:13] = False  # 5 voxels, all on the true skeleton: Tprec 1, Tsens 1/2
    assert cl_dice(half, truth) == pytest.approx(2 * 1 * 0.5 / 1.5)
    extra = truth.copy()
    extra[1, 0, 0] = True  # an isolated voxel off the truth: Tprec 10/11, Tsens 1
    assert cl_dice(extra, truth) == pytest.approx(2 * (10 / 11) / (10 / 11 + 1))
    assert cl_dice(np.roll(truth, 2, axis=1), truth) == 0.0
    assert cl_dice(np.zeros_like(truth), truth) is None


def test_evaluate_cli_table_and_json(tmp_path, run_cli):
    prediction, truth = hand_made()
    line = np.zeros((3, 5, 16), np.uint8)
    line[1, 2, 3:13] = 2
    write_mrc(tmp_path / "prediction.mrc", prediction, voxel_size=10.0)
    write_mrc(tmp_path / "truth.mrc", truth, voxel_size=10.0)
    write_text(tmp_path / "classes.csv", "id,name,colour\n1,ribosome,#f00\n2,actin,#0f0\n")
    code, out, err = run_cli("evaluate", tmp_path / "prediction.mrc", tmp_path / "truth.mrc",
                             "-o", tmp_path / "metrics.json")
    assert code == 0, err
    assert "ribosome" in out and "0.5714" in out
    report = json.loads((tmp_path / "metrics.json").read_text())
    by_name = {c["name"]: c for c in report["classes"]}
    assert by_name["ribosome"]["dice"] == pytest.approx(4 / 7) and by_name["ribosome"]["cl_dice"] is None
    assert by_name["actin"]["precision"] is None  # filament by name: clDice computed (undefined here)
    write_mrc(tmp_path / "line.mrc", line, voxel_size=10.0)
    code, _, err = run_cli("evaluate", tmp_path / "line.mrc", tmp_path / "line.mrc",
                           "--classes", tmp_path / "classes.csv", "-o", tmp_path / "line.json")
    assert code == 0, err
    line_report = json.loads((tmp_path / "line.json").read_text())
    assert line_report["classes"][1]["cl_dice"] == 1.0 and line_report["summary"]["mean_cl_dice"] == 1.0


def test_evaluate_cli_bad_input_exit_2(tmp_path, run_cli):
    prediction, truth = hand_made()
    write_mrc(tmp_path / "prediction.mrc", prediction[:, :3], voxel_size=10.0)
    write_mrc(tmp_path / "truth.mrc", truth, voxel_size=10.0)
    code, _, err = run_cli("evaluate", tmp_path / "prediction.mrc", tmp_path / "truth.mrc")
    assert code == 2 and "shape" in err and len(err.strip().splitlines()) == 1
    write_mrc(tmp_path / "prediction.mrc", prediction, voxel_size=10.0)
    code, _, err = run_cli("evaluate", tmp_path / "prediction.mrc", tmp_path / "truth.mrc",
                           "--filament", "tubulin")
    assert code == 2 and "tubulin" in err
