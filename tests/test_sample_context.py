"""Sample context: slab surfaces, vacuum, carbon, gold fiducials, contamination, bad input."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from tomosim.config import config_from_dict
from tomosim.errors import TomosimError
from tomosim.pipeline import simulate
from tomosim.sample_context import (
    GOLD_POTENTIAL_V,
    apply_slab,
    gaussian_random_field,
    gold_template,
    slab_surfaces,
)

PIXEL = 10.0
ICE = 4.48


def test_random_field_has_the_stated_rms_and_correlation_length():
    field = gaussian_random_field((512, 512), pixel_size=10.0, rms=25.0, length=200.0,
                                  rng=np.random.default_rng(0))
    assert field.std() == pytest.approx(25.0, rel=1e-9)
    # covariance ∝ exp(-r²/L²): at a lag of L (20 px) the correlation is 1/e
    lag = 20
    corr = np.mean(field[:, :-lag] * field[:, lag:]) / field.var()
    assert corr == pytest.approx(np.exp(-1), abs=0.06)


def test_slab_has_the_mean_thickness_gradient_and_roughness():
    shape = (120, 200, 200)
    smooth = slab_surfaces(shape, pixel_size=PIXEL, thickness=800.0, thickness_gradient=500.0,
                           rng=np.random.default_rng(1))
    t = smooth.thickness
    assert t.mean() == pytest.approx(800.0, abs=1e-6)
    # plane fit of the thickness map: slope 500 Å per µm = 0.05 Å/Å, no residual
    y, x = np.mgrid[:200, :200] * PIXEL
    design = np.column_stack([x.ravel(), y.ravel(), np.ones(x.size)])
    coef, residual, *_ = np.linalg.lstsq(design, t.ravel(), rcond=None)
    assert np.hypot(coef[0], coef[1]) == pytest.approx(0.05, rel=1e-6)
    rough = slab_surfaces(shape, pixel_size=PIXEL, thickness=800.0, roughness=20.0,
                          roughness_length=100.0, rng=np.random.default_rng(1))
    for surface in (rough.top, rough.bottom):
        assert surface.std() == pytest.approx(20.0, rel=1e-6)
    # the two surfaces are rough independently
    assert abs(np.corrcoef(rough.top.ravel(), rough.bottom.ravel())[0, 1]) < 0.2


def test_curtains_cut_grooves_along_y_into_the_top():
    shape = (60, 64, 256)
    plain = slab_surfaces(shape, pixel_size=PIXEL, thickness=400.0, rng=np.random.default_rng(2))
    cut = slab_surfaces(shape, pixel_size=PIXEL, thickness=400.0, curtain_amplitude=50.0,
                        curtain_period=400.0, rng=np.random.default_rng(2))
    depth = plain.top - cut.top
    assert depth.max() == pytest.approx(50.0, rel=1e-6) and depth.min() >= 0
    assert np.allclose(depth, depth[:1])  # constant along y: grooves run along the milling axis
    np.testing.assert_allclose(plain.bottom, cut.bottom)


def test_vacuum_outside_the_slab_projects_to_minus_ice_times_the_missing_thickness():
    shape = (80, 32, 32)
    surfaces = slab_surfaces(shape, pixel_size=PIXEL, thickness=450.0, roughness=25.0,
                             thickness_gradient=300.0, rng=np.random.default_rng(3))
    potential = np.zeros(shape, np.float32)
    apply_slab(potential, surfaces, pixel_size=PIXEL, ice_potential_v=ICE)
    line = potential.sum(axis=0) * PIXEL  # V·Å along z
    box = shape[0] * PIXEL
    np.testing.assert_allclose(line, -ICE * (box - surfaces.thickness), rtol=1e-4, atol=1e-2)


def test_gold_template_holds_the_ball_integral():
    bead = gold_template(45.0, 5.0, ice_potential_v=ICE)
    integral = bead.data.sum(dtype=np.float64) * 5.0**3
    expected = (GOLD_POTENTIAL_V - ICE) * 4 / 3 * np.pi * 45.0**3
    assert integral == pytest.approx(expected, rel=0.01)
    assert 25 < GOLD_POTENTIAL_V < 35  # bulk gold, neutral-atom scattering factors


def _context_config(**context):
    return config_from_dict({
        "seed": 3,
        "sample": {"shape": [48, 64, 64], "pixel_size": PIXEL},
        "proteins": {"species": [{"name": "apoferritin", "source": "builtin:apoferritin",
                                  "count": 6}]},
        "context": context,
        "microscope": {"tilt": {"min_angle": -30, "max_angle": 30, "step": 30}},
        "output": {"previews": False},
    })


def test_fiducials_have_their_own_class_and_rows_and_vacuum_has_no_labels(tmp_path):
    config = _context_config(
        slab={"enabled": True, "thickness": 300.0, "roughness": 15.0},
        carbon={"enabled": True}, fiducials={"count": 4, "radius": 40.0},
        contamination={"count": 2},
    )
    result = simulate(config, tmp_path, progress=False, microscope=False)
    table = pd.read_csv(tmp_path / "particles.csv")
    gold = table[table.tomosimTemplate == "gold"]
    assert len(gold) >= 1 and set(gold.tomosimClassName) == {"gold"}
    gold_id = config.class_ids()["gold"]
    assert (result.phantom.labels == gold_id).any()
    # the beads are far denser than protein
    assert result.phantom.potential.max() > 10.0
    # above and below the slab the potential is vacuum's, unlabelled
    top = result.phantom.potential[-3:]
    assert np.median(top) == pytest.approx(-ICE, abs=0.05)
    assert (result.phantom.labels[-3:] == 0).all()
    assert result.phantom.ice_thickness == pytest.approx(300.0, abs=10.0)


def test_context_is_reproducible(tmp_path):
    config = _context_config(slab={"enabled": True, "thickness": 300.0, "roughness": 15.0,
                                   "curtain_amplitude": 20.0},
                             carbon={"enabled": True}, contamination={"count": 2})
    a = simulate(config, tmp_path / "a", progress=False, microscope=False).phantom
    b = simulate(config, tmp_path / "b", progress=False, microscope=False).phantom
    assert a.potential.tobytes() == b.potential.tobytes()


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"slab": {"enabled": True, "thickness": 600.0}}, "not thinner than the sample box"),
        ({"fiducials": {"count": 2, "radius": 400.0}}, "do not fit"),
        ({"carbon": {"enabled": True}}, "need context.slab.enabled"),
    ],
)
def test_bad_context_is_refused(context, message):
    with pytest.raises(TomosimError, match=message):
        _context_config(**context)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["proteins.species=[{name: a, source: 'builtin:apoferritin', volume_fraction: 0.5},"
          " {name: b, source: 'builtin:proteasome', volume_fraction: 0.4}]"], "impossible"),
        (["vesicles.count=1", "proteins.species=[{name: c, source: 'builtin:apoferritin', "
          "count: 2, in_membrane: true}]"], "membrane_axis"),
        (["context.fiducials.count=2", "context.fiducials.radius=900"], "fiducials"),
        (["context.slab.enabled=true", "context.slab.thickness=5000"], "thicker|not thinner"),
        (["reconstruction.binning=3"], "does not divide"),
    ],
)
def test_bad_context_input_is_one_line_exit_2_nothing_written(run_cli, tmp_path, overrides, words):
    config = tmp_path / "c.yaml"
    config.write_text("sample: {shape: [32, 64, 64], pixel_size: 10.0}\n")
    out = tmp_path / "run"
    args = ["simulate", config, "-o", out]
    for item in overrides:
        args += ["--set", item]
    code, stdout, stderr = run_cli(*args)
    assert code == 2
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr
    assert re.search(words, lines[0]), lines[0]
    assert not out.exists() or not any(out.iterdir())
