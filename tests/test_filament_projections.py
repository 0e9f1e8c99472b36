"""Filaments seen by the microscope: layer lines and crossovers in noise-free projections.

A straight filament along x is rendered by the assembly renderer (templates at 2 Å, output at
4 Å, potential in excess of ice) and projected along z, perpendicular to its axis. References:

- a filament built directly from the 15-subunit 6BNO_A15 model in ../shared: the whole model
  repeated by its own screw symmetry (the least-squares motion of subunit i onto i + 1, applied
  15 times per copy), skipped with a reason when ../shared is absent;
- the coarse ``builtin:actin`` subunit on the literature lattice (27.5 Å, −166.7°), the default
  of earlier versions;
- the literature: F-actin layer lines at 1/59 Å and 1/51 Å (the left-handed 1-start genetic
  helix's first layer lines; e.g. Holmes et al. 1990, *Nature* 347, 44), crossover ≈ 36 nm for
  F-actin and ≈ 27 nm for cofilactin (McGough et al. 1997).
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared_structure
from tomosim.cache import load_potential
from tomosim.config import DecorationConfig, FilamentSpecies, PotentialConfig, StructureOptions
from tomosim.filament_templates import (
    find_subunits,
    matched_pairs,
    preset_template_path,
    read_filament_model,
)
from tomosim.filaments import (
    PRESETS,
    HelicalParameters,
    decoration_parameters,
    decoration_template,
    helical_lattice,
)
from tomosim.helix import filament_frame, fit_helix
from tomosim.phantom import Placements
from tomosim.rendering import render_objects

PIXEL = 4.0
SHAPE = (40, 48, 800)  # z, y, x: 3200 Å along the filament
CROP = slice(100, 700)  # the central 2400 Å, inside every filament
TO_X = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # filament +z -> sample +x
CENTRE = (np.array(SHAPE[::-1]) // 2) * PIXEL
DECORATED = [f"A{i}" for i in range(9, 17)] + [f"C{i}" for i in range(9, 17)]


def template(source: str):
    return load_potential(source, PIXEL / 2, potential=PotentialConfig(),
                          structure=StructureOptions())


def project(positions: np.ndarray, rotations: np.ndarray, potential) -> np.ndarray:
    """Render copies of one template (positions in the filament frame) and project along z."""
    n = len(positions)
    placements = Placements(
        positions=positions @ TO_X.T + CENTRE - [1500.0, 0.0, 0.0],
        rotations=TO_X @ rotations, template=np.zeros(n, dtype=np.int64),
        template_names=("subunit",), class_id=np.ones(n, dtype=np.int64),
        instance_id=np.ones(n, dtype=np.int64), filament_id=np.zeros(n, dtype=np.int64),
        segment_id=np.zeros(n, dtype=np.int64), subunit_index=np.arange(n),
    )
    volume, _, _ = render_objects(placements, {"subunit": potential}, shape=SHAPE,
                                  pixel_size=PIXEL, label_threshold=0.5)
    return volume.sum(axis=0) * PIXEL  # (y, x), V·Å


def lattice_image(source: str, params: HelicalParameters, length: float = 3000.0) -> np.ndarray:
    positions, rotations = helical_lattice(int(length / params.rise) + 1, params)
    return project(positions, rotations, template(source))


def whole_model_image(model) -> np.ndarray:
    """6BNO_A15 repeated by its own screw symmetry, 15 subunits per copy."""
    _, structure = read_filament_model(str(model))
    fit = fit_helix(matched_pairs(find_subunits(structure)))
    potential = template(str(model))
    centre = np.asarray(potential.centre_a)
    frame = filament_frame(fit, centre)  # model -> filament frame (axis along z)
    positions, rotations = [], []
    point, rotation = centre.copy(), np.eye(3)
    for _ in range(8):  # 8 × 15 subunits ≈ 3370 Å
        positions.append(frame.apply(point[None])[0])
        rotations.append(frame.rotation @ rotation)
        for _ in range(15):
            point = fit.motion.apply(point[None])[0]
            rotation = fit.motion.rotation @ rotation
    positions = np.array(positions)
    positions[:, 2] -= positions[0, 2]
    return project(positions, np.array(rotations), potential)


def spectrum(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Power of the cropped, Hann-windowed projection; ``(power[ky, kx], ky, kx)`` in 1/Å."""
    part = image[:, CROP]
    part = (part - part.mean()) * np.hanning(part.shape[1])[None, :]
    power = np.abs(np.fft.fft(np.fft.rfft(part, axis=1), axis=0)) ** 2
    return power, np.fft.fftfreq(part.shape[0], PIXEL), np.fft.rfftfreq(part.shape[1], PIXEL)


def relative_power(image: np.ndarray) -> dict[str, float]:
    """Layer-line and meridional peaks relative to the equator's peak (DC excluded)."""
    power, ky, kx = spectrum(image)
    step = kx[1]
    off_meridian = np.abs(ky) > 0.5 / (PIXEL * len(ky))  # every row but ky = 0
    equator = power[off_meridian, 0].max()

    def layer(d: float) -> float:
        cols = np.abs(kx - 1.0 / d) <= 1.01 * step
        return float(power[np.ix_(off_meridian, cols)].max() / equator)

    meridian_cols = (kx > 1 / 29.5) & (kx < 1 / 26.5)
    return {"59": layer(59.0), "51": layer(51.0), "between": layer(55.0),
            "meridian": float(power[0, meridian_cols].max() / equator)}


def crossover(image: np.ndarray) -> float:
    """Crossover length, Å: the period of the projected width along the axis.

    The width (second moment across the axis) of a two-stranded helix seen from the side
    oscillates once per crossover; the period is the peak of the width profile's power spectrum
    (zero-padded to 16384 points) between 1/500 and 1/150 Å⁻¹.
    """
    part = np.clip(image[:, CROP], 0.0, None)
    y = np.arange(part.shape[0])[:, None] * PIXEL
    mass = part.sum(axis=0)
    mean = (part * y).sum(axis=0) / mass
    width = np.sqrt((part * (y - mean) ** 2).sum(axis=0) / mass)
    width = (width - width.mean()) * np.hanning(len(width))
    frequency = np.fft.rfftfreq(16384, PIXEL)
    power = np.abs(np.fft.rfft(width, 16384)) ** 2
    band = (frequency > 1 / 500) & (frequency < 1 / 150)
    return float(1.0 / frequency[band][np.argmax(power[band])])


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TOMOSIM_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        out = {
            "preset": lattice_image(str(preset_template_path("actin")), PRESETS["actin"]),
            "builtin": lattice_image(
                "builtin:actin", HelicalParameters(rise=27.5, twist=-166.7, radius=15.8)),
        }
        yield out


def test_actin_layer_lines_match_the_6bno_model_and_the_meridian_is_weak(images) -> None:
    model = shared_structure("6BNO_A15.pdb.gz")
    ours = relative_power(images["preset"])
    reference = relative_power(whole_model_image(model))
    coarse = relative_power(images["builtin"])
    print(f"relative to the equator: preset {ours}, 6BNO_A15 {reference}, builtin {coarse}")
    for line in ("59", "51"):
        # a layer line: well above the power between the two lines (1/55 Å)
        assert reference[line] > 3.0 * reference["between"], line
        assert ours[line] > 3.0 * ours["between"], line
        assert 0.5 <= ours[line] / reference[line] <= 2.0, line
    assert ours["meridian"] <= coarse["meridian"] / 10.0


def test_actin_crossover_from_the_projection(images) -> None:
    length = crossover(images["preset"])
    print(f"actin crossover from the projection: {length / 10:.1f} nm")
    assert 330.0 <= length <= 390.0


def test_cofilactin_crossover_from_the_projection(tmp_path, monkeypatch) -> None:
    model = shared_structure("cofilactin_18mer_flow.0ns.nowater.pdb.gz")
    species = FilamentSpecies(
        name="actin", preset="actin",
        decoration=DecorationConfig(source=str(model), helix="auto",
                                    structure={"segments": DECORATED}),
    )
    params = decoration_parameters(species)
    fitted = decoration_template(species)
    positions, rotations = helical_lattice(int(3000.0 / params.rise) + 1, params)
    image = project(positions, rotations, template(str(fitted.path)))
    length = crossover(image)
    print(f"cofilactin crossover from the projection: {length / 10:.1f} nm (lattice "
          f"{params.twist:.2f} deg, {params.rise:.2f} A)")
    assert 240.0 <= length <= 300.0
