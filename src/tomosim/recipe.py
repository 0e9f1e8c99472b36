"""Recipe: the pipeline edge, where the pydantic config becomes the plain values physics takes.

The physics modules take plain numbers and small frozen dataclasses, never config sections
(CONVENTIONS.md, Architecture). Each function here translates one part of a
:class:`~tomosim.config.SimulationConfig`; :mod:`tomosim.pipeline` calls them once per run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from typing import Any, TypeVar

from tomosim.assemble import PhantomRecipe
from tomosim.config import (
    AcquisitionConfig,
    ContextConfig,
    MicroscopeConfig,
    OpticsConfig,
    ProteinsConfig,
    SimulationConfig,
    VesiclesConfig,
)
from tomosim.errors import TomosimError
from tomosim.membrane_proteins import MembraneProteinTarget
from tomosim.membranes import SheetPopulation, VesiclePopulation
from tomosim.microscope.acquisition import ACQUISITION_PROFILES, AcquisitionSettings
from tomosim.microscope.ctf import Optics
from tomosim.microscope.detector import detector_model
from tomosim.microscope.image_formation import (
    Acquisition,
    DetectorSettings,
    DoseSettings,
    Focus,
    TiltSettings,
)
from tomosim.packing import PackingRules, ProteinTarget
from tomosim.sample_context import SampleContext, SlabSettings

_Plain = TypeVar("_Plain")


def same_named_fields(cls: type[_Plain], section: Any) -> _Plain:
    """The dataclass ``cls`` filled from the config ``section``'s fields of the same names.

    For sections whose physics dataclass uses the config's names one to one (one name per
    quantity, STYLE.md), so a field added to both needs no translation code.
    """
    return cls(**{f.name: getattr(section, f.name) for f in fields(cls)})  # type: ignore[arg-type]


def packing_rules(proteins: ProteinsConfig) -> PackingRules:
    """The packing rules of the ``proteins`` section."""
    return PackingRules(
        placement=proteins.placement,
        grid_spacing=proteins.grid_spacing,
        min_gap=float(proteins.min_gap),
        clustering=float(proteins.clustering),
        max_attempts=int(proteins.max_attempts),
        species_per_phantom=proteins.species_per_phantom,
    )


def protein_targets(
    proteins: ProteinsConfig,
    class_ids: Mapping[str, int],
    *,
    inside: Sequence[str] = (),
    outside: Sequence[str] = (),
) -> tuple[ProteinTarget, ...]:
    """One :class:`~tomosim.packing.ProteinTarget` per species of the ``proteins`` section.

    Parameters
    ----------
    proteins
        The section; a species is labelled ``label or name``.
    class_ids
        ``{class name: id}``; ``"background"`` is 0.
    inside, outside
        Species names placed only inside vesicles / never inside.

    Raises
    ------
    TomosimError
        A species label without a class id.
    """
    unknown = [s.label or s.name for s in proteins.species if (s.label or s.name) not in class_ids]
    if unknown:
        raise TomosimError(f"proteins: no class id for label(s) {unknown}")
    return tuple(
        ProteinTarget(
            name=s.name,
            class_id=int(class_ids[s.label or s.name]),
            count=s.count,
            concentration_nm=s.concentration_nm,
            volume_fraction=s.volume_fraction,
            orientation=s.orientation,
            region="inside" if s.name in inside else "outside" if s.name in outside else "anywhere",
        )
        for s in proteins.species
        if not s.in_membrane
    )


def vesicle_population(vesicles: VesiclesConfig) -> VesiclePopulation:
    """The vesicle count, size and shape of the ``vesicles`` section."""
    return VesiclePopulation(
        count=int(vesicles.count),
        radius=(float(vesicles.radius[0]), float(vesicles.radius[1])),
        max_aspect=float(vesicles.max_aspect),
        thickness=float(vesicles.thickness),
        deformation=float(vesicles.deformation),
        deformation_bumps=int(vesicles.deformation_bumps),
        deformation_width=float(vesicles.deformation_width),
    )


def phantom_recipe(config: SimulationConfig) -> PhantomRecipe:
    """Everything :func:`tomosim.assemble.assemble_phantom` needs from a simulation config."""
    sample = config.sample
    class_ids = config.class_ids()
    ice = 0.0 if config.potential.solvent == "none" else config.potential.ice_potential_v
    return PhantomRecipe(
        shape=(int(sample.shape[0]), int(sample.shape[1]), int(sample.shape[2])),
        pixel_size=float(sample.pixel_size),
        ice_thickness=float(sample.ice_thickness) if sample.ice_thickness is not None else None,
        label_threshold=float(sample.label_threshold),
        class_ids=class_ids,
        proteins=protein_targets(
            config.proteins, class_ids, inside=config.vesicles.proteins_inside,
            outside=config.vesicles.proteins_outside,
        ),
        packing=packing_rules(config.proteins),
        filaments=tuple(config.filaments),
        vesicles=vesicle_population(config.vesicles),
        vesicle_class_id=(
            class_ids[config.vesicles.label]
            if config.vesicles.count > 0 or config.vesicles.sheets > 0 else 0
        ),
        vesicle_ice_potential_v=ice,
        sheets=SheetPopulation(
            count=int(config.vesicles.sheets),
            amplitude=float(config.vesicles.sheet_amplitude),
            wavelength=float(config.vesicles.sheet_wavelength),
            max_tilt=float(config.vesicles.sheet_max_tilt),
        ),
        membrane_proteins=membrane_protein_targets(config.proteins, class_ids),
        context=sample_context(config.context, class_ids),
    )


def membrane_protein_targets(
    proteins: ProteinsConfig, class_ids: Mapping[str, int]
) -> tuple[MembraneProteinTarget, ...]:
    """Return the ``in_membrane`` species of the ``proteins`` section."""
    return tuple(
        MembraneProteinTarget(
            name=s.name,
            class_id=int(class_ids[s.label or s.name]),
            count=int(s.count or 0),
            axis=tuple(float(v) for v in (s.membrane_axis or (0.0, 0.0, 1.0))),  # type: ignore[arg-type]
            offset=float(s.membrane_offset),
        )
        for s in proteins.species
        if s.in_membrane
    )


def sample_context(section: ContextConfig, class_ids: Mapping[str, int]) -> SampleContext:
    """Return slab, carbon, fiducials and contamination of the ``context`` section."""
    slab = section.slab
    return SampleContext(
        slab=SlabSettings(
            thickness=slab.thickness,
            thickness_gradient=float(slab.thickness_gradient),
            roughness=float(slab.roughness),
            roughness_length=float(slab.roughness_length),
            curtain_amplitude=float(slab.curtain_amplitude),
            curtain_period=float(slab.curtain_period),
        ) if slab.enabled else None,
        carbon_thickness=float(section.carbon.thickness) if section.carbon.enabled else None,
        carbon_texture=float(section.carbon.texture),
        fiducial_count=int(section.fiducials.count),
        fiducial_radius=float(section.fiducials.radius),
        fiducial_name=section.fiducials.label,
        fiducial_class_id=int(class_ids.get(section.fiducials.label, 0)),
        contamination_count=int(section.contamination.count),
        contamination_size=(float(section.contamination.size[0]),
                            float(section.contamination.size[1])),
    )


def optics(section: OpticsConfig) -> Optics:
    """The optics of the ``microscope.optics`` section."""
    return Optics(
        voltage_kv=float(section.voltage_kv),
        cs_mm=float(section.cs_mm),
        amplitude_contrast=float(section.amplitude_contrast),
        phase_shift=float(section.phase_shift),
        b_factor=float(section.b_factor),
        source_spread_mrad=float(section.source_spread_mrad),
        energy_spread_ev=float(section.energy_spread_ev),
        chromatic_aberration_mm=float(section.chromatic_aberration_mm),
    )


def acquisition(microscope: MicroscopeConfig) -> Acquisition:
    """Tilt scheme, focus, dose and detector of the ``microscope`` section."""
    tilt, focus, dose, detector = (
        microscope.tilt, microscope.optics, microscope.dose, microscope.detector
    )
    return Acquisition(
        tilt=same_named_fields(TiltSettings, tilt),
        focus=same_named_fields(Focus, focus),
        dose=same_named_fields(DoseSettings, dose),
        detector=DetectorSettings(
            detector=detector_model(
                detector.preset, dqe=detector.dqe, mtf_falloff=detector.mtf_falloff
            ),
            read_noise=detector.read_noise,
            noise=detector.noise,
            write_noise_free=detector.write_noise_free,
            write_half_sets=detector.write_half_sets,
            binning=int(detector.binning),
        ),
        imperfections=acquisition_settings(microscope.acquisition),
    )


def acquisition_settings(section: AcquisitionConfig) -> AcquisitionSettings:
    """Return the imperfections' sizes: the profile's, overridden by the fields set."""
    base = ACQUISITION_PROFILES[section.profile]
    given = {
        name: float(value)
        for name, value in section.model_dump().items()
        if name != "profile" and value is not None
    }
    return replace(base, **given)
