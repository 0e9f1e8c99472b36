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
from tomosim.membrane_proteins import (
    MembraneProteinSpecies,
    MembraneProteinTarget,
    axial_radius,
    place_membrane_proteins,
)
from tomosim.membranes import SheetPopulation, VesiclePopulation
from tomosim.occupancy import ENVELOPE_FRACTION, mark_boxes, mark_occupancy
from tomosim.packing import PackingRules, ProteinTarget, place_proteins, slab_planes
from tomosim.phantom import Phantom, Placements, PotentialBox, SpeciesReport
from tomosim.potential import ICE_POTENTIAL_V, Potential
from tomosim.rendering import render_objects, template_pixel_size
from tomosim.sample_context import (
    SampleContext,
    apply_slab,
    carbon_film,
    contamination,
    gold_template,
    slab_surfaces,
)


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
    sheets
        Membrane sheets crossing the volume (labelled like vesicles).
    membrane_proteins
        Species set into the membranes along their normal (:mod:`tomosim.membrane_proteins`).
    context
        Slab, carbon, gold fiducials and contamination (:mod:`tomosim.sample_context`).
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
    sheets: SheetPopulation = SheetPopulation()
    membrane_proteins: tuple[MembraneProteinTarget, ...] = ()
    context: SampleContext = SampleContext()


@dataclass
class _Scene:
    """What the placement stages share: the occupancy grid and the next free ids."""

    occupancy: np.ndarray
    interior: np.ndarray | None = None
    next_instance: int = 1
    next_filament: int = 0


def _place_vesicles(
    recipe: PhantomRecipe, scene: _Scene, rng: np.random.Generator
) -> tuple[list[PotentialBox], list[SpeciesReport], list[membranes.Vesicle | membranes.Sheet]]:
    """Vesicles and sheets as potential boxes; marks their membranes, sets the vesicle interior.

    Sheets are drawn from a generator spawned from ``rng`` (the vesicle draws are unchanged), and
    vesicles that would cross a sheet are dropped.
    """
    population = recipe.vesicles
    if population.count == 0 and recipe.sheets.count == 0:
        return [], [], []
    shape, pixel_size = recipe.shape, recipe.pixel_size
    vesicles = (
        membranes.place_vesicles(population, shape=shape, pixel_size=pixel_size, rng=rng)
        if population.count else []
    )
    sheets: list[membranes.Sheet] = []
    if recipe.sheets.count:
        sheets = membranes.place_sheets(
            recipe.sheets.count, shape=shape, pixel_size=pixel_size, rng=rng.spawn(1)[0],
            amplitude=recipe.sheets.amplitude, wavelength=recipe.sheets.wavelength,
            max_tilt=recipe.sheets.max_tilt,
        )
        vesicles = membranes.vesicles_clear_of_sheets(
            vesicles, sheets, thickness=population.thickness
        )
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
    for sheet in sheets:
        box = membranes.sheet_potential(
            sheet, pixel_size=pixel_size, shape=shape, thickness=population.thickness,
            ice_potential_v=recipe.vesicle_ice_potential_v,
        )
        boxes.append(
            PotentialBox(
                box.data, (int(box.corner[0]), int(box.corner[1]), int(box.corner[2])),
                recipe.vesicle_class_id, len(boxes) + 1, "sheet",
            )
        )
    envelope_threshold = ENVELOPE_FRACTION * recipe.label_threshold
    mark_boxes(scene.occupancy, boxes, envelope_threshold=envelope_threshold)
    if vesicles:
        scene.interior = membranes.inside_mask(
            vesicles, shape=shape, pixel_size=pixel_size, margin=population.thickness / 2
        )
    scene.next_instance = len(boxes) + 1
    reports = []
    if population.count:
        reports.append(SpeciesReport("vesicles", "vesicle", population.count, len(vesicles)))
    if recipe.sheets.count:
        reports.append(SpeciesReport("sheets", "sheet", recipe.sheets.count, len(sheets)))
    return boxes, reports, [*vesicles, *sheets]


def _place_membrane_proteins(
    recipe: PhantomRecipe,
    templates: Mapping[str, Potential],
    membrane_list: list[membranes.Vesicle | membranes.Sheet],
    boxes: list[PotentialBox],
    scene: _Scene,
    rng: np.random.Generator,
) -> tuple[Placements, list[SpeciesReport]]:
    """Membrane proteins as particle rows (:mod:`tomosim.membrane_proteins`).

    Their envelopes are marked in the occupancy, and the membrane potential under them is set
    to 0 in ``boxes`` (the protein displaces the lipid).
    """
    chosen = recipe.membrane_proteins
    if not chosen:
        return Placements.empty(), []
    missing = [t.name for t in chosen if t.name not in templates]
    if missing:
        raise TomosimError(f"proteins: no template for membrane species {missing}")
    envelope_threshold = ENVELOPE_FRACTION * recipe.label_threshold
    species = [
        MembraneProteinSpecies(
            t.name, int(t.count), np.asarray(t.axis, np.float64), float(t.offset),
            axial_radius(templates[t.name], np.asarray(t.axis, np.float64),
                         envelope_threshold=envelope_threshold),
        )
        for t in chosen
    ]
    shape, pixel_size = recipe.shape, recipe.pixel_size
    zlo, zhi = slab_planes(shape, pixel_size, recipe.ice_thickness)
    result = place_membrane_proteins(
        species, membrane_list, shape=shape, pixel_size=pixel_size, rng=rng.spawn(1)[0],
        z_range=(zlo * pixel_size, zhi * pixel_size), min_gap=float(recipe.packing.min_gap),
    )
    reports = [
        SpeciesReport(s.name, "membrane protein", s.count, result.placed[i])
        for i, s in enumerate(species)
    ]
    n = result.positions.shape[0]
    if n == 0:
        return Placements.empty(), reports
    class_of = np.array([t.class_id for t in chosen], np.int64)
    minus = np.full(n, -1, np.int64)
    part = Placements(
        positions=result.positions,
        rotations=result.rotations,
        template=result.species,
        template_names=tuple(t.name for t in chosen),
        class_id=class_of[result.species],
        instance_id=np.arange(scene.next_instance, scene.next_instance + n, dtype=np.int64),
        filament_id=minus,
        segment_id=minus.copy(),
        subunit_index=minus.copy(),
    )
    scene.next_instance += n
    under = np.zeros(scene.occupancy.shape, bool)
    mark_occupancy(
        under, part, templates, pixel_size=pixel_size, envelope_threshold=envelope_threshold
    )
    for box in boxes:
        lo = np.array(box.corner, np.int64)
        a = np.maximum(lo, 0)
        b = np.minimum(lo + box.data.shape, np.array(scene.occupancy.shape))
        if np.any(b <= a):
            continue
        dst = tuple(slice(int(i), int(j)) for i, j in zip(a, b, strict=True))
        src = tuple(slice(int(i - k), int(j - k)) for i, j, k in zip(a, b, lo, strict=True))
        box.data[src][under[dst]] = 0.0
    scene.occupancy |= under
    return part, reports


def _apply_context(
    recipe: PhantomRecipe,
    potential: np.ndarray,
    labels: np.ndarray,
    instances: np.ndarray,
    placements: Placements,
    thickness: float,
    rng: np.random.Generator,
) -> tuple[Placements, float]:
    """Slab with vacuum outside, carbon and contamination (:mod:`tomosim.sample_context`).

    Arrays are changed in place: what lies outside the slab loses its potential and labels;
    particles whose centre is outside are dropped. Returns the kept placements and the slab's
    mean thickness (Å).
    """
    context, pixel_size = recipe.context, recipe.pixel_size
    slab = context.slab
    assert slab is not None
    ice_v = ICE_POTENTIAL_V if recipe.vesicle_ice_potential_v is None else float(
        recipe.vesicle_ice_potential_v
    )
    if ice_v <= 0:
        raise TomosimError("context.slab needs potential.solvent: ice (vacuum is −V_ice)")
    surfaces = slab_surfaces(
        potential.shape, pixel_size=pixel_size, thickness=thickness,
        thickness_gradient=slab.thickness_gradient, roughness=slab.roughness,
        roughness_length=slab.roughness_length, curtain_amplitude=slab.curtain_amplitude,
        curtain_period=slab.curtain_period, rng=rng,
    )
    coverage = apply_slab(potential, surfaces, pixel_size=pixel_size, ice_potential_v=ice_v)
    outside = coverage < 0.5
    labels[outside] = 0
    instances[outside] = 0
    if len(placements):
        index = np.clip(np.floor(placements.positions / pixel_size + 0.5).astype(np.int64), 0,
                        np.array(potential.shape[::-1]) - 1)
        keep = ~outside[index[:, 2], index[:, 1], index[:, 0]]
        ids = np.asarray(placements.instance_id)
        gone = np.setdiff1d(ids[~keep], ids[keep])  # objects with no row left inside
        if gone.size:
            lookup = np.zeros(int(instances.max()) + 1, bool)
            lookup[gone[gone <= instances.max()]] = True
            vanished = lookup[instances]
            labels[vanished] = 0
            instances[vanished] = 0
        placements = placements.select(np.flatnonzero(keep))
    if context.carbon_thickness is not None:
        carbon_film(potential, surfaces, pixel_size=pixel_size,
                    thickness=context.carbon_thickness, ice_potential_v=ice_v,
                    texture=context.carbon_texture, rng=rng)
    if context.contamination_count:
        contamination(potential, surfaces, pixel_size=pixel_size,
                      count=context.contamination_count, size=context.contamination_size,
                      ice_potential_v=ice_v, rng=rng)
    return placements, float(surfaces.thickness.mean())


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
    boxes, vesicle_reports, membrane_list = _place_vesicles(recipe, scene, rng)
    reports += vesicle_reports
    membrane_part, membrane_reports = _place_membrane_proteins(
        recipe, templates, membrane_list, boxes, scene, rng
    )
    reports += membrane_reports
    timings["vesicles"] = time.perf_counter() - clock

    clock = time.perf_counter()
    filament_parts, filament_reports, envelope_parts = _place_filaments(
        recipe, templates, scene, rng
    )
    reports += filament_reports
    timings["filaments"] = time.perf_counter() - clock

    clock = time.perf_counter()
    context = recipe.context
    targets = list(recipe.proteins)
    placement_thickness = recipe.ice_thickness
    slab_thickness = 0.0
    if context.slab is not None:
        slab_thickness = float(
            context.slab.thickness or recipe.ice_thickness or 0.8 * shape[0] * pixel_size
        )
        placement_thickness = slab_thickness
    if context.fiducial_count:  # gold beads: particles of their own class
        ice_v = ICE_POTENTIAL_V if recipe.vesicle_ice_potential_v is None else float(
            recipe.vesicle_ice_potential_v
        )
        templates = {**templates, context.fiducial_name: gold_template(
            context.fiducial_radius, template_pixel_size(pixel_size), ice_potential_v=ice_v,
        )}
        targets.append(ProteinTarget(
            name=context.fiducial_name, class_id=context.fiducial_class_id,
            count=context.fiducial_count,
        ))
    proteins, protein_report = place_proteins(
        targets, templates, rules=recipe.packing, shape=shape, pixel_size=pixel_size,
        rng=rng, label_threshold=recipe.label_threshold, ice_thickness=placement_thickness,
        occupancy=scene.occupancy, interior=scene.interior,
        first_instance_id=scene.next_instance,
    )
    reports += protein_report
    del scene
    timings["proteins"] = time.perf_counter() - clock

    clock = time.perf_counter()
    placements = Placements.concatenate([membrane_part, *filament_parts, proteins])
    potential, labels, instances = render_objects(
        placements, templates, shape=shape, pixel_size=pixel_size,
        label_threshold=recipe.label_threshold, boxes=boxes,
    )
    for species, part in envelope_parts:  # filament tube labels (FilamentSpecies.label_rule)
        filaments.apply_envelope_labels(labels, instances, part, species, pixel_size=pixel_size)
    timings["render"] = time.perf_counter() - clock
    if context.slab is not None:
        clock = time.perf_counter()
        placements, ice_thickness = _apply_context(
            recipe, potential, labels, instances, placements, slab_thickness, rng.spawn(1)[0]
        )
        timings["context"] = time.perf_counter() - clock
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
        membranes=tuple(membrane_list),
    )
