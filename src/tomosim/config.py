"""The simulation configuration: one YAML file, validated by pydantic.

Only user-facing configuration lives here. The models never hold big arrays and never read files
when built; the physics functions take plain numbers, not these models. Every section forbids
unknown keys and constrains every number. Units follow CONVENTIONS.md: Å, degrees, and the unit in
the name where it is ambiguous (``voltage_kv``, ``cs_mm``, ``defocus_um``, ``dose_e_per_a2``).

Loading: :func:`load_config` reads YAML, applies ``--set section.key=value`` overrides and the
seed, and validates. :func:`dump_config` writes the fully resolved config (every default filled
in) that is saved next to every output as ``config.resolved.yaml``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tomosim.errors import TomosimError
from tomosim.microscope.ctf import Optics

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


# --------------------------------------------------------------------------------------------
# The microscope
# --------------------------------------------------------------------------------------------


class TiltConfig(Section):
    """Tilt scheme and its errors."""

    min_angle: float = Field(-60.0, gt=-90, lt=90, description="degrees; ±90 would be edge-on")
    max_angle: float = Field(60.0, gt=-90, lt=90, description="degrees; ±90 would be edge-on")
    step: float = Field(2.0, gt=0, le=90)
    order: Literal["unidirectional", "bidirectional", "dose_symmetric"] = "dose_symmetric"
    group_size: int = Field(2, ge=1, le=100, description="dose-symmetric group size (Hagen)")
    start_angle: float = Field(
        0.0, ge=-90, le=90, description="first tilt of bidirectional and dose-symmetric orders"
    )
    tilt_axis_angle: float = Field(0.0, ge=-180, le=180)
    shift_error: float = Field(0.0, ge=0, le=1e4, description="per-tilt shift s.d., Å")
    rotation_error: float = Field(0.0, ge=0, le=45, description="per-tilt in-plane rotation s.d.")
    angle_error: float = Field(0.0, ge=0, le=10, description="per-tilt tilt-angle s.d., degrees")

    @model_validator(mode="after")
    def _range(self) -> TiltConfig:
        if self.min_angle > self.max_angle:
            raise ValueError("tilt min_angle is larger than max_angle")
        return self


class OpticsConfig(Section):
    """Lens and CTF, CTFFIND convention (defocus positive = underfocus)."""

    voltage_kv: float = Field(Optics.voltage_kv, gt=0, le=3000)
    cs_mm: float = Field(Optics.cs_mm, ge=0, le=20)
    amplitude_contrast: float = Field(Optics.amplitude_contrast, ge=0, lt=1)
    defocus_um: float = Field(3.0, ge=-20, le=50)
    astigmatism_um: float = Field(0.0, ge=0, le=10, description="defocus_u - defocus_v, µm")
    astigmatism_angle: float = Field(0.0, ge=-180, le=180)
    phase_shift: float = Field(0.0, ge=-180, le=180, description="phase plate shift, degrees")
    defocus_jitter_um: float = Field(0.0, ge=0, le=10, description="per-tilt defocus s.d., µm")
    defocus_gradient: bool = Field(True, description="defocus varies across tilted images")
    depth_defocus: bool = Field(False, description="defocus varies through the sample thickness")
    b_factor: float = Field(0.0, ge=0, le=1e4, description="CTF envelope B-factor, Å²")
    source_spread_mrad: float = Field(0.0, ge=0, le=10, description="spatial coherence envelope")
    energy_spread_ev: float = Field(0.0, ge=0, le=10, description="temporal coherence envelope")
    chromatic_aberration_mm: float = Field(Optics.chromatic_aberration_mm, ge=0, le=20)
    padding: float = Field(0.25, ge=0, le=2, description="fractional padding against wrap-around")


class DoseConfig(Section):
    """Electron dose, radiation damage and inelastic scattering."""

    total_dose_e_per_a2: float = Field(100.0, gt=0, le=1e4)
    weighting: Literal["uniform", "cosine"] = "uniform"
    exposure_filter: bool = True
    energy_filter: bool = True
    inelastic_mean_free_path: float = Field(3500.0, gt=0, le=1e6, description="Å")


class DetectorConfig(Section):
    """Electron counting detector."""

    preset: Literal["ideal", "k3", "falcon4"] = "k3"
    dqe: float | None = Field(None, gt=0, le=1, description="DQE at zero frequency; None = preset")
    mtf_falloff: float | None = Field(None, ge=0, le=10, description="None = preset")
    read_noise: float = Field(0.0, ge=0, le=1e3, description="Gaussian read noise, electrons")
    noise: bool = Field(True, description="Poisson shot noise")
    write_noise_free: bool = False
    write_half_sets: bool = Field(False, description="odd/even half-dose series and tomograms")
    binning: int = Field(
        1,
        ge=1,
        le=16,
        description="Fourier binning from the physical detector pixel (sample.pixel_size / "
        "binning) to the simulation pixel; 1 = the simulation pixel is the detector pixel",
    )


class AcquisitionConfig(Section):
    """Acquisition imperfections left after motion correction, alignment and CTF estimation.

    ``profile`` gives every size (see :mod:`tomosim.microscope.acquisition`); a field set here
    overrides the profile's value. They add to the independent per-tilt errors of ``tilt``.
    """

    profile: Literal["realistic", "ideal"] = "realistic"
    residual_shift: float | None = Field(
        None, ge=0, le=1e3, description="residual alignment shift s.d. per axis, Å"
    )
    shift_correlation: float | None = Field(
        None, ge=0, lt=1, description="correlation of consecutive exposures' residual errors"
    )
    residual_rotation: float | None = Field(
        None, ge=0, le=10, description="residual in-plane rotation s.d., degrees"
    )
    tilt_axis_error: float | None = Field(
        None, ge=0, le=10, description="s.d. of the constant tilt-axis angle error, degrees"
    )
    tilt_offset: float | None = Field(
        None, ge=0, le=10, description="s.d. of the constant tilt-angle offset, degrees"
    )
    motion_blur: float | None = Field(
        None, ge=0, le=1e3, description="mean residual beam-induced motion per exposure, Å"
    )
    defocus_mismatch: float | None = Field(
        None, ge=0, le=1e5, description="s.d. of assumed minus true defocus per tilt, Å"
    )


class MicroscopeConfig(Section):
    """The microscope: tilt scheme, optics, dose and detector."""

    tilt: TiltConfig = TiltConfig()
    optics: OpticsConfig = OpticsConfig()
    dose: DoseConfig = DoseConfig()
    detector: DetectorConfig = DetectorConfig()
    acquisition: AcquisitionConfig = AcquisitionConfig()


class ReconstructionConfig(Section):
    """Weighted backprojection (see :func:`tomosim.reconstruct.weighted_backprojection`)."""

    thickness_px: int | None = Field(None, ge=1, le=8192, description="None = sample z size")
    lowpass_cutoff: float = Field(0.35, gt=0, le=0.5, description="radial filter, cycles/pixel")
    lowpass_falloff: float = Field(0.035, ge=0, le=0.5)
    sirt_like_iterations: int = Field(0, ge=0, le=1000)
    phase_flip: bool = False
    wiener_snr: float | None = Field(
        None, gt=0, le=1e6, description="with phase_flip: a Wiener filter of this SNR instead"
    )
    binning: int = Field(1, ge=1, le=16)
    invert: bool = False


class OutputConfig(Section):
    """What is written besides the volumes."""

    previews: bool = True
    tomogram_name: str = Field("TS_01", min_length=1, description="rlnTomoName in particles.star")
    volume_format: Literal["mrc", "ome-zarr", "both"] = Field(
        "mrc", description="volumes (ground truth, labels, instances, tomogram) as MRC, OME-Zarr"
    )
    ome_zarr_levels: int = Field(3, ge=1, le=8, description="OME-Zarr resolution levels")
    ome_zarr_chunk_px: int = Field(64, ge=8, le=1024, description="OME-Zarr chunk edge, voxels")


# --------------------------------------------------------------------------------------------
# The root
# --------------------------------------------------------------------------------------------


class SimulationConfig(Section):
    """A whole simulation: one YAML file."""

    version: Literal[1] = CONFIG_VERSION
    seed: int = Field(0, ge=0, le=2**63 - 1)
    classes: list[str] | None = Field(
        None, description="class names in id order (1, 2, ...); None = order of first use"
    )
    potential: PotentialConfig = PotentialConfig()
    sample: SampleConfig = SampleConfig()
    proteins: ProteinsConfig = ProteinsConfig()
    filaments: list[FilamentSpecies] = []
    vesicles: VesiclesConfig = VesiclesConfig()
    microscope: MicroscopeConfig = MicroscopeConfig()
    reconstruction: ReconstructionConfig = ReconstructionConfig()
    output: OutputConfig = OutputConfig()
    context: ContextConfig = ContextConfig()

    @model_validator(mode="after")
    def _binning_divides(self) -> SimulationConfig:
        factor = self.reconstruction.binning
        _, ny, nx = self.sample.shape
        if ny % factor or nx % factor:
            raise ValueError(
                f"reconstruction.binning {factor} does not divide the sample's y, x shape "
                f"({ny}, {nx})"
            )
        return self

    @model_validator(mode="after")
    def _context_fits(self) -> SimulationConfig:
        context, sample = self.context, self.sample
        box_z = sample.shape[0] * sample.pixel_size
        if context.slab.enabled and context.slab.thickness is not None:
            if context.slab.thickness >= box_z:
                raise ValueError(
                    f"context.slab.thickness {context.slab.thickness:g} Å is not thinner than the "
                    f"sample box ({sample.shape[0]} × {sample.pixel_size:g} Å = {box_z:g} Å)"
                )
        if (context.carbon.enabled or context.contamination.count) and not context.slab.enabled:
            raise ValueError("context.carbon and context.contamination need context.slab.enabled")
        if context.fiducials.count:
            diameter = 2 * context.fiducials.radius
            smallest = min(sample.shape) * sample.pixel_size
            slab = context.slab.thickness if context.slab.enabled else sample.ice_thickness
            if diameter >= smallest or (slab is not None and diameter >= slab):
                raise ValueError(
                    f"context.fiducials: beads of {diameter:g} Å diameter do not fit in the sample "
                    f"({smallest:g} Å smallest box side, slab {slab} Å)"
                )
        return self

    @model_validator(mode="after")
    def _class_names(self) -> SimulationConfig:
        used = self.used_labels()
        if self.classes is not None:
            if len(set(self.classes)) != len(self.classes):
                raise ValueError("classes: names must be unique")
            if "background" in self.classes:
                raise ValueError("classes: 'background' is class 0 and must not be listed")
            unknown = [name for name in used if name not in self.classes]
            if unknown:
                raise ValueError(f"unknown class name(s) {unknown}; classes lists {self.classes}")
        names = [s.name for s in self.proteins.species] + [f.name for f in self.filaments]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"species/filament names must be unique, repeated: {dup}")
        known = {s.name for s in self.proteins.species}
        in_membrane = [s.name for s in self.proteins.species if s.in_membrane and s.count]
        if in_membrane and self.vesicles.count == 0 and self.vesicles.sheets == 0:
            raise ValueError(
                f"membrane proteins {in_membrane} need membranes: set vesicles.count or "
                "vesicles.sheets"
            )
        for key in ("proteins_inside", "proteins_outside"):
            for name in getattr(self.vesicles, key):
                if name not in known:
                    raise ValueError(f"vesicles.{key}: unknown species {name!r}")
        self._check_fits_box()
        return self

    def _check_fits_box(self) -> None:
        """Refuse ice thicker than the box and vesicles that cannot fit in it."""
        sample = self.sample
        extent = [n * sample.pixel_size for n in sample.shape]  # (z, y, x) Å
        if sample.ice_thickness is not None and sample.ice_thickness > extent[0]:
            raise ValueError(
                f"sample.ice_thickness {sample.ice_thickness:g} Å is thicker than the box "
                f"({sample.shape[0]} voxels x {sample.pixel_size:g} Å = {extent[0]:g} Å in z); "
                "the ice must lie inside the volume"
            )
        ice = sample.ice_thickness if sample.ice_thickness is not None else extent[0]
        room = min(ice, extent[1], extent[2])
        vesicles = self.vesicles
        smallest = 2 * vesicles.radius[0] / vesicles.max_aspect  # thinnest diameter possible
        if vesicles.count > 0 and smallest > room:
            raise ValueError(
                f"vesicles.radius {list(vesicles.radius)} Å: even the smallest vesicle "
                f"({smallest:g} Å across its thinnest axis) does not fit in the sample "
                f"({room:g} Å in its smallest extent of ice and box)"
            )

    def used_labels(self) -> list[str]:
        """Class names used by species, filaments and vesicles, in config order (no background)."""
        out: list[str] = []
        for s in self.proteins.species:
            out.append(s.label or s.name)
        for f in self.filaments:
            out.append(f.label or f.name)
            if f.decoration is not None:
                out.append(f.decoration.label)
        if self.vesicles.count > 0 or self.vesicles.sheets > 0:
            out.append(self.vesicles.label)
        if self.context.fiducials.count > 0:
            out.append(self.context.fiducials.label)
        seen: list[str] = []
        for name in out:
            if name != "background" and name not in seen:
                seen.append(name)
        return seen

    def class_ids(self) -> dict[str, int]:
        """Map class name -> label id (1, 2, ...); ``background`` is 0. Ids never shift."""
        names = self.classes if self.classes is not None else self.used_labels()
        ids = {"background": 0}
        ids.update({name: i + 1 for i, name in enumerate(names)})
        return ids


# --------------------------------------------------------------------------------------------
# Loading and writing
# --------------------------------------------------------------------------------------------


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``tree[a][b][c] = value`` for ``dotted = "a.b.c"``; integer parts index lists."""
    parts = dotted.split(".")
    node: Any = tree
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            try:
                idx = int(part)
                node[idx]
            except (ValueError, IndexError):
                raise TomosimError(f"--set {dotted}: {part!r} is not a valid list index") from None
            if last:
                node[idx] = value
            else:
                node = node[idx]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            elif part not in node and parts[i + 1].isdigit():
                raise TomosimError(f"--set {dotted}: there is no list {part!r} to index")
            else:
                node = node.setdefault(part, {})
        else:
            raise TomosimError(f"--set {dotted}: {part!r} is inside a value that is not a section")


def apply_overrides(tree: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides (values parsed as YAML) to a config tree."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise TomosimError(f"--set expects section.key=value, got {item!r}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise TomosimError(f"--set {key}: value {raw!r} is not valid YAML") from None
        _set_path(tree, key.strip(), value)
    return tree


def format_validation_error(exc: ValidationError, source: str, prefix: str = "") -> str:
    """Format a pydantic validation error as one line naming the source and the failing field.

    ``prefix`` (e.g. ``"reconstruction"``) is put before the field path of a section validated
    on its own.
    """
    err = exc.errors()[0]
    where = ".".join([prefix] * bool(prefix) + [str(p) for p in err["loc"]])
    msg = err["msg"].removeprefix("Value error, ")
    given = err.get("input")
    if isinstance(given, (int, float, str)) and err["type"] != "value_error":
        msg += f", got {given!r}"
    extra = f" ({len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"invalid config {source}: {where + ': ' if where else ''}{msg}{extra}"


def config_from_dict(
    tree: dict[str, Any], *, source: str = "<dict>", overrides: list[str] | None = None,
    seed: int | None = None,
) -> SimulationConfig:
    """Validate a config tree (after overrides and seed) into a :class:`SimulationConfig`."""
    tree = apply_overrides(dict(tree), overrides or [])
    if seed is not None:
        tree["seed"] = seed
    try:
        return SimulationConfig.model_validate(tree)
    except ValidationError as exc:
        raise TomosimError(format_validation_error(exc, source)) from None


SectionT = TypeVar("SectionT", bound=Section)


def validate_section(
    model: type[SectionT], tree: Any, *, source: str, where: str
) -> SectionT:
    """Validate one config section (``where``, e.g. ``"reconstruction"``) from a raw tree.

    Raises
    ------
    TomosimError
        ``invalid config SOURCE: WHERE.field: problem`` for a value out of range or unknown key.
    """
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise TomosimError(f"invalid config {source}: {where} must be a section (a mapping)")
    try:
        return model.model_validate(tree)
    except ValidationError as exc:
        raise TomosimError(format_validation_error(exc, source, where)) from None


def read_config_tree(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config file as a raw tree (not validated; distributions kept).

    Raises
    ------
    TomosimError
        Missing file, invalid YAML (with the line), or a document that is not a mapping.
    """
    p = Path(path)
    if not p.is_file():
        raise TomosimError(f"config file not found: {p}")
    try:
        loaded = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" at line {line + 1}" if line is not None else ""
        raise TomosimError(f"config {p} is not valid YAML{at}") from None
    if loaded is None or loaded == {}:
        raise TomosimError(
            f"config {p} is empty; write the sections to simulate (an all-defaults run of empty "
            "ice needs at least one explicit key, e.g. 'seed: 0')"
        )
    if not isinstance(loaded, dict):
        raise TomosimError(f"config {p} must be a YAML mapping of sections")
    return loaded


def load_config(
    path: str | os.PathLike[str] | None,
    *,
    overrides: list[str] | None = None,
    seed: int | None = None,
) -> SimulationConfig:
    """Read a YAML config, apply overrides and seed, validate.

    Parameters
    ----------
    path
        YAML file; None starts from all defaults.
    overrides
        ``"section.key=value"`` strings; the value is parsed as YAML (``sample.shape=[64,64,64]``).
    seed
        Overrides the config's ``seed``.

    Raises
    ------
    TomosimError
        Missing or unparsable file, unknown keys, values out of range.
    """
    tree = read_config_tree(path) if path is not None else {}
    source = str(path) if path is not None else "<defaults>"
    return config_from_dict(tree, source=source, overrides=overrides, seed=seed)


def dump_config(config: SimulationConfig) -> str:
    """The fully resolved config as YAML text (every default filled in)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
