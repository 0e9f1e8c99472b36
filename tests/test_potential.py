"""Potentials of atomic models and maps checked against analytic answers and independent code.

The five-Gaussian coefficients below are typed in from Peng et al. (1996), Acta Cryst. A 52, 257
(International Tables C, Table 4.3.2.2), so the reference evaluation here does not go through
gemmi's table or the code under test.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_structure
from tomosim.cache import load_potential
from tomosim.config import PotentialConfig, StructureOptions
from tomosim.errors import TomosimError
from tomosim.gaussian_grid import _ERF_SLOPES, _ERF_VALUES, _accumulate_gaussians
from tomosim.potential import (
    ICE_POTENTIAL_V,
    atoms_to_potential,
    independent_atom_ice_potential,
    map_to_potential,
    protein_potential_integral_per_kda,
    resolution_to_b_factor,
)
from tomosim.structures import Atoms, DensityMap

# (a_1..a_5 in Å, b_1..b_5 in Å²), Peng et al. 1996, fit range 0 < s < 2 Å⁻¹
PENG = {
    "H": ([0.0349, 0.1201, 0.1970, 0.0573, 0.1195], [0.5347, 3.5867, 12.3471, 18.9525, 38.6269]),
    "C": ([0.0893, 0.2563, 0.7570, 1.0487, 0.3575], [0.2465, 1.7100, 6.4094, 18.6113, 50.2523]),
    "N": ([0.1022, 0.3219, 0.7982, 0.8197, 0.1715], [0.2451, 1.7481, 6.1925, 17.3894, 48.1431]),
    "O": ([0.0974, 0.2921, 0.6910, 0.6990, 0.2039], [0.2067, 1.3815, 4.6943, 12.7105, 32.4726]),
    "S": ([0.2497, 0.5628, 1.3899, 2.1865, 0.7715], [0.2681, 1.6711, 7.0267, 19.5377, 50.3888]),
}
VOLT_A2 = 47.878


def make_atoms(
    positions, elements, *, b_factors=None, hydrogens=None, occupancies=None, name="test"
) -> Atoms:
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    n = len(positions)
    return Atoms(
        positions=positions,
        elements=np.array(list(elements)),
        b_factors=np.zeros(n) if b_factors is None else np.asarray(b_factors, dtype=np.float64),
        occupancies=np.ones(n) if occupancies is None else np.asarray(occupancies, dtype=float),
        chain_ids=np.array(["A"] * n),
        hydrogens=np.zeros(n, dtype=int) if hydrogens is None else np.asarray(hydrogens),
        name=name,
    )


def small_model(seed: int = 1, n: int = 10, b_range=(15.0, 40.0)) -> Atoms:
    rng = np.random.default_rng(seed)
    elements = ("CCCCNNOOSC" * 10)[:n]
    positions = rng.normal(0.0, 2.5, (n, 3)) + np.array([1.0, 2.0, -3.0])
    return make_atoms(positions, elements, b_factors=rng.uniform(*b_range, n))


def expected_integral(atoms: Atoms, *, hydrogens: bool = True) -> float:
    """47.878 × Σ f_e(0), from the typed-in table."""
    total = sum(sum(PENG[str(e)][0]) for e in atoms.elements)
    if hydrogens:
        total += float(np.sum(atoms.hydrogens)) * sum(PENG["H"][0])
    return VOLT_A2 * total


def reference_potential(points: np.ndarray, atoms: Atoms) -> np.ndarray:
    """Σ_atoms Σ_i 47.878 a_i (4π/(b_i+B))^{3/2} exp(-4π² r²/(b_i+B)) at ``points`` (n, 3)."""
    values = np.zeros(len(points))
    for position, element, b_atom in zip(atoms.positions, atoms.elements, atoms.b_factors, strict=False):
        r2 = ((points - position) ** 2).sum(axis=1)
        for a, b in zip(*PENG[str(element)], strict=False):
            width = b + b_atom
            values += VOLT_A2 * a * (4 * math.pi / width) ** 1.5 * np.exp(-4 * math.pi**2 * r2 / width)
    return values


def voxel_centres(potential) -> np.ndarray:
    """(x, y, z) Å model coordinates of every voxel centre, in ``data.ravel()`` order."""
    shape = potential.data.shape
    centre = np.array(shape) // 2
    z, y, x = np.indices(shape)
    offsets = np.stack([x - centre[2], y - centre[1], z - centre[0]], axis=-1).reshape(-1, 3)
    return offsets * potential.pixel_size + np.asarray(potential.centre_a)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


# --------------------------------------------------------------------------------------------
# Integral, position, width
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pixel_size", [1.0, 2.0, 5.0, 10.0])
def test_integral_matches_scattering_factors(pixel_size: float) -> None:
    atoms = make_atoms(
        [[0, 0, 0], [1.5, 0, 0], [0, 1.4, 0.3], [2, 2, 2], [-1.2, 0.4, 1.1]],
        "CNOSC",
        b_factors=[0, 10, 20, 5, 50],
        hydrogens=[3, 1, 1, 0, 2],
    )
    potential = atoms_to_potential(atoms, pixel_size)
    assert potential.data.dtype == np.float32
    assert potential.integral == pytest.approx(expected_integral(atoms), rel=0.01)
    # exact voxel averaging makes it far better than 1 %
    assert potential.integral == pytest.approx(expected_integral(atoms), rel=1e-4)


def test_hydrogens_flag_and_occupancy() -> None:
    atoms = make_atoms([[0, 0, 0], [1.5, 0, 0]], "CN", hydrogens=[2, 1], occupancies=[1.0, 0.5])
    with_h = atoms_to_potential(atoms, 1.0, hydrogens=True).integral
    without_h = atoms_to_potential(atoms, 1.0, hydrogens=False).integral
    f_c, f_n, f_h = (sum(PENG[e][0]) for e in "CNH")
    assert without_h == pytest.approx(VOLT_A2 * (f_c + 0.5 * f_n), rel=1e-4)
    assert with_h - without_h == pytest.approx(VOLT_A2 * f_h * (2 + 0.5 * 1), rel=1e-4)


def test_single_atom_lands_on_centre_voxel() -> None:
    atom = make_atoms([[12.3, -4.5, 7.8]], "O", b_factors=[30.0])
    potential = atoms_to_potential(atom, 2.0)
    centre = tuple(int(n) // 2 for n in potential.data.shape)
    assert np.unravel_index(np.argmax(potential.data), potential.data.shape) == centre
    assert potential.centre_a == pytest.approx((12.3, -4.5, 7.8))


@pytest.mark.parametrize(("pixel_size", "b_factor"), [(1.0, 40.0), (3.0, 300.0)])
def test_atom_position_and_subvoxel_centroid(pixel_size: float, b_factor: float) -> None:
    # the sampled centroid is exact once σ is not far below the pixel size (at 3 Å, σ = 2 Å)
    position = np.array([10.7, -4.3, 6.9])
    atom = make_atoms([position], "S", b_factors=[b_factor])
    potential = atoms_to_potential(atom, pixel_size, centre=(0.0, 0.0, 0.0), margin=8.0)
    data = potential.data.astype(np.float64)
    shape = np.array(data.shape)
    expected_index_zyx = (position / pixel_size)[::-1] + shape // 2
    peak = np.unravel_index(np.argmax(data), data.shape)
    assert np.all(np.abs(np.array(peak) - expected_index_zyx) <= 0.5 + 1e-9)
    centroid = [
        float((data.sum(axis=tuple(a for a in range(3) if a != axis)) * np.arange(n)).sum())
        / data.sum()
        for axis, n in enumerate(data.shape)
    ]
    assert centroid == pytest.approx(expected_index_zyx, abs=1e-3)


@pytest.mark.parametrize("b_factor", [20.0, 150.0])
def test_b_factor_widens_profile_as_predicted(b_factor: float) -> None:
    pixel = 1.0
    atom = make_atoms([[0.2, -0.3, 0.1]], "C", b_factors=[10.0])
    potential = atoms_to_potential(atom, pixel, b_factor=b_factor, centre=(0.0, 0.0, 0.0))
    data = potential.data.astype(np.float64)
    a, b = (np.array(v) for v in PENG["C"])
    predicted = float((a * (b + 10.0 + b_factor)).sum() / a.sum()) / (8 * math.pi**2) + pixel**2 / 12
    for axis, position in zip((2, 1, 0), (0.2, -0.3, 0.1), strict=False):
        profile = data.sum(axis=tuple(i for i in range(3) if i != axis))
        coords = (np.arange(data.shape[axis]) - data.shape[axis] // 2) * pixel
        mean = (profile * coords).sum() / profile.sum()
        variance = (profile * (coords - mean) ** 2).sum() / profile.sum()
        assert mean == pytest.approx(position, abs=1e-4)
        assert variance == pytest.approx(predicted, rel=2e-3)


def test_resolution_is_an_extra_b_factor() -> None:
    atoms = small_model()
    low_passed = atoms_to_potential(atoms, 2.0, resolution=6.0, b_factor=10.0)
    as_b = atoms_to_potential(atoms, 2.0, b_factor=10.0 + resolution_to_b_factor(6.0))
    assert resolution_to_b_factor(6.0) == pytest.approx(144.0)
    np.testing.assert_array_equal(low_passed.data, as_b.data)


# --------------------------------------------------------------------------------------------
# Independent evaluations
# --------------------------------------------------------------------------------------------


def test_fine_sampling_matches_direct_sum_at_voxel_centres() -> None:
    atoms = small_model()
    potential = atoms_to_potential(atoms, 0.5)
    reference = reference_potential(voxel_centres(potential), atoms)
    assert correlation(reference, potential.data) > 0.99
    assert potential.integral == pytest.approx(reference.sum() * 0.5**3, rel=1e-3)


def test_coarse_sampling_is_the_box_average_not_point_samples() -> None:
    atoms = small_model()
    pixel, sub = 8.0, 16
    potential = atoms_to_potential(atoms, pixel, margin=8.0)
    centres = voxel_centres(potential)
    steps = (np.arange(sub) + 0.5) * (pixel / sub) - pixel / 2
    offsets = np.stack(np.meshgrid(steps, steps, steps, indexing="ij"), axis=-1).reshape(-1, 3)
    box_average = np.array([reference_potential(c + offsets, atoms).mean() for c in centres])
    point_samples = reference_potential(centres, atoms)
    implementation = potential.data.ravel().astype(np.float64)

    assert correlation(implementation, box_average) > 0.99
    assert np.abs(implementation - box_average).max() < 0.01 * box_average.max()
    # point sampling at 8 Å aliases: worse correlation, and its integral is far off
    assert correlation(point_samples, box_average) < 0.99
    assert correlation(point_samples, box_average) < correlation(implementation, box_average) - 0.01
    point_integral = point_samples.sum() * pixel**3
    assert abs(point_integral / expected_integral(atoms) - 1) > 0.5
    assert potential.integral == pytest.approx(expected_integral(atoms), rel=1e-3)


def _gemmi_structure(atoms: Atoms, cell: float):
    import gemmi

    structure = gemmi.Structure()
    structure.cell = gemmi.UnitCell(cell, cell, cell, 90, 90, 90)
    structure.spacegroup_hm = "P 1"
    model = gemmi.Model("1")
    chain = gemmi.Chain("A")
    for index, (position, element, b_iso) in enumerate(
        zip(atoms.positions, atoms.elements, atoms.b_factors, strict=False)
    ):
        residue = gemmi.Residue()
        residue.name = "UNK"
        residue.seqid = gemmi.SeqId(index + 1, " ")
        atom = gemmi.Atom()
        atom.name = str(element)
        atom.element = gemmi.Element(str(element))
        atom.pos = gemmi.Position(*position)
        atom.b_iso = float(b_iso)
        atom.occ = 1.0
        residue.add_atom(atom)
        chain.add_residue(residue)
    model.add_chain(chain)
    structure.add_model(model)
    return structure


def test_agrees_with_gemmi_density_calculator() -> None:
    """gemmi.DensityCalculatorE sums the same Gaussians point-wise: Σ a (4π/(b+B))^{3/2} e^{...}
    in Å⁻² (f_e units); times 47.878 V·Å² it is our potential."""
    import gemmi

    cell, spacing = 40.0, 0.5
    n_grid = int(cell / spacing)
    rng = np.random.default_rng(2)
    atoms = make_atoms(
        rng.normal(0.0, 2.5, (10, 3)) + cell / 2, "CCCNNOOSCC", b_factors=np.full(10, 25.0)
    )
    calculator = gemmi.DensityCalculatorE()
    calculator.d_min = 2 * spacing  # grid spacing d_min / (2 rate)
    calculator.rate = 1.0
    structure = _gemmi_structure(atoms, cell)
    calculator.set_grid_cell_and_spacegroup(structure)
    calculator.put_model_density_on_grid(structure[0])
    grid = np.array(calculator.grid, copy=False)  # [u, v, w] = x, y, z
    assert grid.shape == (n_grid, n_grid, n_grid)

    # voxel centres of our box fall on gemmi's grid points
    potential = atoms_to_potential(atoms, spacing, centre=(cell / 2,) * 3)
    shape = potential.data.shape
    centre = np.array(shape) // 2
    z, y, x = np.indices(shape)
    half = n_grid // 2
    gemmi_volts = VOLT_A2 * grid[
        (x - centre[2] + half) % n_grid, (y - centre[1] + half) % n_grid, (z - centre[0] + half) % n_grid
    ]
    assert correlation(gemmi_volts, potential.data) > 0.98
    assert potential.integral == pytest.approx(VOLT_A2 * grid.sum() * spacing**3, rel=0.01)


# --------------------------------------------------------------------------------------------
# Solvent
# --------------------------------------------------------------------------------------------


def protein_ball(radius: float = 10.0, seed: int = 3) -> Atoms:
    """CH pseudo-atoms filling a ball at protein density (1.23 Å³/Da)."""
    rng = np.random.default_rng(seed)
    volume_per_atom = 1.23 * 13.02
    n = int(4 / 3 * math.pi * radius**3 / volume_per_atom)
    points = rng.uniform(-radius, radius, (4 * n, 3))
    points = points[np.linalg.norm(points, axis=1) < radius][:n]
    return make_atoms(points + 5.0, "C" * n, b_factors=np.full(n, 30.0), hydrogens=np.ones(n, int))


@pytest.mark.parametrize("pixel_size", [2.0, 4.0])
def test_ice_solvent_is_zero_far_away_and_positive_in_protein(pixel_size: float) -> None:
    atoms = protein_ball()
    potential = atoms_to_potential(atoms, pixel_size, solvent="ice", margin=16.0)
    assert potential.solvent == "ice"
    radius_a = np.linalg.norm(voxel_centres(potential) - 5.0, axis=1).reshape(potential.data.shape)
    far = radius_a > 10.0 + 12.0
    core = radius_a < 10.0 - pixel_size
    assert np.count_nonzero(far) > 100
    assert abs(float(potential.data[far].mean())) < 1e-3
    assert np.abs(potential.data[far]).max() < 1e-3
    assert float(potential.data[core].mean()) > 1.0
    if pixel_size >= 4.0:
        assert np.all(potential.data[core] > 0)
    vacuum = atoms_to_potential(atoms, pixel_size, solvent="none", margin=16.0)
    displaced = (vacuum.data - potential.data).sum(dtype=np.float64) * pixel_size**3
    # displaced ice = ice potential × molecular volume (1.23 Å³/Da), within the envelope clipping
    volume = 1.23 * 13.02 * len(atoms)
    assert displaced == pytest.approx(ICE_POTENTIAL_V * volume, rel=0.1)


def test_hydration_shell_adds_denser_water_outside() -> None:
    atoms = protein_ball()
    plain = atoms_to_potential(atoms, 2.0, solvent="ice", margin=16.0)
    shell = atoms_to_potential(atoms, 2.0, solvent="ice", hydration_shell=True, margin=16.0)
    extra = (shell.data - plain.data).astype(np.float64)
    assert extra.min() >= -1e-6
    assert extra.max() <= 0.1 * ICE_POTENTIAL_V + 1e-5
    radius_a = np.linalg.norm(voxel_centres(plain) - 5.0, axis=1).reshape(extra.shape)
    inside, outside = extra[radius_a < 6.0].mean(), extra[(radius_a > 11) & (radius_a < 13)].mean()
    assert outside > 3 * max(inside, 1e-6)
    # a shell ~3 Å thick (3 to 4.5 Å allowed) around a ~10 Å ball, 10 % of ice
    thickness = extra.sum() * 8.0 / (0.1 * ICE_POTENTIAL_V) / (4 * math.pi * 10.5**2)
    assert 2.5 < thickness < 5.0
    with pytest.raises(TomosimError, match="hydration_shell"):
        atoms_to_potential(atoms, 2.0, solvent="none", hydration_shell=True)


def test_ice_reference_values() -> None:
    assert ICE_POTENTIAL_V == pytest.approx(4.48)
    # independent-atom value, water at 0.94 g/cm³: 47.878 · (f_O + 2 f_H) · n
    f_water = sum(PENG["O"][0]) + 2 * sum(PENG["H"][0])
    n_per_a3 = 0.94 / (18.015 * 1.66054)
    assert independent_atom_ice_potential() == pytest.approx(VOLT_A2 * f_water * n_per_a3, rel=1e-3)
    assert independent_atom_ice_potential() == pytest.approx(4.57, abs=0.01)
    assert protein_potential_integral_per_kda() == pytest.approx(9.756e3, rel=2e-3)


# --------------------------------------------------------------------------------------------
# Kernel determinism, bad input
# --------------------------------------------------------------------------------------------


def test_same_input_same_bytes_whatever_the_slab_split() -> None:
    rng = np.random.default_rng(5)
    centres = rng.uniform(2, 18, (200, 3))
    weights = rng.uniform(0.5, 2.0, (200, 3))
    sigmas = rng.uniform(0.2, 2.0, (200, 3))
    grids = []
    for slabs in (1, 3, 20):
        grid = np.zeros((20, 20, 20), dtype=np.float32)
        _accumulate_gaussians(grid, centres, weights, sigmas, 4.5, slabs, _ERF_VALUES, _ERF_SLOPES)
        grids.append(grid)
    assert grids[0].tobytes() == grids[1].tobytes() == grids[2].tobytes()
    atoms = small_model(n=30)
    first = atoms_to_potential(atoms, 1.5, solvent="ice")
    again = atoms_to_potential(atoms, 1.5, solvent="ice")
    assert first.data.tobytes() == again.data.tobytes()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pixel_size": 0.0}, "pixel size"),
        ({"pixel_size": -1.0}, "pixel size"),
        ({"pixel_size": 1000.0}, "pixel size"),
        ({"pixel_size": float("nan")}, "pixel size"),
        ({"pixel_size": 2.0, "solvent": "water"}, "solvent"),
        ({"pixel_size": 2.0, "b_factor": -5.0}, "B-factor"),
        ({"pixel_size": 2.0, "resolution": 0.0}, "resolution"),
    ],
)
def test_bad_arguments_raise(kwargs: dict, message: str) -> None:
    pixel = kwargs.pop("pixel_size")
    with pytest.raises(TomosimError, match=message):
        atoms_to_potential(small_model(), pixel, **kwargs)


def test_bad_models_raise() -> None:
    with pytest.raises(TomosimError, match="no atoms"):
        atoms_to_potential(make_atoms(np.zeros((0, 3)), "", name="empty.pdb"), 2.0)
    with pytest.raises(TomosimError, match="element 'Xx'"):
        atoms_to_potential(make_atoms([[0, 0, 0]], ["Xx"]), 2.0)
    with pytest.raises(TomosimError, match="element 'X'"):
        atoms_to_potential(make_atoms([[0, 0, 0]], ["X"]), 2.0)
    with pytest.raises(TomosimError, match="non-finite"):
        atoms_to_potential(make_atoms([[0, np.nan, 0]], "C"), 2.0)


# --------------------------------------------------------------------------------------------
# Maps
# --------------------------------------------------------------------------------------------


def map_of(atoms: Atoms, pixel: float) -> DensityMap:
    vacuum = atoms_to_potential(atoms, pixel, margin=6.0)
    shape = np.array(vacuum.data.shape[::-1])
    origin = np.asarray(vacuum.centre_a) - (shape // 2) * pixel
    return DensityMap(
        data=vacuum.data * 0.01, pixel_size=pixel, origin=tuple(origin), name="sim.mrc"
    )


def test_map_scaled_by_mass_and_centre_kept() -> None:
    atoms = protein_ball(radius=8.0)
    density = map_of(atoms, 1.0)
    potential = map_to_potential(density, 2.5, mass_kda=50.0)
    assert potential.integral == pytest.approx(50.0 * protein_potential_integral_per_kda(), rel=1e-3)
    assert potential.centre_a == pytest.approx(
        tuple(np.asarray(density.origin) + (np.array(density.data.shape[::-1]) // 2) * 1.0)
    )
    # the centroid stays where the atoms are
    data = potential.data.astype(np.float64)
    centroid_xyz = (voxel_centres(potential) * data.ravel()[:, None]).sum(axis=0) / data.sum()
    assert centroid_xyz == pytest.approx(atoms.positions.mean(axis=0), abs=0.2)
    scaled = map_to_potential(density, 2.5, scale_v=100.0)
    # scale_v: volts per map unit; the map is 0.01 × the vacuum potential
    assert scaled.integral == pytest.approx(expected_integral(atoms), rel=0.01)


def test_map_with_ice_reads_zero_outside() -> None:
    atoms = protein_ball(radius=8.0)
    density = map_of(atoms, 1.0)
    potential = map_to_potential(density, 2.0, scale_v=100.0, threshold=0.005, solvent="ice")
    radius_a = np.linalg.norm(voxel_centres(potential) - 5.0, axis=1).reshape(potential.data.shape)
    assert np.abs(potential.data[radius_a > 14]).max() < 1e-3
    assert potential.data[radius_a < 5].mean() > 1.0
    # without a threshold the ice envelope is the contour holding the volume of the mass
    mass_kda = 13.02e-3 * len(atoms)
    vacuum = map_to_potential(density, 2.0, mass_kda=mass_kda)
    in_ice = map_to_potential(density, 2.0, mass_kda=mass_kda, solvent="ice")
    displaced = (vacuum.data - in_ice.data).sum(dtype=np.float64) * 2.0**3
    assert displaced == pytest.approx(ICE_POTENTIAL_V * 1.23e3 * mass_kda, rel=0.05)
    assert np.abs(in_ice.data[radius_a > 14]).max() < 1e-3
    with pytest.raises(TomosimError, match="cannot scale"):
        map_to_potential(density, 2.0)
    with pytest.raises(TomosimError, match="no values"):
        map_to_potential(density, 2.0, scale_v=1.0, threshold=1e9)


# --------------------------------------------------------------------------------------------
# Loading and the cache
# --------------------------------------------------------------------------------------------


def write_pdb(path: Path, atoms: Atoms) -> Path:
    structure = _gemmi_structure(atoms, 100.0)
    structure.write_pdb(str(path))
    return path


def test_load_potential_from_file_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tomosim import cache as potential_module  # load_potential calls it from there
    from tomosim.io import cache_dir

    model = write_pdb(tmp_path / "tiny.pdb", small_model(n=12))
    options = StructureOptions()
    config = PotentialConfig(solvent="none")
    first = load_potential(model, 2.0, potential=config, structure=options)
    assert first.integral == pytest.approx(expected_integral(small_model(n=12)), rel=1e-3)
    entries = sorted(cache_dir("potentials").glob("*.npz"))
    assert len(entries) == 1

    calls = []
    original = potential_module.atoms_to_potential

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(potential_module, "atoms_to_potential", counting)
    cached = load_potential(model, 2.0, potential=config, structure=options)
    assert not calls
    assert cached.data.tobytes() == first.data.tobytes()
    assert cached.centre_a == first.centre_a and cached.pixel_size == first.pixel_size

    # keyed by pixel size and by every parameter
    load_potential(model, 3.0, potential=config, structure=options)
    load_potential(model, 2.0, potential=PotentialConfig(solvent="ice"), structure=options)
    load_potential(
        model, 2.0, potential=PotentialConfig(solvent="none", b_factor=20.0), structure=options
    )
    assert len(calls) == 3
    assert len(list(cache_dir("potentials").glob("*.npz"))) == 4

    # a corrupt entry is recomputed and replaced
    entries[0].write_bytes(b"not a cache entry")
    again = load_potential(model, 2.0, potential=config, structure=options)
    assert len(calls) == 4
    assert again.data.tobytes() == first.data.tobytes()
    load_potential(model, 2.0, potential=config, structure=options)
    assert len(calls) == 4

    # cache off: always recomputed; changed file content: new key
    load_potential(model, 2.0, potential=PotentialConfig(solvent="none", cache=False), structure=options)
    assert len(calls) == 5
    write_pdb(model, small_model(seed=9, n=12))
    changed = load_potential(model, 2.0, potential=config, structure=options)
    assert len(calls) == 6
    assert changed.data.tobytes() != first.data.tobytes()


def test_load_potential_of_a_map_file(tmp_path: Path) -> None:
    from tomosim.io import write_mrc

    atoms = protein_ball(radius=8.0)
    density = map_of(atoms, 1.0)
    path = tmp_path / "blob.mrc"
    write_mrc(path, density.data, voxel_size=1.0)
    potential = load_potential(
        path,
        2.0,
        potential=PotentialConfig(solvent="none"),
        structure=StructureOptions(map_mass_kda=40.0),
    )
    assert potential.integral == pytest.approx(40.0 * protein_potential_integral_per_kda(), rel=1e-3)


def test_load_potential_rejects_unknown_format(tmp_path: Path) -> None:
    path = tmp_path / "model.xyz"
    path.write_text("C 0 0 0\n")
    with pytest.raises(TomosimError, match="unknown structure format"):
        load_potential(path, 2.0, potential=PotentialConfig(), structure=StructureOptions())


def test_apoferritin_integral_matches_formula() -> None:
    from tomosim.structures import read_structure

    atoms = read_structure(shared_structure("4v1w.cif.gz"))
    potential = atoms_to_potential(atoms, 2.0)
    a_sum = {element: sum(PENG[element][0]) for element in PENG}
    expected = VOLT_A2 * (
        sum(a_sum[str(e)] for e in atoms.elements) + a_sum["H"] * float(atoms.hydrogens.sum())
    )
    assert potential.integral == pytest.approx(expected, rel=0.01)


def test_builtin_models_are_centred_on_their_origin() -> None:
    from tomosim.io import cache_dir
    from tomosim.structures import read_structure

    config, options = PotentialConfig(solvent="none"), StructureOptions()
    decorated = load_potential("builtin:cofilactin", 8.0, potential=config, structure=options)
    # cofilactin's reference point is the actin subunit centre (the origin), not its atom mean
    assert decorated.centre_a == (0.0, 0.0, 0.0)
    atoms = read_structure("builtin:cofilactin")
    assert np.linalg.norm(atoms.positions.mean(axis=0)) > 5.0
    data = decorated.data.astype(np.float64)
    centroid = (voxel_centres(decorated) * data.ravel()[:, None]).sum(axis=0) / data.sum()
    assert centroid == pytest.approx(atoms.positions.mean(axis=0), abs=1.0)
    again = load_potential("builtin:cofilactin", 8.0, potential=config, structure=options)
    assert again.data.tobytes() == decorated.data.tobytes()
    assert len(list(cache_dir("potentials").glob("*.npz"))) == 1
