"""Picking scores (evaluate-picks) on hand-made point sets with answers worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import starfile
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import maximum_bipartite_matching

from tomosim.cli import main
from tomosim.errors import TomosimError
from tomosim.train.picking_metrics import (
    CZII_RADII,
    CZII_WEIGHTS,
    count_matches,
    fbeta_from_counts,
    match_points,
    score_picks,
)


def table(rows: list[tuple[str, str, float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["tomogram", "class_name", "x", "y", "z"])


def test_pick_exactly_at_the_limit_counts_and_duplicates_are_false_positives():
    truth = table([("TS_01", "ribosome", 0, 0, 0), ("TS_01", "ribosome", 200, 0, 0),
                   ("TS_01", "ribosome", 1000, 0, 0)])
    picks = table([
        ("TS_01", "ribosome", 0, 75, 0),  # exactly 0.5 x 150 Å from the first: a hit
        ("TS_01", "ribosome", 200, 0, 75.01),  # just beyond the limit of the second: a miss
        ("TS_01", "ribosome", 1000, 0, 10),  # hit
        ("TS_01", "ribosome", 1000, 10, 0),  # second pick of the same particle: false positive
    ])
    result = score_picks(truth, picks, radii={"ribosome": 150.0})
    (ribosome,) = result.classes
    counts = (ribosome.true_positives, ribosome.false_positives, ribosome.false_negatives)
    assert counts == (2, 2, 1)
    assert ribosome.precision == 0.5 and ribosome.recall == 2 / 3
    assert ribosome.fbeta == pytest.approx(17 * 2 / (17 * 2 + 16 * 1 + 2), rel=1e-15)
    # the same with P and R: (1 + b²) P R / (b² P + R)
    assert ribosome.fbeta == pytest.approx(17 * 0.5 * (2 / 3) / (16 * 0.5 + 2 / 3), rel=1e-14)
    assert result.weighted_fbeta == ribosome.fbeta
    # the challenge counting agrees here (no pick is near two particles)
    czii = score_picks(truth, picks, radii={"ribosome": 150.0}, matching="czii").classes[0]
    assert (czii.true_positives, czii.false_positives, czii.false_negatives) == (2, 2, 1)


def test_one_pick_between_two_particles_one_to_one_versus_challenge_counting():
    truth = np.array([[0.0, 0, 0], [100.0, 0, 0]])
    pick = np.array([[50.0, 0, 0]])  # 50 Å from both, limit 75 Å: a tie
    assert count_matches(truth, pick, max_distance=75.0, matching="hungarian") == (1, 0, 1)
    # the challenge counts every true particle with a pick in reach: TP 2 from one pick
    assert count_matches(truth, pick, max_distance=75.0, matching="czii") == (2, -1, 0)


def test_hungarian_finds_the_assignment_greedy_nearest_first_misses():
    truth = np.array([[0.0, 0, 0], [120.0, 0, 0]])
    picks = np.array([[55.0, 0, 0], [-70.0, 0, 0]])
    # nearest first would pair pick 0 with particle 0 (55 Å) and leave pick 1 unmatched;
    # the best one-to-one assignment pairs pick 0 with particle 1 (65 Å), pick 1 with 0 (70 Å)
    truth_index, pick_index = match_points(truth, picks, max_distance=75.0)
    assert truth_index.tolist() == [0, 1] and pick_index.tolist() == [1, 0]


def test_coincident_points_match():
    point = np.array([[10.0, 20.0, 30.0]])
    assert count_matches(point, point, max_distance=1.0, matching="hungarian") == (1, 0, 0)


def test_matching_count_equals_maximum_bipartite_matching_of_scipy():
    rng = np.random.default_rng(3)
    for _ in range(20):
        truth = rng.uniform(0, 400, (int(rng.integers(0, 30)), 3))
        picks = rng.uniform(0, 400, (int(rng.integers(0, 30)), 3))
        limit = float(rng.uniform(20, 80))
        tp, fp, fn = count_matches(truth, picks, max_distance=limit, matching="hungarian")
        if len(truth) and len(picks):
            distance = np.linalg.norm(truth[:, None] - picks[None], axis=-1)
            graph = csr_matrix((distance <= limit).astype(np.int8))
            expected = int((maximum_bipartite_matching(graph, perm_type="column") >= 0).sum())
        else:
            expected = 0
        assert tp == expected and fp == len(picks) - tp and fn == len(truth) - tp
        ti, pi = match_points(truth, picks, max_distance=limit)
        if len(ti):
            assert np.all(np.linalg.norm(truth[ti] - picks[pi], axis=1) <= limit)
            assert len(set(ti.tolist())) == len(ti) and len(set(pi.tolist())) == len(pi)


def test_counts_sum_over_tomograms_and_classes_are_weighted():
    truth = table([
        ("TS_01", "apo-ferritin", 0, 0, 0), ("TS_02", "apo-ferritin", 0, 0, 0),
        ("TS_01", "thyroglobulin", 500, 500, 0),
    ])
    picks = table([
        ("TS_01", "apo-ferritin", 0, 0, 29),  # hit (limit 30 Å)
        ("TS_02", "apo-ferritin", 0, 0, 31),  # miss: FP and FN
        ("TS_01", "thyroglobulin", 0, 0, 0),  # wrong place: FP, thyroglobulin missed
        ("TS_02", "beta-amylase", 0, 0, 0),  # class not in the truth: reported, not averaged
    ])
    result = score_picks(truth, picks, radii=CZII_RADII, weights=CZII_WEIGHTS)
    by_name = {c.name: c for c in result.classes}
    apo = by_name["apo-ferritin"]
    assert (apo.true_positives, apo.false_positives, apo.false_negatives) == (1, 1, 1)
    assert apo.fbeta == pytest.approx(17 / (17 + 16 + 1))
    thyro = by_name["thyroglobulin"]
    assert (thyro.true_positives, thyro.fbeta, thyro.precision, thyro.recall) == (0, 0.0, 0.0, 0.0)
    amylase = by_name["beta-amylase"]
    assert (amylase.recall, amylase.precision, amylase.fbeta) == (None, 0.0, 0.0)
    # weights 1 (apo-ferritin) and 2 (thyroglobulin)
    assert result.weighted_fbeta == pytest.approx((1 * 17 / 34 + 2 * 0.0) / 3)


def test_fbeta_limits():
    assert fbeta_from_counts(0, 0, 0, beta=4) is None
    assert fbeta_from_counts(5, 0, 0, beta=4) == 1.0
    assert fbeta_from_counts(1, 1, 0, beta=1) == pytest.approx(2 / 3)  # F1 of P 1/2, R 1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"radii": {"ribosome": 0.0}}, "radius of class 'ribosome' must be > 0"),
        ({"radii": {}}, "no radius for class 'ribosome'"),
        ({"beta": 0.0}, "beta must be > 0"),
        ({"distance_fraction": -1.0}, "distance fraction must be > 0"),
    ],
)
def test_bad_settings_are_refused(change, message):
    truth = table([("TS_01", "ribosome", 0, 0, 0)])
    settings = {"radii": {"ribosome": 150.0}, **change}
    with pytest.raises(TomosimError, match=message):
        score_picks(truth, truth, **settings)


def test_prediction_for_an_unknown_tomogram_is_refused():
    truth = table([("TS_01", "ribosome", 0, 0, 0)])
    with pytest.raises(TomosimError, match=r"tomogram\(s\) \['TS_02'\]"):
        score_picks(truth, table([("TS_02", "ribosome", 0, 0, 0)]), radii={"ribosome": 150.0})


# ---- the command -----------------------------------------------------------------------------


def write_star(path, rows, *, centred=True, pixel=True, pixel_size=10.0, shape=(64, 64, 64)):
    """Write tomosim-style particle rows (name, class number, x, y, z in Å from voxel 0)."""
    frame = pd.DataFrame(
        {"rlnTomoName": [r[0] for r in rows]}
    )
    xyz = np.array([r[3:6] for r in rows], float).reshape(-1, 3)
    centre = np.array(shape[::-1]) // 2 * pixel_size
    if pixel:
        for k, axis in enumerate("XYZ"):
            frame[f"rlnCoordinate{axis}"] = xyz[:, k] / pixel_size
    if centred:
        for k, axis in enumerate("XYZ"):
            frame[f"rlnCenteredCoordinate{axis}Angst"] = xyz[:, k] - centre[k]
    frame["rlnClassNumber"] = [r[2] for r in rows]
    frame["tomosimClassName"] = [r[1] for r in rows]
    starfile.write({"particles": frame}, path, overwrite=True)


def test_cli_writes_exact_scores_and_ignores_distractors(tmp_path, capsys):
    truth_rows = [
        ("TS_01", "ribosome", 1, 100, 100, 100), ("TS_01", "ribosome", 1, 400, 100, 100),
        ("TS_01", "background", 0, 300, 300, 300),  # a distractor: never scored
    ]
    pick_rows = [("TS_01", "ribosome", 1, 100, 100, 160), ("TS_01", "ribosome", 1, 300, 300, 300)]
    write_star(tmp_path / "truth.star", truth_rows)
    write_star(tmp_path / "picks.star", pick_rows)
    code = main([
        "evaluate-picks", str(tmp_path / "truth.star"), str(tmp_path / "picks.star"),
        "-o", str(tmp_path / "scores.json"), "--radius", "ribosome=120",
    ])
    assert code == 0
    report = json.loads((tmp_path / "scores.json").read_text())
    (ribosome,) = report["classes"]
    assert ribosome["radius"] == 120.0 and ribosome["true_positives"] == 1  # 60 Å = the limit
    assert (ribosome["false_positives"], ribosome["false_negatives"]) == (1, 1)
    assert report["weighted_fbeta"] == pytest.approx(17 / (17 + 16 + 1))
    assert "ribosome" in capsys.readouterr().out
    # with pixel coordinates only, the pixel size is needed and gives the same answer
    write_star(tmp_path / "truth_px.star", truth_rows, centred=False)
    write_star(tmp_path / "picks_px.star", pick_rows, centred=False)
    args = ["evaluate-picks", str(tmp_path / "truth_px.star"), str(tmp_path / "picks_px.star"),
            "--radius", "ribosome=120", "-o", str(tmp_path / "px.json")]
    assert main(args) == 2
    assert "give the pixel size" in capsys.readouterr().err
    assert main([*args, "--pixel-size", "10"]) == 0
    assert json.loads((tmp_path / "px.json").read_text())["classes"] == report["classes"]


@pytest.mark.parametrize(
    ("truth_kwargs", "pick_rows", "extra", "message"),
    [
        ({"centred": False, "pixel": False}, None, [], "has no coordinates"),
        ({}, [("TS_09", "ribosome", 1, 0, 0, 0)], [], "tomogram(s) ['TS_09']"),
        ({}, None, ["--radius", "ribosome=0"], "must be > 0 Å"),
        ({}, [("TS_01", "nucleosome", 2, 0, 0, 0)], [], "no radius for class 'nucleosome'"),
        ({}, None, ["--radius", "ribosome"], "--radius must be NAME=NUMBER"),
    ],
)
def test_cli_bad_input_one_line_exit_2(tmp_path, capsys, truth_kwargs, pick_rows, extra, message):
    rows = [("TS_01", "ribosome", 1, 100, 100, 100)]
    write_star(tmp_path / "truth.star", rows, **truth_kwargs)
    write_star(tmp_path / "picks.star", pick_rows or rows)
    code = main(["evaluate-picks", str(tmp_path / "truth.star"), str(tmp_path / "picks.star"),
                 "-o", str(tmp_path / "scores.json"), *extra])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "scores.json").exists()


def test_cli_with_no_picks_scores_zero_recall(tmp_path):
    write_star(tmp_path / "truth.star", [("TS_01", "ribosome", 1, 100, 100, 100)])
    write_star(tmp_path / "picks.star", [])
    code = main(["evaluate-picks", str(tmp_path / "truth.star"), str(tmp_path / "picks.star"),
                 "-o", str(tmp_path / "scores.json")])
    assert code == 0
    (ribosome,) = json.loads((tmp_path / "scores.json").read_text())["classes"]
    assert (ribosome["recall"], ribosome["precision"], ribosome["fbeta"]) == (0.0, None, 0.0)
    assert ribosome["radius"] == CZII_RADII["ribosome"]  # the challenge's radius by default
