"""Assemble: pack proteins, filaments and vesicles into a virtual cytoplasm with exact labels.

Positions are ``(x, y, z)`` in Å in *sample coordinates*: measured from the centre of voxel
``[0, 0, 0]`` of the sample volume, so a position ``p`` lies at array index ``p[::-1] / pixel_size``
(CONVENTIONS.md). Rotations are active: a template point at offset ``r`` (Å, ``x y z``) from the
template's reference point (its box centre voxel ``shape // 2``) goes to ``position + R @ r``.

The steps, in the order :func:`assemble_phantom` runs them:

1. **Placement** (vesicles, then filaments, then proteins; :mod:`tomosim.membranes`,
   :mod:`tomosim.filaments`, :mod:`tomosim.packing`). Every placed object marks its voxels in a
   boolean *occupancy* grid (:mod:`tomosim.occupancy`), so objects never overlap.
2. **Rendering and labels** (:func:`tomosim.rendering.render_objects`): each copy's template is
   resampled onto the output grid; a voxel takes an object's class where that object's own
   potential exceeds ``label_threshold`` (the largest own potential wins).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from tomosim import filaments, membranes
from tomosim.config import FilamentSpecies
from tomosim.errors import TomosimError
from tomosim.membranes import VesiclePopulation
from tomosim.occupancy import ENVELOPE_FRACTION, mark_boxes, mark_occupancy
from tomosim.packing import PackingRules, ProteinTarget, place_proteins
from tomosim.phantom import Phantom, Placements, PotentialBox, SpeciesReport
from tomosim.potential import Potential
from tomosim.rendering import render_objects


@dataclass(frozen=True)
class PhantomRecipe:
    """Everything :func:`assemble_phantom` needs, as plain values (see :mod:`tomosim.recipe`).

    Attributes
    ----------
    shape
        ``(z, y, x)`` sample volume, voxels.
    pixel_size
        Å per voxel.
    ice_thickness
        Å, slab centred on z plane ``nz // 2`` that holds the particles; None: the whole z extent.
    label_threshold
        Volts; a voxel belongs to an object where the object's own potential exceeds it.
    class_ids
        ``{class name: id}``, ``"background": 0`` included; ids 1..254.
    proteins
        One target per protein species.
    packing
        How proteins are packed.
    filaments
        Filament species (their config sections; see :mod:`tomosim.filaments`).
    vesicles
        Vesicle count, size, shape and bilayer thickness.
    vesicle_class_id
        Label class of the vesicle membranes.
    vesicle_ice_potential_v
        Ice potential (V) that the membrane displaces: 0 when potentials carry no solvent,
        None for the documented default.
    """

    shape: tuple[int, int, int]
    pixel_size: float
    ice_thickness: float | None
    label_threshold: float
    class_ids: Mapping[str, int]
    proteins: tuple[ProteinTarget, ...]
    packing: PackingRules
    filaments: tuple[FilamentSpecies, ...]
    vesicles: VesiclePopulation
    vesicle_class_id: int
    vesicle_ice_potential_v: float | None


@dataclass
class _Scene:
    """What the placement stages share: the occupancy grid and the next free ids."""

    occupancy: np.ndarray
    interior: np.ndarray | None = None
    next_instance: int = 1
    next_filament: int = 0


def _place_vesicles(
    recipe: PhantomRecipe, scene: _Scene, rng: np.random.Generator
) -> tuple[list[PotentialBox], SpeciesReport | None]:
    """Vesicles as potential boxes; marks their membranes and sets the enclosed interior."""
    population = recipe.vesicles
    if population.count == 0:
        return [], None
    shape, pixel_size = recipe.shape, recipe.pixel_size
    vesicles = membranes.place_vesicles(population, shape=shape, pixel_size=pixel_size, rng=rng)
    boxes: list[PotentialBox] = []
    for vesicle in vesicles:
        box = membranes.vesicle_potential(
            vesicle, pixel_size=pixel_size, shape=shape, thickness=population.thickness,
            ice_potential_v=recipe.vesicle_ice_potential_v,
        )
        boxes.append(
            PotentialBox(
                box.data, (int(box.corner[0]), int(box.corner[1]), int(box.corner[2])),
                recipe.vesicle_class_id, len(boxes) + 1, "vesicle",
            )
        )
    envelope_threshold = ENVELOPE_FRACTION * recipe.label_threshold
    mark_boxes(scene.occupancy, boxes, envelope_threshold=envelope_threshold)
    if vesicles:
        scene.interior = membranes.inside_mask(
            vesicles, shape=shape, pixel_size=pixel_size, margin=population.thickness / 2
        )
    scene.next_instance = len(boxes) + 1
    return boxes, SpeciesReport("vesicles", "vesicle", population.count, len(boxes))


def _place_filaments(
    recipe: PhantomRecipe,
    templates: Mapping[str, Potential],
    scene: _Scene,
    rng: np.random.Generator,
) -> tuple[
    list[Placements], list[SpeciesReport], list[tuple[FilamentSpecies, Placements]]
]:
    """Filaments of every species, in order; marks their subunit envelopes.

    Returns the placements per species, the species reports and the (species, placements)
    pairs whose labels follow the filament envelope (``FilamentSpecies.label_rule``).
    """
    parts: list[Placements] = []
    reports: list[SpeciesReport] = []
    envelope_parts: list[tuple[FilamentSpecies, Placements]] = []
    envelope_threshold = ENVELOPE_FRACTION * recipe.label_threshold
    for species in recipe.filaments:
        needed = [n for n in filaments.filament_templates(species) if n not in templates] if (
            species.count) else []  # a species with count 0 reads and fetches nothing
        if needed:
            raise TomosimError(f"filament {species.name!r}: no template for {needed}")
        part = filaments.place_filaments(
            species, shape=recipe.shape, pixel_size=recipe.pixel_size, rng=rng,
            class_ids=dict(recipe.class_ids), first_instance_id=scene.next_instance,
            first_filament_id=scene.next_filament, occupancy=scene.occupancy,
        )
        if len(part):
            scene.next_instance = int(part.instance_id.max()) + 1
            scene.next_filament = int(part.filament_id.max()) + 1
            # subunit envelopes at half the protein level: up to four overlapping subunits
            # outside their envelopes stay below the label threshold together
            mark_occupancy(
                scene.occupancy, part, templates, pixel_size=recipe.pixel_size,
                envelope_threshold=0.5 * envelope_threshold,
            )
            parts.append(part)
            if species.label_rule != "potential":
                envelope_parts.append((species, part))
        placed = int(np.unique(part.filament_id).size) if len(part) else 0
        reports.append(SpeciesReport(species.name, "filament", species.count, placed))
    return parts, reports, envelope_parts


def assemble_phantom(
    recipe: PhantomRecipe, templates: Mapping[str, Potential], rng: np.random.Generator
) -> Phantom:
    """Place vesicles, filaments and proteins, render the potential and label every voxel.

    Parameters
    ----------
    recipe
        Sample volume, classes and what to place (:func:`tomosim.recipe.phantom_recipe` makes it
        from a :class:`~tomosim.config.SimulationConfig`).
    templates
        ``{name: Potential}`` for every protein species (by species name) and every filament
        subunit template (by the names :mod:`tomosim.filaments` gives them), computed at
        :func:`tomosim.rendering.template_pixel_size` ``(recipe.pixel_size)`` (any finer pixel
        size works).
    rng
        Random generator; the same seed gives byte-identical phantoms.

    Returns
    -------
    Phantom
        Instance ids: vesicles first, then filament segments, then proteins (1, 2, ...). Class ids
        are ``recipe.class_ids`` and never shift when a class places nothing.
    """
    shape = (int(recipe.shape[0]), int(recipe.shape[1]), int(recipe.shape[2]))
    pixel_size = float(recipe.pixel_size)
    ice_thickness = (
        float(recipe.ice_thickness) if recipe.ice_thickness is not None else shape[0] * pixel_size
    )
    class_ids = dict(recipe.class_ids)
    if max(class_ids.values()) > 254:
        raise TomosimError(
            f"at most 254 classes fit in uint8 labels; the config has {len(class_ids) - 1}"
        )
    scene = _Scene(occupancy=np.zeros(shape, bool))
    reports: list[SpeciesReport] = []
    timings: dict[str, float] = {}

    clock = time.perf_counter()
    boxes, vesicle_report = _place_vesicles(recipe, scene, rng)
    reports += [vesicle_report] if vesicle_report is not None else []
    timings["vesicles"] = time.perf_counter() - clock

    clock = time.perf_counter()
    filament_parts, filament_reports, envelope_parts = _place_filaments(
        recipe, templates, scene, rng
    )
    reports += filament_reports
    timings["filaments"] = time.perf_counter() - clock

    clock = time.perf_counter()
    proteins, protein_report = place_proteins(
        recipe.proteins, templates, rules=recipe.packing, shape=shape, pixel_size=pixel_size,
        rng=rng, label_threshold=recipe.label_threshold, ice_thickness=recipe.ice_thickness,
        occupancy=scene.occupancy, interior=scene.interior,
        first_instance_id=scene.next_instance,
    )
    reports += protein_report
    del scene
    timings["proteins"] = time.perf_counter() - clock

    clock = time.perf_counter()
    placements = Placements.concatenate([*filament_parts, proteins])
    potential, labels, instances = render_objects(
        placements, templates, shape=shape, pixel_size=pixel_size,
        label_threshold=recipe.label_threshold, boxes=boxes,
    )
    for species, part in envelope_parts:  # filament tube labels (FilamentSpecies.label_rule)
        filaments.apply_envelope_labels(labels, instances, part, species, pixel_size=pixel_size)
    timings["render"] = time.perf_counter() - clock
    return Phantom(
        potential=potential,
        labels=labels,
        instances=instances,
        placements=placements,
        class_names={i: name for name, i in class_ids.items()},
        pixel_size=pixel_size,
        ice_thickness=ice_thickness,
        report=tuple(reports),
        boxes=tuple(boxes),
        timings=timings,
    )
