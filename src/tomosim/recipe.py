"""Recipe: the pipeline edge, where the pydantic config becomes the plain values physics takes.

The physics modules take plain numbers and small frozen dataclasses, never config sections
(CONVENTIONS.md, Architecture). Each function here translates one part of a
:class:`~tomosim.config.SimulationConfig`; :mod:`tomosim.pipeline` calls them once per run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tomosim.assemble import PhantomRecipe
from tomosim.config import ProteinsConfig, SimulationConfig, VesiclesConfig
from tomosim.errors import TomosimError
from tomosim.membranes import VesiclePopulation
from tomosim.packing import PackingRules, ProteinTarget


def packing_rules(proteins: ProteinsConfig) -> PackingRules:
    """The packing rules of the ``proteins`` section."""
    return PackingRules(
        placement=proteins.placement,
        grid_spacing=proteins.grid_spacing,
        min_gap=float(proteins.min_gap),
        clustering=float(proteins.clustering),
        max_attempts=int(proteins.max_attempts),
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
    )


def vesicle_population(vesicles: VesiclesConfig) -> VesiclePopulation:
    """The vesicle count, size and shape of the ``vesicles`` section."""
    return VesiclePopulation(
        count=int(vesicles.count),
        radius=(float(vesicles.radius[0]), float(vesicles.radius[1])),
        max_aspect=float(vesicles.max_aspect),
        thickness=float(vesicles.thickness),
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
        vesicle_class_id=class_ids[config.vesicles.label] if config.vesicles.count > 0 else 0,
        vesicle_ice_potential_v=ice,
    )
