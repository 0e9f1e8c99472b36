"""Atoms: an atomic model as plain arrays, the type shared by every structure source.

It sits below :mod:`tomosim.structures` (model files) and :mod:`tomosim.builtin_structures`
(generated stand-ins), which both make it, and :mod:`tomosim.potential`, which reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Atoms:
    """An atomic model as plain arrays (first model only).

    Attributes
    ----------
    positions
        ``(n, 3)`` float64, ``(x, y, z)`` in Å.
    elements
        ``(n,)`` str, element symbols as gemmi names them (``gemmi.Element(...).name``): the
        standard capitalisation "C", "N", "Fe", "Zn"; ``gemmi.Element(symbol)`` reads them back.
    b_factors
        ``(n,)`` float64, isotropic B-factors in Å².
    occupancies
        ``(n,)`` float64 in [0, 1].
    chain_ids
        ``(n,)`` str, chain (author) ids.
    hydrogens
        ``(n,)`` int, implicit hydrogens attached to each atom (0 when unknown or explicit).
    name
        Where the model came from (file name or identifier), for messages and provenance.
    """

    positions: np.ndarray
    elements: np.ndarray
    b_factors: np.ndarray
    occupancies: np.ndarray
    chain_ids: np.ndarray
    hydrogens: np.ndarray
    name: str = ""

    def __len__(self) -> int:
        return int(self.positions.shape[0])
