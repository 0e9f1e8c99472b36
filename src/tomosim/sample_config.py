"""Config sections of the sample: potentials, proteins, filaments, vesicles and context.

Part of the simulation config (:mod:`tomosim.config`, which re-exports every name here); the
same rules hold: pydantic sections that forbid unknown keys, constrain every number and never
read files when built.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CONFIG_VERSION: Literal[1] = 1

PositiveLength = Annotated[float, Field(gt=0, le=1e6)]
Angle = Annotated[float, Field(ge=-360, le=360)]


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------
# Structures and potentials
# --------------------------------------------------------------------------------------------


class PotentialConfig(Section):
    """How structures become potentials (see :func:`tomosim.potential.atoms_to_potential`)."""

    solvent: Literal["none", "ice"] = "ice"
    hydrogens: bool = Field(True, description="add implicit hydrogens to heavy atoms")
    b_factor: float = Field(
        0.0, ge=0, le=5000, description="global B-factor added to every atom, Å²"
    )
    resolution: float | None = Field(
        None, gt=0, le=200, description="optional low-pass to this resolution, Å"
    )
    hydration_shell: bool = False
    ice_potential_v: float | None = Field(
        None, gt=0, le=20,
        description="mean potential of vitreous ice, V; None = documented default",
    )
    cache: bool = Field(True, description="reuse potentials from the on-disk cache")


class StructureOptions(Section):
    """How an atomic model is read (see :func:`tomosim.structures.read_structure`)."""

    assembly: str | None = Field(None, description="biological assembly id to expand, e.g. '1'")
    chains: list[str] | None = None
    segments: list[str] | None = Field(
        None, description="segment ids to keep (CHARMM-style models)"
    )
    keep_water: bool = False
    keep_ligands: bool = True
    keep_hydrogens: bool = False
    map_mass_kda: float | None = Field(
        None, gt=0, le=1e6, description="molecular mass for maps, kDa"
    )
    map_scale_v: float | None = Field(None, gt=0, le=1e6, description="map value -> volts factor")
    map_threshold: float | None = Field(None, description="map values below this are set to 0")


# --------------------------------------------------------------------------------------------
# The sample
# --------------------------------------------------------------------------------------------


class SampleConfig(Section):
    """The simulated volume and its ice slab."""

    shape: tuple[
        Annotated[int, Field(ge=8, le=4096)],
        Annotated[int, Field(ge=8, le=4096)],
        Annotated[int, Field(ge=8, le=4096)],
    ] = Field((200, 512, 512), description="(z, y, x) voxels")
    pixel_size: float = Field(10.0, gt=0, le=50, description="Å per voxel")
    ice_thickness: float | None = Field(
        None, gt=0, le=1e5, description="ice slab thickness, Å; None = the whole z extent"
    )
    label_threshold: float = Field(
        0.5, gt=0, le=1e3,
        description="an object labels voxels where its own potential exceeds this, V",
    )


OrientationMode = Literal["random", "fixed", "in_plane"]


class ProteinSpecies(Section):
    """One kind of globular particle.

    Exactly one of ``count``, ``concentration_nm`` and ``volume_fraction`` sets how many copies.
    ``label`` is the class its voxels are labelled with (default: ``name``); ``"background"``
    makes it a distractor that is placed but labelled 0.
    """

    name: str = Field(min_length=1)
    source: str = Field(
        min_length=1, description="file path or identifier: pdb:4V1W, builtin:ribosome"
    )
    label: str | None = None
    count: int | None = Field(None, ge=0, le=10_000_000)
    concentration_nm: float | None = Field(None, ge=0, le=1e7)
    volume_fraction: float | None = Field(None, ge=0, le=0.74)
    orientation: OrientationMode = "random"
    structure: StructureOptions = StructureOptions()
    in_membrane: bool = Field(
        False, description="set into membranes along their normal (needs membrane_axis and count)"
    )
    membrane_axis: tuple[float, float, float] | None = Field(
        None, description="transmembrane axis (x, y, z) in the structure frame, towards the normal"
    )
    membrane_offset: float = Field(
        0.0, ge=-1e3, le=1e3, description="Å along membrane_axis from the centre to the mid-plane"
    )

    @model_validator(mode="after")
    def _one_amount(self) -> ProteinSpecies:
        given = [x is not None for x in (self.count, self.concentration_nm, self.volume_fraction)]
        if sum(given) != 1:
            raise ValueError(
                f"species {self.name!r}: give exactly one of count, concentration_nm, "
                "volume_fraction"
            )
        if self.in_membrane:
            axis = self.membrane_axis
            if axis is None or not any(abs(v) > 0 for v in axis):
                raise ValueError(
                    f"species {self.name!r}: membrane proteins need membrane_axis, the "
                    "transmembrane axis (x, y, z) of the structure"
                )
            if self.count is None:
                raise ValueError(f"species {self.name!r}: give membrane proteins as a count")
        return self


class ProteinsConfig(Section):
    """Globular particles and how they are placed."""

    placement: Literal["random", "grid"] = "random"
    grid_spacing: float | None = Field(None, gt=0, le=1e5, description="grid placement spacing, Å")
    min_gap: float = Field(0.0, ge=0, le=1e4, description="minimum gap between particles, Å")
    clustering: float = Field(
        0.0, ge=0, le=1, description="0 = uniform; towards 1 particles gather in clusters"
    )
    max_attempts: int = Field(
        200, ge=1, le=10_000_000, description="consecutive failed candidates before a species stops"
    )
    species_per_phantom: int | None = Field(
        None, ge=1, le=10_000, description="place only this many species, drawn per phantom"
    )
    species: list[ProteinSpecies] = []

    @model_validator(mode="after")
    def _possible_fraction(self) -> ProteinsConfig:
        total = sum(s.volume_fraction or 0.0 for s in self.species)
        if total > MAX_VOLUME_FRACTION:
            raise ValueError(
                f"proteins: the species' volume fractions add up to {total:.3g}, more than "
                f"{MAX_VOLUME_FRACTION} (denser than close-packed spheres): impossible"
            )
        return self


MAX_VOLUME_FRACTION = 0.74
"""Densest packing of equal spheres (π/√18 ≈ 0.7405); no mixture of particles placed without
overlaps reaches it by random placement (about 0.38 for equal spheres, a little more for mixed
sizes)."""


class DecorationConfig(Section):
    """Partial decoration of a filament: segments switch between bare and decorated."""

    preset: Literal["cofilactin"] | None = "cofilactin"
    source: str | None = Field(
        None, description="decorated subunit structure or filament model; None = the preset's"
    )
    helix: Literal["auto"] | None = Field(
        None, description="auto: source is a multi-subunit model; fit its screw and use a subunit"
    )
    structure: StructureOptions = StructureOptions()
    label: str = "cofilactin"
    fraction: float = Field(0.5, ge=0, le=1, description="fraction of subunits decorated")
    mean_segment_subunits: float = Field(
        30.0, ge=1, le=1e5, description="mean decorated run length"
    )
    rise: float | None = Field(None, gt=0, le=1e3, description="decorated rise, Å; None = preset")
    twist: float | None = Field(None, ge=-360, le=360, description="decorated twist; None = preset")
    radius: float | None = Field(
        None, ge=0, le=1e4, description="decorated subunit centre radius, Å; None = preset"
    )
    outer_radius: float | None = Field(
        None, gt=0, le=1e4, description="decorated filament outer radius, Å; None = fitted/bare"
    )


class FilamentSpecies(Section):
    """One kind of helical filament (see :mod:`tomosim.filaments`).

    A preset (``actin``, ``cofilactin``, ``microtubule``) fills in the helical parameters and the
    built-in subunit; anything given explicitly overrides the preset.
    """

    name: str = Field(min_length=1)
    preset: Literal["actin", "cofilactin", "microtubule"] | None = None
    source: str | None = Field(
        None,
        description="subunit structure, or a whole-filament segment repeated with rise/twist of "
        "the whole segment and radius 0; None = the preset's template",
    )
    helix: Literal["auto"] | None = Field(
        None,
        description="auto: source is a multi-subunit filament model; fit the screw between its "
        "subunits (rise, twist, radius) and build the filament from one subunit",
    )
    structure: StructureOptions = StructureOptions()
    label: str | None = None
    rise: float | None = Field(None, gt=0, le=1e3, description="axial rise per subunit, Å")
    twist: float | None = Field(None, ge=-360, le=360, description="rotation per subunit, degrees")
    radius: float | None = Field(None, ge=0, le=1e4, description="subunit centre radius, Å")
    outer_radius: float | None = Field(
        None, gt=0, le=1e4, description="filament outer radius for overlap tests, Å; None = preset"
    )
    protofilaments: int | None = Field(None, ge=1, le=100)
    start: int | None = Field(
        None, ge=-100, le=100,
        description="helix start number of a tube; once around (+azimuth) rises start x start "
        "rise; negative = left-handed (the microtubule's -3)",
    )
    count: int = Field(0, ge=0, le=100_000)
    length: tuple[PositiveLength, PositiveLength] = Field(
        (1000.0, 5000.0), description="(min, max) filament length, Å"
    )
    arrangement: Literal["sheets", "random", "bundle"] = "random"
    persistence_length: float = Field(
        1.0e5, gt=0, le=1e9, description="bending stiffness for random filaments, Å"
    )
    sheet_angle_step: float = Field(30.0, ge=0, le=180, description="in-plane rotation per sheet")
    filaments_per_sheet: int = Field(4, ge=1, le=10_000)
    bundle_spacing: float = Field(120.0, gt=0, le=1e4, description="centre spacing in bundles, Å")
    decoration: DecorationConfig | None = None
    label_rule: Literal["potential", "envelope", "filled"] = Field(
        "potential",
        description="potential: voxels where the filament's own potential exceeds "
        "sample.label_threshold; envelope: a tube of label_radius around the filament axis "
        "(without the lumen of a tube); filled: the same tube including the lumen",
    )
    label_radius: float | None = Field(
        None, gt=0, le=1e4, description="envelope/filled label radius, Å; None = outer radius"
    )

    @model_validator(mode="after")
    def _lengths(self) -> FilamentSpecies:
        if self.length[0] > self.length[1]:
            raise ValueError(f"filament {self.name!r}: length (min, max) has min > max")
        if self.preset is None and self.source is None:
            raise ValueError(f"filament {self.name!r}: give a preset or a source")
        if self.helix == "auto" and self.source is None:
            raise ValueError(
                f"filament {self.name!r}: helix: auto needs a source (a filament model)"
            )
        if self.decoration is not None and self.decoration.helix == "auto" and (
            self.decoration.source is None
        ):
            raise ValueError(
                f"filament {self.name!r}: decoration helix: auto needs a decoration source"
            )
        return self


class VesiclesConfig(Section):
    """Lipid vesicles: spherical or ellipsoidal bilayers labelled as ``label``."""

    count: int = Field(0, ge=0, le=100_000)
    radius: tuple[PositiveLength, PositiveLength] = Field(
        (300.0, 800.0), description="(min, max) Å"
    )
    max_aspect: float = Field(1.0, ge=1, le=5, description="largest ellipsoid axis ratio")
    thickness: float = Field(40.0, gt=0, le=200, description="bilayer thickness, Å")
    label: str = "membrane"
    proteins_inside: list[str] = Field([], description="species placed only inside vesicles")
    proteins_outside: list[str] = Field([], description="species kept out of vesicles")
    sheets: int = Field(0, ge=0, le=50, description="membrane sheets crossing the volume")
    sheet_amplitude: float = Field(
        150.0, ge=0, le=1e4, description="height amplitude of a sheet's undulation, Å"
    )
    sheet_wavelength: float = Field(
        4000.0, gt=0, le=1e6, description="longest wavelength of a sheet's undulation, Å"
    )
    sheet_max_tilt: float = Field(
        20.0, ge=0, lt=90, description="largest tilt of a sheet from the xy plane, degrees"
    )
    deformation: float = Field(
        0.0, ge=0, le=1e4,
        description="largest radial displacement of free-form vesicles from the ellipsoid, Å "
        "(0: plain ellipsoids)",
    )
    deformation_bumps: int = Field(
        6, ge=1, le=64, description="number of smooth bumps of a deformed vesicle's radius"
    )
    deformation_width: float = Field(
        40.0, ge=10, le=180, description="angular width of a bump, degrees (larger: smoother)"
    )

    @model_validator(mode="after")
    def _deformation_keeps_radius_positive(self) -> VesiclesConfig:
        smallest = self.radius[0] / self.max_aspect - self.thickness / 2.0
        if self.deformation > 0 and not self.deformation < smallest:
            raise ValueError(
                f"vesicles.deformation {self.deformation} Å must be below radius_min / "
                f"max_aspect - thickness / 2 = {smallest:.4g} Å (the radius would reach zero)"
            )
        return self


# --------------------------------------------------------------------------------------------
# Sample context (see tomosim.sample_context)
# --------------------------------------------------------------------------------------------


class SlabConfig(Section):
    """The ice layer or lamella: uneven, rough, curtained surfaces with vacuum outside."""

    enabled: bool = False
    thickness: float | None = Field(
        None, gt=0, le=1e5, description="mean thickness, Å; None = sample.ice_thickness or "
        "80 % of the z extent"
    )
    thickness_gradient: float = Field(
        0.0, ge=-1e4, le=1e4, description="thickness change per µm along a random direction, Å"
    )
    roughness: float = Field(0.0, ge=0, le=1e3, description="surface height s.d., Å")
    roughness_length: float = Field(
        500.0, gt=0, le=1e5, description="correlation length of the roughness, Å"
    )
    curtain_amplitude: float = Field(0.0, ge=0, le=1e3, description="milling curtain depth, Å")
    curtain_period: float = Field(400.0, gt=0, le=1e5, description="mean curtain spacing, Å")


class CarbonConfig(Section):
    """An amorphous carbon film under the slab beyond a straight edge."""

    enabled: bool = False
    thickness: float = Field(150.0, gt=0, le=5000, description="film thickness, Å")
    texture: float = Field(0.3, ge=0, le=2, description="relative grain of the film potential")


class FiducialsConfig(Section):
    """Gold beads: their own class and particle rows."""

    count: int = Field(0, ge=0, le=100_000)
    radius: float = Field(50.0, gt=0, le=2000, description="bead radius, Å")
    label: str = Field("gold", min_length=1)


class ContaminationConfig(Section):
    """Crystalline ice lumps on the slab surfaces."""

    count: int = Field(0, ge=0, le=10_000)
    size: tuple[PositiveLength, PositiveLength] = Field(
        (150.0, 500.0), description="(min, max) lump diameter, Å"
    )


class ContextConfig(Section):
    """What surrounds the molecules: slab, carbon, fiducials, contamination (all off by default)."""

    slab: SlabConfig = SlabConfig()
    carbon: CarbonConfig = CarbonConfig()
    fiducials: FiducialsConfig = FiducialsConfig()
    contamination: ContaminationConfig = ContaminationConfig()


