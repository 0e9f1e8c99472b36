"""Randomised configs: distribution syntax, determinism, statistics, and every bad input."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from tomosim.config import config_from_dict
from tomosim.errors import TomosimError
from tomosim.randomize import (
    draw_config,
    draw_config_with_values,
    flatten_values,
    has_distributions,
    is_distribution,
)

TREE = yaml.safe_load(
    """
seed: 7
proteins:
  species:
    sample: {randint: [1, 2]}
    from:
      - {name: ribosome, source: "builtin:ribosome", count: {randint: [10, 60]}}
      - {name: proteasome, source: "builtin:proteasome", count: 5}
      - {name: apoferritin, source: "builtin:apoferritin", count: {randint: [0, 3]}}
sample:
  shape: [32, {choice: [48, 64]}, 48]
  pixel_size: {uniform: [9.0, 11.0]}
  ice_thickness: {normal: [300, 100], min: 250, max: 320}
microscope:
  optics: {defocus_um: {loguniform: [1.5, 6.0]}}
  detector: {preset: {choice: [k3, falcon4]}}
"""
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_draw_gives_a_valid_plain_config_and_records_values():
    tree, values = draw_config_with_values(TREE, rng(3))
    assert not has_distributions(tree) and has_distributions(TREE)
    config = config_from_dict(tree)
    assert config.seed == values["seed"] == tree["seed"]
    assert 9.0 <= config.sample.pixel_size < 11.0
    assert config.sample.pixel_size == values["sample.pixel_size"]
    assert 250 <= config.sample.ice_thickness <= 320
    assert config.sample.shape[1] in (48, 64) and config.sample.shape[1] == values["sample.shape.1"]
    assert 1.5 <= config.microscope.optics.defocus_um <= 6.0
    assert config.microscope.detector.preset in ("k3", "falcon4")
    names = [s.name for s in config.proteins.species]
    assert names == values["proteins.species"] and len(names) == values["proteins.species.sample"]
    for species in config.proteins.species:  # chosen items keep their order and get drawn too
        if species.name == "ribosome":
            assert 10 <= species.count <= 60
            assert values["proteins.species.ribosome.count"] == species.count
    flat = flatten_values(values)
    assert all(not isinstance(v, (list, dict)) for v in flat.values())
    assert TREE["sample"]["pixel_size"] == {"uniform": [9.0, 11.0]}  # input untouched


def test_same_generator_state_same_tree_and_seed_drawn_first():
    assert draw_config(TREE, rng(5)) == draw_config(TREE, rng(5))
    assert draw_config(TREE, rng(5)) != draw_config(TREE, rng(6))
    plain = {"sample": {"pixel_size": 10.0}}
    # the simulation seed does not depend on which distributions follow it
    assert draw_config(plain, rng(5))["seed"] == draw_config(TREE, rng(5))["seed"]


def test_distribution_statistics():
    generator = rng(11)
    draws = {
        "u": [draw_config({"x": {"uniform": [2.0, 4.0]}}, generator)["x"] for _ in range(4000)],
        "n": [draw_config({"x": {"normal": [5.0, 2.0]}}, generator)["x"] for _ in range(4000)],
        "l": [draw_config({"x": {"loguniform": [1.0, 100.0]}}, generator)["x"] for _ in range(4000)],
        "r": [draw_config({"x": {"randint": [1, 3]}}, generator)["x"] for _ in range(3000)],
        "c": [draw_config({"x": {"choice": ["a", [1, 2]]}}, generator)["x"] for _ in range(2000)],
        "k": [draw_config({"x": {"normal": [0, 1], "min": -0.5, "max": 0.5}}, generator)["x"]
              for _ in range(2000)],
    }
    u = np.array(draws["u"])
    assert u.min() >= 2 and u.max() < 4 and abs(u.mean() - 3) < 0.05
    normal = np.array(draws["n"])
    assert abs(normal.mean() - 5) < 0.1 and abs(normal.std() - 2) < 0.1
    log = np.log10(draws["l"])
    assert log.min() >= 0 and log.max() <= 2 and abs(log.mean() - 1) < 0.05  # uniform in log
    integers = np.array(draws["r"])
    assert set(integers.tolist()) == {1, 2, 3} and all(isinstance(v, int) for v in draws["r"])
    assert sorted({str(v) for v in draws["c"]}) == ["[1, 2]", "a"]
    clipped = np.array(draws["k"])
    assert clipped.min() == -0.5 and clipped.max() == 0.5  # clipping puts mass on the bounds
    assert isinstance(draws["u"][0], float) and isinstance(draws["n"][0], float)


def test_sample_without_replacement_and_choice_of_sections():
    tree = {"items": {"sample": 3, "from": [{"name": n} for n in "abcde"]}}
    for seed in range(20):
        chosen = [item["name"] for item in draw_config(tree, rng(seed))["items"]]
        assert len(set(chosen)) == 3 and chosen == sorted(chosen)
    section = {"tilt": {"choice": [{"step": {"randint": [2, 3]}}, {"step": 5}]}}
    steps = {draw_config(section, rng(s))["tilt"]["step"] for s in range(30)}
    assert steps == {2, 3, 5}
    assert draw_config({"x": {"sample": 0, "from": [1, 2]}}, rng())["x"] == []


def test_detection():
    assert is_distribution({"uniform": [1, 2]}) and is_distribution({"sample": 1, "from": [1]})
    assert not is_distribution({"sample": {"shape": [8, 8, 8]}})
    assert not is_distribution([1, 2]) and not has_distributions({"sample": {"shape": [8, 8, 8]}})


@pytest.mark.parametrize(
    "tree, fragment",
    [
        ({"sample": {"pixel_size": {"uniform": [3, 2]}}}, "sample.pixel_size: uniform needs [a, b] with a < b"),
        ({"sample": {"pixel_size": {"uniform": [3]}}}, "sample.pixel_size: uniform needs a list of two"),
        ({"sample": {"pixel_size": {"uniform": ["a", 2]}}}, "finite number"),
        ({"sample": {"pixel_size": {"uniform": [True, 2]}}}, "finite number"),
        ({"sample": {"pixel_size": {"normal": [1, -1]}}}, "sample.pixel_size: normal needs a standard deviation >= 0"),
        ({"sample": {"pixel_size": {"normal": [1, 1], "min": 5, "max": 2}}}, "min 5.0 is larger than max"),
        ({"sample": {"pixel_size": {"uniform": [1, 2], "min": 0}}}, "unexpected key(s) min in uniform"),
        ({"sample": {"pixel_size": {"uniform": [1, 2], "normal": [1, 1]}}}, "one distribution per value"),
        ({"sample": {"pixel_size": {"loguniform": [0, 2]}}}, "loguniform needs [a, b] with 0 < a < b"),
        ({"sample": {"pixel_size": {"randint": [4, 2]}}}, "randint needs [a, b] with a <= b"),
        ({"sample": {"pixel_size": {"randint": [1.5, 3]}}}, "randint needs two integers"),
        ({"microscope": {"detector": {"preset": {"choice": []}}}}, "microscope.detector.preset: choice needs a non-empty list"),
        ({"sample": {"pixel_size": {"unifrom": [1, 2]}}}, "sample.pixel_size: unknown distribution 'unifrom' (did you mean 'uniform'"),
        ({"sample": {"pixel_size": {"normla": [1, 2]}}}, "did you mean 'normal'"),
        ({"sample": {"pixel_size": {"randnit": [1, 2]}}}, "did you mean 'randint'"),
        ({"proteins": {"species": {"sample": 4, "from": [{"name": "a"}]}}}, "proteins.species: cannot sample 4 of 1"),
        ({"proteins": {"species": {"sample": 1.5, "from": [{"name": "a"}]}}}, "integer count"),
        ({"proteins": {"species": {"sample": 1, "from": []}}}, "non-empty list 'from'"),
        ({"proteins": {"species": {"samples": 1, "from": [1]}}}, "exactly the keys sample and from"),
        ({"filaments": [{"count": {"uniform": [2, 1]}}]}, "filaments.0.count: uniform"),
    ],
)
def test_bad_distributions_are_one_line_errors_naming_the_key(tree, fragment):
    with pytest.raises(TomosimError) as err:
        draw_config(tree, rng())
    assert fragment in str(err.value)
    assert "\n" not in str(err.value) and str(err.value).startswith("config key ")


def test_config_keys_are_not_mistaken_for_typos():
    tree = {"sample": {"shape": [32, 32, 32]}, "microscope": {"tilt": {"order": "dose_symmetric"}}}
    assert {k: v for k, v in draw_config(tree, rng()).items() if k != "seed"} == tree
