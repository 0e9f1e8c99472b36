"""RELION 5 files: round trip through starfile, required columns, true per-tilt values, and the
geometry: RELION's projection model (written here from its published source description) applied
to the centred particle coordinates lands where tomosim's projector puts the particle."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import starfile
from scipy.spatial.transform import Rotation

from formats_run import PIXEL, make_run
from tomosim.errors import TomosimError
from tomosim.formats.relion import (
    OPTICS_COLUMNS,
    PARTICLE_COLUMNS,
    TILT_SERIES_COLUMNS,
    TOMOGRAMS_COLUMNS,
    write_relion_project,
)
from tomosim.formats.run_folder import read_run_folder
from tomosim.microscope.projection import project_volume


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("relion")
    run = make_run(root / "run_a")
    paths = write_relion_project([read_run_folder(run)], root / "relion")
    return run, paths


def test_files_round_trip_with_required_columns(project):
    run, paths = project
    tomograms = starfile.read(paths.tomograms, always_dict=True)["global"]
    assert set(TOMOGRAMS_COLUMNS) <= set(tomograms.columns)
    assert tomograms.rlnTomoName.tolist() == ["TS_07"]
    row = tomograms.iloc[0]
    assert (row.rlnTomoSizeX, row.rlnTomoSizeY, row.rlnTomoSizeZ) == (72, 64, 32)
    assert row.rlnTomoTiltSeriesPixelSize == PIXEL and row.rlnTomoHand == -1
    series_path = paths.tomograms.parent / row.rlnTomoTiltSeriesStarFile
    series = starfile.read(series_path, always_dict=True)["TS_07"]
    assert set(TILT_SERIES_COLUMNS) <= set(series.columns)
    tilts = pd.read_csv(run / "tilts.csv")
    # the true per-tilt defocus, dose and alignment, in stack order
    np.testing.assert_allclose(series.rlnDefocusU, tilts.true_defocus_u_a, atol=1e-5)
    np.testing.assert_allclose(series.rlnDefocusV, tilts.true_defocus_v_a, atol=1e-5)
    np.testing.assert_allclose(series.rlnMicrographPreExposure, tilts.dose_before_e_per_a2,
                               atol=1e-5)
    np.testing.assert_allclose(series.rlnTomoYTilt, tilts.true_angle_deg, atol=1e-5)
    np.testing.assert_allclose(series.rlnTomoZRot, 5.0 + tilts.rotation_error_deg, atol=1e-5)
    stack = series.rlnMicrographName.iloc[0].split("@", 1)[1].removesuffix(":mrcs")
    assert (paths.tomograms.parent / stack).resolve() == (run / "tiltseries.mrc").resolve()
    blocks = starfile.read(paths.particles, always_dict=True)
    assert set(OPTICS_COLUMNS) <= set(blocks["optics"].columns)
    assert set(PARTICLE_COLUMNS) <= set(blocks["particles"].columns)
    original = starfile.read(run / "particles.star", always_dict=True)
    assert len(blocks["particles"]) == len(original["particles"]) > 0
    assert blocks["particles"].rlnTomoParticleName.iloc[1] == "TS_07/2"
    assert set(OPTICS_COLUMNS) <= set(original["optics"].columns)
    optimisation = starfile.read(paths.optimisation_set, always_dict=True)["optimisation_set"]
    assert optimisation["rlnTomoParticlesFile"] == "particles.star"
    assert optimisation["rlnTomoTomogramsFile"] == "tomograms.star"


def _relion_projection(row_tomo, tilt, centred_a, image_shape):
    """RELION 5: decentre the particle (centred Å / pixel + size / 2), then project with
    S(shift) S(image centre) Rz(zrot) Ry(ytilt) Rx(xtilt) S(-int(size / 2))."""
    size = np.array([row_tomo.rlnTomoSizeX, row_tomo.rlnTomoSizeY, row_tomo.rlnTomoSizeZ], float)
    px = row_tomo.rlnTomoTiltSeriesPixelSize
    decentred = centred_a / px + size / 2
    rotation = (Rotation.from_euler("z", tilt.rlnTomoZRot, degrees=True)
                * Rotation.from_euler("y", tilt.rlnTomoYTilt, degrees=True)
                * Rotation.from_euler("x", tilt.rlnTomoXTilt, degrees=True)).as_matrix()
    p = rotation @ (decentred - np.floor(size / 2))
    image_centre = np.array([image_shape[1] // 2, image_shape[0] // 2], float)
    shift = np.array([tilt.rlnTomoXShiftAngst, tilt.rlnTomoYShiftAngst]) / px
    return p[:2] + image_centre + shift  # (x, y) pixel index


def _check_relion_projection(run, paths, shape):
    tomograms = starfile.read(paths.tomograms, always_dict=True)["global"]
    series = starfile.read(paths.tomograms.parent / tomograms.rlnTomoTiltSeriesStarFile[0],
                           always_dict=True)[tomograms.rlnTomoName[0]]
    particles = starfile.read(paths.particles, always_dict=True)["particles"]
    table = pd.read_csv(run / "tilts.csv")
    grid = np.indices(shape).astype(np.float64)
    checked = 0
    for part in particles.itertuples():
        position = np.array([part.rlnCoordinateX, part.rlnCoordinateY, part.rlnCoordinateZ])
        if np.any(position < 8) or np.any(position > np.array(shape[::-1]) - 9):
            continue  # keep the blob and its projections inside the images
        blob = np.exp(-sum((g - c) ** 2 for g, c in zip(grid, position[::-1], strict=True)) / 2.0)
        images = project_volume(blob.astype(np.float32), table.true_angle_deg.to_numpy(),
                                pixel_size=PIXEL, tilt_axis_angle=series.rlnTomoZRot.to_numpy(),
                                shifts=table[["shift_x_a", "shift_y_a"]].to_numpy())
        centred = np.array([part.rlnCenteredCoordinateXAngst, part.rlnCenteredCoordinateYAngst,
                            part.rlnCenteredCoordinateZAngst])
        for i, tilt in enumerate(series.itertuples()):
            image = images[i]
            yy, xx = np.indices(image.shape)
            centroid = np.array([(image * xx).sum(), (image * yy).sum()]) / image.sum()
            predicted = _relion_projection(tomograms.iloc[0], tilt, centred, image.shape)
            np.testing.assert_allclose(predicted, centroid, atol=0.25)
        checked += 1
        if checked == 3:
            break
    assert checked >= 1


def test_relion_projection_of_particles_matches_tomosim_projector(project):
    run, paths = project
    _check_relion_projection(run, paths, (32, 64, 72))


def test_relion_projection_with_odd_sizes(tmp_path):
    """Odd sizes: RELION decentres about size / 2 but rotates about int(size / 2)."""
    run = make_run(tmp_path / "odd", shape=[31, 63, 65])
    paths = write_relion_project([read_run_folder(run)], tmp_path / "relion")
    _check_relion_projection(run, paths, (31, 63, 65))


def test_duplicate_names_use_folder_names_and_bad_runs_are_refused(tmp_path, project):
    run, _ = project
    other = make_run(tmp_path / "run_b")
    paths = write_relion_project([read_run_folder(run), read_run_folder(other)], tmp_path / "r")
    names = starfile.read(paths.tomograms, always_dict=True)["global"].rlnTomoName.tolist()
    assert names == ["run_a", "run_b"]
    particles = starfile.read(paths.particles, always_dict=True)["particles"]
    assert set(particles.rlnTomoName) == {"run_a", "run_b"}
    assert particles.rlnTomoParticleName.is_unique
    (other / "tilts.csv").unlink()
    with pytest.raises(TomosimError, match="missing tilts.csv"):
        read_run_folder(other)


def test_cli_export_relion_expands_a_dataset_folder(tmp_path, project, run_cli):
    run, _ = project
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    (dataset / "index.json").write_text("{}")
    for k in range(2):
        shutil.copytree(run, dataset / f"phantom_{k:05d}")
    shutil.copytree(run, dataset / "phantom_00002")
    (dataset / "phantom_00002" / "config.resolved.yaml").unlink()  # incomplete: left out
    code, out, err = run_cli("export", "relion", dataset, "-o", tmp_path / "r")
    assert code == 0, err
    names = starfile.read(tmp_path / "r" / "tomograms.star", always_dict=True)["global"]
    assert names.rlnTomoName.tolist() == ["phantom_00000", "phantom_00001"]
    code, out, err = run_cli("export", "relion", tmp_path / "nothing", "-o", tmp_path / "s")
    missing = tmp_path / "nothing"
    assert code == 2 and err.strip() == f"tomosim: error: run folder not found: {missing}"
    assert not (tmp_path / "s").exists()
