"""helix: auto: screw fits of real filament models, shipped templates, the microtubule lattice.

Independent references: helical parameters derived here from subunit centroids only (a
least-squares helix through the centroids, no superposition of atoms), the real models
in ../shared/structures (skipped with a reason when absent) and published values:

- F-actin: twist −166.7°, rise 27.5 Å (Fujii et al. 2010; von der Ecken et al. 2015); the
  CryoTomoSim actin file stores −166.15°, 27.3 Å (MANIFEST.md).
- cofilactin: twist ≈ −162°, rise ≈ 27 Å (Galkin et al. 2011; Huehn et al. 2018); the
  CryoTomoSim cofilactin file stores −162°, 24 Å.
- microtubule: lateral neighbours 360°/N apart, the 3-start helix left-handed (the neighbour
  at negative azimuth higher), monomer repeat ≈ 41 Å (Alushin et al. 2014; Zhang et al. 2015).
"""

from __future__ import annotations

import gzip

import gemmi
import numpy as np
import pytest
import yaml
from scipy.optimize import least_squares
from scipy.spatial import cKDTree

from conftest import shared_structure
from tomosim.assemble import assemble_phantom
from tomosim.config import DecorationConfig, FilamentSpecies, config_from_dict
from tomosim.errors import TomosimError
from tomosim.filament_templates import (
    _cached_template,
    find_subunits,
    helix_template,
    preset_template_path,
    read_filament_model,
)
from tomosim.filaments import (
    PRESETS,
    _lattice_on_path,
    decoration_parameters,
    decoration_template,
    helical_lattice,
    place_filaments,
    resolved_species,
    species_parameters,
    straight_path,
)
from tomosim.helix import RigidMotion, fit_helix, superpose
from tomosim.recipe import phantom_recipe

ACTIN_MODEL = "6BNO_A15.pdb.gz"
COFILACTIN_MODEL = "cofilactin_18mer_flow.0ns.nowater.pdb.gz"
PATCH = "3J6E_3PF_lattice_patch_TubulinNCs_SystemA.pdb.gz"
DECORATED = [f"A{i}" for i in range(9, 17)] + [f"C{i}" for i in range(9, 17)]


def wrap(angle):
    return (np.asarray(angle) + 180.0) % 360.0 - 180.0


def centroid_helix(centroids: np.ndarray) -> tuple[float, float]:
    """Twist (°) and rise (Å) per subunit from subunit centroids alone, no superposition.

    A least-squares fit of the helix ``c_k = p + (z0 + k·rise) d + r (cos(φ0 + k·twist) u +
    sin(φ0 + k·twist) v)`` (axis point ``p``, direction ``d``, ``u ⊥ v ⊥ d``) to the centroids,
    started from the first principal axis, a circle fit in the perpendicular plane and twists
    every 10°, keeping the best.
    """
    centred = centroids - centroids.mean(axis=0)
    axis0 = np.linalg.svd(centred)[2][0]
    if centred[-1] @ axis0 < centred[0] @ axis0:
        axis0 = -axis0
    u0 = np.cross(axis0, [1.0, 0.0, 0.0])
    u0 /= np.linalg.norm(u0)
    v0 = np.cross(axis0, u0)
    x, y = centred @ u0, centred @ v0
    a = np.column_stack([x, y, np.ones_like(x)])
    cx, cy = np.linalg.lstsq(a, x**2 + y**2, rcond=None)[0][:2] / 2.0
    azimuth = np.degrees(np.arctan2(y - cy, x - cx))
    k = np.arange(len(centroids))

    def model(q: np.ndarray) -> np.ndarray:
        tilt_u, tilt_v, px, py, radius, phase, z0, twist, rise = q
        d = axis0 + tilt_u * u0 + tilt_v * v0
        d /= np.linalg.norm(d)
        u = np.cross(d, v0)
        u /= np.linalg.norm(u)
        v = np.cross(d, u)
        angle = np.radians(phase + k * twist)
        return (px * u0 + py * v0 + (z0 + k * rise)[:, None] * d
                + radius * (np.cos(angle)[:, None] * u + np.sin(angle)[:, None] * v))

    best = None
    for twist0 in range(-175, 180, 10):  # several starts: the twist has many local minima
        start = np.array([0.0, 0.0, cx, cy, np.hypot(x - cx, y - cy).mean(), azimuth[0],
                          centred[0] @ axis0, float(twist0), np.mean(np.diff(centred @ axis0))])
        result = least_squares(lambda q: (model(q) - centred).ravel(), start)
        if best is None or result.cost < best.cost:
            best = result
    assert best is not None
    return float(wrap(best.x[7])), float(abs(best.x[8]))


def subunit_centroids(source, **selection) -> np.ndarray:
    _, structure = read_filament_model(str(source), **selection)
    return np.array([s.positions.mean(axis=0) for s in find_subunits(structure)])


# ---------------------------------------------------------------------------------------------
# The fit itself, on an analytic helix
# ---------------------------------------------------------------------------------------------


def screw(twist: float, rise: float, axis: np.ndarray, point: np.ndarray) -> RigidMotion:
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = np.radians(twist)
    r = np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k
    return RigidMotion(r, point - r @ point + rise * axis)


def test_fit_recovers_an_analytic_screw_and_flags_a_non_screw() -> None:
    rng = np.random.default_rng(0)
    motion = screw(-166.7, 27.5, np.array([0.3, -0.2, 1.0]), np.array([5.0, -8.0, 2.0]))
    subunits = [rng.normal(scale=12.0, size=(50, 3)) + [20.0, 0.0, 0.0]]
    for _ in range(6):
        subunits.append(motion.apply(subunits[-1]))
    fit = fit_helix(list(zip(subunits[:-1], subunits[1:], strict=True)))
    assert fit.twist == pytest.approx(-166.7, abs=1e-6)
    assert fit.rise == pytest.approx(27.5, abs=1e-6)
    assert fit.residual < 1e-6
    # the axis passes through the chosen point along the chosen direction
    direction = np.array([0.3, -0.2, 1.0]) / np.linalg.norm([0.3, -0.2, 1.0])
    assert abs(fit.axis_direction @ direction) == pytest.approx(1.0, abs=1e-9)
    offset = fit.axis_point - np.array([5.0, -8.0, 2.0])
    assert np.linalg.norm(np.cross(offset, direction)) < 1e-6
    # reversing the order reverses the axis, keeps the handedness (twist sign at positive rise)
    back = fit_helix(list(zip(subunits[:0:-1], subunits[-2::-1], strict=True)))
    assert back.twist == pytest.approx(-166.7, abs=1e-6)
    np.testing.assert_allclose(back.axis_direction, -fit.axis_direction, atol=1e-9)
    # shuffled subunits are not one screw apart
    shuffled = [subunits[i] for i in (0, 2, 1, 3)]
    bad = fit_helix(list(zip(shuffled[:-1], shuffled[1:], strict=True)))
    assert bad.residual > 10.0


# ---------------------------------------------------------------------------------------------
# Real models
# ---------------------------------------------------------------------------------------------


def test_actin_6bno_fit_matches_centroids_and_literature() -> None:
    model = shared_structure(ACTIN_MODEL)
    template = helix_template(str(model))
    assert -167.0 <= template.twist <= -166.0
    assert 27.0 <= template.rise <= 28.5
    assert template.n_subunits == 15 and template.residual < 0.5
    twist, rise = centroid_helix(subunit_centroids(model))
    print(f"6BNO_A15: fit {template.twist:.2f} deg / {template.rise:.2f} A, centroids "
          f"{twist:.2f} deg / {rise:.2f} A; literature -166.7 / 27.5, CryoTomoSim -166.15 / 27.3")
    assert template.twist == pytest.approx(twist, abs=2.0)
    assert template.rise == pytest.approx(rise, abs=1.0)
    assert template.twist == pytest.approx(-166.7, abs=1.0)  # Fujii 2010, von der Ecken 2015
    assert template.rise == pytest.approx(27.5, abs=1.0)
    # crossover (half pitch of the two long-pitch strands): 180° / (180° − |twist|) subunits
    crossover = 180.0 / (180.0 - abs(template.twist)) * template.rise
    assert 330.0 <= crossover <= 390.0


def test_cofilactin_decorated_part_fit_matches_centroids_and_literature() -> None:
    model = shared_structure(COFILACTIN_MODEL)
    template = helix_template(str(model), segments=DECORATED)
    assert template.n_subunits == 8
    # independently: centroids of the decorated actins (A9..A16 only)
    twist, rise = centroid_helix(subunit_centroids(model, segments=DECORATED[:8]))
    print(f"cofilactin 9-16: fit {template.twist:.2f} deg / {template.rise:.2f} A (residual "
          f"{template.residual:.2f} A), centroids {twist:.2f} deg / {rise:.2f} A; literature "
          "-162 / 27, CryoTomoSim file -162 / 24")
    assert template.twist == pytest.approx(twist, abs=2.0)
    assert template.rise == pytest.approx(rise, abs=1.0)
    assert template.twist == pytest.approx(-162.0, abs=2.0)  # Galkin 2011, Huehn 2018
    assert template.rise == pytest.approx(27.0, abs=1.0)
    assert abs(template.rise - 24.0) > 3.0  # the CryoTomoSim file's 24 Å is not this lattice
    crossover = 180.0 / (180.0 - abs(template.twist)) * template.rise
    assert 240.0 <= crossover <= 300.0
    # the subunit: actin + cofilin, referenced to the actin (the core)
    assert abs(template.core_radius - PRESETS["actin"].radius) < 1.5
    assert template.radius > template.core_radius + 3.0  # cofilin sits outside


def _atoms(path) -> np.ndarray:
    structure = gemmi.read_structure(str(path))
    structure.remove_hydrogens()
    return np.array([[a.pos.x, a.pos.y, a.pos.z] for ch in structure[0] for r in ch for a in r])


def _build(template_xyz: np.ndarray, params, n: int) -> list[np.ndarray]:
    """Subunits of a straight lattice: the template reference (mean atom) moved to each row."""
    positions, rotations = helical_lattice(n, params)
    centred = template_xyz - template_xyz.mean(axis=0)
    return [centred @ r.T + p for p, r in zip(positions, rotations, strict=True)]


def test_shipped_actin_rebuilds_the_6bno_filament() -> None:
    model = shared_structure(ACTIN_MODEL)
    built = np.concatenate(_build(_atoms(preset_template_path("actin")), PRESETS["actin"], 15))
    _, structure = read_filament_model(str(model))
    subunits = find_subunits(structure)
    source = np.concatenate([s.positions for s in subunits])
    assert built.shape == source.shape
    motion = superpose(built, source)
    rmsd = np.sqrt(np.mean(np.sum((motion.apply(built) - source) ** 2, axis=1)))
    assert rmsd < 0.5, rmsd


def overlap_fraction(subunits: list[np.ndarray], middle: int, clash: float = 2.2) -> float:
    """Fraction of one subunit's heavy atoms closer than ``clash`` Å to another subunit's atom.

    2.2 Å is below any non-bonded heavy-atom contact (van der Waals radii ≥ 1.5 Å each, minus
    the usual 0.4–0.8 Å allowance), so these atoms sit inside a neighbour's envelope.
    """
    others = np.concatenate([s for i, s in enumerate(subunits) if i != middle])
    distance, _ = cKDTree(others).query(subunits[middle])
    return float(np.mean(distance < clash))


def test_actin_filament_has_no_more_overlap_than_6bno() -> None:
    model = shared_structure(ACTIN_MODEL)
    built = _build(_atoms(preset_template_path("actin")), PRESETS["actin"], 7)
    _, structure = read_filament_model(str(model))
    source = [s.positions for s in find_subunits(structure)]
    ours, theirs = overlap_fraction(built, 3), overlap_fraction(source, 7)
    print(f"actin overlap fraction: built {ours:.4f}, 6BNO_A15 {theirs:.4f}")
    assert ours <= theirs


def test_decorated_subunit_rebuilds_the_cofilactin_model() -> None:
    model = shared_structure(COFILACTIN_MODEL)
    species = FilamentSpecies(
        name="actin", preset="actin",
        decoration=DecorationConfig(source=str(model), helix="auto",
                                    structure={"segments": DECORATED}),
    )
    params = decoration_parameters(species)
    template = helix_template(str(model), segments=DECORATED)
    assert params.twist == pytest.approx(template.twist) and params.rise == pytest.approx(
        template.rise)
    built = _build(_atoms(template.path), params, 8)
    _, structure = read_filament_model(str(model), segments=DECORATED)
    source = [s.positions for s in find_subunits(structure)]
    motion = superpose(np.concatenate(built), np.concatenate(source))
    deviation = np.linalg.norm(
        motion.apply(np.concatenate(built)) - np.concatenate(source), axis=1)
    rmsd = float(np.sqrt(np.mean(deviation**2)))
    print(f"cofilactin rebuilt from one subunit: RMSD {rmsd:.2f} A (fit residual "
          f"{template.residual:.2f} A)")
    assert rmsd < 2.0 * template.residual
    ours, theirs = overlap_fraction(built, 4), overlap_fraction(source, 4)
    print(f"cofilactin overlap fraction: built {ours:.4f}, MD model {theirs:.4f} (clash relief "
          f"{template.relief_deg:.2f}°, {template.relief_shift:.2f} Å)")
    assert ours <= theirs
    assert template.overlap <= template.source_overlap
    assert template.relief_deg < 1.0 and template.relief_shift < 1.0  # well inside the 2.5 Å residual
    # the resolved species writes the fitted lattice into the config
    resolved = resolved_species(species)
    assert resolved.decoration.twist == pytest.approx(template.twist, abs=1e-3)
    assert resolved.decoration.rise == pytest.approx(template.rise, abs=1e-3)
    assert decoration_parameters(resolved).twist == pytest.approx(params.twist, abs=1e-3)


# ---------------------------------------------------------------------------------------------
# The microtubule lattice against the 3J6E patch
# ---------------------------------------------------------------------------------------------


def _dimer_parts(path) -> tuple[np.ndarray, np.ndarray]:
    structure = gemmi.read_structure(str(path))
    structure.remove_hydrogens()
    alpha = [[a.pos.x, a.pos.y, a.pos.z] for r in structure[0]["A"] for a in r]
    beta = [[a.pos.x, a.pos.y, a.pos.z] for r in structure[0]["B"] for a in r]
    return np.array(alpha), np.array(beta)


def _placed_monomer_centres(params, n_rings: int) -> np.ndarray:
    """``(rings, pf, 2, 3)`` centroids of α and β of every placed 5IJ0 dimer."""
    alpha, beta = _dimer_parts(preset_template_path("microtubule"))
    centre = np.concatenate([alpha, beta]).mean(axis=0)
    positions, rotations = helical_lattice(n_rings * params.protofilaments, params)
    out = []
    for part in (alpha, beta):
        local = part.mean(axis=0) - centre
        out.append(positions + rotations @ local)
    return np.stack(out, axis=1).reshape(n_rings, params.protofilaments, 2, 3)


def test_microtubule_lattice_matches_the_3j6e_patch() -> None:
    patch = shared_structure(PATCH)
    structure = gemmi.read_structure(str(patch))
    structure.remove_hydrogens()
    chain_centres = {ch.name: np.mean([[a.pos.x, a.pos.y, a.pos.z] for r in ch for a in r], axis=0)
                     for ch in structure[0]}
    # the patch's own lateral order (α chains A, C, E; β B, D, F)
    alphas = np.array([chain_centres[c] for c in "ACE"])
    spread = alphas - alphas.mean(axis=0)
    order = np.argsort(spread @ np.linalg.svd(spread)[2][0])
    chains = [("ACE"[i], "BDF"[i]) for i in order]
    reference = np.array([chain_centres[c] for pair in chains for c in pair])
    tube = FilamentSpecies(name="mt", preset="microtubule", protofilaments=14)
    params = species_parameters(tube)
    assert params.protofilaments == 14 and params.start == -3
    centres = _placed_monomer_centres(params, 1)[0]  # (14, 2, 3)
    best = np.inf
    for pfs in ([0, 1, 2], [2, 1, 0]):
        ours = centres[pfs].reshape(6, 3)
        motion = superpose(ours, reference)
        best = min(best, float(np.linalg.norm(motion.apply(ours) - reference, axis=1).max()))
    print(f"14-pf lattice vs 3J6E patch: largest monomer-centroid deviation {best:.2f} A")
    assert best < 2.0
    # a right-handed lattice (start +3) does not fit the patch
    mirror = FilamentSpecies(name="mt", preset="microtubule", protofilaments=14, start=3)
    wrong = _placed_monomer_centres(species_parameters(mirror), 1)[0]
    worst = np.inf
    for pfs in ([0, 1, 2], [2, 1, 0]):
        ours = wrong[pfs].reshape(6, 3)
        motion = superpose(ours, reference)
        worst = min(worst, float(np.linalg.norm(motion.apply(ours) - reference, axis=1).max()))
    assert worst > 5.0, worst


def test_microtubule_is_left_handed_with_one_seam_and_plus_end_up() -> None:
    params = PRESETS["microtubule"]
    centres = _placed_monomer_centres(params, 6)  # (rings, 13, 2, 3)
    # plus end = +z: β (plus-end monomer) above α in every dimer
    assert np.all(centres[..., 1, 2] > centres[..., 0, 2] + 35.0)
    alpha = centres[:, :, 0]  # (rings, 13, 3)
    azimuth = np.degrees(np.arctan2(alpha[..., 1], alpha[..., 0]))
    kinds = []
    for q in range(13):
        nxt = (q + 1) % 13
        a, b = alpha[2, q], alpha[:, nxt]
        nearest = b[np.argmin(np.linalg.norm(b - a, axis=1))]
        dz = nearest[2] - a[2]
        lateral = wrap(azimuth[2, nxt] - azimuth[2, q])
        assert lateral == pytest.approx(360.0 / 13, abs=0.5)
        kinds.append(dz)
    kinds = np.array(kinds)
    # B-lattice contacts: the neighbour at larger azimuth is lower by 3 × 40.9 / 13 Å, i.e. the
    # one at negative azimuth is higher (left-handed); one seam (α next to β), between 12 and 0
    b_contacts = np.abs(kinds + 3 * 40.9 / 13) < 0.5
    assert b_contacts[:12].all() and not b_contacts[12]
    assert abs(abs(kinds[12]) - (40.9 - 3 * 40.9 / 13)) < 0.5 or abs(kinds[12]) > 20.0
    # lateral contacts: α–α across a B contact as far apart as in the 3J6E patch (53.4 Å)
    lateral_distance = np.linalg.norm(alpha[2, 1] - alpha[2, 0])
    assert lateral_distance == pytest.approx(53.4, abs=1.5)


@pytest.mark.parametrize("protofilaments", [13, 14])
def test_microtubule_overlap_no_worse_than_the_patch(protofilaments) -> None:
    """Every contact of a built dimer (lateral, longitudinal, across the seam) against the
    contacts of the patch's middle dimer (A/B) with its lateral neighbours."""
    patch = shared_structure(PATCH)
    structure = gemmi.read_structure(str(patch))
    structure.remove_hydrogens()
    chains = {ch.name: np.array([[a.pos.x, a.pos.y, a.pos.z] for r in ch for a in r])
              for ch in structure[0]}
    dimers = [np.concatenate([chains[a], chains[b]]) for a, b in ("AB", "CD", "EF")]
    theirs = overlap_fraction(dimers, 0)
    alpha, beta = _dimer_parts(preset_template_path("microtubule"))
    params = species_parameters(
        FilamentSpecies(name="mt", preset="microtubule", protofilaments=protofilaments))
    built = _build(np.concatenate([alpha, beta]), params, protofilaments * 3)
    ours = max(overlap_fraction(built, protofilaments + q) for q in range(protofilaments))
    print(f"microtubule overlap fraction: built ({protofilaments} pf, worst of one ring incl. the "
          f"seam) {ours:.4f}, 3J6E patch (middle dimer) {theirs:.4f}")
    assert ours <= theirs


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def test_bad_filament_models_are_one_line_errors() -> None:
    model = shared_structure(ACTIN_MODEL)
    with pytest.raises(TomosimError, match=r"at least 2 subunits.*6BNO_A15.*has 1"):
        helix_template(str(model), chains=["A"])
    with pytest.raises(TomosimError, match=r"not one screw transform apart \(RMS residual"):
        helix_template(str(model), chains=["A", "B", "D", "E"])
    with pytest.raises(TomosimError, match=r"6BNO_A15.*has no chain Z"):
        helix_template(str(model), chains=["Z"])
    patch = shared_structure(PATCH)
    tubulin_decoration = FilamentSpecies(
        name="actin", preset="actin",
        decoration=DecorationConfig(source=str(patch), helix="auto"),
    )
    with pytest.raises(TomosimError, match="does not contain the bare subunit"):
        decoration_parameters(tubulin_decoration)


def test_config_refuses_negative_protofilaments_and_helix_without_source() -> None:
    with pytest.raises(TomosimError, match="protofilaments"):
        config_from_dict({"filaments": [{"name": "mt", "preset": "microtubule",
                                         "protofilaments": -13}]})
    with pytest.raises(TomosimError, match="helix: auto needs a source"):
        config_from_dict({"filaments": [{"name": "a", "preset": "actin", "helix": "auto"}]})
    # a negative start (left-handed user lattice) is valid
    config_from_dict({"filaments": [{"name": "t", "source": "x.pdb", "rise": 80.0, "twist": 0.0,
                                     "radius": 100.0, "protofilaments": 13, "start": -3}]})


def test_cofilactin_preset_offline_is_one_clear_line(monkeypatch) -> None:
    monkeypatch.setenv("TOMOSIM_OFFLINE", "1")
    species = FilamentSpecies(name="cof", preset="cofilactin")
    with pytest.raises(TomosimError) as error:
        species_parameters(species)
    message = str(error.value)
    assert "5YU8" in message and "\n" not in message
    # a cofilactin species with count 0 needs no entry: nothing is placed, nothing is fetched
    config = config_from_dict({"classes": ["cof"], "sample": {"shape": [16, 16, 16]},
                               "filaments": [{"name": "cof", "preset": "cofilactin"}]})
    phantom = assemble_phantom(phantom_recipe(config), {}, np.random.default_rng(0))
    assert len(phantom.placements) == 0


def test_fitted_helix_is_saved_in_the_resolved_config(run_cli, tmp_path) -> None:
    model = shared_structure(ACTIN_MODEL)
    config = tmp_path / "actin.yaml"
    config.write_text(
        "classes: [actin]\n"
        "sample: {shape: [24, 40, 64], pixel_size: 10.0}\n"
        "microscope: {tilt: {min_angle: -30, max_angle: 30, step: 30}}\n"
        f"filaments:\n  - {{name: actin, source: '{model}', helix: auto, count: 1,\n"
        "     length: [300, 320], arrangement: sheets}\n"
    )
    code, stdout, err = run_cli("simulate", config, "-o", tmp_path / "out")
    assert code == 0, err
    assert "helix fitted to" in stdout and "twist -166.65°, rise 28.11 Å" in stdout
    resolved = yaml.safe_load((tmp_path / "out" / "config.resolved.yaml").read_text())
    species = resolved["filaments"][0]
    assert species["helix"] == "auto"
    assert species["twist"] == pytest.approx(-166.648, abs=0.01)
    assert species["rise"] == pytest.approx(28.111, abs=0.01)
    assert species["radius"] == pytest.approx(15.806, abs=0.01)


def test_cli_refuses_a_one_subunit_helix_in_one_line(run_cli, tmp_path) -> None:
    model = shared_structure(ACTIN_MODEL)
    config = tmp_path / "bad.yaml"
    config.write_text(
        "classes: [actin]\n"
        "sample: {shape: [24, 40, 64], pixel_size: 10.0}\n"
        f"filaments:\n  - {{name: actin, source: '{model}', helix: auto, count: 1,\n"
        "     structure: {chains: [A]}, length: [300, 320], arrangement: sheets}\n"
    )
    out = tmp_path / "out"
    code, _, err = run_cli("simulate", config, "-o", out)
    assert code == 2
    assert "at least 2 subunits" in err and "6BNO_A15" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (out / "config.resolved.yaml").exists()


def test_cofilactin_preset_groups_chains_of_a_fetched_entry(tmp_path, monkeypatch) -> None:
    """The preset's path for a PDB entry (chains, no segments), offline from a local copy.

    The stand-in entry is the decorated part of the 18-mer rewritten with one chain per
    molecule (actins A-H, cofilins I-P, in shuffled order): the preset must pair each cofilin
    with its actin and find the same helix as the segment-based fit.
    """
    model = shared_structure(COFILACTIN_MODEL)
    _, structure = read_filament_model(str(model), segments=DECORATED)
    out = gemmi.Structure()
    new_model = gemmi.Model(1)
    names = iter("AIBJCKDLEMFNGOHP")
    chains: dict[str, gemmi.Chain] = {}
    for chain in structure[0]:
        for res in chain:
            segment = res.segment.strip()
            if segment not in chains:
                chains[segment] = gemmi.Chain(next(names))
            copy = res.clone()
            copy.segment = ""
            chains[segment].add_residue(copy)
    order = list(chains)
    for segment in order[::3] + order[1::3] + order[2::3]:  # not in helical order
        new_model.add_chain(chains[segment])
    out.add_model(new_model)
    out.setup_entities()
    (tmp_path / "5yu8.pdb").write_text(out.make_pdb_string())
    monkeypatch.setenv("TOMOSIM_STRUCTURES", str(tmp_path))
    monkeypatch.setenv("TOMOSIM_OFFLINE", "1")
    params = species_parameters(FilamentSpecies(name="cof", preset="cofilactin"))
    reference = helix_template(str(model), segments=DECORATED)
    assert params.twist == pytest.approx(reference.twist, abs=0.5)
    assert params.rise == pytest.approx(reference.rise, abs=0.3)
    assert params.radius == pytest.approx(reference.radius, abs=1.0)


def test_partial_decoration_uses_the_decorated_lattice_and_keeps_the_actin_in_line() -> None:
    model = shared_structure(COFILACTIN_MODEL)
    species = FilamentSpecies(
        name="actin", preset="actin", count=2, length=(1500.0, 2000.0), arrangement="sheets",
        filaments_per_sheet=2,
        decoration=DecorationConfig(source=str(model), helix="auto", label="cofilactin",
                                    structure={"segments": DECORATED}, fraction=0.5,
                                    mean_segment_subunits=10),
    )
    placed = place_filaments(
        species, shape=(40, 256, 256), pixel_size=10.0, rng=np.random.default_rng(2),
        class_ids={"background": 0, "actin": 1, "cofilactin": 2}, first_instance_id=1,
        first_filament_id=0,
    )
    bare, decorated = species_parameters(species), decoration_parameters(species)
    fitted = helix_template(str(model), segments=DECORATED)
    steps_bare, steps_decorated, steps_junction = [], [], []
    for filament in np.unique(placed.filament_id):
        rows = np.flatnonzero(placed.filament_id == filament)
        state = placed.template[rows] == 1
        assert state.any() and (~state).any()
        rot = placed.rotations[rows]
        relative = np.einsum("nji,njk->nik", rot[:-1], rot[1:])
        twist = np.degrees(np.arctan2(relative[:, 1, 0], relative[:, 0, 0]))
        both = state[1:] & state[:-1]
        np.testing.assert_allclose(twist[both], fitted.twist, atol=1e-6)
        np.testing.assert_allclose(twist[~both], bare.twist, atol=1e-6)
        # the actin core of every subunit (template frame: radius core_radius, azimuth 0)
        core = np.empty((len(rows), 3))
        for i, row in enumerate(rows):
            p = decorated if state[i] else bare
            a = np.radians(p.reference_azimuth)
            reference = np.array([p.radius * np.cos(a), p.radius * np.sin(a), p.reference_height])
            core_radius = fitted.core_radius if state[i] else bare.radius
            core[i] = placed.positions[row] + rot[i] @ (np.array([core_radius, 0, 0]) - reference)
        step = np.linalg.norm(np.diff(core, axis=0), axis=1)
        steps_bare += step[~state[1:] & ~state[:-1]].tolist()
        steps_decorated += step[both].tolist()
        steps_junction += step[state[1:] != state[:-1]].tolist()
    # consecutive actins (1-start helix) are ~ 2 r sin(twist/2) and one rise apart, also across
    # the junctions between bare and decorated runs
    expected = np.hypot(2 * bare.radius * np.sin(np.radians(bare.twist) / 2), bare.rise)
    np.testing.assert_allclose(steps_bare, expected, atol=0.01)
    assert np.allclose(steps_decorated, np.mean(steps_decorated), atol=0.01)
    assert abs(np.mean(steps_decorated) - expected) < 1.5
    assert np.all(np.abs(np.array(steps_junction) - expected) < 1.5)


def test_arp23_mother_filament_fits_as_f_actin() -> None:
    """The mother filament of the 7TPT branch junction (segments MA1-10 with nucleotides MN,
    Mg MM) is F-actin: its fit agrees with its centroid helix and the literature."""
    model = shared_structure("7TPT_seglabel.pdb.gz")
    segments = [f"{p}{i}" for p in ("MA", "MN", "MM") for i in range(1, 11)]
    template = helix_template(str(model), segments=segments)
    assert template.n_subunits == 10 and template.residual < 2.0
    twist, rise = centroid_helix(subunit_centroids(model, segments=segments[:10]))
    print(f"7TPT mother filament: fit {template.twist:.2f} deg / {template.rise:.2f} A, "
          f"centroids {twist:.2f} deg / {rise:.2f} A")
    assert template.twist == pytest.approx(twist, abs=2.0)
    assert template.rise == pytest.approx(rise, abs=1.0)
    assert template.twist == pytest.approx(-166.7, abs=1.0)
    assert template.rise == pytest.approx(27.5, abs=1.0)


def test_bare_decorated_junction_overlap_is_reported_and_bounded() -> None:
    """Across a bare (6BNO) / decorated (MD model) junction the subunits come from different
    models in different conformations, and no rigid motion clears their contact (a relief of
    the decorated subunit within 3°/2.5 Å leaves 17-31 atoms; shifting the junction step by up
    to ±6°/±2 Å leaves ≥ 30): a known limit (tomosim.filaments, Contacts). Reported for both
    junctions of a decorated run and bounded: at most 2.5 times the bare filament's own
    overlap (measured: 1.3x where a run starts, 2.1x after it ends)."""
    model = shared_structure(COFILACTIN_MODEL)
    species = FilamentSpecies(
        name="actin", preset="actin",
        decoration=DecorationConfig(source=str(model), helix="auto",
                                    structure={"segments": DECORATED}),
    )
    bare, decorated = species_parameters(species), decoration_parameters(species)
    bare_xyz = _atoms(preset_template_path("actin"))
    decorated_xyz = _atoms(decoration_template(species).path)
    states = np.array([False] * 6 + [True] * 6 + [False] * 6)
    path = straight_path(np.zeros(3), np.array([0.0, 0.0, 1.0]), 600.0)
    positions, rotations, is_decorated = _lattice_on_path(path, bare, decorated, states, 0.0)
    subunits = []
    for p, r, d in zip(positions, rotations, is_decorated, strict=True):
        xyz = decorated_xyz if d else bare_xyz
        subunits.append((xyz - xyz.mean(axis=0)) @ r.T + p)
    overlap = {i: overlap_fraction(subunits[i - 3:i + 4], 3) for i in range(3, 15)}
    print("overlap fraction along the run (0-5 bare | 6-11 decorated | 12-17 bare):",
          {i: round(v, 4) for i, v in overlap.items()})
    bare_own = overlap[3]
    assert overlap[8] <= 1e-3  # inside the decorated run: as its lattice (0 after relief)
    assert max(overlap.values()) <= 2.5 * bare_own


def test_template_cache_is_reused_and_rebuilt_when_removed() -> None:
    model = shared_structure(ACTIN_MODEL)
    first = helix_template(str(model))
    stamp = first.path.stat().st_mtime_ns
    _cached_template.cache_clear()  # a new process: read back from the cache folder
    second = helix_template(str(model))
    assert second.path == first.path and second.path.stat().st_mtime_ns == stamp
    assert (second.twist, second.rise, second.radius) == (first.twist, first.rise, first.radius)
    first.path.unlink()
    third = helix_template(str(model))
    assert third.path.is_file() and third.twist == pytest.approx(first.twist)
    # the shipped actin subunit is exactly this fit's output (scripts/derive_filament_templates.py)
    shipped = gzip.decompress(preset_template_path("actin").read_bytes())
    assert third.path.read_bytes() == shipped
