"""Filaments: helical polymers (F-actin, cofilactin, microtubules) as rows of placed subunits.

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
    2015, *Cell* 162, 849), no supertwist; dimer centre radius 110.52 Å = the 3J6E patch's
    118.86 Å (14-pf) × sin(π/14)/sin(π/13), which keeps the lateral contact distance (no gaps);
    lumen radius 79.7 Å, outer radius 141.2 Å. ``protofilaments: 14`` rescales the radius the
    same way and reproduces the patch.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numba
import numpy as np
from scipy.optimize import brentq
from scipy.spatial import cKDTree

from tomosim.config import FilamentSpecies, StructureOptions
from tomosim.errors import TomosimError
from tomosim.filament_templates import (
    SubunitTemplate,
    cofilactin_template,
    core_identity,
    helix_template,
    preset_template_path,
    template_residues,
)
from tomosim.phantom import Placements
from tomosim.sources import resolve_source

DEFAULT_SUBUNIT_RADIUS = 30.0
"""Å added to ``radius`` to get the outer radius when a parameter set does not give one."""

DEFAULT_MIN_GAP = 10.0
"""Å of clearance kept between filament surfaces (outer radii) in ``random`` arrangements."""

MAX_ATTEMPTS = 500
"""Placement attempts per filament before it is given up (with a warning)."""

MAX_PATH_STEP = 50.0
"""Å, the longest segment of a curved filament's axis polyline."""


# --------------------------------------------------------------------------------------------
# Helical parameters
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HelicalParameters:
    """The helical lattice of a filament (see the module docstring for the frame).

    Attributes
    ----------
    rise
        Axial rise per subunit along the helix (1-start) or along a protofilament (tubes), Å.
    twist
        Rotation per subunit about the axis, degrees (right-handed about ``+z``; F-actin's
        genetic helix is left-handed: −166.7°).
    radius
        Distance of the subunit reference point from the filament axis, Å.
    protofilaments
        Protofilaments around the circumference; 1 for a 1-start helix.
    start
        Helix start number of a tube: going once around the circumference (towards increasing
        azimuth) rises by ``start · start_rise``. Negative = left-handed: the lateral neighbour
        at negative azimuth is higher (the microtubule's 3-start helix: ``-3``).
    start_rise
        Axial length of the unit that ``start`` counts, Å; ``None`` = ``rise``. For a microtubule
        of αβ-dimer subunits the 3-start helix counts monomers: ``start_rise = rise / 2``.
    outer_radius
        Radius of the cylinder that encloses all atoms, Å, used to keep filaments apart and
        inside the volume; ``None`` = ``radius + DEFAULT_SUBUNIT_RADIUS``.
    reference_azimuth
        Azimuth (degrees) of the template's reference point in the subunit's own frame: 0 when
        the reference point defines the subunit's azimuth (every preset but a fitted decorated
        subunit, whose azimuth is that of its core, e.g. its actin).
    reference_height
        Height (Å) of the template's reference point in the subunit's own frame (as above).
    inner_radius
        Radius of the empty lumen (no atom closer to the axis), Å; 0 for a solid filament.
    """

    rise: float
    twist: float
    radius: float
    protofilaments: int = 1
    start: int = 1
    start_rise: float | None = None
    outer_radius: float | None = None
    reference_azimuth: float = 0.0
    reference_height: float = 0.0
    inner_radius: float = 0.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.rise) and self.rise > 0):
            raise TomosimError(f"helical rise must be > 0 Å, got {self.rise}")
        if not np.isfinite(self.twist):
            raise TomosimError(f"helical twist must be finite, got {self.twist}")
        if not (np.isfinite(self.radius) and self.radius >= 0):
            raise TomosimError(f"helical radius must be >= 0 Å, got {self.radius}")
        if int(self.protofilaments) != self.protofilaments or self.protofilaments < 1:
            raise TomosimError(f"protofilaments must be an integer >= 1, got {self.protofilaments}")
        if int(self.start) != self.start:
            raise TomosimError(f"helix start number must be an integer, got {self.start}")
        if self.start_rise is not None and not self.start_rise > 0:
            raise TomosimError(f"start_rise must be > 0 Å, got {self.start_rise}")
        if self.outer_radius is not None and not self.outer_radius >= self.radius:
            raise TomosimError(
                f"outer_radius {self.outer_radius} Å is smaller than the subunit radius "
                f"{self.radius} Å"
            )

    @property
    def lateral_rise(self) -> float:
        """Axial stagger between neighbouring protofilaments, Å (0 for a 1-start helix)."""
        if self.protofilaments == 1:
            return 0.0
        unit = self.rise if self.start_rise is None else self.start_rise
        return self.start * unit / self.protofilaments

    @property
    def envelope_radius(self) -> float:
        """Outer radius of the filament, Å."""
        if self.outer_radius is not None:
            return float(self.outer_radius)
        return float(self.radius + DEFAULT_SUBUNIT_RADIUS)


PRESETS: dict[str, HelicalParameters] = {
    "actin": HelicalParameters(rise=28.111, twist=-166.648, radius=15.806, outer_radius=47.0),
    "microtubule": HelicalParameters(
        rise=81.8, twist=0.0, radius=110.52, protofilaments=13, start=-3, start_rise=40.9,
        outer_radius=141.2, inner_radius=79.7,
    ),
}
"""Helical parameters of the presets with shipped templates (values and sources in the module
docstring); they put the shipped subunit files exactly where their source models have them. The
``cofilactin`` preset has no fixed values: they are fitted from its filament model."""

LITERATURE: dict[str, tuple[float, float]] = {
    "actin": (27.5, -166.7),
    "cofilactin": (27.0, -162.0),
}
"""``(rise Å, twist °)`` per subunit from the literature, for comparison (module docstring)."""


def _rotation_z(angle_deg: np.ndarray) -> np.ndarray:
    """``(n, 3, 3)`` active rotations about ``+z`` by ``angle_deg``."""
    a = np.deg2rad(np.asarray(angle_deg, dtype=np.float64))
    c, s = np.cos(a), np.sin(a)
    out = np.zeros(a.shape + (3, 3))
    out[..., 0, 0] = c
    out[..., 0, 1] = -s
    out[..., 1, 0] = s
    out[..., 1, 1] = c
    out[..., 2, 2] = 1.0
    return out


def helical_lattice(
    n_subunits: int, params: HelicalParameters, *, phase: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Subunit positions and rotations of a straight filament in the filament frame.

    Subunit ``i`` sits on ring ``j = i // N`` and protofilament ``q = i % N`` (``N`` =
    ``params.protofilaments``; ``N = 1``: ``j = i``), at azimuth
    ``φ = phase + j·twist + q·360°/N`` and height ``z = j·rise + q·lateral_rise``, rotated by
    ``Rz(φ)``; its reference point lies at radius ``params.radius``, azimuth
    ``φ + reference_azimuth`` and height ``z + reference_height``.

    Parameters
    ----------
    n_subunits
        Number of subunits.
    params
        The lattice.
    phase
        Azimuth of subunit 0, degrees.

    Returns
    -------
    positions
        ``(n, 3)`` float64 ``(x, y, z)`` in Å, filament axis along ``+z`` through the origin.
    rotations
        ``(n, 3, 3)`` float64 active rotations (template frame -> filament frame).
    """
    if n_subunits < 0:
        raise TomosimError(f"n_subunits must be >= 0, got {n_subunits}")
    index = np.arange(int(n_subunits))
    n_pf = params.protofilaments
    ring, pf = index // n_pf, index % n_pf
    phi = phase + ring * params.twist + pf * (360.0 / n_pf)
    height = ring * params.rise + pf * params.lateral_rise + params.reference_height
    a = np.deg2rad(phi + params.reference_azimuth)
    positions = np.stack(
        [params.radius * np.cos(a), params.radius * np.sin(a), height.astype(np.float64)], axis=1
    )
    return positions.reshape(-1, 3), _rotation_z(phi).reshape(-1, 3, 3)


# --------------------------------------------------------------------------------------------
# Species -> parameters and templates
# --------------------------------------------------------------------------------------------


def _fitted_template(
    preset: str | None, source: str | None, helix: str | None, structure: StructureOptions
) -> SubunitTemplate | None:
    """Return the fitted template of a species or decoration (``helix: auto``, cofilactin)."""
    if helix == "auto" and source is not None:
        return helix_template(
            source, chains=structure.chains, segments=structure.segments,
            keep_ligands=structure.keep_ligands,
        )
    if source is None and preset == "cofilactin":
        return cofilactin_template()
    return None


def _template_parameters(template: SubunitTemplate) -> HelicalParameters:
    return HelicalParameters(
        rise=template.rise, twist=template.twist, radius=template.radius,
        outer_radius=template.outer_radius, reference_azimuth=template.reference_azimuth,
        reference_height=template.reference_height, inner_radius=template.inner_radius,
    )


def species_template(species: FilamentSpecies) -> SubunitTemplate | None:
    """Return the fitted subunit of a species (``helix: auto``, cofilactin preset) or None."""
    return _fitted_template(species.preset, species.source, species.helix, species.structure)


def decoration_template(species: FilamentSpecies) -> SubunitTemplate | None:
    """Return the fitted decorated subunit of a species, or None (none, or a plain source)."""
    decoration = species.decoration
    if decoration is None:
        return None
    return _fitted_template(
        decoration.preset, decoration.source, decoration.helix, decoration.structure
    )


def species_parameters(species: FilamentSpecies) -> HelicalParameters:
    """Return the bare lattice of a species: fitted helix or preset, explicit values applied.

    ``helix: auto`` (and the ``cofilactin`` preset) take rise, twist, radius and outer radius from
    the fit of the filament model. Changing a microtubule's ``protofilaments`` without a radius
    rescales the radius so that neighbouring protofilaments keep their lateral distance
    (``2 R sin(π/N)`` constant): lateral contacts stay as in the real lattice, with no gaps.
    """
    fitted = species_template(species)
    if fitted is not None:
        base: HelicalParameters | None = _template_parameters(fitted)
    else:
        base = PRESETS.get(species.preset) if species.preset is not None else None
    values = {}
    for key in ("rise", "twist", "radius", "protofilaments", "start"):
        given = getattr(species, key)
        if given is not None:
            values[key] = given
        elif base is not None:
            values[key] = getattr(base, key)
    missing = [k for k in ("rise", "twist", "radius") if k not in values]
    if missing:
        raise TomosimError(
            f"filament {species.name!r}: no preset or fitted helix, so give "
            f"{', '.join(missing)} explicitly"
        )
    start_rise = base.start_rise if base is not None else None
    outer = base.outer_radius if base is not None else None
    explicit_outer = species.outer_radius
    if base is not None:
        # Keep the preset's geometry proportional when the user changes a dimension.
        if start_rise is not None and "rise" in values and species.rise is not None:
            start_rise = start_rise * values["rise"] / base.rise
        if (species.radius is None and species.protofilaments is not None
                and base.protofilaments > 1 and species.protofilaments > 1):
            values["radius"] = base.radius * (
                math.sin(math.pi / base.protofilaments) / math.sin(math.pi / species.protofilaments)
            )
        if outer is not None:
            outer = outer + values["radius"] - base.radius
    if explicit_outer is not None:
        outer = explicit_outer
    inner = 0.0
    if base is not None and base.inner_radius > 0:
        inner = max(0.0, base.inner_radius + values["radius"] - base.radius)
    try:
        return HelicalParameters(
            start_rise=start_rise, outer_radius=outer,
            reference_azimuth=base.reference_azimuth if base is not None else 0.0,
            reference_height=base.reference_height if base is not None else 0.0,
            inner_radius=inner,
            **values,
        )
    except TomosimError as exc:
        raise TomosimError(f"filament {species.name!r}: {exc}") from None


def decoration_parameters(species: FilamentSpecies) -> HelicalParameters | None:
    """Return the decorated lattice of a species (``None`` without decoration).

    A fitted decorated subunit (``helix: auto`` source, or the cofilactin preset) gives rise,
    twist, radius, outer radius and the reference point's offsets; ``rise``, ``twist`` and
    ``radius`` of the decoration override them. Without either the bare lattice is used with
    those overrides. The lattice topology (protofilaments, start) is always the bare one.

    Raises
    ------
    TomosimError
        A fitted decorated subunit whose core is not the bare subunit's molecule (fewer than 80 %
        of the bare subunit's residues found with the same name in it).
    """
    decoration = species.decoration
    if decoration is None:
        return None
    bare = species_parameters(species)
    fits = decoration.helix == "auto" or (decoration.source is None and decoration.preset)
    if fits and bare.protofilaments != 1:
        raise TomosimError(
            f"filament {species.name!r}: a fitted decorated subunit (1-start helix, e.g. the "
            f"cofilactin preset) cannot decorate a {bare.protofilaments}-protofilament lattice"
        )
    fitted = decoration_template(species)
    base = _template_parameters(fitted) if fitted is not None else bare
    if fitted is not None:
        bare_source = filament_templates(species)[species.name]
        if not bare_source.startswith("builtin:"):
            bare_residues = template_residues(resolve_source(bare_source))
            identity = core_identity(bare_residues, fitted.core_residues)
            if identity < 0.8:
                raise TomosimError(
                    f"filament {species.name!r}: the decorated subunit from {fitted.source} does "
                    f"not contain the bare subunit {bare_source} (its core matches "
                    f"{100 * identity:.0f} % of the bare subunit's residues)"
                )
    radius = decoration.radius if decoration.radius is not None else base.radius
    try:
        return HelicalParameters(
            rise=decoration.rise if decoration.rise is not None else base.rise,
            twist=decoration.twist if decoration.twist is not None else base.twist,
            radius=radius,
            protofilaments=bare.protofilaments,
            start=bare.start,
            start_rise=bare.start_rise,
            outer_radius=(
                decoration.outer_radius if decoration.outer_radius is not None
                else max(base.envelope_radius, radius + (base.envelope_radius - base.radius))
            ),
            reference_azimuth=base.reference_azimuth,
            reference_height=base.reference_height,
        )
    except TomosimError as exc:
        raise TomosimError(f"filament {species.name!r} decoration: {exc}") from None


def decorated_template_name(species: FilamentSpecies) -> str:
    """Template name of a species' decorated subunit: ``"<name>_<decoration label>"``."""
    assert species.decoration is not None
    return f"{species.name}_{species.decoration.label}"


def filament_template_sources(species: FilamentSpecies) -> dict[str, tuple[str, StructureOptions]]:
    """Subunit templates of a species, ``{template name: (structure source, read options)}``.

    The bare subunit is named after the species; a decorated subunit (if any) is named
    :func:`decorated_template_name`. The order is the template index used in the placements
    (0 = bare, 1 = decorated). A preset without a source uses its shipped subunit
    (:data:`tomosim.filament_templates.PRESET_TEMPLATES`) or, for ``cofilactin``, the subunit
    fitted from its filament model; ``helix: auto`` uses the fitted subunit. Those subunit files
    are read without the species' chain/segment selection (it applied to the filament model).
    """

    def one(
        preset: str | None, source: str | None, helix: str | None, structure: StructureOptions,
        what: str,
    ) -> tuple[str, StructureOptions]:
        subunit_only = structure.model_copy(update={"chains": None, "segments": None,
                                                    "assembly": None})
        fitted = _fitted_template(preset, source, helix, structure)
        if fitted is not None:
            return str(fitted.path), subunit_only
        if source is not None:
            return source, structure
        if preset is None:
            raise TomosimError(f"filament {species.name!r}: {what} needs a preset or a source")
        return str(preset_template_path(preset)), subunit_only

    out = {species.name: one(species.preset, species.source, species.helix, species.structure,
                              "the filament")}
    decoration = species.decoration
    if decoration is not None:
        out[decorated_template_name(species)] = one(
            decoration.preset, decoration.source, decoration.helix, decoration.structure,
            "the decoration",
        )
    return out


def filament_templates(species: FilamentSpecies) -> dict[str, str]:
    """Subunit templates of a species, ``{template name: structure source}``.

    See :func:`filament_template_sources` (this drops the read options).
    """
    return {name: source for name, (source, _) in filament_template_sources(species).items()}


def species_outer_radius(species: FilamentSpecies) -> float:
    """Largest outer radius of a species' subunits (bare or decorated), Å."""
    radius = species_parameters(species).envelope_radius
    decorated = decoration_parameters(species)
    if decorated is not None:
        radius = max(radius, decorated.envelope_radius)
    return radius


def fitted_helix_lines(species: FilamentSpecies) -> list[str]:
    """Describe the fitted helices of a species in one line each (none for fixed lattices)."""
    out = []
    for what, fitted in (("", species_template(species)),
                         (" decoration", decoration_template(species))):
        if fitted is not None:
            out.append(
                f"filament {species.name!r}{what}: helix fitted to {fitted.source}: twist "
                f"{fitted.twist:.2f}°, rise {fitted.rise:.2f} Å, radius {fitted.radius:.2f} Å "
                f"(RMS residual {fitted.residual:.2f} Å over {fitted.n_subunits} subunits)"
            )
    return out


def resolved_species(species: FilamentSpecies) -> FilamentSpecies:
    """Return the species with its fitted helices written out (for ``config.resolved.yaml``).

    ``rise``, ``twist``, ``radius`` and ``outer_radius`` of a fitted filament (``helix: auto``,
    cofilactin preset) and of a fitted decoration are filled in with the fitted values (rounded
    to 0.001), unless given. Simulating the resolved species gives the same filaments.
    """
    update: dict[str, object] = {}
    if species_template(species) is not None:
        params = species_parameters(species)
        for key in ("rise", "twist", "radius", "outer_radius"):
            if getattr(species, key) is None:
                value = params.envelope_radius if key == "outer_radius" else getattr(params, key)
                update[key] = round(float(value), 3)
    decoration = species.decoration
    if decoration is not None and decoration_template(species) is not None:
        params_d = decoration_parameters(species)
        assert params_d is not None
        dec_update = {k: round(float(getattr(params_d, k)), 3) for k in ("rise", "twist", "radius")
                      if getattr(decoration, k) is None}
        if dec_update:
            update["decoration"] = decoration.model_copy(update=dec_update)
    return species.model_copy(update=update) if update else species


# --------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilamentPath:
    """A filament axis: a polyline with a rotation-minimising frame on each segment.

    Attributes
    ----------
    points
        ``(m + 1, 3)`` float64 node positions ``(x, y, z)`` in Å (sample coordinates).
    frames
        ``(m, 3, 3)`` float64 frame of each segment; columns ``(n, b, t)``: normal, binormal,
        tangent (``t`` points along the segment, ``n × b = t``). Consecutive frames differ by the
        smallest rotation taking one tangent to the next (discrete parallel transport).
    """

    points: np.ndarray
    frames: np.ndarray

    @property
    def arc_lengths(self) -> np.ndarray:
        """``(m + 1,)`` arc length at each node, Å (0 at the first)."""
        steps = np.linalg.norm(np.diff(self.points, axis=0), axis=1)
        return np.concatenate([[0.0], np.cumsum(steps)])

    @property
    def length(self) -> float:
        """Total arc length, Å."""
        return float(self.arc_lengths[-1])

    def at(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Axis points and frames at arc lengths ``s`` (Å, clipped to the path).

        Returns
        -------
        centres
            ``(n, 3)`` points on the axis.
        frames
            ``(n, 3, 3)`` frames of the segments they lie on.
        """
        s = np.clip(np.asarray(s, dtype=np.float64), 0.0, self.length)
        cumulative = self.arc_lengths
        segment = np.clip(np.searchsorted(cumulative, s, side="right") - 1, 0, len(self.frames) - 1)
        frames = self.frames[segment]
        centres = self.points[segment] + (s - cumulative[segment])[:, None] * frames[:, :, 2]
        return centres, frames

    def translated(self, shift: np.ndarray) -> FilamentPath:
        """Return the same path moved by ``shift`` (Å, x y z)."""
        return FilamentPath(self.points + np.asarray(shift, dtype=np.float64), self.frames)


def _perpendicular(direction: np.ndarray) -> np.ndarray:
    """Return a unit vector perpendicular to unit ``direction``."""
    helper = np.eye(3)[int(np.argmin(np.abs(direction)))]
    n = np.cross(direction, helper)
    return n / np.linalg.norm(n)


def straight_path(start: np.ndarray, direction: np.ndarray, length: float) -> FilamentPath:
    """Return a straight axis from ``start`` along ``direction`` (normalised), ``length`` Å."""
    t = np.asarray(direction, dtype=np.float64)
    t = t / np.linalg.norm(t)
    n = _perpendicular(t)
    frame = np.stack([n, np.cross(t, n), t], axis=1)
    start = np.asarray(start, dtype=np.float64)
    return FilamentPath(np.stack([start, start + length * t]), frame[None])


def _vmf_concentration(mean_cosine: float) -> float:
    """Concentration κ of the von Mises–Fisher distribution on S² with ``E[cos θ] = mean_cosine``.

    ``E[cos θ] = coth κ − 1/κ`` (the Langevin function); for κ > 20 it equals ``1 − 1/κ`` to
    double precision.
    """
    if mean_cosine >= 1.0 - 1.0 / 20.0:
        return 1.0 / (1.0 - mean_cosine)
    return float(brentq(lambda k: 1.0 / math.tanh(k) - 1.0 / k - mean_cosine, 1e-9, 25.0))


@numba.njit(cache=True, fastmath=True)
def _grow_chain(
    t0: np.ndarray, n0: np.ndarray, cosines: np.ndarray, azimuths: np.ndarray, step: float
) -> tuple[np.ndarray, np.ndarray]:
    """Polyline nodes and parallel-transported frames from per-node bending angles."""
    m = cosines.shape[0] + 1
    points = np.zeros((m + 1, 3))
    frames = np.zeros((m, 3, 3))
    t = t0.copy()
    n = n0.copy()
    for i in range(m):
        if i > 0:
            b = np.cross(t, n)
            w = cosines[i - 1]
            sw = math.sqrt(max(0.0, 1.0 - w * w))
            ca, sa = math.cos(azimuths[i - 1]), math.sin(azimuths[i - 1])
            t_new = w * t + sw * (ca * n + sa * b)
            t_new /= math.sqrt(t_new[0] ** 2 + t_new[1] ** 2 + t_new[2] ** 2)
            # smallest rotation taking t to t_new, applied to n (discrete parallel transport)
            axis = np.cross(t, t_new)
            s = math.sqrt(axis[0] ** 2 + axis[1] ** 2 + axis[2] ** 2)
            if s > 1e-12:
                axis /= s
                c = t[0] * t_new[0] + t[1] * t_new[1] + t[2] * t_new[2]
                n = n * c + np.cross(axis, n) * s + axis * (axis[0] * n[0] + axis[1] * n[1]
                                                            + axis[2] * n[2]) * (1.0 - c)
            n = n - (n[0] * t_new[0] + n[1] * t_new[1] + n[2] * t_new[2]) * t_new
            n /= math.sqrt(n[0] ** 2 + n[1] ** 2 + n[2] ** 2)
            t = t_new
        b = np.cross(t, n)
        for k in range(3):
            frames[i, k, 0] = n[k]
            frames[i, k, 1] = b[k]
            frames[i, k, 2] = t[k]
            points[i + 1, k] = points[i, k] + step * t[k]
    return points, frames


def path_step(length: float, persistence_length: float) -> float:
    """Segment length used for a worm-like chain: ≤ ``MAX_PATH_STEP`` and ≤ Lp / 100."""
    target = min(MAX_PATH_STEP, max(persistence_length / 100.0, 1.0))
    return length / max(1, math.ceil(length / target))


def worm_like_chain(
    length: float,
    persistence_length: float,
    *,
    rng: np.random.Generator,
    step: float | None = None,
) -> FilamentPath:
    """Grow a worm-like chain from the origin in a uniformly random direction.

    The tangent performs a random walk on the sphere: at every node it is deflected by an angle
    drawn from a von Mises–Fisher distribution with ``E[cos θ] = exp(-step / Lp)`` and a uniform
    azimuth, so the tangent correlation is exactly ``<t(s)·t(0)> = exp(-s / Lp)`` at the nodes
    (the 3D worm-like chain definition of the persistence length, Doi & Edwards 1986).

    Parameters
    ----------
    length
        Arc length, Å.
    persistence_length
        ``Lp``, Å.
    rng
        Random generator.
    step
        Segment length, Å; ``None`` = :func:`path_step`.

    Returns
    -------
    FilamentPath
        Nodes every ``step`` Å starting at the origin, with parallel-transported frames.
    """
    if not (length > 0 and persistence_length > 0):
        raise TomosimError(
            f"worm-like chain needs length > 0 and persistence_length > 0, got {length}, "
            f"{persistence_length}"
        )
    if step is None:
        step = path_step(length, persistence_length)
    n_segments = max(1, int(round(length / step)))
    step = length / n_segments
    t0 = rng.standard_normal(3)
    t0 /= np.linalg.norm(t0)
    n0 = _perpendicular(t0)
    kappa = _vmf_concentration(math.exp(-step / persistence_length))
    u = 1.0 - rng.random(n_segments - 1)  # (0, 1]
    cosines = 1.0 + np.log(u + (1.0 - u) * math.exp(-2.0 * kappa)) / kappa
    azimuths = rng.uniform(0.0, 2.0 * np.pi, n_segments - 1)
    points, frames = _grow_chain(t0, n0, np.clip(cosines, -1.0, 1.0), azimuths, step)
    return FilamentPath(points, frames)


# --------------------------------------------------------------------------------------------
# Geometry helpers: box, chords, distances, occupancy
# --------------------------------------------------------------------------------------------


def _usable_box(
    shape: tuple[int, int, int], pixel_size: float, margin: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` ``(x, y, z)`` Å where an axis may run: voxel-centre extent shrunk by margin."""
    extent = (np.asarray(shape[::-1], dtype=np.float64) - 1.0) * pixel_size
    return np.full(3, float(margin)), extent - margin


def _chord(
    point: np.ndarray, direction: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[float, float]:
    """Parameters ``(t_in, t_out)`` where the line ``point + t·direction`` crosses the box.

    Returns ``(nan, nan)`` when the line misses it (slab method).
    """
    t_in, t_out = -np.inf, np.inf
    for axis in range(3):
        d = direction[axis]
        if abs(d) < 1e-12:
            if point[axis] < lo[axis] - 1e-9 or point[axis] > hi[axis] + 1e-9:
                return math.nan, math.nan
            continue
        a, b = (lo[axis] - point[axis]) / d, (hi[axis] - point[axis]) / d
        t_in, t_out = max(t_in, min(a, b)), min(t_out, max(a, b))
    if t_out < t_in:
        return math.nan, math.nan
    return float(t_in), float(t_out)


@numba.njit(cache=True, fastmath=True)
def _segment_distance(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray, q1: np.ndarray) -> float:
    """Shortest distance between segments ``p0p1`` and ``q0q1`` (closest points by clamping)."""
    d1 = p1 - p0
    d2 = q1 - q0
    r = p0 - q0
    a = d1[0] * d1[0] + d1[1] * d1[1] + d1[2] * d1[2]
    e = d2[0] * d2[0] + d2[1] * d2[1] + d2[2] * d2[2]
    f = d2[0] * r[0] + d2[1] * r[1] + d2[2] * r[2]
    eps = 1e-12
    if a <= eps and e <= eps:
        s = 0.0
        t = 0.0
    elif a <= eps:
        s = 0.0
        t = min(max(f / e, 0.0), 1.0)
    else:
        c = d1[0] * r[0] + d1[1] * r[1] + d1[2] * r[2]
        if e <= eps:
            t = 0.0
            s = min(max(-c / a, 0.0), 1.0)
        else:
            b = d1[0] * d2[0] + d1[1] * d2[1] + d1[2] * d2[2]
            denom = a * e - b * b
            s = min(max((b * f - c * e) / denom, 0.0), 1.0) if denom > eps else 0.0
            t = (b * s + f) / e
            if t < 0.0:
                t = 0.0
                s = min(max(-c / a, 0.0), 1.0)
            elif t > 1.0:
                t = 1.0
                s = min(max((b - c) / a, 0.0), 1.0)
    dx = p0 + d1 * s - (q0 + d2 * t)
    return math.sqrt(dx[0] * dx[0] + dx[1] * dx[1] + dx[2] * dx[2])


@numba.njit(cache=True)
def _pairs_closer_than(
    starts_a: np.ndarray, ends_a: np.ndarray, starts_b: np.ndarray, ends_b: np.ndarray,
    pairs: np.ndarray, limit: float,
) -> bool:
    """Return True if any listed segment pair ``(i in a, j in b)`` is closer than ``limit``."""
    for k in range(pairs.shape[0]):
        i, j = pairs[k, 0], pairs[k, 1]
        if _segment_distance(starts_a[i], ends_a[i], starts_b[j], ends_b[j]) < limit:
            return True
    return False


class _SegmentIndex:
    """Segments of the filaments placed so far, for clearance checks against a new one."""

    def __init__(self) -> None:
        self.starts = np.zeros((0, 3))
        self.ends = np.zeros((0, 3))
        self.longest = 0.0
        self.tree: cKDTree | None = None

    def add(self, path: FilamentPath) -> None:
        self.starts = np.concatenate([self.starts, path.points[:-1]])
        self.ends = np.concatenate([self.ends, path.points[1:]])
        lengths = np.linalg.norm(self.ends - self.starts, axis=1)
        self.longest = float(lengths.max())
        self.tree = cKDTree(0.5 * (self.starts + self.ends))

    def clashes(self, path: FilamentPath, limit: float) -> bool:
        """Return True if ``path`` comes closer than ``limit`` to any stored segment."""
        if self.tree is None:
            return False
        starts, ends = path.points[:-1], path.points[1:]
        longest = max(self.longest, float(np.linalg.norm(ends - starts, axis=1).max()))
        tree = cKDTree(0.5 * (starts + ends))
        hits = tree.query_ball_tree(self.tree, r=limit + longest)
        pairs = [(i, j) for i, row in enumerate(hits) for j in row]
        if not pairs:
            return False
        pair_array = np.asarray(pairs, dtype=np.int64)
        return bool(_pairs_closer_than(starts, ends, self.starts, self.ends, pair_array, limit))


@numba.njit(cache=True)
def _span(centre: float, radius: float, size: int) -> tuple[int, int]:
    """Index range ``[lo, hi)`` of voxel centres within ``radius`` of ``centre`` on an axis."""
    return max(0, int(math.ceil(centre - radius))), min(size, int(math.floor(centre + radius)) + 1)


@numba.njit(cache=True)
def _visit_balls(mask: np.ndarray, centres_px: np.ndarray, radius_px: float, mark: bool) -> bool:
    """Visit voxel centres within ``radius_px`` of any centre (x, y, z px).

    Set them in ``mask`` if ``mark``, else return True at the first one already set in ``mask``.
    """
    nz, ny, nx = mask.shape
    r2 = radius_px * radius_px
    for k in range(centres_px.shape[0]):
        cx, cy, cz = centres_px[k, 0], centres_px[k, 1], centres_px[k, 2]
        z0, z1 = _span(cz, radius_px, nz)
        y0, y1 = _span(cy, radius_px, ny)
        x0, x1 = _span(cx, radius_px, nx)
        for z in range(z0, z1):
            for y in range(y0, y1):
                d2 = (z - cz) ** 2 + (y - cy) ** 2
                if d2 > r2:
                    continue
                for x in range(x0, x1):
                    if d2 + (x - cx) ** 2 <= r2:
                        if mark:
                            mask[z, y, x] = True
                        elif mask[z, y, x]:
                            return True
    return False


def _hits_occupancy(
    path: FilamentPath, occupancy: np.ndarray | None, pixel_size: float, radius: float
) -> bool:
    """Return True if the tube of ``radius`` Å around ``path`` has an occupied voxel centre."""
    if occupancy is None:
        return False
    spacing = min(pixel_size, radius / 2.0)
    n = max(2, int(math.ceil(path.length / spacing)) + 1)
    centres, _ = path.at(np.linspace(0.0, path.length, n))
    return bool(_visit_balls(occupancy, centres / pixel_size, radius / pixel_size, False))


def subunit_occupancy(
    positions: np.ndarray, *, shape: tuple[int, int, int], pixel_size: float, radius: float
) -> np.ndarray:
    """Boolean ``(z, y, x)`` mask of voxels within ``radius`` Å of any position (x, y, z Å).

    Use it to mark placed filament subunits (``radius`` ≈ subunit size) in the occupancy passed
    to the next species' :func:`place_filaments`.
    """
    mask = np.zeros(shape, dtype=bool)
    _visit_balls(mask, np.asarray(positions, dtype=np.float64).reshape(-1, 3) / pixel_size,
                 radius / pixel_size, True)
    return mask


# --------------------------------------------------------------------------------------------
# Arrangements
# --------------------------------------------------------------------------------------------


def _draw_length(
    rng: np.random.Generator, lengths: tuple[float, float], longest: float
) -> float:
    """Uniform length in ``[min, min(max, longest)]``."""
    low, high = float(lengths[0]), min(float(lengths[1]), longest)
    return float(rng.uniform(low, high)) if high > low else low


def _place_on_line(
    point: np.ndarray,
    direction: np.ndarray,
    t_range: tuple[float, float],
    species: FilamentSpecies,
    *, rng: np.random.Generator, occupancy: np.ndarray | None, pixel_size: float, radius: float,
    max_attempts: int,
) -> FilamentPath | None:
    """Place a straight filament on the line ``point + t·direction`` in ``t_range`` (or None)."""
    t_in, t_out = t_range
    length = _draw_length(rng, species.length, t_out - t_in)
    for _ in range(max_attempts):
        t0 = rng.uniform(t_in, t_out - length) if t_out - length > t_in else t_in
        path = straight_path(point + t0 * direction, direction, length)
        if not _hits_occupancy(path, occupancy, pixel_size, radius):
            return path
    return None


def _sheet_paths(
    species: FilamentSpecies, *, lo: np.ndarray, hi: np.ndarray, radius: float, gap: float,
    rng: np.random.Generator, occupancy: np.ndarray | None, pixel_size: float, max_attempts: int,
) -> tuple[list[FilamentPath], int]:
    """Straight filaments in xy planes stacked along z, each plane turned by the angle step."""
    count, per_sheet = species.count, species.filaments_per_sheet
    n_sheets = -(-count // per_sheet)
    z_span = hi[2] - lo[2]
    spacing_z = z_span / n_sheets
    if n_sheets > 1 and spacing_z < 2.0 * radius + gap:
        raise TomosimError(
            f"filament {species.name!r}: {n_sheets} sheets of filaments {2 * radius:.0f} Å thick "
            f"do not fit in the {z_span + 2 * radius:.0f} Å z extent (sheet spacing "
            f"{spacing_z:.0f} Å); lower count or raise filaments_per_sheet"
        )
    theta0 = float(rng.uniform(0.0, 360.0))
    min_length = float(species.length[0])
    paths: list[FilamentPath] = []
    failed = 0
    for sheet in range(n_sheets):
        z = lo[2] + (sheet + 0.5) * spacing_z
        theta = np.deg2rad(theta0 + sheet * species.sheet_angle_step)
        direction = np.array([np.cos(theta), np.sin(theta), 0.0])
        normal = np.array([-np.sin(theta), np.cos(theta), 0.0])
        centre = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, z])
        half = 0.5 * (abs((hi[0] - lo[0]) * normal[0]) + abs((hi[1] - lo[1]) * normal[1]))
        offsets = np.linspace(-half, half, 1001)
        chords = np.array(
            [np.diff(_chord(centre + o * normal, direction, lo, hi))[0] for o in offsets]
        )
        fits = np.nan_to_num(chords, nan=-1.0) >= min_length - 1e-6
        if not fits.any():
            longest = float(np.nanmax(chords)) if np.isfinite(chords).any() else 0.0
            raise TomosimError(
                f"filament {species.name!r}: min length {min_length:.0f} Å does not fit in a sheet "
                f"at in-plane angle {np.rad2deg(theta) % 360:.1f}° (longest {longest:.0f} Å)"
            )
        o_lo, o_hi = offsets[fits][0], offsets[fits][-1]
        k = min(per_sheet, count - sheet * per_sheet)
        spacing = (o_hi - o_lo) / k
        if k > 1 and spacing < 2.0 * radius + gap:
            most = max(1, int((o_hi - o_lo) // (2.0 * radius + gap)))
            raise TomosimError(
                f"filament {species.name!r}: {k} filaments of min length {min_length:.0f} Å do not "
                f"fit side by side in a sheet at {np.rad2deg(theta) % 360:.1f}° (at most {most})"
            )
        for j in range(k):
            point = centre + (o_lo + (j + 0.5) * spacing) * normal
            t_range = _chord(point, direction, lo, hi)
            path = _place_on_line(
                point, direction, t_range, species, rng=rng, occupancy=occupancy,
                pixel_size=pixel_size, radius=radius + gap, max_attempts=max_attempts,
            )
            if path is None:
                failed += 1
            else:
                paths.append(path)
    return paths, failed


def _hexagonal_offsets(count: int, spacing: float, half_height: float) -> np.ndarray:
    """``(count, 2)`` ``(u, w)`` positions of a hexagonal bundle cross-section, centre first.

    Lattice points ``spacing · (a + b/2, b·√3/2)`` with ``|w| ≤ half_height``, nearest to the
    bundle axis first (ties by angle).
    """
    rows = int(half_height // (spacing * np.sqrt(3) / 2))
    b = np.arange(-rows, rows + 1)
    a = np.arange(-count - rows, count + rows + 1)
    aa, bb = np.meshgrid(a, b, indexing="ij")
    u = spacing * (aa + bb / 2.0)
    w = spacing * bb * np.sqrt(3) / 2.0
    u, w = u.ravel(), w.ravel()
    order = np.lexsort((np.round(np.arctan2(w, u), 9), np.round(np.hypot(u, w), 6)))
    return np.stack([u[order], w[order]], axis=1)[:count]


def _bundle_paths(
    species: FilamentSpecies, *, lo: np.ndarray, hi: np.ndarray, radius: float,
    rng: np.random.Generator, occupancy: np.ndarray | None, pixel_size: float, max_attempts: int,
) -> tuple[list[FilamentPath], int]:
    """One bundle of parallel filaments in hexagonal packing, its axis in the xy plane."""
    spacing = species.bundle_spacing
    if spacing < 2.0 * radius:
        raise TomosimError(
            f"filament {species.name!r}: bundle_spacing {spacing:.0f} Å is smaller than the "
            f"filament diameter {2 * radius:.0f} Å"
        )
    if hi[2] < lo[2]:
        raise TomosimError(
            f"filament {species.name!r}: the volume is thinner than the filament diameter "
            f"{2 * radius:.0f} Å"
        )
    offsets = _hexagonal_offsets(species.count, spacing, (hi[2] - lo[2]) / 2.0)
    theta = float(rng.uniform(0.0, 2.0 * np.pi))
    direction = np.array([np.cos(theta), np.sin(theta), 0.0])
    across = np.array([-np.sin(theta), np.cos(theta), 0.0])
    min_length = float(species.length[0])
    z_low, z_high = lo[2] - offsets[:, 1].min(), hi[2] - offsets[:, 1].max()

    def lines(centre: np.ndarray) -> list[tuple[np.ndarray, tuple[float, float]]]:
        out = []
        for u, w in offsets:
            point = centre + u * across + np.array([0.0, 0.0, w])
            out.append((point, _chord(point, direction, lo, hi)))
        return out

    def fits(candidate: list[tuple[np.ndarray, tuple[float, float]]]) -> bool:
        return all(np.isfinite(t[0]) and t[1] - t[0] >= min_length - 1e-6 for _, t in candidate)

    middle = (lo + hi) / 2.0
    if not fits(lines(middle)):
        raise TomosimError(
            f"filament {species.name!r}: a bundle of {species.count} filaments of min length "
            f"{min_length:.0f} Å at spacing {spacing:.0f} Å does not fit in the volume"
        )
    chosen = lines(middle)
    for _ in range(max_attempts):
        centre = np.array([rng.uniform(lo[0], hi[0]), rng.uniform(lo[1], hi[1]),
                           rng.uniform(z_low, z_high)])
        candidate = lines(centre)
        if fits(candidate):
            chosen = candidate
            break
    paths: list[FilamentPath] = []
    failed = 0
    for point, t_range in chosen:
        path = _place_on_line(
            point, direction, t_range, species, rng=rng, occupancy=occupancy,
            pixel_size=pixel_size, radius=radius, max_attempts=max_attempts,
        )
        if path is None:
            failed += 1
        else:
            paths.append(path)
    return paths, failed


def _random_paths(
    species: FilamentSpecies, *, lo: np.ndarray, hi: np.ndarray, radius: float, gap: float,
    rng: np.random.Generator, occupancy: np.ndarray | None, pixel_size: float, max_attempts: int,
) -> tuple[list[FilamentPath], int]:
    """Worm-like chains at random positions and directions, kept apart and inside the volume."""
    lp = species.persistence_length
    min_length = float(species.length[0])
    # Root-mean-square end-to-end distance of a worm-like chain (Kratky & Porod 1949).
    rms = math.sqrt(2.0 * lp * min_length - 2.0 * lp * lp * (1.0 - math.exp(-min_length / lp)))
    diagonal = float(np.linalg.norm(np.maximum(hi - lo, 0.0)))
    if np.any(hi < lo) or rms > diagonal:
        raise TomosimError(
            f"filament {species.name!r}: min length {min_length:.0f} Å (end-to-end "
            f"≈ {rms:.0f} Å at persistence length {lp:.0f} Å) does not fit in the volume "
            f"(usable diagonal {diagonal:.0f} Å for outer radius {radius:.0f} Å)"
        )
    placed = _SegmentIndex()
    paths: list[FilamentPath] = []
    failed = 0
    for _ in range(species.count):
        length = _draw_length(rng, species.length, math.inf)
        for _attempt in range(max_attempts):
            chain = worm_like_chain(length, lp, rng=rng)
            low, high = lo - chain.points.min(axis=0), hi - chain.points.max(axis=0)
            if np.any(high < low):
                continue
            path = chain.translated(rng.uniform(low, high))
            if placed.clashes(path, 2.0 * radius + gap):
                continue
            if _hits_occupancy(path, occupancy, pixel_size, radius + gap):
                continue
            placed.add(path)
            paths.append(path)
            break
        else:
            failed += 1
    return paths, failed


def filament_paths(
    species: FilamentSpecies,
    *,
    shape: tuple[int, int, int],
    pixel_size: float,
    rng: np.random.Generator,
    occupancy: np.ndarray | None = None,
    min_gap: float = DEFAULT_MIN_GAP,
    max_attempts: int = MAX_ATTEMPTS,
) -> list[FilamentPath]:
    """Axes of ``species.count`` filaments in their arrangement.

    ``sheets``
        Straight filaments in xy planes stacked along z (planes evenly spaced through the usable
        z range, ``filaments_per_sheet`` parallel filaments per plane, evenly spaced across the
        part of the plane where the minimum length fits); plane ``i`` is turned in-plane by
        ``i · sheet_angle_step`` from a random first angle, so every direction relative to the
        tilt axis and the missing wedge is sampled.
    ``random``
        Worm-like chains (:func:`worm_like_chain`) at random positions and directions; a chain
        closer than ``2·outer_radius + min_gap`` (segment to segment) to another is redrawn.
    ``bundle``
        One bundle: parallel straight filaments on a hexagonal lattice of ``bundle_spacing``
        (centre to centre) across a bundle axis in the xy plane at a random angle; all filaments
        point the same way (a unipolar bundle).

    Filament lengths are uniform in ``species.length`` (capped by what fits). Every axis keeps
    ``outer_radius`` from the outermost voxel centres (kept inside, never clipped) and, with
    ``occupancy``, ``outer_radius + min_gap`` (random) or ``outer_radius`` (sheets, bundle) from
    occupied voxels. A filament not placed within ``max_attempts`` is skipped with a warning
    that says how many were placed.

    Parameters
    ----------
    species
        The filament species.
    shape
        ``(z, y, x)`` volume shape, voxels.
    pixel_size
        Å per voxel.
    rng
        Random generator.
    occupancy
        Optional ``(z, y, x)`` bool array of voxels already taken (vesicles, other filaments).
    min_gap
        Extra clearance between filament surfaces, Å.
    max_attempts
        Attempts per filament.

    Returns
    -------
    list of FilamentPath
        In sample coordinates.

    Raises
    ------
    TomosimError
        The minimum length does not fit in the arrangement; sheets or bundle spacing too tight.
    """
    if species.count == 0:
        return []
    if occupancy is not None and tuple(occupancy.shape) != tuple(shape):
        raise TomosimError(
            f"occupancy shape {occupancy.shape} differs from the volume {tuple(shape)}"
        )
    radius = species_outer_radius(species)
    lo, hi = _usable_box(shape, pixel_size, radius)
    if np.any(hi < lo):
        raise TomosimError(
            f"filament {species.name!r}: the volume {tuple(shape)} at {pixel_size} Å/px is smaller "
            f"than the filament diameter {2 * radius:.0f} Å"
        )
    if species.arrangement == "sheets":
        paths, failed = _sheet_paths(
            species, lo=lo, hi=hi, radius=radius, gap=min_gap, rng=rng, occupancy=occupancy,
            pixel_size=pixel_size, max_attempts=max_attempts,
        )
    elif species.arrangement == "bundle":
        paths, failed = _bundle_paths(
            species, lo=lo, hi=hi, radius=radius, rng=rng, occupancy=occupancy,
            pixel_size=pixel_size, max_attempts=max_attempts,
        )
    else:
        paths, failed = _random_paths(
            species, lo=lo, hi=hi, radius=radius, gap=min_gap, rng=rng, occupancy=occupancy,
            pixel_size=pixel_size, max_attempts=max_attempts,
        )
    if failed:
        warnings.warn(
            f"filament {species.name!r}: placed {len(paths)} of {species.count} filaments "
            f"({failed} found no free place in {max_attempts} attempts)",
            stacklevel=2,
        )
    return paths


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
    rotations = frames @ _rotation_z(phi)
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
        _visit_balls(tube, local, outer / pixel_size, True)
        if inner > 0:
            lumen = np.zeros_like(tube)
            _visit_balls(lumen, local, inner / pixel_size, True)
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
