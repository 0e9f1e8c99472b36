"""Packing: protein placement without overlaps, against the occupancy grid.

Every placed object marks its voxels in a boolean *occupancy* grid (:mod:`tomosim.occupancy`);
:func:`place_proteins` tests each candidate against that grid with the voxel mask of the *rotated*
template (its envelope, dilated by ``min_gap``), so proteins never overlap each other, the
filaments or the membranes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tomosim.crowding import (
    BANK_SIZE,
    CANDIDATE_BLOCK,
    CLUSTER_BLOCK,
    first_fit_stream,
    mark_slot,
    mask_capacity,
    volume_fraction,
)
from tomosim.errors import TomosimError
from tomosim.occupancy import (
    ENVELOPE_FRACTION,
    EnvelopeShape,
    first_fit_kernel,
    mark_mask,
    rotated_mask,
    template_envelope,
)
from tomosim.orientations import sample_orientations
from tomosim.phantom import Placements, SpeciesReport
from tomosim.potential import Potential

ATTEMPTS_PER_ORIENTATION = 8
"""Random placement tries this many positions per drawn orientation before drawing a new one."""

GLOBAL_ATTEMPTS_PER_PARTICLE = 50
"""All species together stop after ``50 x (total requested) + 1000`` candidate positions."""

NUMBER_PER_A3_PER_NM = 6.02214076e23 * 1e-9 * 1e-27
"""Copies per Å³ at 1 nmol/L: Avogadro's number x 1e-9 mol/L x 1e-27 L/Å³."""


# --------------------------------------------------------------------------------------------
# Protein placement
# --------------------------------------------------------------------------------------------


def _ice_slab(
    shape: tuple[int, int, int], pixel_size: float, ice_thickness: float | None
) -> tuple[int, int]:
    """First and last z plane whose voxel centre lies inside the ice slab (centred on nz // 2)."""
    nz = shape[0]
    if ice_thickness is None:
        return 0, nz - 1
    half = 0.5 * ice_thickness / pixel_size
    lo = max(0, math.ceil(nz // 2 - half - 1e-9))
    hi = min(nz - 1, math.floor(nz // 2 + half + 1e-9))
    if hi < lo:
        raise TomosimError(f"sample.ice_thickness {ice_thickness} Å is thinner than one voxel")
    return lo, hi


def slab_planes(
    shape: tuple[int, int, int], pixel_size: float, ice_thickness: float | None
) -> tuple[int, int]:
    """First and last z plane whose voxel centre lies inside the ice slab (centred on nz // 2)."""
    return _ice_slab(shape, pixel_size, ice_thickness)


@dataclass(frozen=True)
class ProteinTarget:
    """How many copies of one protein species to place, and where.

    Attributes
    ----------
    name
        Species name, the key of its template.
    class_id
        Label class of its copies (0: background, e.g. a distractor).
    count, concentration_nm, volume_fraction
        The target, exactly one of them not None: a number of copies; a number concentration in
        nmol/L of the region; a fraction of the region's volume filled by envelopes.
    orientation
        ``"random"``, ``"fixed"`` or ``"in_plane"``
        (:func:`tomosim.orientations.sample_orientations`).
    region
        ``"anywhere"``, ``"inside"`` (only inside vesicles) or ``"outside"`` (never inside).
    """

    name: str
    class_id: int
    count: int | None = None
    concentration_nm: float | None = None
    volume_fraction: float | None = None
    orientation: str = "random"
    region: str = "anywhere"


@dataclass(frozen=True)
class PackingRules:
    """How proteins are packed.

    Attributes
    ----------
    placement
        ``"random"`` (largest species first, random positions) or ``"grid"``.
    grid_spacing
        Å between grid sites; None: the largest envelope diameter + ``min_gap``.
    min_gap
        Å kept free between the envelopes of two particles.
    clustering
        Probability in [0, 1] that a candidate position is drawn next to a placed particle.
    max_attempts
        Consecutive failed candidate positions before a species counts as saturated.
    species_per_phantom
        Place only this many of the species, drawn per phantom; None: all.
    """

    placement: str
    grid_spacing: float | None
    min_gap: float
    clustering: float
    max_attempts: int
    species_per_phantom: int | None = None


_REGION_CODES = {"anywhere": 0, "inside": 1, "outside": 2}
"""Region constraint codes of the :func:`first_fit_kernel` kernel."""


def _requested_counts(
    targets: Sequence[ProteinTarget],
    shapes: Mapping[str, EnvelopeShape],
    region_volume: Sequence[float],
) -> list[int]:
    """Copies per species, from its count, number concentration or volume fraction.

    ``count``; or number concentration x region volume; or volume fraction x region volume /
    envelope volume (rounded).
    """
    counts = []
    for target, region in zip(targets, region_volume, strict=True):
        if target.count is not None:
            counts.append(int(target.count))
        elif target.concentration_nm is not None:
            counts.append(int(round(target.concentration_nm * NUMBER_PER_A3_PER_NM * region)))
        elif target.volume_fraction is not None:
            counts.append(int(round(target.volume_fraction * region / shapes[target.name].volume)))
        else:
            raise TomosimError(f"proteins: species {target.name!r} has no count or concentration")
    return counts


class _Packer:
    """The state of one protein placement: occupancy, envelopes and the particles placed so far.

    Methods draw random numbers in a fixed order from ``rng``, so a seed gives one packing.
    """

    def __init__(
        self,
        targets: Sequence[ProteinTarget],
        templates: Mapping[str, Potential],
        rules: PackingRules,
        *,
        shape: tuple[int, int, int],
        pixel_size: float,
        label_threshold: float,
        ice_thickness: float | None,
        occupancy: np.ndarray,
        interior: np.ndarray | None,
    ) -> None:
        self.targets = list(targets)
        self.templates = templates
        self.rules = rules
        self.shape = shape
        self.pixel_size = pixel_size
        self.occupancy = occupancy
        self.constraint = [_REGION_CODES[t.region] for t in self.targets]
        if interior is None:  # no vesicles: nothing is inside, everything is outside
            interior = np.zeros(shape, bool) if 1 in self.constraint else None
            self.constraint = [c if c != 2 else 0 for c in self.constraint]
        self.interior = interior
        self.interior_arg = interior if interior is not None else np.zeros((1, 1, 1), bool)
        self.zlo, self.zhi = _ice_slab(shape, pixel_size, ice_thickness)
        self.gap = float(rules.min_gap)
        envelope_threshold = ENVELOPE_FRACTION * label_threshold
        self.shapes = {
            t.name: template_envelope(templates[t.name], envelope_threshold, self.gap)
            for t in self.targets
        }
        self.rows: list[tuple[np.ndarray, np.ndarray, int]] = []  # (Å x y z, rotation, species)
        self.placed = [0] * len(self.targets)
        self.placed_centres: list[np.ndarray] = []  # voxel (x, y, z), for clustering
        self.placed_radii: list[float] = []

    def requested(self) -> list[int]:
        """Copies per species; raises when their envelopes cannot fit in the free volume."""
        voxel = self.pixel_size**3
        shape, zlo, zhi = self.shape, self.zlo, self.zhi
        slab_volume = shape[1] * shape[2] * (zhi - zlo + 1) * voxel
        interior_volume = float(self.interior.sum()) * voxel if self.interior is not None else 0.0
        free_volume = slab_volume - float(self.occupancy[zlo : zhi + 1].sum()) * voxel
        region = [
            interior_volume if c == 1 else slab_volume - interior_volume if c == 2 else slab_volume
            for c in self.constraint
        ]
        self.region_volume = region
        requested = _requested_counts(self.targets, self.shapes, region)
        volumes = [
            n * self.shapes[t.name].volume for n, t in zip(requested, self.targets, strict=True)
        ]
        need = sum(volumes)
        if need > free_volume:
            raise TomosimError(
                f"proteins: the requested particles need {need / 1e3:.4g} nm³ of envelope but only "
                f"{free_volume / 1e3:.4g} nm³ of the sample is free; lower the counts"
            )
        need_inside = sum(v for v, c in zip(volumes, self.constraint, strict=False) if c == 1)
        if need_inside > 0 and need_inside > interior_volume:
            raise TomosimError(
                f"proteins: species inside vesicles need {need_inside / 1e3:.4g} nm³ but the "
                f"vesicles enclose {interior_volume / 1e3:.4g} nm³"
            )
        return requested

    def mask(
        self, index: int, rotation: np.ndarray, frac: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Voxel offsets and core flags of species ``index`` rotated, at sub-voxel offset."""
        name = self.targets[index].name
        shape = self.shapes[name]
        return rotated_mask(
            shape.distance, shape.centre, self.pixel_size / self.templates[name].pixel_size,
            rotation, frac, self.gap, (shape.radius + self.gap) / self.pixel_size + 1.0,
        )

    def first_fit(
        self, index: int, offsets: np.ndarray, core: np.ndarray, bases: np.ndarray
    ) -> int:
        """Index of the first of ``bases`` where the mask fits, or -1."""
        return int(
            first_fit_kernel(
                self.occupancy, self.interior_arg, offsets, core, bases, self.constraint[index],
                self.zlo, self.zhi,
            )
        )

    def accept(
        self, index: int, rotation: np.ndarray, frac: np.ndarray, base: np.ndarray,
        offsets: np.ndarray, core: np.ndarray,
    ) -> None:
        """Place a copy of species ``index``: mark its core voxels and record its row."""
        mark_mask(self.occupancy, offsets, core, base)
        self._record(index, rotation, frac, base)

    def _record(
        self, index: int, rotation: np.ndarray, frac: np.ndarray, base: np.ndarray
    ) -> None:
        """Record the row of a placed copy (its voxels are already marked)."""
        centre = base[::-1] + frac  # (x, y, z) voxels
        self.rows.append((centre * self.pixel_size, rotation, index))
        self.placed[index] += 1
        self.placed_centres.append(centre)
        self.placed_radii.append(self.shapes[self.targets[index].name].radius / self.pixel_size)

    def fill_grid(self, requested: Sequence[int], rng: np.random.Generator) -> None:
        """Grid placement: random species and orientation per chosen site of a centred grid."""
        largest = max((s.radius for s in self.shapes.values()), default=0.0)
        spacing = self.rules.grid_spacing or (2 * largest + self.gap)
        step = spacing / self.pixel_size
        axes = []
        for lo, hi in ((self.zlo, self.zhi), (0, self.shape[1] - 1), (0, self.shape[2] - 1)):
            count = max(1, int(math.floor((hi - lo + 1) / step)))
            axes.append(0.5 * (lo + hi) + (np.arange(count) - 0.5 * (count - 1)) * step)
        sites = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)  # z, y, x
        total = sum(requested)
        if total > len(sites):
            share = np.array(requested, float) / total * len(sites)
            allotted = np.floor(share).astype(int)
            for i in np.argsort(-(share - allotted), kind="stable")[: len(sites) - allotted.sum()]:
                allotted[i] += 1
        else:
            allotted = np.array(requested, int)
        kinds = rng.permutation(np.repeat(np.arange(len(self.targets)), allotted))
        chosen = np.sort(rng.choice(len(sites), size=kinds.size, replace=False))
        for site_index, kind in zip(chosen, kinds, strict=False):
            site = sites[site_index]
            base = np.floor(site + 0.5).astype(np.int64)
            frac = (site - base)[::-1]
            rotation = sample_orientations(1, self.targets[kind].orientation, rng)[0]
            offsets, core = self.mask(kind, rotation, frac)
            if self.first_fit(kind, offsets, core, base[None]) == 0:
                self.accept(kind, rotation, frac, base, offsets, core)

    def fill_random(self, requested: Sequence[int], rng: np.random.Generator) -> None:
        """Random placement, largest species first, until each target or its saturation."""
        order = sorted(
            range(len(self.targets)), key=lambda i: -self.shapes[self.targets[i].name].volume
        )
        budget = GLOBAL_ATTEMPTS_PER_PARTICLE * sum(requested) + 1000
        inside = 1 in self.constraint and self.interior is not None
        interior_index = (
            np.flatnonzero(self.interior) if inside and self.interior is not None else None
        )
        for index in order:
            if requested[index] > 0 and budget > 0:
                budget = self._place_stream(index, requested[index], budget, interior_index, rng)

    def _place_stream(
        self, index: int, need: int, budget: int, interior_index: np.ndarray | None,
        rng: np.random.Generator,
    ) -> int:
        """Random sequential placement of one species from a candidate stream (crowding).

        Candidates are drawn in blocks of ``CANDIDATE_BLOCK`` (positions uniform in the slab, or
        inside vesicles, or with probability ``clustering`` next to a placed particle), each with
        a slot of the species' bank of rotated masks; the compiled scan
        (:func:`tomosim.crowding.first_fit_stream`) returns the first that fits. The species stops
        after ``max_attempts`` consecutive misses. Returns the remaining budget.
        """
        target = self.targets[index]
        shape = self.shapes[target.name]
        capacity = mask_capacity((shape.radius + self.gap) / self.pixel_size + 1.0)
        k = min(BANK_SIZE, need)
        bank_offsets = np.zeros((k, capacity, 3), np.int32)
        bank_core = np.zeros((k, capacity), bool)
        bank_size = np.zeros(k, np.int64)
        bank_rotation = np.zeros((k, 3, 3))
        bank_frac = np.zeros((k, 3))
        z_from = np.zeros(k, np.int64)
        z_to = np.zeros(k, np.int64)
        pool: list[np.ndarray] = []

        def fill(slot: int) -> bool:
            for _ in range(64):  # orientations taller than the slab are drawn again
                if not pool:
                    pool.extend(sample_orientations(max(k, 64), target.orientation, rng)[::-1])
                rotation = pool.pop()
                frac = rng.random(3) - 0.5
                offsets, core = self.mask(index, rotation, frac)
                if not core.any():
                    continue
                core_z = offsets[core, 0]
                lo, hi = self.zlo - int(core_z.min()), self.zhi - int(core_z.max())
                if lo > hi:
                    continue
                m = offsets.shape[0]
                bank_offsets[slot, :m] = offsets
                bank_core[slot, :m] = core
                bank_size[slot] = m
                bank_rotation[slot], bank_frac[slot] = rotation, frac
                z_from[slot], z_to[slot] = lo, hi
                return True
            return False

        if not all(fill(slot) for slot in range(k)):
            return budget  # no orientation fits in the slab
        clustering = self.rules.clustering > 0
        max_attempts = self.rules.max_attempts
        placed = 0
        misses = 0  # consecutive, across blocks
        while placed < need and budget > 0 and misses < max_attempts:
            # with clustering, each block ends at its first hit, so the next block's candidates
            # can gather around the particle just placed too
            n = min(CLUSTER_BLOCK if clustering else CANDIDATE_BLOCK, budget)
            slots = rng.integers(0, k, n)
            if self.constraint[index] == 1:
                assert interior_index is not None
                flat = interior_index[rng.integers(0, interior_index.size, n)]
                bases = np.stack(np.unravel_index(flat, self.shape), axis=1).astype(np.int64)
            else:
                bases = np.stack(
                    [
                        rng.integers(z_from[slots], z_to[slots] + 1),
                        rng.integers(0, self.shape[1], n),
                        rng.integers(0, self.shape[2], n),
                    ],
                    axis=1,
                ).astype(np.int64)
            if clustering and self.placed_centres:
                own_radius = shape.radius / self.pixel_size
                near = np.flatnonzero(rng.random(n) < self.rules.clustering)
                partner = rng.integers(0, len(self.placed_centres), near.size)
                direction = rng.standard_normal((near.size, 3))
                direction /= np.linalg.norm(direction, axis=1, keepdims=True)
                reach = rng.uniform(0.7, 1.1, near.size)
                centres = np.asarray(self.placed_centres)[partner]
                contact = np.asarray(self.placed_radii)[partner] + own_radius + (
                    self.gap / self.pixel_size
                )
                goal = centres + direction * (contact * reach)[:, None] - bank_frac[slots[near]]
                bases[near] = np.floor(goal + 0.5)[:, ::-1].astype(np.int64)
            start = 0
            while start < n and placed < need:
                hit, missed = first_fit_stream(
                    self.occupancy, self.interior_arg, bank_offsets, bank_core, bank_size,
                    bases, slots, start, self.constraint[index], self.zlo, self.zhi,
                    max_attempts - misses,
                )
                misses += missed
                budget -= missed
                if hit < 0:
                    break
                slot = int(slots[hit])
                mark_slot(
                    self.occupancy, bank_offsets[slot], bank_core[slot], bank_size[slot],
                    bases[hit],
                )
                self._record(index, bank_rotation[slot].copy(), bank_frac[slot].copy(), bases[hit])
                placed += 1
                budget -= 1
                misses = 0
                start = n if clustering else hit + 1
                if placed < need and not fill(slot):
                    return budget
        return budget

    def _candidate_bases(
        self, index: int, m: int, z_from: int, z_to: int, frac: np.ndarray,
        interior_index: np.ndarray | None, rng: np.random.Generator,
    ) -> np.ndarray:
        """``(m, 3)`` candidate base voxels ``(z, y, x)``: uniform (in the region) or clustered."""
        if self.constraint[index] == 1:
            assert interior_index is not None
            flat = interior_index[rng.integers(0, interior_index.size, m)]
            bases = np.stack(np.unravel_index(flat, self.shape), axis=1).astype(np.int64)
        else:
            bases = np.stack(
                [
                    rng.integers(z_from, z_to + 1, m),
                    rng.integers(0, self.shape[1], m),
                    rng.integers(0, self.shape[2], m),
                ],
                axis=1,
            ).astype(np.int64)
        if self.rules.clustering > 0 and self.placed_centres:
            own_radius = self.shapes[self.targets[index].name].radius / self.pixel_size
            near = rng.random(m) < self.rules.clustering
            partner = rng.integers(0, len(self.placed_centres), m)
            direction = rng.standard_normal((m, 3))
            direction /= np.linalg.norm(direction, axis=1, keepdims=True)
            reach = rng.uniform(0.7, 1.1, m)
            for j in np.flatnonzero(near):
                contact = self.placed_radii[partner[j]] + own_radius + self.gap / self.pixel_size
                goal = self.placed_centres[partner[j]] + direction[j] * contact * reach[j]
                goal -= frac
                bases[j] = np.floor(goal + 0.5)[::-1]
        return bases

    def placements(self, first_instance_id: int) -> Placements:
        """One row per placed particle, in placement order, with consecutive instance ids."""
        n = len(self.rows)
        if n == 0:
            return Placements.empty()
        kinds = np.array([r[2] for r in self.rows], np.int64)
        classes = np.array([self.targets[k].class_id for k in kinds], np.int64)
        minus = np.full(n, -1, np.int64)
        return Placements(
            positions=np.array([r[0] for r in self.rows], np.float64),
            rotations=np.array([r[1] for r in self.rows], np.float64),
            template=kinds,
            template_names=tuple(t.name for t in self.targets),
            class_id=classes,
            instance_id=np.arange(first_instance_id, first_instance_id + n, dtype=np.int64),
            filament_id=minus,
            segment_id=minus.copy(),
            subunit_index=minus.copy(),
        )


def place_proteins(
    targets: Sequence[ProteinTarget],
    templates: Mapping[str, Potential],
    *,
    rules: PackingRules,
    shape: tuple[int, int, int],
    pixel_size: float,
    rng: np.random.Generator,
    label_threshold: float,
    ice_thickness: float | None = None,
    occupancy: np.ndarray | None = None,
    interior: np.ndarray | None = None,
    first_instance_id: int = 1,
) -> tuple[Placements, tuple[SpeciesReport, ...]]:
    """Place globular proteins without overlaps (random or grid), largest species first.

    Parameters
    ----------
    targets
        One per species: name, class id, count (or ``concentration_nm`` or ``volume_fraction``),
        orientation mode and region (anywhere, inside or outside vesicles).
    templates
        ``{species name: Potential}``.
    rules
        Placement mode, ``grid_spacing``, ``min_gap`` (Å), ``clustering``, ``max_attempts``.
    shape, pixel_size
        Output volume ``(z, y, x)`` voxels and Å per voxel.
    rng
        Random generator (positions, orientations, species of grid sites).
    label_threshold
        Volts; a template's placement envelope is where it exceeds
        ``ENVELOPE_FRACTION * label_threshold`` (so labelled voxels of two particles never meet).
    ice_thickness
        Å; particles lie entirely within the slab centred on z plane ``nz // 2`` (None: all of z).
        In x and y they may stick out of the volume.
    occupancy
        ``(z, y, x)`` bool of voxels already taken (filaments, membranes); updated in place.
    interior
        ``(z, y, x)`` bool of space enclosed by vesicles (for ``inside`` / ``outside`` species).
    first_instance_id
        Instance id of the first placed particle; the others follow.

    Returns
    -------
    placements, report
        One row per particle (filament/segment/subunit ids -1); requested and placed per species.

    Raises
    ------
    TomosimError
        A species without a template, or requested particles whose envelopes add up to more than
        the free volume (they could never fit).

    Warns
    -----
    UserWarning
        When a target is not reached: the species stops after a particle fails ``max_attempts``
        candidate positions (or all species after the global bound of
        ``GLOBAL_ATTEMPTS_PER_PARTICLE`` x requested + 1000 candidates); the warning names how many
        of each species were placed.

    Notes
    -----
    Random placement keeps, per species, a bank of rotated envelope masks (each a random
    orientation from ``target.orientation`` and sub-voxel offset, dilated by ``min_gap``) and scans
    a stream of candidates (uniform positions, or with probability ``clustering`` positions next to
    an already placed particle, each with a bank slot) in a compiled loop
    (:mod:`tomosim.crowding`); a slot whose mask was placed gets a new orientation. This reaches
    cellular densities (volume fractions of 0.35–0.40) in seconds.
    Grid placement puts particles on a regular grid of ``grid_spacing`` (default: the
    largest envelope diameter + ``min_gap``) centred in the volume, each site a random species and
    orientation, as in the seed method; sites that collide with filaments or membranes stay empty.
    """
    shape = (int(shape[0]), int(shape[1]), int(shape[2]))
    missing = [t.name for t in targets if t.name not in templates]
    if missing:
        raise TomosimError(f"proteins: no template for species {missing}")
    unknown = [t.region for t in targets if t.region not in _REGION_CODES]
    if unknown:
        raise TomosimError(f"proteins: unknown region(s) {unknown}; use {sorted(_REGION_CODES)}")
    packer = _Packer(
        targets, templates, rules, shape=shape, pixel_size=pixel_size,
        label_threshold=label_threshold, ice_thickness=ice_thickness,
        occupancy=occupancy if occupancy is not None else np.zeros(shape, bool),
        interior=interior,
    )
    requested = packer.requested()
    chosen = rules.species_per_phantom
    if chosen is not None and chosen < len(requested):  # a different species list per phantom
        keep = set(rng.choice(len(requested), size=chosen, replace=False).tolist())
        requested = [n if i in keep else 0 for i, n in enumerate(requested)]
    if rules.placement == "grid":
        packer.fill_grid(requested, rng)
    else:
        packer.fill_random(requested, rng)

    report = tuple(
        SpeciesReport(
            t.name, "protein", requested[i], packer.placed[i],
            volume_fraction(
                packer.placed[i], packer.shapes[t.name].volume, packer.region_volume[i]
            ),
        )
        for i, t in enumerate(packer.targets)
    )
    short = [r for r in report if r.placed < r.requested]
    if short:
        detail = ", ".join(f"{r.name} {r.placed} of {r.requested}" for r in short)
        warnings.warn(
            f"proteins: target not reached ({rules.placement} placement): placed {detail}; "
            "the sample is too crowded (lower the counts, min_gap or grid_spacing, or enlarge "
            "the volume)",
            stacklevel=2,
        )
    return packer.placements(first_instance_id), report
