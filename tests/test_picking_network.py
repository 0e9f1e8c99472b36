"""Picking networks: train on ball targets from particles.star, pick peaks, score with F-beta.

The phantom is drawn here (dark balls of two sizes in noise, particles.star in tomosim's columns),
so the test checks the picking path, not the simulator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import starfile

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from tomosim.io import write_mrc, write_text  # noqa: E402
from tomosim.train.checkpoint import load_checkpoint  # noqa: E402
from tomosim.train.localisation import estimate_radius, read_picking_folder  # noqa: E402
from tomosim.train.picking_metrics import read_pick_table, score_picks  # noqa: E402

VOXEL = 10.0
SHAPE = (24, 80, 80)  # z, y, x
RADII = {"big": 50.0, "small": 30.0}  # Å
CLASSES_CSV = "id,name,colour\n1,big,#ff0000\n2,small,#00ff00\n3,membrane,#0000ff\n"
NO_AUGMENTATION = {
    "flip_x": False, "flip_y": False, "rotate_180": False, "reverse_slices": False,
    "intensity_scale": 0, "intensity_shift": 0, "contrast": 0, "noise_std": 0, "blur_sigma_px": 0,
}


def particle_table(seed: int) -> pd.DataFrame:
    """Non-overlapping particles on a jittered grid, plus one distractor row (class 0)."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, (gy, gx) in enumerate([(y, x) for y in (14, 40, 66) for x in (14, 40, 66)]):
        name = "big" if k % 2 == 0 else "small"
        x, y = gx + rng.uniform(-2, 2), gy + rng.uniform(-2, 2)
        z = rng.uniform(9, 15)
        rows.append((x, y, z, 1 if name == "big" else 2, name))
    rows.append((40.0, 40.0, 3.0, 0, "background"))
    xyz = np.array([r[:3] for r in rows])
    centre = np.array(SHAPE[::-1]) // 2
    table = pd.DataFrame({
        "rlnTomoName": "TS_01",
        "rlnCoordinateX": xyz[:, 0], "rlnCoordinateY": xyz[:, 1], "rlnCoordinateZ": xyz[:, 2],
        **{f"rlnCenteredCoordinate{a}Angst": (xyz[:, i] - centre[i]) * VOXEL
           for i, a in enumerate("XYZ")},
        "rlnClassNumber": [r[3] for r in rows],
        "rlnHelicalTubeID": 0,
        "tomosimClassName": [r[4] for r in rows],
    })
    return table


def write_folder(root: Path, seed: int) -> pd.DataFrame:
    """tomogram.mrc (balls dark in noise), labels.mrc, classes.csv, particles.star."""
    root.mkdir(parents=True, exist_ok=True)
    table = particle_table(seed)
    z, y, x = np.indices(SHAPE, dtype=np.float64)
    labels = np.zeros(SHAPE, np.uint8)
    image = np.zeros(SHAPE)
    for row in table.itertuples():
        if row.rlnClassNumber == 0:
            continue
        radius = RADII[row.tomosimClassName] / VOXEL
        inside = ((x - row.rlnCoordinateX) ** 2 + (y - row.rlnCoordinateY) ** 2
                  + (z - row.rlnCoordinateZ) ** 2) <= radius**2
        labels[inside] = row.rlnClassNumber
        image[inside] = -0.8 if row.tomosimClassName == "big" else -1.5
    image += np.random.default_rng(seed + 100).normal(0, 0.3, SHAPE)
    write_mrc(root / "tomogram.mrc", image.astype(np.float32), voxel_size=VOXEL)
    write_mrc(root / "labels.mrc", labels, voxel_size=VOXEL)
    write_text(root / "classes.csv", CLASSES_CSV)
    starfile.write({"particles": table}, root / "particles.star", overwrite=True)
    return table


def test_radius_estimate_of_a_ball():
    labels = np.zeros((30, 30, 30), np.uint8)
    z, y, x = np.indices(labels.shape)
    labels[(x - 15) ** 2 + (y - 15) ** 2 + (z - 15) ** 2 <= 25] = 4  # 515 lattice points
    labels[(x - 5) ** 2 + (y - 5) ** 2 + (z - 5) ** 2 <= 9] = 7
    assert estimate_radius(labels, 4, 1, 10.0) == pytest.approx(
        10 * (3 * 515 / (4 * np.pi)) ** (1 / 3), rel=1e-12
    )
    assert estimate_radius(labels, 4, 1, 10.0) == pytest.approx(50.0, rel=0.02)


def test_picking_folder_targets_are_balls_at_the_particles(tmp_path):
    table = write_folder(tmp_path / "p0", seed=0)
    data, radii = read_picking_folder(tmp_path / "p0", target_fraction=0.5)
    assert list(data.classes.names) == ["background", "big", "small"]  # no membrane: no particles
    assert radii["big"] == pytest.approx(50.0, rel=0.05)
    assert radii["small"] == pytest.approx(30.0, rel=0.08)
    for row in table[table["rlnClassNumber"] > 0].itertuples():
        index = tuple(int(round(v)) for v in (row.rlnCoordinateZ, row.rlnCoordinateY,
                                              row.rlnCoordinateX))
        assert data.labels[index] == row.rlnClassNumber
    assert data.labels[3, 40, 40] == 0  # the distractor gets no target
    _, given = read_picking_folder(tmp_path / "p0", radii={"big": 44.0, "small": 22.0})
    assert given == {"big": 44.0, "small": 22.0}


def test_tiny_picking_network_overfits_one_phantom(tmp_path, run_cli):
    torch.set_num_threads(1)
    truth = write_folder(tmp_path / "p0", seed=0)
    config = tmp_path / "train.yaml"
    write_text(config, (
        "network: {depth: 2, base_channels: 8, residual_units: 1}\n"
        "patch_size: 32\nbatch_size: 4\nepochs: 4\niterations_per_epoch: 30\n"
        "learning_rate: 0.01\nvalidation_fraction: 0.0\n"
        f"augmentation: {NO_AUGMENTATION}\n"
        "picking: {target_fraction: 0.6, threshold: 0.3}\n"
    ).replace("False", "false"))
    code, out, err = run_cli("train", tmp_path / "p0", "-o", tmp_path / "model", "--config", config,
                             "--task", "picking", "--quiet", "--threads", "1")
    assert code == 0, err
    model = load_checkpoint(tmp_path / "model")
    assert model.config["task"] == "picking" and list(model.classes.names) == [
        "background", "big", "small"]
    assert model.config["picking"]["radii"]["big"] == pytest.approx(50.0, rel=0.05)
    code, out, err = run_cli("pick", tmp_path / "model", tmp_path / "p0" / "tomogram.mrc",
                             "-o", tmp_path / "picks.star", "--quiet", "--threads", "1")
    assert code == 0, err
    picks = starfile.read(tmp_path / "picks.star")
    # coordinate conventions: voxel centres of the input, Å from the centre voxel shape // 2
    xyz = picks[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy()
    centred = picks[[f"rlnCenteredCoordinate{a}Angst" for a in "XYZ"]].to_numpy()
    np.testing.assert_allclose(centred, (xyz - np.array([40, 40, 12])) * VOXEL, atol=1e-4)
    assert np.all(xyz == np.round(xyz))
    assert picks["rlnAutopickFigureOfMerit"].between(0.3, 1.0).all()
    # F-beta (beta 4, within half the radius) on the phantom it learnt
    true_table = read_pick_table(tmp_path / "p0" / "particles.star", coordinates="centred")
    pick_table = read_pick_table(tmp_path / "picks.star", coordinates="centred")
    result = score_picks(true_table, pick_table, radii=RADII)
    assert result.weighted_fbeta > 0.9, result
    # picked positions are within one voxel (+ rounding) of the true centres
    for name in ("big", "small"):
        t = true_table[true_table["class_name"] == name][["x", "y", "z"]].to_numpy()
        p = pick_table[pick_table["class_name"] == name][["x", "y", "z"]].to_numpy()
        nearest = np.linalg.norm(t[:, None] - p[None], axis=-1).min(axis=1)
        assert np.median(nearest) <= 1.5 * VOXEL
    # a tomogram at 5 Å (resampled to the model's 10 Å and back inside pick): positions in Å kept
    from tomosim.io import read_mrc
    from tomosim.train.data import resample_volume

    fine = resample_volume(read_mrc(tmp_path / "p0" / "tomogram.mrc").data,
                           voxel_size=(VOXEL,) * 3, pixel_size=5.0)
    assert fine.shape == (48, 160, 160)  # centre voxel (80, 80, 24) x 5 Å = (40, 40, 12) x 10 Å
    write_mrc(tmp_path / "fine.mrc", fine, voxel_size=5.0)
    code, out, err = run_cli("pick", tmp_path / "model", tmp_path / "fine.mrc",
                             "-o", tmp_path / "fine.star", "--quiet", "--threads", "1")
    assert code == 0, err
    fine_picks = starfile.read(tmp_path / "fine.star")
    fine_xyz = fine_picks[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy()
    fine_centred = fine_picks[[f"rlnCenteredCoordinate{a}Angst" for a in "XYZ"]].to_numpy()
    np.testing.assert_allclose(fine_centred, (fine_xyz - np.array([80, 80, 24])) * 5.0, atol=1e-4)
    fine_result = score_picks(
        true_table, read_pick_table(tmp_path / "fine.star", coordinates="centred"), radii=RADII
    )
    assert fine_result.weighted_fbeta > 0.9, fine_result
    # the same through evaluate-picks
    code, out, err = run_cli("evaluate-picks", tmp_path / "p0" / "particles.star",
                             tmp_path / "picks.star", "--radius", "big=50", "--radius", "small=30",
                             "-o", tmp_path / "scores.json")
    assert code == 0, err
    assert '"weighted_fbeta"' in (tmp_path / "scores.json").read_text()
    assert len(truth) == 10


def test_pick_refuses_a_segmentation_model_and_unknown_classes(tmp_path, run_cli):
    torch.set_num_threads(1)
    write_folder(tmp_path / "p0", seed=1)
    config = tmp_path / "train.yaml"
    write_text(config, "network: {depth: 1, base_channels: 2, residual_units: 0}\npatch_size: 16\n"
                       "batch_size: 2\nepochs: 1\niterations_per_epoch: 1\n"
                       "validation_fraction: 0.0\n")
    assert run_cli("train", tmp_path / "p0", "-o", tmp_path / "seg", "--config", config,
                   "--quiet")[0] == 0
    code, _, err = run_cli("pick", tmp_path / "seg", tmp_path / "p0" / "tomogram.mrc",
                           "-o", tmp_path / "x.star", "--quiet")
    assert code == 2 and "trained for segmentation, not picking" in err
    assert len(err.strip().splitlines()) == 1
    assert run_cli("train", tmp_path / "p0", "-o", tmp_path / "pick", "--config", config,
                   "--quiet", "--task", "picking")[0] == 0
    code, _, err = run_cli("pick", tmp_path / "pick", tmp_path / "p0" / "tomogram.mrc",
                           "-o", tmp_path / "x.star", "--class", "ribosome", "--quiet")
    assert code == 2 and "'ribosome' is not a class of the model" in err
    code, _, err = run_cli("pick", tmp_path / "pick", "-o", tmp_path / "x.star")
    assert code == 2 and "give the TOMOGRAM" in err
    code, _, err = run_cli("train", "--on-the-fly", config, "-o", tmp_path / "fly", "--config",
                           config, "--task", "picking")
    assert code == 2 and "--task picking trains on simulation folders" in err
    assert not (tmp_path / "x.star").exists()


def test_picking_targets_command_writes_balls_and_heatmaps(tmp_path, run_cli):
    table = write_folder(tmp_path / "p0", seed=2)
    code, out, err = run_cli("picking-targets", tmp_path / "p0", "-o", tmp_path / "balls.mrc",
                             "--radius", "big=50", "--radius", "small=30")
    assert code == 0, err
    from tomosim.io import read_mrc

    balls = read_mrc(tmp_path / "balls.mrc", require_voxel_size=False).data
    # a ball of 0.5 x 50 Å = 2.5 voxels around each big particle; the labels hold id 1 there
    first = table[table["tomosimClassName"] == "big"].iloc[0]
    z, y, x = np.indices(SHAPE)
    inside = ((x - first.rlnCoordinateX) ** 2 + (y - first.rlnCoordinateY) ** 2
              + (z - first.rlnCoordinateZ) ** 2) <= 2.5**2
    assert np.all(balls[inside] == 1)
    assert (tmp_path / "balls.classes.csv").read_text().splitlines()[2:] == [
        "1,big,", "2,small,"]
    code, out, err = run_cli("picking-targets", tmp_path / "p0", "-o", tmp_path / "heat",
                             "--kind", "heatmaps", "--radius", "big=50", "--radius", "small=30",
                             "--target-fraction", "0.2")
    assert code == 0, err
    heat = read_mrc(tmp_path / "heat" / "small.mrc", require_voxel_size=False).data
    second = table[table["tomosimClassName"] == "small"].iloc[0]
    d2 = ((x - second.rlnCoordinateX) ** 2 + (y - second.rlnCoordinateY) ** 2
          + (z - second.rlnCoordinateZ) ** 2)
    near = d2 <= 4  # sigma 0.2 x 30 Å = 0.6 voxels; other particles are far away
    np.testing.assert_allclose(heat[near], np.exp(-d2[near] / (2 * 0.6**2)), rtol=1e-5)
    code, _, err = run_cli("picking-targets", tmp_path / "p0", "-o", tmp_path / "x.mrc",
                           "--kind", "boxes")
    assert code == 2 and "--kind must be spheres or heatmaps" in err
