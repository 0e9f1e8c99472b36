"""Assemble: pack proteins, filaments and vesicles into a virtual cytoplasm with exact labels.

Positions are ``(x, y, z)`` in Å in *sample coordinates*: measured from the centre of voxel
``[0, 0, 0]`` of the sample volume, so a position ``p`` lies at array index ``p[::-1] / pixel_size``
(CONVENTIONS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

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
