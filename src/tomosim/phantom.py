"""Phantom data types: where every object copy sits, and the assembled sample.

Positions are ``(x, y, z)`` in Å in *sample coordinates*: measured from the centre of voxel
``[0, 0, 0]`` of the sample volume, so a position ``p`` lies at array index ``p[::-1] / pixel_size``
(CONVENTIONS.md). Rotations are active: a template point at offset ``r`` (Å, ``x y z``) from the
template's reference point (its box centre voxel ``shape // 2``) goes to ``position + R @ r``.

These types sit below every module that places, renders or writes objects
(:mod:`tomosim.packing`, :mod:`tomosim.filaments`, :mod:`tomosim.rendering`,
:mod:`tomosim.assemble`, :mod:`tomosim.particles`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Placements:
    """Where every object copy sits: one row per placed particle or filament subunit.

    Attributes
    ----------
    positions
        ``(n, 3)`` float64 sample coordinates ``(x, y, z)`` in Å of each copy's reference point.
    rotations
        ``(n, 3, 3)`` float64 active rotations (CONVENTIONS.md: reference point at offset ``r``
        goes to ``position + R @ r``).
    template
        ``(n,)`` int, index into ``template_names``.
    template_names
        Names of the templates (the species / subunit name), e.g. ``("ribosome", "actin")``.
    class_id
        ``(n,)`` int, label class (0 = background / distractor).
    instance_id
        ``(n,)`` int, object id in ``instances.mrc`` (a particle, or one filament segment).
    filament_id
        ``(n,)`` int, filament number (``-1`` for globular particles).
    segment_id
        ``(n,)`` int, segment number within its filament (``-1`` for particles).
    subunit_index
        ``(n,)`` int, subunit number along its filament (``-1`` for particles).
    """

    positions: np.ndarray
    rotations: np.ndarray
    template: np.ndarray
    template_names: tuple[str, ...]
    class_id: np.ndarray
    instance_id: np.ndarray
    filament_id: np.ndarray
    segment_id: np.ndarray
    subunit_index: np.ndarray

    def __len__(self) -> int:
        return int(self.positions.shape[0])

    @classmethod
    def empty(cls) -> Placements:
        """No rows."""
        none = np.zeros(0, np.int64)
        return cls(
            np.zeros((0, 3)), np.zeros((0, 3, 3)), none, (), none, none, none, none, none
        )

    @classmethod
    def concatenate(cls, parts: Sequence[Placements]) -> Placements:
        """Rows of ``parts`` in order; template names are merged (first use order) and re-indexed.

        Ids (instance, filament, segment) are kept as they are: renumbering is the caller's job.
        """
        parts = [p for p in parts if len(p) > 0]
        if not parts:
            return cls.empty()
        names: list[str] = []
        remapped = []
        for part in parts:
            for name in part.template_names:
                if name not in names:
                    names.append(name)
            lookup = np.array([names.index(n) for n in part.template_names], np.int64)
            remapped.append(lookup[np.asarray(part.template, np.int64)])

        def cat(attribute: str) -> np.ndarray:
            return np.concatenate([np.asarray(getattr(p, attribute), np.int64) for p in parts])

        return cls(
            positions=np.concatenate([np.asarray(p.positions, np.float64) for p in parts]),
            rotations=np.concatenate([np.asarray(p.rotations, np.float64) for p in parts]),
            template=np.concatenate(remapped),
            template_names=tuple(names),
            class_id=cat("class_id"),
            instance_id=cat("instance_id"),
            filament_id=cat("filament_id"),
            segment_id=cat("segment_id"),
            subunit_index=cat("subunit_index"),
        )

    def select(self, rows: np.ndarray) -> Placements:
        """The rows picked by a boolean mask or an index array (template names unchanged)."""
        return Placements(
            positions=np.asarray(self.positions)[rows],
            rotations=np.asarray(self.rotations)[rows],
            template=np.asarray(self.template)[rows],
            template_names=self.template_names,
            class_id=np.asarray(self.class_id)[rows],
            instance_id=np.asarray(self.instance_id)[rows],
            filament_id=np.asarray(self.filament_id)[rows],
            segment_id=np.asarray(self.segment_id)[rows],
            subunit_index=np.asarray(self.subunit_index)[rows],
        )


@dataclass(frozen=True)
class PotentialBox:
    """An object given directly as a potential on a box of the output grid (e.g. a vesicle).

    Attributes
    ----------
    data
        ``(z, y, x)`` float32 potential in volts on the output grid (same pixel size).
    corner
        ``(z, y, x)`` index in the sample volume of ``data[0, 0, 0]``; the box may stick out of the
        volume on any side (it is clipped when rendered).
    class_id
        Label class of the object.
    instance_id
        Object id (``assemble_phantom`` renumbers it).
    name
        What it is, e.g. ``"vesicle"``.
    """

    data: np.ndarray
    corner: tuple[int, int, int]
    class_id: int
    instance_id: int = 0
    name: str = ""


@dataclass(frozen=True)
class SpeciesReport:
    """How many copies of one species were asked for and how many were placed.

    ``volume_fraction`` (proteins only) is the share of the region the species may occupy taken
    by the envelopes of its placed copies: ``placed × envelope volume / region volume``.
    """

    name: str
    kind: str  # "protein", "filament", "vesicle", "sheet" or "membrane protein"
    requested: int
    placed: int
    volume_fraction: float | None = None


@dataclass(frozen=True)
class Phantom:
    """An assembled sample: potential, labels, instances and the list of placed copies.

    Attributes
    ----------
    potential
        ``(z, y, x)`` float32, volts, excess over ice (the ice slab itself is the microscope's).
    labels
        ``(z, y, x)`` uint8 class ids, 0 = background.
    instances
        ``(z, y, x)`` uint32 object ids, 0 = none; ``labels == instance_class[instances]``.
    placements
        One row per particle / filament subunit (vesicles are in ``boxes``).
    class_names
        ``{id: name}`` for every class of the config, ``0: "background"`` included.
    pixel_size
        Å per voxel.
    ice_thickness
        Thickness of the ice slab in Å, centred on voxel ``shape[0] // 2`` along z.
    report
        Requested and placed counts per protein species, filament species and vesicles.
    boxes
        Objects given as potential boxes (vesicles).
    timings
        Wall-clock seconds per stage (``vesicles``, ``filaments``, ``proteins``, ``render``).
    membranes
        The geometry of the membranes (:class:`tomosim.membranes.Vesicle` and
        :class:`tomosim.membranes.Sheet`), in the order of their boxes.
    """

    potential: np.ndarray
    labels: np.ndarray
    instances: np.ndarray
    placements: Placements
    class_names: dict[int, str]
    pixel_size: float
    ice_thickness: float
    report: tuple[SpeciesReport, ...]
    boxes: tuple[PotentialBox, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    membranes: tuple[object, ...] = ()

    @property
    def instance_class(self) -> np.ndarray:
        """``(max_id + 1,)`` int64: class id of every instance id (index 0: background)."""
        return instance_class_table(self.placements, self.boxes)


def instance_class_table(placements: Placements, boxes: Sequence[PotentialBox] = ()) -> np.ndarray:
    """``(max_id + 1,)`` int64 array mapping instance id -> class id (0 for unused ids)."""
    ids = np.concatenate(
        [np.asarray(placements.instance_id, np.int64), [b.instance_id for b in boxes]]
    ).astype(np.int64)
    classes = np.concatenate(
        [np.asarray(placements.class_id, np.int64), [b.class_id for b in boxes]]
    ).astype(np.int64)
    table = np.zeros(int(ids.max(initial=0)) + 1, np.int64)
    table[ids] = classes
    return table
