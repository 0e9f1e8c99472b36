"""Assemble: pack proteins, filaments and vesicles into a virtual cytoplasm with exact labels.

Positions are ``(x, y, z)`` in Å in *sample coordinates*: measured from the centre of voxel
``[0, 0, 0]`` of the sample volume, so a position ``p`` lies at array index ``p[::-1] / pixel_size``
(CONVENTIONS.md). Rotations are active: a template point at offset ``r`` (Å, ``x y z``) from the
template's reference point (its box centre voxel ``shape // 2``) goes to ``position + R @ r``.

The steps, in the order :func:`assemble_phantom` runs them:

1. **Placement** (vesicles, then filaments, then proteins; :mod:`tomosim.membranes`,
   :mod:`tomosim.filaments`, :mod:`tomosim.packing`). Every placed object marks its voxels in a
   boolean *occupancy* grid, so objects never overlap.
2. **Rendering and labels** (:func:`tomosim.rendering.render_objects`): each copy's template is
   resampled onto the output grid; a voxel takes an object's class where that object's own
   potential exceeds ``label_threshold`` (the largest own potential wins).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from tomosim import filaments, membranes
from tomosim.config import SimulationConfig
from tomosim.errors import TomosimError
from tomosim.packing import ENVELOPE_FRACTION, mark_boxes, mark_occupancy, place_proteins
from tomosim.phantom import Phantom, Placements, PotentialBox, SpeciesReport
from tomosim.potential import Potential
from tomosim.rendering import render_objects

# --------------------------------------------------------------------------------------------


def assemble_phantom(
    config: SimulationConfig, templates: Mapping[str, Potential], rng: np.random.Generator
) -> Phantom:
    """Place vesicles, filaments and proteins, render the potential and label every voxel.

    Parameters
    ----------
    config
        The whole simulation config (``sample``, ``proteins``, ``filaments``, ``vesicles``,
        ``classes``).
    templates
        ``{name: Potential}`` for every protein species (by species name) and every filament
        subunit template (by the names :mod:`tomosim.filaments` gives them), computed at
        :func:`tomosim.rendering.template_pixel_size` ``(config.sample.pixel_size)`` (any finer pixel size works).
    rng
        Random generator; the same seed gives byte-identical phantoms.

    Returns
    -------
    Phantom
        Instance ids: vesicles first, then filament segments, then proteins (1, 2, ...). Class ids
        come from ``config.class_ids()`` and never shift when a class places nothing.
    """
    sample = config.sample
    shape = tuple(int(s) for s in sample.shape)
    pixel_size = float(sample.pixel_size)
    ice_thickness = (
        float(sample.ice_thickness) if sample.ice_thickness is not None else shape[0] * pixel_size
    )
    class_ids = config.class_ids()
    if max(class_ids.values()) > 254:
        raise TomosimError(
            f"at most 254 classes fit in uint8 labels; the config has {len(class_ids) - 1}"
        )
    label_threshold = float(sample.label_threshold)
    envelope_threshold = ENVELOPE_FRACTION * label_threshold
    occupancy = np.zeros(shape, bool)
    reports: list[SpeciesReport] = []
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    # 1. vesicles --------------------------------------------------------------------------
    boxes: list[PotentialBox] = []
    interior = None
    if config.vesicles.count > 0:
        vesicles = membranes.place_vesicles(
            config.vesicles, shape=shape, pixel_size=pixel_size, rng=rng
        )
        ice_v = 0.0 if config.potential.solvent == "none" else config.potential.ice_potential_v
        vesicle_class = class_ids[config.vesicles.label]  # "background" -> 0
        for vesicle in vesicles:
            box = membranes.vesicle_potential(
                vesicle, pixel_size=pixel_size, shape=shape, thickness=config.vesicles.thickness,
                ice_potential_v=ice_v,
            )
            boxes.append(
                PotentialBox(box.data, tuple(box.corner), vesicle_class, len(boxes) + 1, "vesicle")
            )
        mark_boxes(occupancy, boxes, envelope_threshold=envelope_threshold)
        if vesicles:
            interior = membranes.inside_mask(
                vesicles, shape=shape, pixel_size=pixel_size, margin=config.vesicles.thickness / 2
            )
        reports.append(SpeciesReport("vesicles", "vesicle", config.vesicles.count, len(boxes)))
    next_instance = len(boxes) + 1
    timings["vesicles"] = time.perf_counter() - clock
    clock = time.perf_counter()

    # 2. filaments -------------------------------------------------------------------------
    filament_parts: list[Placements] = []
    next_filament = 0
    for species in config.filaments:
        needed = [n for n in filaments.filament_templates(species) if n not in templates]
        if species.count and needed:
            raise TomosimError(f"filament {species.name!r}: no template for {needed}")
        part = filaments.place_filaments(
            species, shape=shape, pixel_size=pixel_size, rng=rng, class_ids=class_ids,
            first_instance_id=next_instance, first_filament_id=next_filament, occupancy=occupancy,
        )
        if len(part):
            next_instance = int(part.instance_id.max()) + 1
            next_filament = int(part.filament_id.max()) + 1
            # subunit envelopes at half the protein level: up to four overlapping subunits
            # outside their envelopes stay below the label threshold together
            mark_occupancy(
                occupancy, part, templates, pixel_size=pixel_size,
                envelope_threshold=0.5 * envelope_threshold,
            )
            filament_parts.append(part)
        placed = int(np.unique(part.filament_id).size) if len(part) else 0
        reports.append(SpeciesReport(species.name, "filament", species.count, placed))
    timings["filaments"] = time.perf_counter() - clock
    clock = time.perf_counter()

    # 3. proteins --------------------------------------------------------------------------
    proteins, protein_report = place_proteins(
        config.proteins, templates, shape=shape, pixel_size=pixel_size, class_ids=class_ids,
        rng=rng, label_threshold=label_threshold, ice_thickness=sample.ice_thickness,
        occupancy=occupancy, interior=interior, inside=config.vesicles.proteins_inside,
        outside=config.vesicles.proteins_outside, first_instance_id=next_instance,
    )
    reports += protein_report
    del occupancy, interior
    timings["proteins"] = time.perf_counter() - clock
    clock = time.perf_counter()

    placements = Placements.concatenate([*filament_parts, proteins])
    potential, labels, instances = render_objects(
        placements, templates, shape=shape, pixel_size=pixel_size,
        label_threshold=label_threshold, boxes=boxes,
    )
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
