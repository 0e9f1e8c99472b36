"""Membrane proteins along the normal, from their STAR rows; sheets; bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import starfile
from scipy.spatial.transform import Rotation

from tomosim import pipeline
from tomosim.config import config_from_dict
from tomosim.errors import TomosimError
from tomosim.membranes import Sheet, Vesicle
from tomosim.pipeline import simulate
from tomosim.potential import Potential

PIXEL = 10.0
FINE = 5.0
AXIS = np.array([1.0, 2.0, 2.0]) / 3.0  # a deliberately oblique transmembrane axis
OFFSET = 15.0  # Å from the reference point to the mid-plane, along AXIS


def channel_template() -> Potential:
    """An elongated lump along AXIS: a TM cylinder with a bigger cap on the +axis side."""
    size = 33
    z, y, x = (np.indices((size,) * 3, dtype=float) - size // 2) * FINE
    r = np.stack([x, y, z], axis=-1)
    along = r @ AXIS
    across2 = np.sum(r * r, axis=-1) - along**2
    data = 2.0 * np.exp(-across2 / (2 * 15.0**2) - (along - OFFSET) ** 2 / (2 * 25.0**2))
    cap = np.sum((r - (OFFSET + 35.0) * AXIS) ** 2, axis=-1)
    data += 2.0 * np.exp(-cap / (2 * 18.0**2))
    return Potential(data.astype(np.float32), FINE, (0.0, 0.0, 0.0), "ice", "channel")


@pytest.fixture(autouse=True)
def _templates(monkeypatch):
    templates = {"channel": channel_template()}
    monkeypatch.setattr(pipeline, "compute_templates", lambda config: templates)


def config(**vesicles):
    return config_from_dict({
        "seed": 5,
        "sample": {"shape": [48, 96, 96], "pixel_size": PIXEL},
        "vesicles": {"count": 1, "radius": [250, 320], "max_aspect": 1.3, **vesicles},
        "proteins": {"species": [{
            "name": "channel", "source": "unused", "count": 12, "in_membrane": True,
            "membrane_axis": AXIS.tolist(), "membrane_offset": OFFSET,
        }]},
        "output": {"previews": False},
    })


def surface_samples(membrane, count=400_000, seed=0):
    """Dense mid-plane points of a membrane and their normals, by direct parametrisation."""
    rng = np.random.default_rng(seed)
    if isinstance(membrane, Vesicle):
        u = rng.standard_normal((count, 3))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        e = membrane.semi_axes
        q = u * e
        n = q / e**2
        points = membrane.centre + q @ membrane.rotation.T
        normals = n @ membrane.rotation.T
    else:
        xy = rng.uniform(-1500.0, 1500.0, (count, 2))
        h = np.zeros(count)
        grad = np.zeros((count, 2))
        waves = zip(membrane.amplitudes, membrane.wave_vectors, membrane.phases, strict=True)
        for a, k, phi in waves:
            arg = 2 * np.pi * xy @ k + phi
            h += a * np.cos(arg)
            grad -= (a * 2 * np.pi * np.sin(arg))[:, None] * k
        q = np.column_stack([xy, h])
        n = np.column_stack([-grad, np.ones(count)])
        points = membrane.centre + q @ membrane.rotation.T
        normals = n @ membrane.rotation.T
    return points, normals / np.linalg.norm(normals, axis=1, keepdims=True)


def check_rows(result, tmp_path: Path, kind):
    table = starfile.read(tmp_path / "particles.star")
    if isinstance(table, dict):  # RELION 5: optics and particles blocks
        table = table["particles"]
    rows = table[table["tomosimTemplate"] == "channel"]
    assert len(rows) >= 5
    membrane = next(m for m in result.phantom.membranes if isinstance(m, kind))
    points, normals = surface_samples(membrane)
    for _, row in rows.iterrows():
        position = np.array([row.rlnCoordinateX, row.rlnCoordinateY, row.rlnCoordinateZ]) * PIXEL
        # RELION angles as RELION reads them: Euler_angles2matrix(angles) = R, the scipy ZYZ
        # matrix of the angles is Rᵀ (CONVENTIONS.md, Orientations)
        rotation = Rotation.from_euler(
            "ZYZ", [row.rlnAngleRot, row.rlnAngleTilt, row.rlnAnglePsi], degrees=True
        ).as_matrix().T
        axis = rotation @ AXIS
        centre = position + OFFSET * axis  # the template's point on the mid-plane
        nearest = np.argmin(np.linalg.norm(points - centre, axis=1))
        # distance to the tangent plane at the nearest sample (samples are ~5 Å apart)
        offset = centre - points[nearest]
        distance = abs(float(offset @ normals[nearest]))
        assert np.linalg.norm(offset) < 15.0
        angle = np.degrees(np.arccos(min(1.0, abs(float(axis @ normals[nearest])))))
        assert distance < 5.0, distance
        assert angle < 5.0, angle


def test_membrane_proteins_on_a_vesicle_follow_the_normal(tmp_path):
    result = simulate(config(), tmp_path, progress=False, microscope=False)
    check_rows(result, tmp_path, Vesicle)
    spins = [r for r in result.phantom.report if r.kind == "membrane protein"]
    assert spins[0].placed >= 5


def test_membrane_proteins_on_a_curved_sheet_follow_the_normal(tmp_path):
    result = simulate(
        config(count=0, sheets=1, sheet_amplitude=80.0, sheet_wavelength=1500.0,
               sheet_max_tilt=30.0),
        tmp_path, progress=False, microscope=False,
    )
    check_rows(result, tmp_path, Sheet)
    # the sheet is labelled as membrane and crosses the whole volume in x and y
    membrane_id = [i for i, n in result.phantom.class_names.items() if n == "membrane"][0]
    labelled = result.phantom.labels == membrane_id
    assert labelled.any(axis=0).mean() > 0.9


def test_spin_about_the_axis_is_random():
    from tomosim.membrane_proteins import membrane_protein_rotation

    normal = np.array([0.0, 0.6, 0.8])
    rng = np.random.default_rng(0)
    spins = rng.uniform(0, 360, 400)
    rotations = np.array([membrane_protein_rotation(AXIS, normal, s) for s in spins])
    np.testing.assert_allclose(rotations @ AXIS, np.tile(normal, (400, 1)), atol=1e-12)
    # a vector perpendicular to the axis points all around the normal
    side = np.cross(AXIS, [0, 0, 1.0])
    turned = rotations @ (side / np.linalg.norm(side))
    mean = turned.mean(axis=0)
    assert np.linalg.norm(mean) < 0.1


def test_membrane_proteins_without_an_axis_are_refused():
    with pytest.raises(TomosimError, match="membrane_axis"):
        config_from_dict({
            "vesicles": {"count": 1},
            "proteins": {"species": [{"name": "c", "source": "x", "count": 3,
                                      "in_membrane": True}]},
        })
    with pytest.raises(TomosimError, match="need membranes"):
        config_from_dict({
            "proteins": {"species": [{"name": "c", "source": "x", "count": 3,
                                      "in_membrane": True, "membrane_axis": [0, 0, 1]}]},
        })
