"""Filaments: helical polymers (F-actin, cofilactin, microtubules) as rows of placed subunits.

A filament is a *path* (its axis, a polyline in sample coordinates with a frame at every point)
and a *helical lattice* wrapped around it. Every subunit becomes one row of
:class:`tomosim.phantom.Placements`, so the assembly renders filaments exactly like particles:
the subunit template actively rotated by ``R`` and moved to ``p`` (CONVENTIONS.md).

Conventions
-----------
Positions are ``(x, y, z)`` in Å in *sample coordinates* (from the centre of voxel ``[0, 0, 0]``;
``p`` lies at array index ``p[::-1] / pixel_size``). Angles are in degrees.

**Filament frame.** The filament axis is ``+z``, the direction the subunit template's ``+z``
points (for ``builtin:actin`` the pointed end, for ``builtin:tubulin`` the plus end; the
handedness of a helix does not depend on which end ``+z`` names). A 1-start helix with rise
``Δz`` and twist ``Δφ`` has subunit ``k`` at azimuth ``φ_k = k·Δφ``, height ``z_k = k·Δz`` and
radius ``r`` — position ``(r cos φ_k, r sin φ_k, z_k)`` — rotated by ``Rz(φ_k)``, so that
neighbouring subunits are related by the screw operation. A tube of ``N`` protofilaments with start number ``S`` has
protofilament ``q`` at azimuth ``q·360°/N`` and axial stagger ``q·S·δ/N`` (``δ`` =
``start_rise``, the length of the unit the start number counts); along each protofilament the
subunits repeat with the rise and twist. When ``S·δ`` is not a multiple of the rise the lattice
closes with a *seam* between protofilaments ``N − 1`` and ``0`` (the microtubule B-lattice: a
3-start monomer helix of αβ-dimers leaves a half-dimer offset, i.e. an A-lattice seam).

**Subunit template.** A subunit template (``builtin:actin``, ``builtin:cofilactin``,
``builtin:tubulin`` or any structure) is the subunit *as it sits at azimuth 0 of the filament*:
its reference point (the mean atom position, CONVENTIONS.md; for ``builtin:cofilactin`` the
centre of its actin) on the ``+x`` axis at ``HelicalParameters.radius`` from the filament axis,
the filament axis parallel to ``+z``, and then translated so that its reference point is at the
origin (the frame of :mod:`tomosim.builtin_structures`). In template coordinates the filament
axis is therefore the line ``(x, y) = (-radius, 0)``.

**Curved filaments.** Along a curved path the lattice coordinates ``(s, φ)`` (arc length, azimuth)
are mapped with a rotation-minimising (parallel-transported) frame ``(n, b, t)`` of the path: a
subunit sits at ``c(s) + r (cos φ n(s) + sin φ b(s))`` with rotation ``[n b t](s) · Rz(φ)``. The
frame does not spin about the tangent, so the twist comes from the lattice alone and a curved
filament stays a proper helix locally.

**Volume edges.** Filaments are *kept inside* the volume: every point of the axis stays at least
the filament's ``outer_radius`` from the outermost voxel centres, so no filament is cut at a face
and its label is never truncated. A filament whose minimum length cannot fit in its arrangement
raises :class:`~tomosim.errors.TomosimError`.

Helical parameters of the presets (literature values)
-----------------------------------------------------
``actin``
    F-actin (ADP): rise 27.5 Å, twist −166.7° per subunit (1-start genetic helix; Fujii et al.
    2010, *Nature* 467, 724; von der Ecken et al. 2015, *Nature* 519, 114: rise 27.5–27.6 Å, twist
    −166.6 to −166.7°). Subunit centre (mean atom position) radius 15.8 Å, measured on the
    F-actin model 6BNO (15 subunits; helical fit of the chain centroids gives rise 28.1 Å, twist
    −166.6°, radius 15.8 Å; 99 % of atoms within 41 Å of the axis); outer radius 48 Å (the
    coarse ``builtin:actin`` reaches 44.5 Å).
``cofilactin``
    Cofilin-saturated actin: twist ≈ −162°, rise ≈ 27 Å (Galkin et al. 2011, *PNAS* 108, 20568;
    Huehn et al. 2018, *PNAS* 115, 1478; crossover shortened to ~75 % of F-actin's, McGough et al.
    1997, *J. Cell Biol.* 138, 771). The subunit is one actin plus its cofilin with the *actin*
    centre as reference point (as in ``builtin:cofilactin``), at 16.0 Å from the axis, measured on
    the cofilactin MD model of Hocky et al. (CofilinSevering; helical fit of the decorated actins:
    twist −161.8°, rise 27.7 Å, radius 16.0 Å; the actin + cofilin centroid sits at 22.5 Å, atoms
    reach 62 Å); outer radius 72 Å (the coarse ``builtin:cofilactin`` reaches 71 Å).
``microtubule``
    13 protofilaments, 3-start lattice counted in monomers (B-lattice with one seam),
    αβ-tubulin dimer subunits with an 81.8 Å repeat along the protofilament (4.1 nm monomer;
    GDP lattice ≈ 81.5–82 Å, GMPCPP ≈ 84 Å; Alushin et al. 2014, *Cell* 157, 1117; Zhang et al.
    2015, *Cell* 162, 849), no supertwist (13-pf microtubules have straight protofilaments,
    twist 0). Protofilament (dimer centre) radius 110 Å: neighbouring protofilaments of the GDP
    lattice patch derived from PDB 3J6E are 53.4 Å apart including a 9.4 Å stagger, i.e. a
    52.6 Å chord = 2 R sin(π/13); outer radius 140 Å (outer diameter ≈ 25 nm; the coarse
    ``builtin:tubulin`` reaches 139 Å).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numba
import numpy as np
from scipy.optimize import brentq
from scipy.spatial import cKDTree

from tomosim.config import FilamentSpecies
from tomosim.errors import TomosimError
from tomosim.phantom import Placements

DEFAULT_SUBUNIT_RADIUS = 30.0
"""Å added to ``radius`` to get the outer radius when a parameter set does not give one."""

DEFAULT_MIN_GAP = 10.0
"""Å of clearance kept between filament surfaces (outer radii) in ``random`` arrangements."""

MAX_ATTEMPTS = 500
"""Placement attempts per filament before it is given up (with a warning)."""

MAX_PATH_STEP = 50.0
"""Å, the longest segment of a curved filament's axis polyline."""


# --------------------------------------------------------------------------------------------
# Helical parameters
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HelicalParameters:
    """The helical lattice of a filament (see the module docstring for the frame).

    Attributes
    ----------
    rise
        Axial rise per subunit along the helix (1-start) or along a protofilament (tubes), Å.
    twist
        Rotation per subunit about the axis, degrees (right-handed about ``+z``; F-actin's
        genetic helix is left-handed: −166.7°).
    radius
        Distance of the subunit reference point from the filament axis, Å.
    protofilaments
        Protofilaments around the circumference; 1 for a 1-start helix.
    start
        Helix start number of a tube: going once around the circumference rises by
        ``start · start_rise``.
    start_rise
        Axial length of the unit that ``start`` counts, Å; ``None`` = ``rise``. For a microtubule
        of αβ-dimer subunits the 3-start helix counts monomers: ``start_rise = rise / 2``.
    outer_radius
        Radius of the cylinder that encloses all atoms, Å, used to keep filaments apart and
        inside the volume; ``None`` = ``radius + DEFAULT_SUBUNIT_RADIUS``.
    """

    rise: float
    twist: float
    radius: float
    protofilaments: int = 1
    start: int = 1
    start_rise: float | None = None
    outer_radius: float | None = None

    def __post_init__(self) -> None:
        if not (np.isfinite(self.rise) and self.rise > 0):
            raise TomosimError(f"helical rise must be > 0 Å, got {self.rise}")
        if not np.isfinite(self.twist):
            raise TomosimError(f"helical twist must be finite, got {self.twist}")
        if not (np.isfinite(self.radius) and self.radius >= 0):
            raise TomosimError(f"helical radius must be >= 0 Å, got {self.radius}")
        if int(self.protofilaments) != self.protofilaments or self.protofilaments < 1:
            raise TomosimError(f"protofilaments must be an integer >= 1, got {self.protofilaments}")
        if int(self.start) != self.start or self.start < 0:
            raise TomosimError(f"helix start number must be an integer >= 0, got {self.start}")
        if self.start_rise is not None and not self.start_rise > 0:
            raise TomosimError(f"start_rise must be > 0 Å, got {self.start_rise}")
        if self.outer_radius is not None and not self.outer_radius >= self.radius:
            raise TomosimError(
                f"outer_radius {self.outer_radius} Å is smaller than the subunit radius "
                f"{self.radius} Å"
            )

    @property
    def lateral_rise(self) -> float:
        """Axial stagger between neighbouring protofilaments, Å (0 for a 1-start helix)."""
        if self.protofilaments == 1:
            return 0.0
        unit = self.rise if self.start_rise is None else self.start_rise
        return self.start * unit / self.protofilaments

    @property
    def envelope_radius(self) -> float:
        """Outer radius of the filament, Å."""
        if self.outer_radius is not None:
            return float(self.outer_radius)
        return float(self.radius + DEFAULT_SUBUNIT_RADIUS)


PRESETS: dict[str, HelicalParameters] = {
    "actin": HelicalParameters(rise=27.5, twist=-166.7, radius=15.8, outer_radius=48.0),
    "cofilactin": HelicalParameters(rise=27.0, twist=-162.0, radius=16.0, outer_radius=72.0),
    "microtubule": HelicalParameters(
        rise=81.8, twist=0.0, radius=110.0, protofilaments=13, start=3, start_rise=40.9,
        outer_radius=140.0,
    ),
}
"""Helical parameters of the presets; values and sources in the module docstring."""

PRESET_SUBUNITS: dict[str, str] = {
    "actin": "builtin:actin",
    "cofilactin": "builtin:cofilactin",
    "microtubule": "builtin:tubulin",
}
"""The subunit structure each preset uses (an αβ-tubulin dimer for the microtubule)."""


def _rotation_z(angle_deg: np.ndarray) -> np.ndarray:
    """``(n, 3, 3)`` active rotations about ``+z`` by ``angle_deg``."""
    a = np.deg2rad(np.asarray(angle_deg, dtype=np.float64))
    c, s = np.cos(a), np.sin(a)
    out = np.zeros(a.shape + (3, 3))
    out[..., 0, 0] = c
    out[..., 0, 1] = -s
    out[..., 1, 0] = s
    out[..., 1, 1] = c
    out[..., 2, 2] = 1.0
    return out


def helical_lattice(
    n_subunits: int, params: HelicalParameters, *, phase: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Subunit positions and rotations of a straight filament in the filament frame.

    Subunit ``i`` sits on ring ``j = i // N`` and protofilament ``q = i % N`` (``N`` =
    ``params.protofilaments``; ``N = 1``: ``j = i``), at azimuth
    ``φ = phase + j·twist + q·360°/N`` and height ``z = j·rise + q·lateral_rise``, radius
    ``params.radius``, rotated by ``Rz(φ)``.

    Parameters
    ----------
    n_subunits
        Number of subunits.
    params
        The lattice.
    phase
        Azimuth of subunit 0, degrees.

    Returns
    -------
    positions
        ``(n, 3)`` float64 ``(x, y, z)`` in Å, filament axis along ``+z`` through the origin.
    rotations
        ``(n, 3, 3)`` float64 active rotations (template frame -> filament frame).
    """
    if n_subunits < 0:
        raise TomosimError(f"n_subunits must be >= 0, got {n_subunits}")
    index = np.arange(int(n_subunits))
    n_pf = params.protofilaments
    ring, pf = index // n_pf, index % n_pf
    phi = phase + ring * params.twist + pf * (360.0 / n_pf)
    height = ring * params.rise + pf * params.lateral_rise
    a = np.deg2rad(phi)
    positions = np.stack(
        [params.radius * np.cos(a), params.radius * np.sin(a), height.astype(np.float64)], axis=1
    )
    return positions.reshape(-1, 3), _rotation_z(phi).reshape(-1, 3, 3)


# --------------------------------------------------------------------------------------------
# Species -> parameters and templates
# --------------------------------------------------------------------------------------------


def species_parameters(species: FilamentSpecies) -> HelicalParameters:
    """The bare lattice of a filament species: its preset with the explicit values applied."""
    base = PRESETS[species.preset] if species.preset is not None else None
    values = {}
    for key in ("rise", "twist", "radius", "protofilaments", "start"):
        given = getattr(species, key)
        if given is not None:
            values[key] = given
        elif base is not None:
            values[key] = getattr(base, key)
    missing = [k for k in ("rise", "twist", "radius") if k not in values]
    if missing:
        raise TomosimError(
            f"filament {species.name!r}: no preset, so give {', '.join(missing)} explicitly"
        )
    start_rise = base.start_rise if base is not None else None
    outer = base.outer_radius if base is not None else None
    explicit_outer = species.outer_radius
    if base is not None:
        # Keep the preset's geometry proportional when the user changes a dimension.
        if start_rise is not None and "rise" in values and species.rise is not None:
            start_rise = start_rise * values["rise"] / base.rise
        if outer is not None and species.radius is not None:
            outer = outer + values["radius"] - base.radius
    if explicit_outer is not None:
        outer = explicit_outer
    try:
        return HelicalParameters(start_rise=start_rise, outer_radius=outer, **values)
    except TomosimError as exc:
        raise TomosimError(f"filament {species.name!r}: {exc}") from None


def decoration_parameters(species: FilamentSpecies) -> HelicalParameters | None:
    """The decorated lattice of a species (``None`` without decoration).

    The decoration preset gives rise, twist, radius and outer radius (``rise``, ``twist`` and
    ``radius`` of the decoration override them); without a preset the bare lattice is used with
    those overrides.
    The lattice topology (protofilaments, start) is always the bare one.
    """
    decoration = species.decoration
    if decoration is None:
        return None
    bare = species_parameters(species)
    base = PRESETS[decoration.preset] if decoration.preset is not None else bare
    if base.protofilaments != bare.protofilaments:
        raise TomosimError(
            f"filament {species.name!r}: decoration preset {decoration.preset!r} is a "
            f"{base.protofilaments}-protofilament lattice, the filament has {bare.protofilaments}"
        )
    radius = decoration.radius if decoration.radius is not None else base.radius
    try:
        return HelicalParameters(
            rise=decoration.rise if decoration.rise is not None else base.rise,
            twist=decoration.twist if decoration.twist is not None else base.twist,
            radius=radius,
            protofilaments=bare.protofilaments,
            start=bare.start,
            start_rise=bare.start_rise,
            outer_radius=max(base.envelope_radius, radius + (base.envelope_radius - base.radius)),
        )
    except TomosimError as exc:
        raise TomosimError(f"filament {species.name!r} decoration: {exc}") from None


def decorated_template_name(species: FilamentSpecies) -> str:
    """Template name of a species' decorated subunit: ``"<name>_<decoration label>"``."""
    assert species.decoration is not None
    return f"{species.name}_{species.decoration.label}"


def filament_templates(species: FilamentSpecies) -> dict[str, str]:
    """Subunit templates of a species, ``{template name: structure source}``.

    The bare subunit is named after the species; a decorated subunit (if any) is named
    :func:`decorated_template_name`. The order is the template index used in the placements
    (0 = bare, 1 = decorated).
    """
    source = species.source
    if source is None:
        if species.preset is None:
            raise TomosimError(f"filament {species.name!r}: give a preset or a source")
        source = PRESET_SUBUNITS[species.preset]
    out = {species.name: source}
    decoration = species.decoration
    if decoration is not None:
        dec_source = decoration.source
        if dec_source is None:
            if decoration.preset is None:
                raise TomosimError(
                    f"filament {species.name!r}: decoration needs a preset or a source"
                )
            dec_source = PRESET_SUBUNITS[decoration.preset]
        out[decorated_template_name(species)] = dec_source
    return out


def species_outer_radius(species: FilamentSpecies) -> float:
    """Largest outer radius of a species' subunits (bare or decorated), Å."""
    radius = species_parameters(species).envelope_radius
    decorated = decoration_parameters(species)
    if decorated is not None:
        radius = max(radius, decorated.envelope_radius)
    return radius


# --------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilamentPath:
    """A filament axis: a polyline with a rotation-minimising frame on each segment.

    Attributes
    ----------
    points
        ``(m + 1, 3)`` float64 node positions ``(x, y, z)`` in Å (sample coordinates).
    frames
        ``(m, 3, 3)`` float64 frame of each segment; columns ``(n, b, t)``: normal, binormal,
        tangent (``t`` points along the segment, ``n × b = t``). Consecutive frames differ by the
        smallest rotation taking one tangent to the next (discrete parallel transport).
    """

    points: np.ndarray
    frames: np.ndarray

    @property
    def arc_lengths(self) -> np.ndarray:
        """``(m + 1,)`` arc length at each node, Å (0 at the first)."""
        steps = np.linalg.norm(np.diff(self.points, axis=0), axis=1)
        return np.concatenate([[0.0], np.cumsum(steps)])

    @property
    def length(self) -> float:
        """Total arc length, Å."""
        return float(self.arc_lengths[-1])

    def at(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Axis points and frames at arc lengths ``s`` (Å, clipped to the path).

        Returns
        -------
        centres
            ``(n, 3)`` points on the axis.
        frames
            ``(n, 3, 3)`` frames of the segments they lie on.
        """
        s = np.clip(np.asarray(s, dtype=np.float64), 0.0, self.length)
        cumulative = self.arc_lengths
        segment = np.clip(np.searchsorted(cumulative, s, side="right") - 1, 0, len(self.frames) - 1)
        frames = self.frames[segment]
        centres = self.points[segment] + (s - cumulative[segment])[:, None] * frames[:, :, 2]
        return centres, frames

    def translated(self, shift: np.ndarray) -> FilamentPath:
        """The same path moved by ``shift`` (Å, x y z)."""
        return FilamentPath(self.points + np.asarray(shift, dtype=np.float64), self.frames)


def _perpendicular(direction: np.ndarray) -> np.ndarray:
    """A unit vector perpendicular to unit ``direction``."""
    helper = np.eye(3)[int(np.argmin(np.abs(direction)))]
    n = np.cross(direction, helper)
    return n / np.linalg.norm(n)


def straight_path(start: np.ndarray, direction: np.ndarray, length: float) -> FilamentPath:
    """A straight axis from ``start`` along ``direction`` (normalised) over ``length`` Å."""
    t = np.asarray(direction, dtype=np.float64)
    t = t / np.linalg.norm(t)
    n = _perpendicular(t)
    frame = np.stack([n, np.cross(t, n), t], axis=1)
    start = np.asarray(start, dtype=np.float64)
    return FilamentPath(np.stack([start, start + length * t]), frame[None])


def _vmf_concentration(mean_cosine: float) -> float:
    """Concentration κ of the von Mises–Fisher distribution on S² with ``E[cos θ] = mean_cosine``.

    ``E[cos θ] = coth κ − 1/κ`` (the Langevin function); for κ > 20 it equals ``1 − 1/κ`` to
    double precision.
    """
    if mean_cosine >= 1.0 - 1.0 / 20.0:
        return 1.0 / (1.0 - mean_cosine)
    return float(brentq(lambda k: 1.0 / math.tanh(k) - 1.0 / k - mean_cosine, 1e-9, 25.0))


@numba.njit(cache=True, fastmath=True)
def _grow_chain(
    t0: np.ndarray, n0: np.ndarray, cosines: np.ndarray, azimuths: np.ndarray, step: float
) -> tuple[np.ndarray, np.ndarray]:
    """Polyline nodes and parallel-transported frames from per-node bending angles."""
    m = cosines.shape[0] + 1
    points = np.zeros((m + 1, 3))
    frames = np.zeros((m, 3, 3))
    t = t0.copy()
    n = n0.copy()
    for i in range(m):
        if i > 0:
            b = np.cross(t, n)
            w = cosines[i - 1]
            sw = math.sqrt(max(0.0, 1.0 - w * w))
            ca, sa = math.cos(azimuths[i - 1]), math.sin(azimuths[i - 1])
            t_new = w * t + sw * (ca * n + sa * b)
            t_new /= math.sqrt(t_new[0] ** 2 + t_new[1] ** 2 + t_new[2] ** 2)
            # smallest rotation taking t to t_new, applied to n (discrete parallel transport)
            axis = np.cross(t, t_new)
            s = math.sqrt(axis[0] ** 2 + axis[1] ** 2 + axis[2] ** 2)
            if s > 1e-12:
                axis /= s
                c = t[0] * t_new[0] + t[1] * t_new[1] + t[2] * t_new[2]
                n = n * c + np.cross(axis, n) * s + axis * (axis[0] * n[0] + axis[1] * n[1]
                                                            + axis[2] * n[2]) * (1.0 - c)
            n = n - (n[0] * t_new[0] + n[1] * t_new[1] + n[2] * t_new[2]) * t_new
            n /= math.sqrt(n[0] ** 2 + n[1] ** 2 + n[2] ** 2)
            t = t_new
        b = np.cross(t, n)
        for k in range(3):
            frames[i, k, 0] = n[k]
            frames[i, k, 1] = b[k]
            frames[i, k, 2] = t[k]
            points[i + 1, k] = points[i, k] + step * t[k]
    return points, frames


def path_step(length: float, persistence_length: float) -> float:
    """Segment length used for a worm-like chain: ≤ ``MAX_PATH_STEP`` and ≤ Lp / 100."""
    target = min(MAX_PATH_STEP, max(persistence_length / 100.0, 1.0))
    return length / max(1, math.ceil(length / target))


def worm_like_chain(
    length: float,
    persistence_length: float,
    *,
    rng: np.random.Generator,
    step: float | None = None,
) -> FilamentPath:
    """A worm-like chain from the origin in a uniformly random direction.

    The tangent performs a random walk on the sphere: at every node it is deflected by an angle
    drawn from a von Mises–Fisher distribution with ``E[cos θ] = exp(-step / Lp)`` and a uniform
    azimuth, so the tangent correlation is exactly ``<t(s)·t(0)> = exp(-s / Lp)`` at the nodes
    (the 3D worm-like chain definition of the persistence length, Doi & Edwards 1986).

    Parameters
    ----------
    length
        Arc length, Å.
    persistence_length
        ``Lp``, Å.
    rng
        Random generator.
    step
        Segment length, Å; ``None`` = :func:`path_step`.

    Returns
    -------
    FilamentPath
        Nodes every ``step`` Å starting at the origin, with parallel-transported frames.
    """
    if not (length > 0 and persistence_length > 0):
        raise TomosimError(
            f"worm-like chain needs length > 0 and persistence_length > 0, got {length}, "
            f"{persistence_length}"
        )
    if step is None:
        step = path_step(length, persistence_length)
    n_segments = max(1, int(round(length / step)))
    step = length / n_segments
    t0 = rng.standard_normal(3)
    t0 /= np.linalg.norm(t0)
    n0 = _perpendicular(t0)
    kappa = _vmf_concentration(math.exp(-step / persistence_length))
    u = 1.0 - rng.random(n_segments - 1)  # (0, 1]
    cosines = 1.0 + np.log(u + (1.0 - u) * math.exp(-2.0 * kappa)) / kappa
    azimuths = rng.uniform(0.0, 2.0 * np.pi, n_segments - 1)
    points, frames = _grow_chain(t0, n0, np.clip(cosines, -1.0, 1.0), azimuths, step)
    return FilamentPath(points, frames)


# --------------------------------------------------------------------------------------------
# Geometry helpers: box, chords, distances, occupancy
# --------------------------------------------------------------------------------------------


def _usable_box(
    shape: tuple[int, int, int], pixel_size: float, margin: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(lo, hi)`` ``(x, y, z)`` Å where an axis may run: voxel-centre extent shrunk by margin."""
    extent = (np.asarray(shape[::-1], dtype=np.float64) - 1.0) * pixel_size
    return np.full(3, float(margin)), extent - margin


def _chord(
    point: np.ndarray, direction: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[float, float]:
    """Parameters ``(t_in, t_out)`` where the line ``point + t·direction`` crosses the box.

    Returns ``(nan, nan)`` when the line misses it (slab method).
    """
    t_in, t_out = -np.inf, np.inf
    for axis in range(3):
        d = direction[axis]
        if abs(d) < 1e-12:
            if point[axis] < lo[axis] - 1e-9 or point[axis] > hi[axis] + 1e-9:
                return math.nan, math.nan
            continue
        a, b = (lo[axis] - point[axis]) / d, (hi[axis] - point[axis]) / d
        t_in, t_out = max(t_in, min(a, b)), min(t_out, max(a, b))
    if t_out < t_in:
        return math.nan, math.nan
    return float(t_in), float(t_out)


@numba.njit(cache=True, fastmath=True)
def _segment_distance(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray, q1: np.ndarray) -> float:
    """Shortest distance between segments ``p0p1`` and ``q0q1`` (closest points by clamping)."""
    d1 = p1 - p0
    d2 = q1 - q0
    r = p0 - q0
    a = d1[0] * d1[0] + d1[1] * d1[1] + d1[2] * d1[2]
    e = d2[0] * d2[0] + d2[1] * d2[1] + d2[2] * d2[2]
    f = d2[0] * r[0] + d2[1] * r[1] + d2[2] * r[2]
    eps = 1e-12
    if a <= eps and e <= eps:
        s = 0.0
        t = 0.0
    elif a <= eps:
        s = 0.0
        t = min(max(f / e, 0.0), 1.0)
    else:
        c = d1[0] * r[0] + d1[1] * r[1] + d1[2] * r[2]
        if e <= eps:
            t = 0.0
            s = min(max(-c / a, 0.0), 1.0)
        else:
            b = d1[0] * d2[0] + d1[1] * d2[1] + d1[2] * d2[2]
            denom = a * e - b * b
            s = min(max((b * f - c * e) / denom, 0.0), 1.0) if denom > eps else 0.0
            t = (b * s + f) / e
            if t < 0.0:
                t = 0.0
                s = min(max(-c / a, 0.0), 1.0)
            elif t > 1.0:
                t = 1.0
                s = min(max((b - c) / a, 0.0), 1.0)
    dx = p0 + d1 * s - (q0 + d2 * t)
    return math.sqrt(dx[0] * dx[0] + dx[1] * dx[1] + dx[2] * dx[2])


@numba.njit(cache=True)
def _pairs_closer_than(
    starts_a: np.ndarray, ends_a: np.ndarray, starts_b: np.ndarray, ends_b: np.ndarray,
    pairs: np.ndarray, limit: float,
) -> bool:
    """True if any listed segment pair ``(i in a, j in b)`` is closer than ``limit``."""
    for k in range(pairs.shape[0]):
        i, j = pairs[k, 0], pairs[k, 1]
        if _segment_distance(starts_a[i], ends_a[i], starts_b[j], ends_b[j]) < limit:
            return True
    return False


class _SegmentIndex:
    """Segments of the filaments placed so far, for clearance checks against a new one."""

    def __init__(self) -> None:
        self.starts = np.zeros((0, 3))
        self.ends = np.zeros((0, 3))
        self.longest = 0.0
        self.tree: cKDTree | None = None

    def add(self, path: FilamentPath) -> None:
        self.starts = np.concatenate([self.starts, path.points[:-1]])
        self.ends = np.concatenate([self.ends, path.points[1:]])
        lengths = np.linalg.norm(self.ends - self.starts, axis=1)
        self.longest = float(lengths.max())
        self.tree = cKDTree(0.5 * (self.starts + self.ends))

    def clashes(self, path: FilamentPath, limit: float) -> bool:
        """True if ``path`` comes closer than ``limit`` to any stored segment."""
        if self.tree is None:
            return False
        starts, ends = path.points[:-1], path.points[1:]
        longest = max(self.longest, float(np.linalg.norm(ends - starts, axis=1).max()))
        tree = cKDTree(0.5 * (starts + ends))
        hits = tree.query_ball_tree(self.tree, r=limit + longest)
        pairs = [(i, j) for i, row in enumerate(hits) for j in row]
        if not pairs:
            return False
        pair_array = np.asarray(pairs, dtype=np.int64)
        return bool(_pairs_closer_than(starts, ends, self.starts, self.ends, pair_array, limit))


@numba.njit(cache=True)
def _span(centre: float, radius: float, size: int) -> tuple[int, int]:
    """Index range ``[lo, hi)`` of voxel centres within ``radius`` of ``centre`` on an axis."""
    return max(0, int(math.ceil(centre - radius))), min(size, int(math.floor(centre + radius)) + 1)


@numba.njit(cache=True)
def _visit_balls(mask: np.ndarray, centres_px: np.ndarray, radius_px: float, mark: bool) -> bool:
    """Voxel centres within ``radius_px`` of any centre (x, y, z px): set them in ``mask`` if
    ``mark``, else return True at the first one already set in ``mask``."""
    nz, ny, nx = mask.shape
    r2 = radius_px * radius_px
    for k in range(centres_px.shape[0]):
        cx, cy, cz = centres_px[k, 0], centres_px[k, 1], centres_px[k, 2]
        z0, z1 = _span(cz, radius_px, nz)
        y0, y1 = _span(cy, radius_px, ny)
        x0, x1 = _span(cx, radius_px, nx)
        for z in range(z0, z1):
            for y in range(y0, y1):
                d2 = (z - cz) ** 2 + (y - cy) ** 2
                if d2 > r2:
                    continue
                for x in range(x0, x1):
                    if d2 + (x - cx) ** 2 <= r2:
                        if mark:
                            mask[z, y, x] = True
                        elif mask[z, y, x]:
                            return True
    return False


def _hits_occupancy(
    path: FilamentPath, occupancy: np.ndarray | None, pixel_size: float, radius: float
) -> bool:
    """True if the tube of ``radius`` Å around ``path`` contains an occupied voxel centre."""
    if occupancy is None:
        return False
    spacing = min(pixel_size, radius / 2.0)
    n = max(2, int(math.ceil(path.length / spacing)) + 1)
    centres, _ = path.at(np.linspace(0.0, path.length, n))
    return bool(_visit_balls(occupancy, centres / pixel_size, radius / pixel_size, False))


def subunit_occupancy(
    positions: np.ndarray, *, shape: tuple[int, int, int], pixel_size: float, radius: float
) -> np.ndarray:
    """Boolean ``(z, y, x)`` mask of voxels within ``radius`` Å of any position (x, y, z Å).

    Use it to mark placed filament subunits (``radius`` ≈ subunit size) in the occupancy passed
    to the next species' :func:`place_filaments`.
    """
    mask = np.zeros(shape, dtype=bool)
    _visit_balls(mask, np.asarray(positions, dtype=np.float64).reshape(-1, 3) / pixel_size,
                 radius / pixel_size, True)
    return mask


# --------------------------------------------------------------------------------------------
# Arrangements
# --------------------------------------------------------------------------------------------


def _draw_length(
    rng: np.random.Generator, lengths: tuple[float, float], longest: float
) -> float:
    """Uniform length in ``[min, min(max, longest)]``."""
    low, high = float(lengths[0]), min(float(lengths[1]), longest)
    return float(rng.uniform(low, high)) if high > low else low


def _place_on_line(
    point: np.ndarray,
    direction: np.ndarray,
    t_range: tuple[float, float],
    species: FilamentSpecies,
    *, rng: np.random.Generator, occupancy: np.ndarray | None, pixel_size: float, radius: float,
    max_attempts: int,
) -> FilamentPath | None:
    """A straight filament on the line ``point + t·direction`` within ``t_range``, or None."""
    t_in, t_out = t_range
    length = _draw_length(rng, species.length, t_out - t_in)
    for _ in range(max_attempts):
        t0 = rng.uniform(t_in, t_out - length) if t_out - length > t_in else t_in
        path = straight_path(point + t0 * direction, direction, length)
        if not _hits_occupancy(path, occupancy, pixel_size, radius):
            return path
    return None


def _sheet_paths(
    species: FilamentSpecies, *, lo: np.ndarray, hi: np.ndarray, radius: float, gap: float,
    rng: np.random.Generator, occupancy: np.ndarray | None, pixel_size: float, max_attempts: int,
) -> tuple[list[FilamentPath], int]:
    """Straight filaments in xy planes stacked along z, each plane turned by the angle step."""
    count, per_sheet = species.count, species.filaments_per_sheet
    n_sheets = -(-count // per_sheet)
    z_span = hi[2] - lo[2]
    spacing_z = z_span / n_sheets
    if n_sheets > 1 and spacing_z < 2.0 * radius + gap:
        raise TomosimError(
            f"filament {species.name!r}: {n_sheets} sheets of filaments {2 * radius:.0f} Å thick "
            f"do not fit in the {z_span + 2 * radius:.0f} Å z extent (sheet spacing "
            f"{spacing_z:.0f} Å); lower count or raise filaments_per_sheet"
        )
    theta0 = float(rng.uniform(0.0, 360.0))
    min_length = float(species.length[0])
    paths: list[FilamentPath] = []
    failed = 0
    for sheet in range(n_sheets):
        z = lo[2] + (sheet + 0.5) * spacing_z
        theta = np.deg2rad(theta0 + sheet * species.sheet_angle_step)
        direction = np.array([np.cos(theta), np.sin(theta), 0.0])
        normal = np.array([-np.sin(theta), np.cos(theta), 0.0])
        centre = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, z])
        half = 0.5 * (abs((hi[0] - lo[0]) * normal[0]) + abs((hi[1] - lo[1]) * normal[1]))
        offsets = np.linspace(-half, half, 1001)
        chords = np.array(
            [np.diff(_chord(centre + o * normal, direction, lo, hi))[0] for o in offsets]
        )
        fits = np.nan_to_num(chords, nan=-1.0) >= min_length - 1e-6
        if not fits.any():
            longest = float(np.nanmax(chords)) if np.isfinite(chords).any() else 0.0
            raise TomosimError(
                f"filament {species.name!r}: min length {min_length:.0f} Å does not fit in a sheet "
                f"at in-plane angle {np.rad2deg(theta) % 360:.1f}° (longest {longest:.0f} Å)"
            )
        o_lo, o_hi = offsets[fits][0], offsets[fits][-1]
        k = min(per_sheet, count - sheet * per_sheet)
        spacing = (o_hi - o_lo) / k
        if k > 1 and spacing < 2.0 * radius + gap:
            most = max(1, int((o_hi - o_lo) // (2.0 * radius + gap)))
            raise TomosimError(
                f"filament {species.name!r}: {k} filaments of min length {min_length:.0f} Å do not "
                f"fit side by side in a sheet at {np.rad2deg(theta) % 360:.1f}° (at most {most})"
            )
        for j in range(k):
            point = centre + (o_lo + (j + 0.5) * spacing) * normal
            t_range = _chord(point, direction, lo, hi)
            path = _place_on_line(
                point, direction, t_range, species, rng=rng, occupancy=occupancy,
                pixel_size=pixel_size, radius=radius + gap, max_attempts=max_attempts,
            )
            if path is None:
                failed += 1
            else:
                paths.append(path)
    return paths, failed


def _hexagonal_offsets(count: int, spacing: float, half_height: float) -> np.ndarray:
    """``(count, 2)`` ``(u, w)`` positions of a hexagonal bundle cross-section, centre first.

    Lattice points ``spacing · (a + b/2, b·√3/2)`` with ``|w| ≤ half_height``, nearest to the
    bundle axis first (ties by angle).
    """
    rows = int(half_height // (spacing * np.sqrt(3) / 2))
    b = np.arange(-rows, rows + 1)
    a = np.arange(-count - rows, count + rows + 1)
    aa, bb = np.meshgrid(a, b, indexing="ij")
    u = spacing * (aa + bb / 2.0)
    w = spacing * bb * np.sqrt(3) / 2.0
    u, w = u.ravel(), w.ravel()
    order = np.lexsort((np.round(np.arctan2(w, u), 9), np.round(np.hypot(u, w), 6)))
    return np.stack([u[order], w[order]], axis=1)[:count]


def _bundle_paths(
    species: FilamentSpecies, *, lo: np.ndarray, hi: np.ndarray, radius: float,
    rng: np.random.Generator, occupancy: np.ndarray | None, pixel_size: float, max_attempts: int,
) -> tuple[list[FilamentPath], int]:
    """One bundle of parallel filaments in hexagonal packing, its axis in the xy plane."""
    spacing = species.bundle_spacing
    if spacing < 2.0 * radius:
        raise TomosimError(
            f"filament {species.name!r}: bundle_spacing {spacing:.0f} Å is smaller than the "
            f"filament diameter {2 * radius:.0f} Å"
        )
    if hi[2] < lo[2]:
        raise TomosimError(
            f"filament {species.name!r}: the volume is thinner than the filament diameter "
            f"{2 * radius:.0f} Å"
        )
    offsets = _hexagonal_offsets(species.count, spacing, (hi[2] - lo[2]) / 2.0)
    theta = float(rng.uniform(0.0, 2.0 * np.pi))
    direction = np.array([np.cos(theta), np.sin(theta), 0.0])
    across = np.array([-np.sin(theta), np.cos(theta), 0.0])
    min_length = float(species.length[0])
    z_low, z_high = lo[2] - offsets[:, 1].min(), hi[2] - offsets[:, 1].max()

    def lines(centre: np.ndarray) -> list[tuple[np.ndarray, tuple[float, float]]]:
        out = []
        for u, w in offsets:
            point = centre + u * across + np.array([0.0, 0.0, w])
            out.append((point, _chord(point, direction, lo, hi)))
        return out

    def fits(candidate: list[tuple[np.ndarray, tuple[float, float]]]) -> bool:
        return all(np.isfinite(t[0]) and t[1] - t[0] >= min_length - 1e-6 for _, t in candidate)

    middle = (lo + hi) / 2.0
    if not fits(lines(middle)):
        raise TomosimError(
            f"filament {species.name!r}: a bundle of {species.count} filaments of min length "
            f"{min_length:.0f} Å at spacing {spacing:.0f} Å does not fit in the volume"
        )
    chosen = lines(middle)
    for _ in range(max_attempts):
        centre = np.array([rng.uniform(lo[0], hi[0]), rng.uniform(lo[1], hi[1]),
                           rng.uniform(z_low, z_high)])
        candidate = lines(centre)
        if fits(candidate):
            chosen = candidate
            break
    paths: list[FilamentPath] = []
    failed = 0
    for point, t_range in chosen:
        path = _place_on_line(
            point, direction, t_range, species, rng=rng, occupancy=occupancy,
            pixel_size=pixel_size, radius=radius, max_attempts=max_attempts,
        )
        if path is None:
            failed += 1
        else:
            paths.append(path)
    return paths, failed


def _random_paths(
    species: FilamentSpecies, *, lo: np.ndarray, hi: np.ndarray, radius: float, gap: float,
    rng: np.random.Generator, occupancy: np.ndarray | None, pixel_size: float, max_attempts: int,
) -> tuple[list[FilamentPath], int]:
    """Worm-like chains at random positions and directions, kept apart and inside the volume."""
    lp = species.persistence_length
    min_length = float(species.length[0])
    # Root-mean-square end-to-end distance of a worm-like chain (Kratky & Porod 1949).
    rms = math.sqrt(2.0 * lp * min_length - 2.0 * lp * lp * (1.0 - math.exp(-min_length / lp)))
    diagonal = float(np.linalg.norm(np.maximum(hi - lo, 0.0)))
    if np.any(hi < lo) or rms > diagonal:
        raise TomosimError(
            f"filament {species.name!r}: min length {min_length:.0f} Å (end-to-end "
            f"≈ {rms:.0f} Å at persistence length {lp:.0f} Å) does not fit in the volume "
            f"(usable diagonal {diagonal:.0f} Å for outer radius {radius:.0f} Å)"
        )
    placed = _SegmentIndex()
    paths: list[FilamentPath] = []
    failed = 0
    for _ in range(species.count):
        length = _draw_length(rng, species.length, math.inf)
        for _attempt in range(max_attempts):
            chain = worm_like_chain(length, lp, rng=rng)
            low, high = lo - chain.points.min(axis=0), hi - chain.points.max(axis=0)
            if np.any(high < low):
                continue
            path = chain.translated(rng.uniform(low, high))
            if placed.clashes(path, 2.0 * radius + gap):
                continue
            if _hits_occupancy(path, occupancy, pixel_size, radius + gap):
                continue
            placed.add(path)
            paths.append(path)
            break
        else:
            failed += 1
    return paths, failed


def filament_paths(
    species: FilamentSpecies,
    *,
    shape: tuple[int, int, int],
    pixel_size: float,
    rng: np.random.Generator,
    occupancy: np.ndarray | None = None,
    min_gap: float = DEFAULT_MIN_GAP,
    max_attempts: int = MAX_ATTEMPTS,
) -> list[FilamentPath]:
    """Axes of ``species.count`` filaments in their arrangement.

    ``sheets``
        Straight filaments in xy planes stacked along z (planes evenly spaced through the usable
        z range, ``filaments_per_sheet`` parallel filaments per plane, evenly spaced across the
        part of the plane where the minimum length fits); plane ``i`` is turned in-plane by
        ``i · sheet_angle_step`` from a random first angle, so every direction relative to the
        tilt axis and the missing wedge is sampled.
    ``random``
        Worm-like chains (:func:`worm_like_chain`) at random positions and directions; a chain
        closer than ``2·outer_radius + min_gap`` (segment to segment) to another is redrawn.
    ``bundle``
        One bundle: parallel straight filaments on a hexagonal lattice of ``bundle_spacing``
        (centre to centre) across a bundle axis in the xy plane at a random angle; all filaments
        point the same way (a unipolar bundle).

    Filament lengths are uniform in ``species.length`` (capped by what fits). Every axis keeps
    ``outer_radius`` from the outermost voxel centres (kept inside, never clipped) and, with
    ``occupancy``, ``outer_radius + min_gap`` (random) or ``outer_radius`` (sheets, bundle) from
    occupied voxels. A filament not placed within ``max_attempts`` is skipped with a warning
    that says how many were placed.

    Parameters
    ----------
    species
        The filament species.
    shape
        ``(z, y, x)`` volume shape, voxels.
    pixel_size
        Å per voxel.
    rng
        Random generator.
    occupancy
        Optional ``(z, y, x)`` bool array of voxels already taken (vesicles, other filaments).
    min_gap
        Extra clearance between filament surfaces, Å.
    max_attempts
        Attempts per filament.

    Returns
    -------
    list of FilamentPath
        In sample coordinates.

    Raises
    ------
    TomosimError
        The minimum length does not fit in the arrangement; sheets or bundle spacing too tight.
    """
    if species.count == 0:
        return []
    if occupancy is not None and tuple(occupancy.shape) != tuple(shape):
        raise TomosimError(
            f"occupancy shape {occupancy.shape} differs from the volume {tuple(shape)}"
        )
    radius = species_outer_radius(species)
    lo, hi = _usable_box(shape, pixel_size, radius)
    if np.any(hi < lo):
        raise TomosimError(
            f"filament {species.name!r}: the volume {tuple(shape)} at {pixel_size} Å/px is smaller "
            f"than the filament diameter {2 * radius:.0f} Å"
        )
    common = dict(lo=lo, hi=hi, radius=radius, rng=rng, occupancy=occupancy,
                  pixel_size=pixel_size, max_attempts=max_attempts)
    if species.arrangement == "sheets":
        paths, failed = _sheet_paths(species, gap=min_gap, **common)
    elif species.arrangement == "bundle":
        paths, failed = _bundle_paths(species, **common)
    else:
        paths, failed = _random_paths(species, gap=min_gap, **common)
    if failed:
        warnings.warn(
            f"filament {species.name!r}: placed {len(paths)} of {species.count} filaments "
            f"({failed} found no free place in {max_attempts} attempts)",
            stacklevel=2,
        )
    return paths


# --------------------------------------------------------------------------------------------
# Decoration and subunits
# --------------------------------------------------------------------------------------------


def decoration_states(
    n: int, *, fraction: float, mean_run: float, rng: np.random.Generator
) -> np.ndarray:
    """Decorated (True) / bare (False) state of ``n`` consecutive rings of a filament.

    Runs alternate between decorated and bare, with geometric run lengths (≥ 1) of mean
    ``mean_run`` (decorated) and ``mean_run · (1 − fraction) / fraction`` (bare), so the
    expected decorated fraction is ``fraction``; the first state is decorated with probability
    ``fraction``. Geometric runs are memoryless, so every position along the filament has the
    same statistics. Where the bare mean would fall below one subunit it is one, and the fraction
    saturates at ``mean_run / (mean_run + 1)``.
    """
    if fraction <= 0.0 or n == 0:
        return np.zeros(n, dtype=bool)
    if fraction >= 1.0:
        return np.ones(n, dtype=bool)
    mean_bare = max(1.0, mean_run * (1.0 - fraction) / fraction)
    means = {True: max(1.0, mean_run), False: mean_bare}
    states = np.empty(n, dtype=bool)
    state = bool(rng.random() < fraction)
    position = 0
    while position < n:
        run = int(rng.geometric(1.0 / means[state]))
        states[position:position + run] = state
        position += run
        state = not state
    return states


def _lattice_on_path(
    path: FilamentPath,
    bare: HelicalParameters,
    decorated: HelicalParameters | None,
    states: np.ndarray,
    phase: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Subunits of a lattice wrapped around ``path``.

    Ring ``j`` is reached from ring ``j − 1`` with the decorated rise and twist when both rings
    are decorated, else the bare ones; each ring uses its own state's radius. Subunits whose arc
    length exceeds the path are dropped.

    Returns
    -------
    positions, rotations, ring_states
        ``(n, 3)``, ``(n, 3, 3)``, ``(n,)`` bool (decorated), in subunit order (ring-major).
    """
    n_rings = states.shape[0]
    both = np.zeros(n_rings, dtype=bool)
    both[1:] = states[1:] & states[:-1]
    rises = np.where(both, decorated.rise if decorated else bare.rise, bare.rise)
    twists = np.where(both, decorated.twist if decorated else bare.twist, bare.twist)
    rises[0], twists[0] = 0.0, 0.0
    ring_s = np.cumsum(rises)
    ring_phi = phase + np.cumsum(twists)
    ring_radius = np.where(states, decorated.radius if decorated else bare.radius, bare.radius)

    n_pf = bare.protofilaments
    pf = np.arange(n_pf)
    s = (ring_s[:, None] + pf[None, :] * bare.lateral_rise).ravel()
    phi = (ring_phi[:, None] + pf[None, :] * (360.0 / n_pf)).ravel()
    radius = np.repeat(ring_radius, n_pf)
    decorated_rows = np.repeat(states, n_pf)
    keep = s <= path.length + 1e-9
    s, phi, radius, decorated_rows = s[keep], phi[keep], radius[keep], decorated_rows[keep]

    centres, frames = path.at(s)
    a = np.deg2rad(phi)
    radial = frames[:, :, 0] * np.cos(a)[:, None] + frames[:, :, 1] * np.sin(a)[:, None]
    positions = centres + radius[:, None] * radial
    rotations = frames @ _rotation_z(phi)
    return positions, rotations, decorated_rows


def _class_id(label: str, class_ids: dict[str, int], species_name: str) -> int:
    if label == "background":
        return 0
    if label not in class_ids:
        raise TomosimError(
            f"filament {species_name!r}: label {label!r} has no class id "
            f"(known: {sorted(class_ids)})"
        )
    return int(class_ids[label])


def place_filaments(
    species: FilamentSpecies,
    *,
    shape: tuple[int, int, int],
    pixel_size: float,
    rng: np.random.Generator,
    class_ids: dict[str, int],
    first_instance_id: int,
    first_filament_id: int,
    occupancy: np.ndarray | None = None,
    min_gap: float = DEFAULT_MIN_GAP,
    max_attempts: int = MAX_ATTEMPTS,
) -> Placements:
    """Place the filaments of one species: one :class:`Placements` row per subunit.

    The axes come from :func:`filament_paths`; each filament gets a random azimuthal phase and,
    with ``species.decoration``, bare/decorated runs from :func:`decoration_states` (one state
    per ring: a subunit of a 1-start helix, a ring of ``N`` subunits of a tube). Each run of
    equal state is a *segment*: its own instance id (consecutive from ``first_instance_id``),
    class (the species label, or the decoration label) and template (0 = bare subunit named
    ``species.name``, 1 = decorated subunit, see :func:`filament_templates`). Filament ids are
    consecutive from ``first_filament_id``; ``segment_id`` counts segments within a filament and
    ``subunit_index`` subunits within a filament (ring-major order).

    Parameters
    ----------
    species
        The filament species (config section ``filaments[i]``).
    shape
        ``(z, y, x)`` volume shape, voxels.
    pixel_size
        Å per voxel.
    rng
        Random generator (the only source of randomness).
    class_ids
        Class name -> label id (``SimulationConfig.class_ids()``); ``"background"`` -> 0.
    first_instance_id
        Instance id of the first segment.
    first_filament_id
        Filament id of the first filament.
    occupancy
        Optional ``(z, y, x)`` bool array of voxels already taken, to avoid.
    min_gap
        Clearance between filament surfaces in random arrangements, Å.
    max_attempts
        Placement attempts per filament.

    Returns
    -------
    Placements
        Positions ``(x, y, z)`` Å in sample coordinates, rotations (template -> sample).

    Raises
    ------
    TomosimError
        Unknown label, impossible lattice or arrangement (see :func:`filament_paths`).
    """
    bare = species_parameters(species)
    decorated = decoration_parameters(species)
    templates = filament_templates(species)
    bare_class = _class_id(species.label or species.name, class_ids, species.name)
    decorated_class = (
        _class_id(species.decoration.label, class_ids, species.name) if decorated is not None else 0
    )
    paths = filament_paths(
        species, shape=shape, pixel_size=pixel_size, rng=rng, occupancy=occupancy,
        min_gap=min_gap, max_attempts=max_attempts,
    )
    columns: dict[str, list[np.ndarray]] = {k: [] for k in (
        "positions", "rotations", "template", "class_id", "instance_id", "filament_id",
        "segment_id", "subunit_index")}
    next_instance = int(first_instance_id)
    smallest_rise = min(bare.rise, decorated.rise if decorated is not None else bare.rise)
    for number, path in enumerate(paths):
        n_rings = int(math.floor(path.length / smallest_rise)) + 1
        phase = float(rng.uniform(0.0, 360.0))
        if decorated is not None:
            decoration = species.decoration
            states = decoration_states(
                n_rings, fraction=decoration.fraction, mean_run=decoration.mean_segment_subunits,
                rng=rng,
            )
        else:
            states = np.zeros(n_rings, dtype=bool)
        positions, rotations, is_decorated = _lattice_on_path(path, bare, decorated, states, phase)
        n = positions.shape[0]
        if n == 0:
            continue
        segment = np.concatenate([[0], np.cumsum(is_decorated[1:] != is_decorated[:-1])])
        columns["positions"].append(positions)
        columns["rotations"].append(rotations)
        columns["template"].append(is_decorated.astype(np.int64))
        columns["class_id"].append(np.where(is_decorated, decorated_class, bare_class))
        columns["instance_id"].append(next_instance + segment)
        columns["filament_id"].append(np.full(n, first_filament_id + number, dtype=np.int64))
        columns["segment_id"].append(segment)
        columns["subunit_index"].append(np.arange(n))
        next_instance += int(segment[-1]) + 1

    def stacked(key: str, empty_shape: tuple[int, ...], dtype: type) -> np.ndarray:
        if not columns[key]:
            return np.zeros(empty_shape, dtype=dtype)
        return np.concatenate(columns[key]).astype(dtype)

    return Placements(
        positions=stacked("positions", (0, 3), np.float64),
        rotations=stacked("rotations", (0, 3, 3), np.float64),
        template=stacked("template", (0,), np.int64),
        template_names=tuple(templates),
        class_id=stacked("class_id", (0,), np.int64),
        instance_id=stacked("instance_id", (0,), np.int64),
        filament_id=stacked("filament_id", (0,), np.int64),
        segment_id=stacked("segment_id", (0,), np.int64),
        subunit_index=stacked("subunit_index", (0,), np.int64),
    )
