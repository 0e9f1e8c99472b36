"""Configuration: YAML loading, overrides, validation errors, class ids, resolved dump."""

from __future__ import annotations

import pytest
import yaml

from tomosim.config import dump_config, load_config
from tomosim.errors import TomosimError


def write(tmp_path, text: str):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_and_round_trip(tmp_path):
    cfg = load_config(None)
    assert cfg.version == 1 and cfg.sample.shape == (200, 512, 512)
    text = dump_config(cfg)
    again = load_config(write(tmp_path, text))
    assert again == cfg


def test_overrides_and_seed(tmp_path):
    p = write(tmp_path, "sample:\n  pixel_size: 8\nproteins:\n  species:\n    - {name: r, source: builtin:ribosome, count: 3}\n")
    cfg = load_config(p, overrides=["sample.shape=[32, 64, 64]", "proteins.species.0.count=5"], seed=42)
    assert cfg.sample.shape == (32, 64, 64)
    assert cfg.sample.pixel_size == 8
    assert cfg.proteins.species[0].count == 5
    assert cfg.seed == 42


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("sample:\n  pixel_sise: 4\n", "pixel_sise"),
        ("sample:\n  pixel_size: -4\n", "sample.pixel_size"),
        ("version: 7\n", "version"),
        ("proteins:\n  species:\n    - {name: a, source: x.pdb}\n", "exactly one of"),
        ("proteins:\n  species:\n    - {name: a, source: x.pdb, count: 1, label: foo}\nclasses: [bar]\n", "unknown class"),
        ("microscope:\n  tilt: {min_angle: 30, max_angle: -30}\n", "min_angle"),
        ("- just\n- a list\n", "mapping"),
        ("sample: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_configs_are_one_line_errors(tmp_path, text, fragment):
    with pytest.raises(TomosimError) as err:
        load_config(write(tmp_path, text))
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file_and_bad_override(tmp_path):
    with pytest.raises(TomosimError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(TomosimError, match="section.key=value"):
        load_config(None, overrides=["sample.shape"])
    with pytest.raises(TomosimError, match="no list"):
        load_config(None, overrides=["proteins.species.3.count=1"])
    p = write(tmp_path, "proteins:\n  species:\n    - {name: r, source: builtin:ribosome, count: 3}\n")
    with pytest.raises(TomosimError, match="list index"):
        load_config(p, overrides=["proteins.species.3.count=1"])


def test_class_ids_are_stable_when_a_class_is_empty(tmp_path):
    text = yaml.safe_dump(
        {
            "classes": ["ribosome", "actin", "membrane"],
            "proteins": {"species": [
                {"name": "ribosome", "source": "builtin:ribosome", "count": 0},
                {"name": "decoy", "source": "builtin:apoferritin", "count": 2, "label": "background"},
            ]},
            "filaments": [{"name": "actin", "preset": "actin", "count": 3}],
        }
    )
    ids = load_config(write(tmp_path, text)).class_ids()
    assert ids == {"background": 0, "ribosome": 1, "actin": 2, "membrane": 3}
    # without an explicit list: order of first use, background excluded
    cfg = load_config(write(tmp_path, text), overrides=["classes=null"])
    assert cfg.class_ids() == {"background": 0, "ribosome": 1, "actin": 2}
