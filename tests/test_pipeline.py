"""The whole simulation: output files, particle positions and angles against the ground truth,
label rules, reproducibility. Small volumes built from the coarse built-in models."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml

from tomosim.config import config_from_dict
from tomosim.io import read_mrc, read_tlt
from tomosim.particles import read_particles, relion_rotations
from tomosim.pipeline import output_paths, simulate
from tomosim.potential import atoms_to_potential
from tomosim.structures import read_structure

PIXEL = 8.0

CONFIG = {
    "seed": 5,
    "classes": ["apoferritin", "proteasome", "ribosome", "actin", "cofilactin"],
    "sample": {"shape": [48, 112, 112], "pixel_size": PIXEL},
    "potential": {"solvent": "ice"},
    "proteins": {
        "placement": "random",
        "min_gap": 10.0,
        "species": [
            {"name": "apoferritin", "source": "builtin:apoferritin", "count": 4},
            {"name": "proteasome", "source": "builtin:proteasome", "count": 3},
            {"name": "ribosome", "source": "builtin:ribosome", "count": 0},
            {"name": "decoy", "source": "builtin:apoferritin", "count": 1, "label": "background"},
        ],
    },
    "filaments": [
        {
            "name": "actin", "preset": "actin", "source": "builtin:actin", "count": 2,
            "length": [400, 600], "arrangement": "random",
            "decoration": {"preset": None, "source": "builtin:cofilactin", "rise": 27.0,
                           "twist": -162.0, "radius": 16.0, "outer_radius": 72.0,
                           "label": "cofilactin", "fraction": 0.5, "mean_segment_subunits": 6},
        }
    ],
    "microscope": {"tilt": {"min_angle": -60, "max_angle": 60, "step": 10}},
}

SOURCES = {"apoferritin": "builtin:apoferritin", "proteasome": "builtin:proteasome",
           "decoy": "builtin:apoferritin", "actin": "builtin:actin",
           "actin_cofilactin": "builtin:cofilactin"}


@pytest.fixture(scope="module")
def simulation(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    config = config_from_dict(CONFIG)
    result = simulate(config, out, progress=False)
    return config, result, out


def test_every_output_is_written_with_voxel_size(simulation):
    config, result, out = simulation
    for name, path in output_paths(out).items():
        assert path.is_file(), name
    assert not list(out.glob("*.partial*")), "temporary files left behind"
    shape = tuple(config.sample.shape)
    for name in ("ground_truth.mrc", "labels.mrc", "instances.mrc", "tomogram.mrc"):
        vol = read_mrc(out / name)
        assert vol.data.shape == shape, name
        assert vol.voxel_size == (PIXEL, PIXEL, PIXEL), name
    assert read_mrc(out / "labels.mrc").data.dtype == np.uint8
    ts = read_mrc(out / "tiltseries.mrc")
    angles = read_tlt(out / "tiltseries.tlt")
    assert ts.data.shape == (len(angles), shape[1], shape[2]) == (13, 112, 112)
    np.testing.assert_allclose(angles, np.arange(-60, 61, 10))
    resolved = yaml.safe_load((out / "config.resolved.yaml").read_text())
    assert config_from_dict(resolved) == config


def _recomputed_particle(row, pixel_size, solvent="ice"):
    """Potential of one particle computed independently from its STAR row: the atoms of its
    template, actively rotated by the row's Euler angles about the template reference point and
    moved to the row's position, evaluated directly (no rotation of a map, no interpolation) at
    half the pixel size and averaged in 2x2x2 blocks aligned with the sample grid (the solvent
    envelope is non-linear, so it is evaluated finely, as the simulator's templates are)."""
    atoms = read_structure(SOURCES[row.tomosimTemplate])
    # RELION's Euler_angles2matrix of the row's angles maps reference into tomogram coordinates
    rotation = relion_rotations(np.array([row.rlnAngleRot, row.rlnAngleTilt, row.rlnAnglePsi]))[0]
    position = np.array([row.rlnCoordinateX, row.rlnCoordinateY, row.rlnCoordinateZ]) * pixel_size
    moved = dataclasses.replace(atoms, positions=atoms.positions @ rotation.T + position)
    snapped = np.round(position / pixel_size) * pixel_size  # a voxel centre of the sample grid
    fine = pixel_size / 2
    # fine voxel shape//2 sits at snapped + fine/2, so fine voxels (c-1, c) straddle `snapped`
    pot = atoms_to_potential(moved, fine, solvent=solvent, centre=tuple(snapped + fine / 2))
    data = pot.data
    c = np.array(data.shape) // 2
    start = (c - 1) % 2  # block boundaries at c - 1
    stop = start + (np.array(data.shape) - start) // 2 * 2
    data = data[start[0]:stop[0], start[1]:stop[1], start[2]:stop[2]]
    coarse = data.reshape(data.shape[0] // 2, 2, data.shape[1] // 2, 2, data.shape[2] // 2, 2).mean(axis=(1, 3, 5))
    centre_index = np.round(snapped / pixel_size).astype(int)[::-1]  # (z, y, x) of `snapped`
    corner = centre_index - (c - 1 - start) // 2
    return coarse, corner


def _crop(volume, corner, shape):
    lo = np.maximum(corner, 0)
    hi = np.minimum(corner + np.array(shape), volume.shape)
    inner = tuple(slice(a - c, b - c) for a, b, c in zip(lo, hi, corner, strict=False))
    outer = tuple(slice(a, b) for a, b in zip(lo, hi, strict=False))
    return volume[outer], inner


def _correlation_on_support(truth, pieces):
    """Correlate the ground truth with the sum of recomputed pieces, on the pieces' support."""
    lo = np.min([c for _, c in pieces], axis=0)
    hi = np.max([c + np.array(d.shape) for d, c in pieces], axis=0)
    expected = np.zeros(hi - lo, np.float64)
    for data, corner in pieces:
        sl = tuple(slice(a, a + n) for a, n in zip(corner - lo, data.shape, strict=False))
        expected[sl] += data
    got, inner = _crop(truth, lo, expected.shape)
    expected = expected[inner]
    mask = np.abs(expected) > 1e-3 * expected.max()  # the particle and its solvent envelope
    assert mask.sum() > 50
    return np.corrcoef(expected[mask], got[mask])[0, 1]


def test_particle_rows_reproduce_the_ground_truth(simulation):
    """Positions and Euler angles in particles.star are right: each particle recomputed from its
    row alone matches the ground truth at that place."""
    config, result, out = simulation
    table = read_particles(out / "particles.star")
    truth = read_mrc(out / "ground_truth.mrc").data
    proteins = table[table.rlnHelicalTubeID == 0]
    assert set(proteins.tomosimTemplate) == {"apoferritin", "proteasome", "decoy"}
    for row in proteins.itertuples():
        r = _correlation_on_support(truth, [_recomputed_particle(row, PIXEL)])
        assert r > 0.95, (row.tomosimTemplate, r)


def test_filament_subunit_rows_reproduce_the_ground_truth(simulation):
    """Every subunit of a filament recomputed from its own row; their sum matches the ground
    truth of the filament (bare and cofilin-decorated subunits alike)."""
    config, result, out = simulation
    table = read_particles(out / "particles.star")
    truth = read_mrc(out / "ground_truth.mrc").data
    filaments = table[table.rlnHelicalTubeID > 0]
    assert set(filaments.tomosimTemplate) == {"actin", "actin_cofilactin"}
    for tube, rows in filaments.groupby("rlnHelicalTubeID"):
        pieces = [_recomputed_particle(row, PIXEL) for row in rows.itertuples()]
        r = _correlation_on_support(truth, pieces)
        assert r > 0.95, (tube, r)


def test_labels_match_the_class_table_and_instances(simulation):
    config, result, out = simulation
    labels = read_mrc(out / "labels.mrc").data
    instances = read_mrc(out / "instances.mrc").data.astype(np.int64)
    table = read_particles(out / "particles.star")
    classes = {int(line.split(",")[0]): line.split(",")[1]
               for line in (out / "classes.csv").read_text().splitlines()[1:]}
    assert classes == {0: "background", 1: "apoferritin", 2: "proteasome", 3: "ribosome",
                       4: "actin", 5: "cofilactin"}
    instance_class = dict(zip(table.tomosimInstanceId, table.rlnClassNumber, strict=False))
    ids = np.unique(instances[instances > 0])
    for i in ids:
        if i in instance_class:  # vesicles have no particle rows
            assert set(np.unique(labels[instances == i])) <= {instance_class[i]}
    assert np.all((labels > 0) <= (instances > 0))
    assert 3 not in np.unique(labels), "ribosome placed none, yet its id must stay 3"
    # the distractor is an instance but labelled background
    decoy = table[table.tomosimTemplate == "decoy"].tomosimInstanceId.to_numpy()
    assert len(decoy) == 1 and np.all(labels[instances == decoy[0]] == 0)


def test_protein_is_dark_in_tilt_images_and_tomogram(simulation):
    config, result, out = simulation
    labels = read_mrc(out / "labels.mrc").data
    tomogram = read_mrc(out / "tomogram.mrc").data
    inside = tomogram[np.isin(labels, [1, 2])].mean()
    outside = tomogram[labels == 0].mean()
    assert inside < outside  # CONVENTIONS: protein dark in tomogram.mrc


def test_same_seed_identical_bytes_different_seed_differs(simulation, tmp_path):
    config, result, out = simulation
    again = simulate(config, tmp_path / "again", progress=False).output_dir
    for name in ("ground_truth.mrc", "labels.mrc", "instances.mrc", "particles.star",
                 "tiltseries.mrc", "tomogram.mrc", "tiltseries.mdoc", "preview.png"):
        assert (out / name).read_bytes() == (again / name).read_bytes(), name
    other = simulate(config.model_copy(update={"seed": 6}), tmp_path / "other", progress=False,
                     microscope=False).output_dir
    assert (out / "ground_truth.mrc").read_bytes() != (other / "ground_truth.mrc").read_bytes()


def test_cli_simulate_and_bad_config(run_cli, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({**CONFIG, "proteins": {"species": []}, "filaments": []}))
    code, out, err = run_cli("simulate", cfg, "-o", tmp_path / "o", "--set", "sample.shape=[24,48,48]",
                             "--set", "microscope.tilt.step=30")
    assert code == 0, err
    assert (tmp_path / "o" / "tomogram.mrc").is_file()
    code, out, err = run_cli("simulate", cfg, "-o", tmp_path / "p", "--set", "sample.pixel_size=-3")
    assert code == 2 and "pixel_size" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "p" / "ground_truth.mrc").exists()
    code, out, err = run_cli("simulate", tmp_path / "missing.yaml", "-o", tmp_path / "q")
    assert code == 2 and "not found" in err


def test_half_sets_and_noise_free_series(tmp_path):
    """Odd/even half-dose series add up to the full series; their tomograms are written too."""
    tree = {**CONFIG, "filaments": [],
            "proteins": {"species": [{"name": "apoferritin", "source": "builtin:apoferritin", "count": 2}]},
            "classes": ["apoferritin"],
            "sample": {"shape": [32, 64, 64], "pixel_size": PIXEL},
            "microscope": {"tilt": {"step": 20},
                           "detector": {"write_half_sets": True, "write_noise_free": True}}}
    out = simulate(config_from_dict(tree), tmp_path / "halves", progress=False).output_dir
    full = read_mrc(out / "tiltseries.mrc").data
    odd = read_mrc(out / "tiltseries_odd.mrc").data
    even = read_mrc(out / "tiltseries_even.mrc").data
    clean = read_mrc(out / "tiltseries_noise_free.mrc").data
    np.testing.assert_allclose(odd + even, full, rtol=1e-5)
    assert abs(odd.mean() / even.mean() - 1) < 0.02
    assert abs(clean.mean() / full.mean() - 1) < 0.02 and clean.std() < full.std()
    for name in ("tomogram_odd.mrc", "tomogram_even.mrc"):
        assert read_mrc(out / name).data.shape == (32, 64, 64)
