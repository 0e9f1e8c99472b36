"""Picking particles from labels: centroids of connected components, RELION 5 style STAR."""

from __future__ import annotations

import numpy as np
import pytest
import starfile

from tomosim.io import write_mrc, write_text
from tomosim.train.picking import pick_particles

VOXEL = (4.0, 5.0, 6.0)  # z, y, x Å: different per axis to catch swapped axes


def hand_made_labels() -> np.ndarray:
    """(20, 30, 40): two ribosomes, one 2-voxel speck, a membrane sheet, one proteasome."""
    labels = np.zeros((20, 30, 40), np.uint8)
    z, y, x = np.indices(labels.shape)
    labels[(z - 5) ** 2 + (y - 10) ** 2 + (x - 12) ** 2 <= 4] = 1  # ball at (x, y, z) = (12, 10, 5)
    labels[11:14, 19:22, 29:32] = 1  # cube centred at (30, 20, 12)
    labels[17, 2, 2:4] = 1  # a 2-voxel speck
    labels[:, 27, :] = 2  # membrane sheet
    labels[2:4, 2:4, 30:34] = 3  # proteasome box centred at (31.5, 2.5, 2.5), 16 voxels
    return labels


CLASSES = "id,name,colour\n1,ribosome,#f00\n2,membrane,#00f\n3,proteasome,#0f0\n"


def test_centroids_sizes_and_centred_coordinates():
    particles = pick_particles(
        hand_made_labels(), classes={1: "ribosome", 3: "proteasome"}, voxel_size=VOXEL,
        min_size_px=5, tomogram_name="TS_07",
    )
    assert list(particles["tomosimClassName"]) == ["ribosome", "ribosome", "proteasome"]
    assert list(particles["rlnClassNumber"]) == [1, 1, 3]
    assert list(particles["tomosimSizeVoxels"]) == [33, 27, 16]
    xyz = particles[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy()
    assert xyz == pytest.approx(np.array([[12, 10, 5], [30, 20, 12], [31.5, 2.5, 2.5]]))
    centred = particles[[f"rlnCenteredCoordinate{a}Angst" for a in "XYZ"]].to_numpy()
    centre = np.array([20, 15, 10])  # shape // 2 in x, y, z
    assert centred == pytest.approx((xyz - centre) * np.array([6.0, 5.0, 4.0]))
    assert set(particles["rlnTomoName"]) == {"TS_07"}
    with_speck = pick_particles(hand_made_labels(), classes={1: "ribosome"}, voxel_size=VOXEL)
    assert len(with_speck) == 3 and with_speck["tomosimSizeVoxels"].min() == 2


def test_pick_cli_writes_star_and_skips_membranes_by_default(tmp_path, run_cli):
    write_mrc(tmp_path / "labels.mrc", hand_made_labels(), voxel_size=VOXEL)
    write_text(tmp_path / "classes.csv", CLASSES)
    code, out, err = run_cli("pick", tmp_path / "labels.mrc", "-o", tmp_path / "particles.star",
                             "--min-size-px", "5")
    assert code == 0, err
    table = starfile.read(tmp_path / "particles.star")
    assert list(table["rlnClassNumber"]) == [1, 1, 3]  # membrane (2) is not globular
    assert table["rlnCoordinateX"].tolist() == pytest.approx([12, 30, 31.5])
    code, _, err = run_cli("pick", tmp_path / "labels.mrc", "-o", tmp_path / "only.star",
                           "--class", "proteasome")
    assert code == 0, err
    assert list(starfile.read(tmp_path / "only.star")["tomosimClassName"]) == ["proteasome"]


def test_pick_cli_bad_input_exit_2(tmp_path, run_cli):
    write_mrc(tmp_path / "labels.mrc", hand_made_labels(), voxel_size=VOXEL)
    write_text(tmp_path / "classes.csv", CLASSES)
    code, _, err = run_cli("pick", tmp_path / "labels.mrc", "-o", tmp_path / "p.star", "--class", "ribosme")
    assert code == 2 and "ribosme" in err and len(err.strip().splitlines()) == 1
    write_mrc(tmp_path / "blank.mrc", hand_made_labels(), voxel_size=0.0)
    code, _, err = run_cli("pick", tmp_path / "blank.mrc", "-o", tmp_path / "p.star")
    assert code == 2 and "no voxel size" in err
    code, _, err = run_cli("pick", tmp_path / "labels.mrc", "-o", tmp_path / "p.star", "--min-size-px", "0")
    assert code == 2 and "--min-size-px" in err
    assert not (tmp_path / "p.star").exists()
