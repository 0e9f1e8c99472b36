"""Filament label rules: own-potential threshold, envelope tube, filled tube (lumen included)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import least_squares

from tomosim.assemble import assemble_phantom
from tomosim.config import config_from_dict
from tomosim.filament_lattice import PRESETS
from tomosim.pipeline import compute_templates
from tomosim.recipe import phantom_recipe

PIXEL = 10.0


def microtubule_config(rule: str) -> dict:
    return {
        "seed": 4,
        "classes": ["microtubule"],
        "sample": {"shape": [36, 96, 96], "pixel_size": PIXEL},
        "potential": {"solvent": "ice"},
        "filaments": [{"name": "microtubule", "preset": "microtubule", "count": 1,
                       "length": [400, 420], "arrangement": "sheets", "label_rule": rule}],
    }


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    out = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TOMOSIM_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        templates = None
        for rule in ("potential", "envelope", "filled"):
            config = config_from_dict(microtubule_config(rule))
            templates = templates or compute_templates(config)
            rng = np.random.default_rng(0)
            out[rule] = assemble_phantom(phantom_recipe(config), templates, rng)
    return out


def fitted_axis(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Axis point and direction of the cylinder through the subunit positions (least squares).

    Independent of the lattice code: the subunits of a straight tube lie on a cylinder; its axis
    minimises the spread of their distances from it (started from the positions' principal axis).
    """
    centre0 = positions.mean(axis=0)
    direction0 = np.linalg.svd(positions - centre0)[2][0]
    u = np.cross(direction0, [0.0, 0.0, 1.0]) if abs(direction0[2]) < 0.9 else np.cross(
        direction0, [1.0, 0.0, 0.0])
    u /= np.linalg.norm(u)
    v = np.cross(direction0, u)

    def unpack(q):
        d = direction0 + q[0] * u + q[1] * v
        return centre0 + q[2] * u + q[3] * v, d / np.linalg.norm(d)

    def residual(q):
        c, d = unpack(q)
        offset = positions - c
        return np.linalg.norm(offset - (offset @ d)[:, None] * d, axis=1) - q[4]

    radius0 = np.linalg.norm(positions - centre0, axis=1).mean()
    q = least_squares(residual, [0.0, 0.0, 0.0, 0.0, radius0]).x
    return unpack(q)


def axis_distance(phantom) -> tuple[np.ndarray, np.ndarray]:
    """Distance (Å) of every voxel centre from the filament axis, and the axial coordinate
    (0 at the middle of the subunits)."""
    centre, direction = fitted_axis(phantom.placements.positions)
    along_subunits = (phantom.placements.positions - centre) @ direction
    centre = centre + 0.5 * (along_subunits.min() + along_subunits.max()) * direction
    z, y, x = np.indices(phantom.labels.shape)
    points = np.stack([x, y, z], axis=-1) * PIXEL - centre
    along = points @ direction
    radial = np.linalg.norm(points - along[..., None] * direction, axis=-1)
    return radial, along


def test_filled_and_envelope_tubes_follow_the_axis(phantoms) -> None:
    params = PRESETS["microtubule"]
    filled, envelope, potential = phantoms["filled"], phantoms["envelope"], phantoms["potential"]
    radial, along = axis_distance(filled)
    middle = np.abs(along) < 120.0  # away from the capped ends of the 400 Å tube
    mt = 1
    # filled: everything within the outer radius, lumen included; nothing beyond it
    inside = middle & (radial < params.envelope_radius - PIXEL)
    assert np.mean(filled.labels[inside] == mt) > 0.99
    assert not np.any(filled.labels[radial > params.envelope_radius + PIXEL] == mt)
    # envelope: the wall only; the lumen stays background
    lumen = middle & (radial < params.inner_radius - PIXEL)
    wall = middle & (radial > params.inner_radius + PIXEL)
    wall &= radial < params.envelope_radius - PIXEL
    assert lumen.sum() > 50 and np.all(envelope.labels[lumen] == 0)
    assert np.mean(envelope.labels[wall] == mt) > 0.99
    # the own-potential rule labels the protein wall only, less than the envelope
    assert np.all(potential.labels[lumen] == 0)
    assert 0 < np.sum(potential.labels == mt) < np.sum(envelope.labels == mt)
    # the potential itself does not depend on the label rule
    np.testing.assert_array_equal(potential.potential, filled.potential)
    # instances follow labels: one filament, instance ids only where labelled
    assert set(np.unique(filled.instances[filled.labels == mt])) <= set(
        filled.placements.instance_id.tolist())
    assert np.all(filled.instances[filled.labels == 0] == 0)

