"""tomosim match: thickness, polarity and tilt range recovered from phantoms of known settings."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from tomosim.config import config_from_dict
from tomosim.io import read_mrc, write_mrc
from tomosim.match import config_fragment, measure_tomogram
from tomosim.pipeline import simulate
from tomosim.randomize import draw_config

# measuring synthetic volumes (noise, boxes without empty layers) raises the caveat warnings of
# tomosim.match.measure_tomogram by design; other warnings stay errors (pyproject filterwarnings)
pytestmark = pytest.mark.filterwarnings(
    "ignore:.*(no empty layer above or below|contrast polarity uncertain|fewer than 8 empty slices)"
    ":UserWarning"
)

# Crowded slab of small complexes and filaments; 80 x 112 x 112 voxels at 10 Å (a few s each).
PHANTOM = {
    "version": 1,
    "classes": ["actin"],
    "sample": {"shape": [80, 112, 112], "pixel_size": 10.0, "ice_thickness": 500.0},
    "potential": {"solvent": "ice"},
    "proteins": {"placement": "random", "species": [
        {"name": "proteasome", "source": "builtin:proteasome", "count": 30, "label": "background"},
        {"name": "apoferritin", "source": "builtin:apoferritin", "count": 60,
         "label": "background"},
    ]},
    "filaments": [{"name": "actin", "preset": "actin", "count": 4, "length": [500, 1000]}],
    "microscope": {"tilt": {"step": 3}, "optics": {"defocus_um": 3.0},
                   "dose": {"total_dose_e_per_a2": 100}},
    "output": {"previews": False},
}
# (ice thickness Å, tilt range degrees, reconstruction.invert)
SETTINGS = {
    "thin_dark": (450.0, (-45.0, 60.0), False),
    "thick_bright": (600.0, (-55.0, 45.0), True),
}


def phantom_tree(thickness: float, tilt: tuple[float, float], invert: bool) -> dict:
    """The test phantom's config tree with the given settings."""
    tree = yaml.safe_load(yaml.safe_dump(PHANTOM))
    tree["sample"]["ice_thickness"] = thickness
    tree["microscope"]["tilt"].update(min_angle=tilt[0], max_angle=tilt[1])
    tree["reconstruction"] = {"invert": invert}
    return tree


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory):
    """name -> (tomogram path, settings)."""
    root = tmp_path_factory.mktemp("match")
    out = {}
    for name, settings in SETTINGS.items():
        simulate(config_from_dict(phantom_tree(*settings)), root / name, progress=False)
        out[name] = (root / name / "tomogram.mrc", settings)
    return out


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_measure_recovers_thickness_polarity_and_tilt_range(phantoms, name):
    path, (thickness, tilt, invert) = phantoms[name]
    volume = read_mrc(path)
    measured = measure_tomogram(volume.data, pixel_size=volume.voxel_size[2])
    assert abs(measured.thickness / thickness - 1) <= 0.15, measured.thickness
    assert measured.polarity == ("bright" if invert else "dark")
    assert abs(measured.tilt_range[0] - tilt[0]) <= 10, measured.tilt_range
    assert abs(measured.tilt_range[1] - tilt[1]) <= 10, measured.tilt_range
    # the noise estimate is the spread of the empty layers: positive, below the sample's spread
    assert 0 < measured.noise_sd < float(volume.data.std())


def test_fragment_is_centred_on_measurements_and_simulates(phantoms):
    path, _ = phantoms["thin_dark"]
    volume = read_mrc(path)
    measured = measure_tomogram(volume.data, pixel_size=10.0)
    fragment = config_fragment(measured, shape_yx=(64, 64))
    low, high = fragment["sample"]["ice_thickness"]["uniform"]
    assert low < measured.thickness < high and (low + high) / 2 == pytest.approx(measured.thickness)
    lo_range = fragment["microscope"]["tilt"]["min_angle"]["uniform"]
    assert lo_range[0] <= measured.tilt_range[0] <= lo_range[1]
    assert fragment["reconstruction"]["invert"] is False
    tree = {**phantom_tree(450.0, (-45, 60), False), **{k: v for k, v in fragment.items()}}
    drawn = draw_config(tree, np.random.default_rng(0))
    config = config_from_dict(drawn)  # the fragment validates as part of a config
    assert config.sample.shape[0] * config.sample.pixel_size >= config.sample.ice_thickness


def test_match_cli_writes_config_json_and_picture(phantoms, tmp_path, run_cli):
    path, _ = phantoms["thick_bright"]
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(phantom_tree(500.0, (-60, 60), False)))
    code, out, err = run_cli("match", path, "-o", tmp_path / "m" / "match.yaml", "--base", base)
    assert code == 0, err
    tree = yaml.safe_load((tmp_path / "m" / "match.yaml").read_text())
    assert tree["reconstruction"]["invert"] is True
    config_from_dict(draw_config(tree, np.random.default_rng(1)))
    summary = json.loads((tmp_path / "m" / "match.json").read_text())
    assert summary["polarity"] == "bright" and len(summary["background_spectrum"]["amplitude"]) > 8
    assert (tmp_path / "m" / "match.png").stat().st_size > 1000
    assert "thickness" in out


def write(path, data, voxel_size=10.0):
    write_mrc(path, np.asarray(data, dtype=np.float32), voxel_size=voxel_size)
    return path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: write(p, np.random.default_rng(0).normal(size=(48, 48, 48)), 0.0),
         "no voxel size"),
        (lambda p: write(p, np.random.default_rng(0).normal(size=(1, 64, 64))), "not a 3D"),
        (lambda p: write(p, np.ones((48, 48, 48))), "constant"),
        (lambda p: write(p, np.full((48, 48, 48), np.nan)), "NaN"),
        (lambda p: write(p, np.random.default_rng(0).normal(size=(8, 48, 48))), "too small"),
    ],
    ids=["no-voxel-size", "2d", "constant", "nan", "too-small"],
)
def test_match_bad_input_one_line_exit_2(tmp_path, run_cli, make, message):
    path = make(tmp_path / "bad.mrc")
    code, out, err = run_cli("match", path, "-o", tmp_path / "out.yaml", "--no-picture")
    assert code == 2
    line = err.strip()
    assert "\n" not in line and message in line and str(path) in line, err
    assert not (tmp_path / "out.yaml").exists() and not (tmp_path / "out.json").exists()


def test_missing_voxel_size_accepts_pixel_size(tmp_path, run_cli):
    rng = np.random.default_rng(0)
    path = write(tmp_path / "t.mrc", rng.normal(size=(40, 48, 48)), 0.0)
    code, _, err = run_cli("match", path, "-o", tmp_path / "o.yaml", "--pixel-size", "7.5",
                           "--no-picture")
    assert code == 0, err
    assert json.loads((tmp_path / "o.json").read_text())["pixel_size"] == 7.5
