"""Coarse built-in pseudo-atomic models for the offline demo (``builtin:NAME``).

These are **coarse** shapes, not atomic structures: each model is a union of smooth solids
(super-ellipsoids, a spherical shell) with the right size, mass and overall architecture, filled
with C/N/O/S atoms in protein-like proportions at protein atomic density. They give particles of
the right size, mass and contrast for simulations that must run without network access; use a
real model (``pdb:``, a file) for anything that depends on high-resolution detail.

Filling
    One heavy atom per :data:`VOLUME_PER_ATOM` = 17.5 Å³ (stratified: one uniformly random point
    in each cell of a cubic grid of that cell volume, kept when it falls inside the shape), which
    with the hydrogens below gives the protein density 1.35 g/cm³ = 0.81 Da/Å³ (Fischer, Polikarpov
    & Craievich 2004, *Protein Sci.* 13, 2825). Elements are drawn with the frequencies of heavy
    atoms in proteins, C 63 %, N 17.3 %, O 19.1 %, S 0.6 %, and each atom carries the implicit
    hydrogens a protein atom of that element carries on average (C 1.22, N 1.19, O 0.10,
    S 0.40; a random integer with that mean), so the mass is 14.2 Da per heavy atom, as in real
    proteins (these averages were measured on the models of PDB 4V1W, 3J9I, 5IJ0 and 1J6Z read
    with :func:`tomosim.structures.read_structure`). B-factor 30 Å², occupancy 1.

Reproducible: a fixed internal seed per model; results are cached (``functools.lru_cache``) and
their arrays are read-only.

Reference frames (CONVENTIONS.md: the reference point is the mean atom position unless stated
otherwise)

- ``ribosome``, ``proteasome``, ``apoferritin``: mean atom position at the origin. The
  proteasome barrel axis and the ribosome subunit axis are along z.
- ``actin``, ``tubulin``: one filament subunit with its centre (the mean atom position) at the
  origin, the **filament axis parallel to +z** and the subunit's outward radial direction (away
  from the filament axis) along **+x**. A filament builder puts subunit ``i`` at radius ``r``,
  azimuth ``φ_i`` and height ``z_i`` by rotating it by ``Rz(φ_i)`` and moving its origin to
  ``(r cos φ_i, r sin φ_i, z_i)``. Actin: +z points to the **pointed (minus) end** (subdomains
  2 and 4 on top, 1 and 3 below; the inner domain 3/4 at −x faces the axis). Tubulin: α-tubulin
  (chain A) at z < 0, β-tubulin (chain B) at z > 0, so +z points to the **plus end**, where β is
  exposed.
- ``cofilactin``: exactly the ``actin`` atoms (same frame, chain A) plus a cofilin (chain C) on
  the outer face; the model origin is the **actin subunit centre**, not the mean of all atoms,
  so decorated and bare subunits can be swapped in one filament.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from tomosim.atoms import Atoms
from tomosim.errors import TomosimError

BUILTIN_VERSION = "1"
"""Changes whenever the generated models change (part of the potential cache key)."""
VOLUME_PER_ATOM = 17.5
"""Å³ of protein per heavy atom (including the volume of its implicit hydrogens)."""
B_FACTOR = 30.0
"""Å², every atom."""
ELEMENT_FREQUENCIES = {"C": 0.630, "N": 0.173, "O": 0.191, "S": 0.006}
"""Fraction of heavy atoms of each element in proteins."""
MEAN_HYDROGENS = {"C": 1.22, "N": 1.19, "O": 0.10, "S": 0.40}
"""Average number of hydrogens bonded to a protein heavy atom of each element."""


@dataclass(frozen=True)
class _Solid:
    """A super-ellipsoid ``|x/a|^p + |y/b|^p + |z/c|^p <= 1`` in its own frame.

    It is placed at ``centre`` and rotated by ``rotation`` (active, acting on (x, y, z) column
    vectors).
    """

    centre: tuple[float, float, float]
    semi_axes: tuple[float, float, float]
    chain: str
    exponent: float = 2.0
    rotation: np.ndarray | None = None

    def contains(self, points: np.ndarray) -> np.ndarray:
        local = points - np.asarray(self.centre)
        if self.rotation is not None:
            local = local @ self.rotation  # R^T applied to each row vector
        scaled = np.abs(local / np.asarray(self.semi_axes)) ** self.exponent
        return scaled.sum(axis=1) <= 1.0

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        reach = np.linalg.norm(self.semi_axes) if self.rotation is not None else self.semi_axes
        centre = np.asarray(self.centre)
        return centre - reach, centre + reach


@dataclass(frozen=True)
class BuiltinInfo:
    """What a built-in model represents: nominal mass (kDa), size, and the description."""

    mass_kda: float
    size: str
    description: str


BUILTINS: dict[str, BuiltinInfo] = {
    "ribosome": BuiltinInfo(
        2500.0, "~235×180×150 Å", "70S-like ribosome: large (chain L), small (chain S) subunit"
    ),
    "proteasome": BuiltinInfo(
        700.0, "~150 Å long, ~113 Å wide",
        "20S-like proteasome: barrel of 4 stacked heptameric rings along z (α β β α)",
    ),
    "apoferritin": BuiltinInfo(
        480.0, "119 Å outer, 82 Å inner diameter", "apoferritin: hollow shell of 24 subunits"
    ),
    "actin": BuiltinInfo(42.0, "~55×34×55 Å (x×y×z)", "one F-actin subunit, 4 subdomains"),
    "cofilactin": BuiltinInfo(
        61.0, "~81×34×55 Å (x×y×z)", "F-actin subunit (chain A) with cofilin (chain C)"
    ),
    "tubulin": BuiltinInfo(110.0, "~58×45×80 Å (x×y×z)", "αβ-tubulin dimer, 80 Å along z"),
}
"""The built-in models: ``builtin:NAME`` for each key."""


def builtin_names() -> list[str]:
    """Names accepted by :func:`builtin_atoms` (``builtin:NAME``)."""
    return sorted(BUILTINS)


@functools.cache
def builtin_atoms(name: str) -> Atoms:
    """The coarse pseudo-atomic model ``name`` (see the module docstring for frames and filling).

    Parameters
    ----------
    name
        One of :func:`builtin_names` (case-insensitive).

    Returns
    -------
    Atoms
        Read-only arrays; ``name`` is ``"builtin:NAME (coarse)"``.

    Raises
    ------
    TomosimError
        For an unknown name (listing the known ones).
    """
    key = name.strip().lower()
    if key != name:
        return builtin_atoms(key)
    if key not in BUILTINS:
        raise TomosimError(
            f"unknown builtin structure {name!r} (known: {', '.join(builtin_names())})"
        )
    if key == "cofilactin":
        # the same actin atoms as builtin:actin, in the same frame (origin = actin centre)
        actin = _fill(_actin_solids(), seed=_seed("actin"))
        cofilin = _fill(_cofilin_solids(), seed=_seed("cofilin"))
        atoms = _concatenate(actin, cofilin)
        return _finish(atoms, centre=actin.positions.mean(axis=0), name=key)
    if key == "apoferritin":
        atoms = _fill([], seed=_seed(key), extra=_apoferritin_shell())
    else:
        atoms = _fill(_SHAPES[key](), seed=_seed(key))
    return _finish(atoms, centre=atoms.positions.mean(axis=0), name=key)


# --------------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------------


def _ribosome_solids() -> list[_Solid]:
    """Large subunit (oblate body + central protuberance + stalk) over a small subunit along z."""
    return [
        _Solid((0.0, 0.0, -25.0), (108.0, 90.0, 53.0), "L", exponent=2.2),
        _Solid((0.0, 30.0, 25.0), (30.0, 26.0, 24.0), "L"),  # central protuberance
        _Solid((-100.0, 10.0, -10.0), (28.0, 18.0, 18.0), "L"),  # stalk
        _Solid((8.0, -6.0, 45.0), (100.0, 56.0, 27.0), "S", exponent=2.2),
    ]


def _proteasome_solids() -> list[_Solid]:
    """28 subunits: 4 rings of 7 at 37.5 Å spacing along z (α β β α), radius 40 Å."""
    solids = []
    chain_ids = [chr(ord("A") + i) for i in range(26)] + ["a", "b"]
    ring_spacing, ring_radius = 37.5, 40.0
    for ring in range(4):
        z = (ring - 1.5) * ring_spacing
        stagger = 0.0 if ring in (0, 3) else np.pi / 7  # β rings offset by half a subunit
        for j in range(7):
            angle = 2 * np.pi * j / 7 + stagger
            rotation = Rotation.from_euler("z", angle).as_matrix()
            centre = (ring_radius * np.cos(angle), ring_radius * np.sin(angle), z)
            solids.append(
                _Solid(centre, (16.5, 19.5, 19.5), chain_ids[7 * ring + j], 2.5, rotation)
            )
    return solids


def _apoferritin_shell() -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray, np.ndarray]:
    """Spherical shell 41-59.5 Å; atoms are assigned to 24 chains A-X by octahedral symmetry."""
    outer, inner = 59.5, 41.0
    directions = Rotation.create_group("O").apply(np.array([0.80, 0.48, 0.36]))
    chain_ids = np.array([chr(ord("A") + i) for i in range(24)])

    def chains(points: np.ndarray) -> np.ndarray:
        radius = np.linalg.norm(points, axis=1)
        inside = (radius >= inner) & (radius <= outer)
        labels = np.full(len(points), "", dtype="<U1")
        nearest = np.argmax(points[inside] @ directions.T, axis=1)
        labels[inside] = chain_ids[nearest]
        return labels

    return chains, np.full(3, -outer), np.full(3, outer)


def _actin_solids() -> list[_Solid]:
    """Subdomains 1-4 of an F-actin subunit; +x outward, +z to the pointed end."""
    return [
        _Solid((14.0, 0.0, -13.5), (13.5, 17.0, 14.0), "A", 2.0),  # SD1, outer domain, barbed
        _Solid((14.0, 0.0, 14.0), (12.0, 14.0, 13.5), "A", 2.0),  # SD2, outer domain, pointed
        _Solid((-14.0, 0.0, -13.5), (13.5, 17.0, 14.0), "A", 2.0),  # SD3, inner domain
        _Solid((-13.5, 0.0, 13.5), (14.0, 17.0, 14.0), "A", 2.0),  # SD4, inner domain
    ]


def _cofilin_solids() -> list[_Solid]:
    """Cofilin (~19 kDa) on the outer face of actin, bridging towards the next subunit below."""
    return [_Solid((39.0, 0.0, -6.0), (15.0, 17.0, 19.0), "C", 2.2)]


def _tubulin_solids() -> list[_Solid]:
    """α (chain A, z < 0) and β (chain B, z > 0) monomers, 40 Å each along z."""
    return [
        _Solid((0.0, 0.0, -20.0), (29.0, 22.5, 20.0), "A", 2.5),
        _Solid((0.0, 0.0, 20.0), (29.0, 22.5, 20.0), "B", 2.5),
    ]


_SHAPES: dict[str, Callable[[], list[_Solid]]] = {
    "ribosome": _ribosome_solids,
    "proteasome": _proteasome_solids,
    "actin": _actin_solids,
    "tubulin": _tubulin_solids,
}


# --------------------------------------------------------------------------------------------
# Filling shapes with atoms
# --------------------------------------------------------------------------------------------


def _seed(name: str) -> int:
    return zlib.crc32(f"tomosim-builtin-{name}".encode())


def _fill(
    solids: list[_Solid],
    *,
    seed: int,
    extra: tuple[Callable[[np.ndarray], np.ndarray], np.ndarray, np.ndarray] | None = None,
) -> Atoms:
    """Stratified random atoms inside the union of ``solids`` (or of the ``extra`` chain function).

    ``extra`` returns a chain id per point ("" outside) and comes with its bounding box.
    """
    rng = np.random.default_rng(seed)
    if extra is not None:
        chain_of, low, high = extra
    else:
        lows, highs = zip(*(solid.bounds() for solid in solids), strict=False)
        low, high = np.min(lows, axis=0), np.max(highs, axis=0)
    spacing = VOLUME_PER_ATOM ** (1 / 3)
    counts = np.ceil((high - low) / spacing).astype(int) + 1
    grid = np.stack(
        np.meshgrid(*(np.arange(n) for n in counts), indexing="ij"), axis=-1
    ).reshape(-1, 3)
    points = low + (grid + rng.random(grid.shape)) * spacing
    if extra is not None:
        chains = chain_of(points)
    else:
        chains = np.full(len(points), "", dtype="<U1")
        for solid in reversed(solids):  # the first solid listed wins where they overlap
            solid_low, solid_high = solid.bounds()
            near = np.flatnonzero(np.all((points >= solid_low) & (points <= solid_high), axis=1))
            chains[near[solid.contains(points[near])]] = solid.chain
    keep = chains != ""
    points, chains = points[keep], chains[keep]
    symbols = np.array(list(ELEMENT_FREQUENCIES))
    frequencies = np.array(list(ELEMENT_FREQUENCIES.values()))
    which = rng.choice(len(symbols), size=len(points), p=frequencies / frequencies.sum())
    mean_h = np.array([MEAN_HYDROGENS[symbol] for symbol in symbols])[which]
    hydrogens = (np.floor(mean_h) + (rng.random(len(points)) < mean_h % 1)).astype(np.int64)
    elements = symbols[which]
    return Atoms(
        positions=points,
        elements=elements,
        b_factors=np.full(len(points), B_FACTOR),
        occupancies=np.ones(len(points)),
        chain_ids=chains,
        hydrogens=hydrogens,
    )


def _concatenate(first: Atoms, second: Atoms) -> Atoms:
    return Atoms(
        positions=np.concatenate([first.positions, second.positions]),
        elements=np.concatenate([first.elements, second.elements]),
        b_factors=np.concatenate([first.b_factors, second.b_factors]),
        occupancies=np.concatenate([first.occupancies, second.occupancies]),
        chain_ids=np.concatenate([first.chain_ids, second.chain_ids]),
        hydrogens=np.concatenate([first.hydrogens, second.hydrogens]),
    )


def _finish(atoms: Atoms, *, centre: np.ndarray, name: str) -> Atoms:
    """Shift ``centre`` to the origin, name the model, make the arrays read-only."""
    arrays = {
        "positions": atoms.positions - centre,
        "elements": atoms.elements.astype(str),
        "b_factors": atoms.b_factors,
        "occupancies": atoms.occupancies,
        "chain_ids": atoms.chain_ids.astype(str),
        "hydrogens": atoms.hydrogens,
    }
    for array in arrays.values():
        array.setflags(write=False)
    return Atoms(**arrays, name=f"builtin:{name} (coarse)")
