"""Filament lattices: helical parameters of a species and the subunit positions they give.

A helical lattice (rise, twist, radius; protofilaments and start number for tubes) places
subunit ``k`` of a 1-start helix at azimuth ``k·Δφ``, height ``k·Δz`` and radius ``r``, rotated
by ``Rz(φ_k)``; the conventions (filament frame, seams, subunit templates) are those of
:mod:`tomosim.filaments`. This module turns a filament species (preset, explicit parameters or
a ``helix: auto`` model, :mod:`tomosim.filament_templates`) into :class:`HelicalParameters`,
names its subunit templates, and gives its outer radius.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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
from tomosim.helix import rotation_z
from tomosim.sources import resolve_source

DEFAULT_SUBUNIT_RADIUS = 30.0
"""Å added to ``radius`` to get the outer radius when a parameter set does not give one."""


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
        rise=81.8, twist=0.0, radius=112.129, protofilaments=13, start=-3, start_rise=40.9,
        outer_radius=143.0, inner_radius=81.0,
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
    return positions.reshape(-1, 3), rotation_z(phi).reshape(-1, 3, 3)


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
                f"(RMS residual {fitted.residual:.2f} Å over {fitted.n_subunits} subunits); "
                f"atoms within 2.2 Å of a neighbour {100 * fitted.overlap:.2f} % "
                f"(model {100 * fitted.source_overlap:.2f} %)"
                + (f" after clash relief by {fitted.relief_deg:.2f}° and "
                   f"{fitted.relief_shift:.2f} Å" if fitted.relief_deg or fitted.relief_shift
                   else "")
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
