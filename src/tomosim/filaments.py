"""Filaments: helical polymers (F-actin, cofilactin, microtubules) as rows of placed subunits.

Three modules: :mod:`tomosim.filament_lattice` (helical parameters of a species),
:mod:`tomosim.filament_paths` (the axes) and this one (the lattice on the paths, decoration,
placement, envelope labels).

A filament is a *path* (its axis, a polyline in sample coordinates with a frame at every point)
and a *helical lattice* wrapped around it. Every subunit becomes one row of
:class:`tomosim.phantom.Placements`, so the assembly renders filaments exactly like particles:
the subunit template actively rotated by ``R`` and moved to ``p`` (CONVENTIONS.md).

Conventions
-----------
Positions are ``(x, y, z)`` in Å in *sample coordinates* (from the centre of voxel ``[0, 0, 0]``;
``p`` lies at array index ``p[::-1] / pixel_size``). Angles are in degrees.

**Filament frame.** The filament axis is ``+z``, the direction the subunit template's ``+z``
points (for the ``microtubule`` preset the plus end, β-tubulin above α; for a ``helix: auto``
model the direction from its subunit ``i`` to ``i + 1``). The handedness of a helix does not
depend on which end ``+z`` names. A 1-start helix with rise ``Δz`` and twist ``Δφ`` has subunit
``k`` at azimuth ``φ_k = k·Δφ``, height ``z_k = k·Δz`` and radius ``r`` — position
``(r cos φ_k, r sin φ_k, z_k)`` — rotated by ``Rz(φ_k)``, so that neighbouring subunits are
related by the screw operation. A tube of ``N`` protofilaments with start number ``S`` has
protofilament ``q`` at azimuth ``q·360°/N`` and axial stagger ``q·S·δ/N`` (``δ`` =
``start_rise``, the length of the unit the start number counts); along each protofilament the
subunits repeat with the rise and twist. ``S < 0`` is a left-handed start helix: the neighbour at
negative azimuth is higher. When ``S·δ`` is not a multiple of the rise the lattice closes with a
*seam* between protofilaments ``N − 1`` and ``0`` (the microtubule B-lattice: a 3-start monomer
helix of αβ-dimers leaves a half-dimer offset, i.e. an A-lattice seam).

**Subunit template.** A subunit template is the subunit *as it sits at azimuth 0 of the
filament*: filament axis parallel to ``+z``; its reference point (the mean atom position,
CONVENTIONS.md) at radius ``HelicalParameters.radius`` from the axis, at azimuth
``reference_azimuth`` and height ``reference_height`` (both 0 except for a fitted decorated
subunit, whose azimuth and height are those of its core, e.g. its actin: see
:mod:`tomosim.filament_templates`). The presets ship such templates
(``tomosim/data/filaments``); ``helix: auto`` derives one from any multi-subunit filament model.

**Curved filaments.** Along a curved path the lattice coordinates ``(s, φ)`` (arc length, azimuth)
are mapped with a rotation-minimising (parallel-transported) frame ``(n, b, t)`` of the path: a
subunit sits at ``c(s) + r (cos φ n(s) + sin φ b(s))`` with rotation ``[n b t](s) · Rz(φ)``. The
frame does not spin about the tangent, so the twist comes from the lattice alone and a curved
filament stays a proper helix locally.

**Contacts.** Heavy atoms of neighbouring subunits closer than 2.2 Å count as overlapping. A
template repeated on its lattice overlaps its neighbours no more than its source model's subunits
do (6BNO actin 0.80 %, model 0.84 %; the cofilactin and microtubule templates 0 %, after the
rigid clash relief of :mod:`tomosim.clash_relief`). **Known limit: decoration junctions.** Where
a decorated run meets bare subunits, two models in different conformations touch (6BNO actin and
the cofilactin subunit), and the subunits at the junction overlap more: 1.05 % (bare, where a run
starts) and 1.6–1.7 % (the two bare subunits after a run ends, which the last cofilins reach)
against 0.80 % inside a bare stretch (``tests/test_helix.py``). No rigid motion clears it (a
relief of the decorated subunit within 3° and 2.5 Å leaves 17–31 atoms; shifting the junction
step by ±6°/±2 Å leaves ≥ 30): it needs junction-state subunits, which no shipped model has.

**Volume edges.** Filaments are *kept inside* the volume: every point of the axis stays at least
the filament's ``outer_radius`` from the outermost voxel centres, so no filament is cut at a face
and its label is never truncated. A filament whose minimum length cannot fit in its arrangement
raises :class:`~tomosim.errors.TomosimError`.

Presets (real subunits)
-----------------------
``actin``
    One subunit of F-actin from PDB 6BNO (via 6BNO_A15, 15 subunits; shipped, provenance in
    ``data/filaments/README.md``) on the lattice fitted to that model: twist −166.65°, rise
    28.11 Å per subunit (crossover 180°/(180° − 166.65°) × 28.11 Å = 37.9 nm), subunit centre
    15.81 Å from the axis, atoms to 45 Å (outer radius 47 Å). Literature: −166.7°, 27.5 Å
    (Fujii et al. 2010, *Nature* 467, 724; von der Ecken et al. 2015, *Nature* 519, 114); the
    CryoTomoSim actin file stores −166.15°, 27.3 Å.
``cofilactin``
    Cofilin-decorated actin from PDB 5YU8 (Tanaka et al. 2018, *Nat. Commun.* 9, 1860), fetched
    on first use and fitted with ``helix: auto`` (nothing ships; offline without a cached copy
    it is a one-line error). Literature: twist ≈ −162°, rise ≈ 27 Å (Galkin et al. 2011, *PNAS*
    108, 20568; Huehn et al. 2018, *PNAS* 115, 1478; crossover shortened to ~75 %, McGough et al.
    1997, *J. Cell Biol.* 138, 771); the CryoTomoSim file stores −162°, 24 Å. The cofilactin MD
    model of Hocky et al. (CofilinSevering, subunits 9–16) fits −161.8°, 27.7 Å.
``microtubule``
    αβ-tubulin dimers from PDB 5IJ0 (refined into a microtubule map; shipped), oriented as the
    middle dimer of the 3J6E lattice patch (three laterally adjacent protofilaments, whose
    lateral screw is −25.66°, +8.89 Å: left-handed). 13 protofilaments, left-handed 3-start
    B-lattice counted in monomers (``start = −3``, ``start_rise`` 40.9 Å) with one seam, 81.8 Å
    dimer repeat (GDP lattice ≈ 81.5–82 Å; Alushin et al. 2014, *Cell* 157, 1117; Zhang et al.
    2015, *Cell* 162, 849), no supertwist. Dimer centre radius 112.13 Å: the 3J6E patch's
    118.86 Å (14-pf) × sin(π/14)/sin(π/13) = 110.52 Å, which keeps the lateral contact distance
    (no gaps), then 1.6 Å more from the clash relief that clears 8 of 5IJ0's 6,781 heavy atoms
    from the lateral neighbours (0.88°, 1.62 Å rigid motion, :mod:`tomosim.clash_relief`; the
    patch's own side chains there do not clash). Lumen radius 81.0 Å, outer radius 143.0 Å
    (atoms ± 2 Å). ``protofilaments: 14`` rescales the radius the same way and reproduces the
    patch's subunit positions within 2 Å.
"""

from __future__ import annotations

import math

import numpy as np

from tomosim.config import FilamentSpecies
from tomosim.errors import TomosimError
from tomosim.filament_lattice import (
    PRESETS,
    HelicalParameters,
    decorated_template_name,
    decoration_parameters,
    decoration_template,
    filament_template_sources,
    filament_templates,
    fitted_helix_lines,
    helical_lattice,
    resolved_species,
    rotation_z,
    species_outer_radius,
    species_parameters,
    species_template,
)
from tomosim.filament_paths import (
    DEFAULT_MIN_GAP,
    MAX_ATTEMPTS,
    FilamentPath,
    filament_paths,
    straight_path,
    visit_balls,
)
from tomosim.phantom import Placements

__all__ = [
    "PRESETS",
    "FilamentPath",
    "HelicalParameters",
    "apply_envelope_labels",
    "decorated_template_name",
    "decoration_parameters",
    "decoration_states",
    "decoration_template",
    "filament_paths",
    "filament_template_sources",
    "filament_templates",
    "fitted_helix_lines",
    "helical_lattice",
    "place_filaments",
    "resolved_species",
    "species_outer_radius",
    "species_parameters",
    "species_template",
    "straight_path",
    "subunit_axis_points",
]


# --------------------------------------------------------------------------------------------
# Decoration and subunits
# --------------------------------------------------------------------------------------------


def decoration_states(
    n: int, *, fraction: float, mean_run: float, rng: np.random.Generator
) -> np.ndarray:
    """Draw the decorated (True) / bare (False) state of ``n`` consecutive rings of a filament.

    Runs alternate between decorated and bare, with geometric run lengths (≥ 1) of mean
    ``mean_run`` (decorated) and ``mean_run · (1 − fraction) / fraction`` (bare), so the
    expected decorated fraction is ``fraction``; the first state is decorated with probability
    ``fraction``. Geometric runs are memoryless, so every position along the filament has the
    same statistics. Where the bare mean would fall below one subunit it is one, and the fraction
    saturates at ``mean_run / (mean_run + 1)``.
    """
    if fraction <= 0.0 or n == 0:
        return np.zeros(n, dtype=bool)
    if fraction >= 1.0:
        return np.ones(n, dtype=bool)
    mean_bare = max(1.0, mean_run * (1.0 - fraction) / fraction)
    means = {True: max(1.0, mean_run), False: mean_bare}
    states = np.empty(n, dtype=bool)
    state = bool(rng.random() < fraction)
    position = 0
    while position < n:
        run = int(rng.geometric(1.0 / means[state]))
        states[position:position + run] = state
        position += run
        state = not state
    return states


def _lattice_on_path(
    path: FilamentPath,
    bare: HelicalParameters,
    decorated: HelicalParameters | None,
    states: np.ndarray,
    phase: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Subunits of a lattice wrapped around ``path``.

    Ring ``j`` is reached from ring ``j − 1`` with the decorated rise and twist when both rings
    are decorated, else the bare ones; each ring uses its own state's radius and reference-point
    offsets. Subunits whose arc
    length exceeds the path are dropped.

    Returns
    -------
    positions, rotations, ring_states
        ``(n, 3)``, ``(n, 3, 3)``, ``(n,)`` bool (decorated), in subunit order (ring-major).
    """
    n_rings = states.shape[0]
    both = np.zeros(n_rings, dtype=bool)
    both[1:] = states[1:] & states[:-1]
    rises = np.where(both, decorated.rise if decorated else bare.rise, bare.rise)
    twists = np.where(both, decorated.twist if decorated else bare.twist, bare.twist)
    rises[0], twists[0] = 0.0, 0.0
    ring_s = np.cumsum(rises)
    ring_phi = phase + np.cumsum(twists)
    chosen = decorated if decorated is not None else bare
    ring_radius = np.where(states, chosen.radius, bare.radius)
    ring_azimuth = np.where(states, chosen.reference_azimuth, bare.reference_azimuth)
    ring_height = np.where(states, chosen.reference_height, bare.reference_height)

    n_pf = bare.protofilaments
    pf = np.arange(n_pf)
    s = (ring_s[:, None] + pf[None, :] * bare.lateral_rise).ravel()
    phi = (ring_phi[:, None] + pf[None, :] * (360.0 / n_pf)).ravel()
    radius = np.repeat(ring_radius, n_pf)
    azimuth = np.repeat(ring_azimuth, n_pf)
    height = np.repeat(ring_height, n_pf)
    decorated_rows = np.repeat(states, n_pf)
    keep = s <= path.length + 1e-9
    s, phi, radius, decorated_rows = s[keep], phi[keep], radius[keep], decorated_rows[keep]
    azimuth, height = azimuth[keep], height[keep]

    centres, frames = path.at(s + height)
    a = np.deg2rad(phi + azimuth)
    radial = frames[:, :, 0] * np.cos(a)[:, None] + frames[:, :, 1] * np.sin(a)[:, None]
    positions = centres + radius[:, None] * radial
    rotations = frames @ rotation_z(phi)
    return positions, rotations, decorated_rows


def _class_id(label: str, class_ids: dict[str, int], species_name: str) -> int:
    if label == "background":
        return 0
    if label not in class_ids:
        raise TomosimError(
            f"filament {species_name!r}: label {label!r} has no class id "
            f"(known: {sorted(class_ids)})"
        )
    return int(class_ids[label])


def place_filaments(
    species: FilamentSpecies,
    *,
    shape: tuple[int, int, int],
    pixel_size: float,
    rng: np.random.Generator,
    class_ids: dict[str, int],
    first_instance_id: int,
    first_filament_id: int,
    occupancy: np.ndarray | None = None,
    min_gap: float = DEFAULT_MIN_GAP,
    max_attempts: int = MAX_ATTEMPTS,
) -> Placements:
    """Place the filaments of one species: one :class:`Placements` row per subunit.

    The axes come from :func:`filament_paths`; each filament gets a random azimuthal phase and,
    with ``species.decoration``, bare/decorated runs from :func:`decoration_states` (one state
    per ring: a subunit of a 1-start helix, a ring of ``N`` subunits of a tube). Each run of
    equal state is a *segment*: its own instance id (consecutive from ``first_instance_id``),
    class (the species label, or the decoration label) and template (0 = bare subunit named
    ``species.name``, 1 = decorated subunit, see :func:`filament_templates`). Filament ids are
    consecutive from ``first_filament_id``; ``segment_id`` counts segments within a filament and
    ``subunit_index`` subunits within a filament (ring-major order).

    Parameters
    ----------
    species
        The filament species (config section ``filaments[i]``).
    shape
        ``(z, y, x)`` volume shape, voxels.
    pixel_size
        Å per voxel.
    rng
        Random generator (the only source of randomness).
    class_ids
        Class name -> label id (``SimulationConfig.class_ids()``); ``"background"`` -> 0.
    first_instance_id
        Instance id of the first segment.
    first_filament_id
        Filament id of the first filament.
    occupancy
        Optional ``(z, y, x)`` bool array of voxels already taken, to avoid.
    min_gap
        Clearance between filament surfaces in random arrangements, Å.
    max_attempts
        Placement attempts per filament.

    Returns
    -------
    Placements
        Positions ``(x, y, z)`` Å in sample coordinates, rotations (template -> sample).

    Raises
    ------
    TomosimError
        Unknown label, impossible lattice or arrangement (see :func:`filament_paths`).
    """
    if species.count == 0:  # nothing to place: no template is read or fetched
        return Placements.empty()
    bare = species_parameters(species)
    decorated = decoration_parameters(species)
    templates = filament_templates(species)
    bare_class = _class_id(species.label or species.name, class_ids, species.name)
    decorated_class = (
        _class_id(species.decoration.label, class_ids, species.name)
        if decorated is not None and species.decoration is not None else 0
    )
    paths = filament_paths(
        species, shape=shape, pixel_size=pixel_size, rng=rng, occupancy=occupancy,
        min_gap=min_gap, max_attempts=max_attempts,
    )
    columns: dict[str, list[np.ndarray]] = {k: [] for k in (
        "positions", "rotations", "template", "class_id", "instance_id", "filament_id",
        "segment_id", "subunit_index")}
    next_instance = int(first_instance_id)
    smallest_rise = min(bare.rise, decorated.rise if decorated is not None else bare.rise)
    for number, path in enumerate(paths):
        n_rings = int(math.floor(path.length / smallest_rise)) + 1
        phase = float(rng.uniform(0.0, 360.0))
        if decorated is not None and species.decoration is not None:
            decoration = species.decoration
            states = decoration_states(
                n_rings, fraction=decoration.fraction, mean_run=decoration.mean_segment_subunits,
                rng=rng,
            )
        else:
            states = np.zeros(n_rings, dtype=bool)
        positions, rotations, is_decorated = _lattice_on_path(path, bare, decorated, states, phase)
        n = positions.shape[0]
        if n == 0:
            continue
        segment = np.concatenate([[0], np.cumsum(is_decorated[1:] != is_decorated[:-1])])
        columns["positions"].append(positions)
        columns["rotations"].append(rotations)
        columns["template"].append(is_decorated.astype(np.int64))
        columns["class_id"].append(np.where(is_decorated, decorated_class, bare_class))
        columns["instance_id"].append(next_instance + segment)
        columns["filament_id"].append(np.full(n, first_filament_id + number, dtype=np.int64))
        columns["segment_id"].append(segment)
        columns["subunit_index"].append(np.arange(n))
        next_instance += int(segment[-1]) + 1

    def stacked(key: str, empty_shape: tuple[int, ...], dtype: type) -> np.ndarray:
        if not columns[key]:
            return np.zeros(empty_shape, dtype=dtype)
        return np.concatenate(columns[key]).astype(dtype)

    return Placements(
        positions=stacked("positions", (0, 3), np.float64),
        rotations=stacked("rotations", (0, 3, 3), np.float64),
        template=stacked("template", (0,), np.int64),
        template_names=tuple(templates),
        class_id=stacked("class_id", (0,), np.int64),
        instance_id=stacked("instance_id", (0,), np.int64),
        filament_id=stacked("filament_id", (0,), np.int64),
        segment_id=stacked("segment_id", (0,), np.int64),
        subunit_index=stacked("subunit_index", (0,), np.int64),
    )


# --------------------------------------------------------------------------------------------
# Envelope labels
# --------------------------------------------------------------------------------------------


def subunit_axis_points(
    positions: np.ndarray, rotations: np.ndarray, params: HelicalParameters
) -> np.ndarray:
    """Filament-axis point of each placed subunit, ``(n, 3)`` ``(x, y, z)`` Å.

    The template's reference point sits at radius ``params.radius``, azimuth
    ``reference_azimuth`` and height ``reference_height`` from the axis point, in the template
    frame; the placement moves that offset with the subunit.
    """
    a = math.radians(params.reference_azimuth)
    offset = np.array([params.radius * math.cos(a), params.radius * math.sin(a),
                       params.reference_height])
    return np.asarray(positions) - np.asarray(rotations) @ offset


def apply_envelope_labels(
    labels: np.ndarray,
    instances: np.ndarray,
    placements: Placements,
    species: FilamentSpecies,
    *,
    pixel_size: float,
) -> None:
    """Label the tubes of ``species.label_rule`` ``envelope``/``filled`` around filament axes.

    Every segment (instance) of the species' ``placements`` labels the voxels whose centres lie
    within ``label_radius`` (default: the outer radius of its bare or decorated lattice) of its
    axis polyline (the axis points of its subunits, :func:`subunit_axis_points`, in subunit
    order, sampled every ``pixel_size / 2``; the tube has round caps at the end points), and for
    ``envelope`` farther than the lattice's ``inner_radius`` (a microtubule's lumen stays
    unlabelled). A tube voxel is claimed only when it is background or belongs to the same
    filament, so other objects (a protein in a lumen) keep their labels. Modifies ``labels`` and
    ``instances`` in place.
    """
    if species.label_rule == "potential" or len(placements) == 0:
        return
    bare = species_parameters(species)
    decorated = decoration_parameters(species)
    instance_filament: dict[int, int] = {}
    for inst, fil in zip(placements.instance_id.tolist(), placements.filament_id.tolist(),
                         strict=True):
        instance_filament[int(inst)] = int(fil)
    shape = labels.shape
    for instance in np.unique(placements.instance_id):
        rows = np.flatnonzero(placements.instance_id == instance)
        rows = rows[np.argsort(placements.subunit_index[rows], kind="stable")]
        is_decorated = bool(placements.template[rows[0]] == 1) and decorated is not None
        params = decorated if is_decorated and decorated is not None else bare
        points = subunit_axis_points(placements.positions[rows], placements.rotations[rows], params)
        outer = species.label_radius if species.label_radius is not None else params.envelope_radius
        inner = params.inner_radius if species.label_rule == "envelope" else 0.0
        inner = min(inner, outer)
        dense = _resample_polyline(points, pixel_size / 2.0) / pixel_size  # px, x y z
        lo = np.maximum(np.floor(dense.min(axis=0) - outer / pixel_size) - 1, 0).astype(int)
        hi = np.minimum(np.ceil(dense.max(axis=0) + outer / pixel_size) + 2,
                        np.array(shape[::-1])).astype(int)
        if np.any(hi <= lo):
            continue
        local = dense - lo
        box = (slice(lo[2], hi[2]), slice(lo[1], hi[1]), slice(lo[0], hi[0]))
        tube = np.zeros(tuple(int(v) for v in (hi - lo)[::-1]), dtype=bool)
        visit_balls(tube, local, outer / pixel_size, True)
        if inner > 0:
            lumen = np.zeros_like(tube)
            visit_balls(lumen, local, inner / pixel_size, True)
            tube &= ~lumen
        region_labels, region_instances = labels[box], instances[box]
        same = np.zeros(region_instances.shape, dtype=bool)
        filament = instance_filament[int(instance)]
        owners = np.unique(region_instances[tube])
        for owner in owners.tolist():
            if owner != 0 and instance_filament.get(int(owner)) == filament:
                same |= region_instances == owner
        claim = tube & ((region_labels == 0) | same)
        class_id = int(placements.class_id[rows[0]])
        region_labels[claim] = class_id
        region_instances[claim] = instance


def _resample_polyline(points: np.ndarray, spacing: float) -> np.ndarray:
    """Points along a polyline at most ``spacing`` apart (the nodes included)."""
    if len(points) < 2:
        return np.asarray(points, dtype=np.float64).reshape(-1, 3)
    out = [points[:1]]
    for a, b in zip(points[:-1], points[1:], strict=True):
        n = max(1, int(math.ceil(np.linalg.norm(b - a) / spacing)))
        t = np.arange(1, n + 1)[:, None] / n
        out.append(a + t * (b - a))
    return np.concatenate(out)
