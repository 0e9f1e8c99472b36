"""Built-in coarse models: mass, size, shape, frames and determinism."""

from __future__ import annotations

import gemmi
import numpy as np
import pytest

from tomosim.builtin_structures import BUILTINS, VOLUME_PER_ATOM, builtin_atoms, builtin_names
from tomosim.errors import TomosimError

HYDROGEN_MASS = gemmi.Element("H").weight


def _mass_kda(name: str) -> float:
    atoms = builtin_atoms(name)
    heavy = sum(gemmi.Element(symbol).weight for symbol in atoms.elements.tolist())
    return (heavy + HYDROGEN_MASS * atoms.hydrogens.sum()) / 1000.0


def _extent(name: str) -> np.ndarray:
    return np.ptp(builtin_atoms(name).positions, axis=0)


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_mass_within_ten_percent(name):
    assert _mass_kda(name) == pytest.approx(BUILTINS[name].mass_kda, rel=0.10)


@pytest.mark.parametrize("name", sorted(BUILTINS))
def test_protein_like_content(name):
    atoms = builtin_atoms(name)
    assert set(atoms.elements.tolist()) <= {"C", "N", "O", "S"}
    fraction_c = np.mean(atoms.elements == "C")
    assert 0.58 < fraction_c < 0.68
    np.testing.assert_allclose(atoms.b_factors, 30.0)
    np.testing.assert_allclose(atoms.occupancies, 1.0)
    # protein density: 1.35 g/cm^3 = 0.813 Da/Å^3, mass per heavy atom ~14.2 Da
    assert _mass_kda(name) * 1000 / len(atoms) == pytest.approx(14.2, rel=0.03)
    assert "coarse" in atoms.name and atoms.name.startswith(f"builtin:{name}")


def test_atomic_density_inside_the_shape():
    """Apoferritin is a shell of known volume: atoms / volume = 1 / VOLUME_PER_ATOM."""
    atoms = builtin_atoms("apoferritin")
    radius = np.linalg.norm(atoms.positions, axis=1)
    inner, outer = radius.min(), radius.max()
    volume = 4 / 3 * np.pi * (outer**3 - inner**3)
    assert len(atoms) * VOLUME_PER_ATOM / volume == pytest.approx(1.0, rel=0.02)


def test_apoferritin_is_a_hollow_24mer():
    atoms = builtin_atoms("apoferritin")
    radius = np.linalg.norm(atoms.positions, axis=1)
    assert radius.min() > 35.0  # hollow: nothing within 35 Å of the centre
    assert 2 * radius.max() == pytest.approx(120.0, abs=3.0)  # ~12 nm outer diameter
    assert 2 * radius.min() == pytest.approx(80.0, abs=3.0)  # ~8 nm inner diameter
    chains, counts = np.unique(atoms.chain_ids, return_counts=True)
    assert len(chains) == 24
    assert counts.min() > 0.9 * counts.mean()  # 24 similar subunits


def test_ribosome_size_and_subunits():
    extent = _extent("ribosome")
    assert 220 < extent.max() < 260  # ~25 nm
    atoms = builtin_atoms("ribosome")
    large = np.sum(atoms.chain_ids == "L")
    small = np.sum(atoms.chain_ids == "S")
    assert large + small == len(atoms)
    assert 1.5 < large / small < 4.5  # large subunit about twice the small one


def test_proteasome_barrel():
    atoms = builtin_atoms("proteasome")
    extent = _extent("proteasome")
    assert extent[2] == pytest.approx(150.0, abs=6.0)  # length along z
    assert 105 < extent[0] < 125 and 105 < extent[1] < 125  # ~11-12 nm diameter
    assert len(np.unique(atoms.chain_ids)) == 28  # 4 rings of 7
    radius_xy = np.linalg.norm(atoms.positions[:, :2], axis=1)
    assert radius_xy.min() > 15.0  # a central channel
    # four rings: atoms cluster in four layers along z
    histogram, _ = np.histogram(atoms.positions[:, 2], bins=4, range=(-75, 75))
    assert histogram.min() > 0.8 * histogram.mean()


def test_filament_subunits_frames_and_extents():
    actin = _extent("actin")
    assert actin == pytest.approx([55.0, 35.0, 55.0], abs=3.0)
    np.testing.assert_allclose(builtin_atoms("actin").positions.mean(axis=0), 0.0, atol=1e-9)
    tubulin = builtin_atoms("tubulin")
    assert _extent("tubulin")[2] == pytest.approx(80.0, abs=2.0)  # along the protofilament
    np.testing.assert_allclose(tubulin.positions.mean(axis=0), 0.0, atol=1e-9)
    alpha_z = tubulin.positions[tubulin.chain_ids == "A", 2]
    beta_z = tubulin.positions[tubulin.chain_ids == "B", 2]
    assert alpha_z.max() <= 1.0 and beta_z.min() >= -1.0  # alpha below, beta towards +z
    assert _mass_kda("tubulin") / 2 == pytest.approx(55.0, rel=0.1)


def test_cofilactin_contains_actin_in_the_same_frame():
    actin = builtin_atoms("actin")
    decorated = builtin_atoms("cofilactin")
    in_actin = decorated.chain_ids == "A"
    np.testing.assert_array_equal(decorated.positions[in_actin], actin.positions)
    np.testing.assert_array_equal(decorated.elements[in_actin], actin.elements)
    cofilin = decorated.positions[decorated.chain_ids == "C"]
    assert cofilin[:, 0].mean() > 20.0  # on the outer face (+x)
    cofilin_kda = _mass_kda("cofilactin") - _mass_kda("actin")
    assert cofilin_kda == pytest.approx(19.0, rel=0.1)


def test_deterministic_cached_and_read_only():
    first = builtin_atoms("ribosome")
    assert builtin_atoms("Ribosome") is first
    builtin_atoms.cache_clear()
    again = builtin_atoms("ribosome")
    assert again is not first
    np.testing.assert_array_equal(again.positions, first.positions)
    np.testing.assert_array_equal(again.elements, first.elements)
    np.testing.assert_array_equal(again.hydrogens, first.hydrogens)
    with pytest.raises(ValueError):
        again.positions[0, 0] = 1.0


def test_unknown_name_lists_known():
    with pytest.raises(TomosimError, match="unknown builtin structure 'virus'.*apoferritin"):
        builtin_atoms("virus")
    assert builtin_names() == sorted(BUILTINS)
