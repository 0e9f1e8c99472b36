"""Filament templates: one subunit of a real filament model, moved into the filament frame.

A *filament model* is an atomic model of several consecutive subunits of a helical filament
(6BNO_A15, the 7TPT mother filament, a cofilactin filament, three laterally adjacent microtubule
protofilaments ...). :func:`helix_template` finds its subunits, fits the screw transform between
consecutive subunits (:func:`tomosim.helix.fit_helix`), moves one subunit into the filament frame
of :mod:`tomosim.filaments` and writes it as a small PDB file in the template cache, so that the
rest of tomosim renders it like any structure.

Subunits
--------
- **Segments**: when residues carry segment ids made of letters and a number (``A9``, ``C9``,
  ``N9`` ... as CHARMM/NAMD models write them), a subunit is every segment with the same number,
  in increasing number; the letters name the *part* (actin ``A``, cofilin ``C`` ...).
- **Chains** otherwise: chains with the same residue sequence are copies of one molecule; the
  molecule with the most copies defines the subunits, ordered along the longest extent (first
  principal axis) of their centroids, and every other chain joins the subunit whose defining
  chain is nearest (centroid distance). The molecule names the part.

Atoms of consecutive subunits are matched by ``(part, residue number, insertion code, atom
name)``. The subunit moved into the frame is the one whose screw copies overlap least
(:func:`helical_overlap`; for an exactly helical model all tie and the middle one is taken).
Its *core* is its largest part (the actin of a cofilactin subunit): the core's mean atom
position defines the subunit's azimuth 0 (on ``+x``) and height 0, so a bare subunit and a
decorated one whose core is the same molecule line up on one lattice. The template's reference
point (its mean atom position, CONVENTIONS.md) then sits at radius ``radius``, azimuth
``reference_azimuth`` and height ``reference_height`` (0 and 0 for a single-part subunit).

Repeated by the average screw, the chosen subunit may come closer to its neighbours than it
is to them in the model (an MD frame's subunits deviate from the average screw). When its copies
have more heavy atoms within :data:`tomosim.clash_relief.CLASH_DISTANCE` of each other than the
subunit has of its real neighbours in the model, the template is moved by the smallest rigid
motion that brings it back to the model's count (:func:`tomosim.clash_relief.relieve_clashes`);
the motion and both counts are reported.

Templates and fits are cached in :func:`tomosim.io.cache_dir` ``("filament_templates")``, keyed by
the model file's sha256, the atom selection and :data:`TEMPLATE_CODE_VERSION`; files are written
atomically. Within a process the fit is also memoised.

Shipped templates
-----------------
``tomosim/data/filaments/`` holds pre-aligned subunits derived from CC0 wwPDB entries, with their
provenance in ``tomosim/data/filaments/README.md`` (:data:`PRESET_TEMPLATES`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import gemmi
import numpy as np
from scipy.spatial import cKDTree

from tomosim.clash_relief import CLASH_DISTANCE, Placement, relieve_clashes
from tomosim.errors import TomosimError
from tomosim.helix import (
    HelixFit,
    RigidMotion,
    compose,
    filament_frame,
    fit_helix,
    onto_x_axis,
    rotation_z,
)
from tomosim.io import atomic_path, cache_dir
from tomosim.sources import resolve_source

TEMPLATE_CODE_VERSION = "3"
"""Bump when the subunit search, the fit or the template file layout changes."""

MAX_HELIX_RESIDUAL = 5.0
"""Å, the largest RMS residual (all matched heavy atoms) of a screw fit accepted for
``helix: auto``. Real models fit better: 6BNO_A15 0.1 Å; the cofilactin MD start frame of
Hocky et al. 2.5 Å over its decorated subunits 9–16 and 3.9 Å over its bare subunits 1–8 (side
chains and the bare/decorated boundary); subunits out of helical order give tens of Å."""

ENVELOPE_MARGIN = 2.0
"""Å added to the farthest atom's distance from the axis to get a template's outer radius."""

_SEGMENT = re.compile(r"^([A-Za-z]+)(\d+)$")
_HISTIDINES = {"HSD": "HIS", "HSE": "HIS", "HSP": "HIS", "HID": "HIS", "HIE": "HIS", "HIP": "HIS"}

AtomKey = tuple[str, int, str, str]


@dataclass(frozen=True)
class Subunit:
    """One subunit of a filament model: its atoms keyed for matching.

    Attributes
    ----------
    name
        ``"9"`` (segment number) or the defining chain id, for messages.
    keys
        ``(n,)`` atom keys ``(part, residue number, insertion code, atom name)``.
    positions
        ``(n, 3)`` ``(x, y, z)`` Å.
    parts
        ``(n,)`` the part of each atom.
    residues
        ``{part: {residue number: residue name}}`` (histidine variants named HIS).
    members
        ``(part, chain index, residue index)`` of every residue of the subunit in the model.
    """

    name: str
    keys: tuple[AtomKey, ...]
    positions: np.ndarray
    parts: np.ndarray
    residues: dict[str, dict[int, str]]
    members: tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class SubunitTemplate:
    """A subunit in the filament frame and the helix it came from.

    Attributes
    ----------
    path
        The pre-aligned subunit (PDB), filament axis ``+z`` through the origin, the core's mean
        atom position on ``+x`` at height 0.
    source
        The filament model it was derived from (as given).
    twist, rise
        The fitted screw, degrees and Å per subunit.
    radius
        Distance of the template's reference point (mean atom position) from the axis, Å.
    reference_azimuth, reference_height
        Azimuth (degrees) and height (Å) of the reference point in the template frame.
    core_radius
        Distance of the core's mean atom position from the axis, Å.
    outer_radius
        Farthest atom from the axis plus :data:`ENVELOPE_MARGIN`, Å.
    inner_radius
        Nearest atom to the axis minus :data:`ENVELOPE_MARGIN` (≥ 0), Å: the lumen of a tube.
    residual
        RMS residual of the screw fit, Å.
    n_subunits
        Subunits found in the model.
    core_residues
        ``{residue number: residue name}`` of the core, for the decoration check.
    overlap
        Fraction of the template's atoms within :data:`tomosim.clash_relief.CLASH_DISTANCE` of
        its screw copies (±1, ±2), after clash relief.
    source_overlap
        The same fraction for the chosen subunit and its real neighbours in the model.
    relief_deg, relief_shift
        Rotation (degrees) and translation (Å) of the clash relief (0 when none was needed).
    """

    path: Path
    source: str
    twist: float
    rise: float
    radius: float
    reference_azimuth: float
    reference_height: float
    core_radius: float
    outer_radius: float
    inner_radius: float
    residual: float
    n_subunits: int
    core_residues: dict[int, str]
    overlap: float = 0.0
    source_overlap: float = 0.0
    relief_deg: float = 0.0
    relief_shift: float = 0.0


# --------------------------------------------------------------------------------------------
# Reading a filament model
# --------------------------------------------------------------------------------------------


def _residue_name(name: str) -> str:
    return _HISTIDINES.get(name, name)


def _number(residue: gemmi.Residue) -> int:
    number = residue.seqid.num
    return int(number) if number is not None else 0


def read_filament_model(
    source: str,
    *,
    chains: list[str] | None = None,
    segments: list[str] | None = None,
    keep_ligands: bool = True,
) -> tuple[Path, gemmi.Structure]:
    """Read a filament model (first model; water and hydrogens removed) with a selection.

    Raises
    ------
    TomosimError
        Unreadable file, unknown chain or segment (naming the file), nothing left.
    """
    path = resolve_source(source)
    try:
        structure = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError, OSError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TomosimError(f"cannot read filament model {source}: {message}") from None
    if len(structure) == 0:
        raise TomosimError(f"no atoms in filament model {source}")
    while len(structure) > 1:
        del structure[len(structure) - 1]
    structure.setup_entities()
    model = structure[0]
    if chains is not None:
        available = [chain.name for chain in model]
        unknown = [c for c in chains if c not in available]
        if unknown:
            raise TomosimError(
                f"filament model {source} has no chain {', '.join(unknown)} "
                f"(available: {', '.join(dict.fromkeys(available))})"
            )
        for index in reversed(range(len(model))):
            if model[index].name not in chains:
                del model[index]
    if segments is not None:
        present = {res.segment.strip() for chain in model for res in chain}
        missing = [s for s in segments if s not in present]
        if missing:
            raise TomosimError(
                f"filament model {source} has no segment {', '.join(missing)}"
            )
        wanted = set(segments)
        for chain in model:
            for index in reversed(range(len(chain))):
                if chain[index].segment.strip() not in wanted:
                    del chain[index]
    structure.remove_waters()
    if not keep_ligands:
        structure.remove_ligands_and_waters()
    structure.remove_hydrogens()
    structure.remove_empty_chains()
    if structure[0].count_atom_sites() == 0:
        raise TomosimError(f"no atoms left in filament model {source} after the selection")
    return path, structure


def find_subunits(structure: gemmi.Structure) -> list[Subunit]:
    """Find the subunits of a filament model (see the module docstring), in helical order."""
    model = structure[0]
    # members of each subunit: (part, chain index, residue index)
    groups: dict[str, list[tuple[str, int, int]]] = {}
    labels = [res.segment.strip() for chain in model for res in chain]
    matches = [_SEGMENT.match(label) for label in labels]
    numbers = {m.group(2) for m in matches if m is not None}
    if labels and all(m is not None for m in matches) and len(numbers) > 1:
        for ci, chain in enumerate(model):
            for ri, res in enumerate(chain):
                match = _SEGMENT.match(res.segment.strip())
                assert match is not None
                groups.setdefault(str(int(match.group(2))), []).append((match.group(1), ci, ri))
        order = sorted(groups, key=int)
    else:
        order = _chain_subunits(model, groups)
    subunits = []
    for name in order:
        keys: list[AtomKey] = []
        positions: list[tuple[float, float, float]] = []
        residues: dict[str, dict[int, str]] = {}
        for part, ci, ri in groups[name]:
            res = model[ci][ri]
            residues.setdefault(part, {})[_number(res)] = _residue_name(res.name)
            for atom in res:
                keys.append((part, _number(res), res.seqid.icode, atom.name))
                positions.append((atom.pos.x, atom.pos.y, atom.pos.z))
        subunits.append(Subunit(
            name=name, keys=tuple(keys), positions=np.asarray(positions, dtype=np.float64),
            parts=np.asarray([k[0] for k in keys]), residues=residues,
            members=tuple(groups[name]),
        ))
    return subunits


def _chain_subunits(model: gemmi.Model, groups: dict[str, list[tuple[str, int, int]]]) -> list[str]:
    """Group chains into subunits by molecule (see the module docstring); fills ``groups``."""
    sequences: dict[tuple[str, ...], str] = {}
    chain_part: list[tuple[int, str, np.ndarray]] = []
    for ci, chain in enumerate(model):
        sequence = tuple(_residue_name(res.name) for res in chain)
        part = sequences.setdefault(sequence, f"m{len(sequences)}")
        centroid = np.mean([[a.pos.x, a.pos.y, a.pos.z] for res in chain for a in res], axis=0)
        chain_part.append((ci, part, centroid))
    counts: dict[str, int] = {}
    for _, part, _ in chain_part:
        counts[part] = counts.get(part, 0) + 1
    core = max(counts, key=lambda p: (counts[p], -int(p[1:])))
    defining = [(model[ci].name, ci, centroid) for ci, part, centroid in chain_part if part == core]
    owner: dict[int, str] = {ci: name for name, ci, _ in defining}
    for ci, part, centroid in chain_part:
        if part != core:
            owner[ci] = min(defining, key=lambda d: float(np.linalg.norm(d[2] - centroid)))[0]
    for ci, part, _ in chain_part:
        groups.setdefault(owner[ci], []).extend(
            (part, ci, ri) for ri in range(len(model[ci]))
        )
    # helical order: along the longest extent of the defining chains' centroids
    centroids = np.array([centroid for _, _, centroid in defining])
    centred = centroids - centroids.mean(axis=0)
    direction = np.linalg.svd(centred, full_matrices=False)[2][0] if len(defining) > 1 else None
    names = [name for name, _, _ in defining]
    if direction is None:
        return names
    if direction[int(np.argmax(np.abs(direction)))] < 0:
        direction = -direction
    return [names[i] for i in np.argsort(centred @ direction, kind="stable")]


def matched_pairs(subunits: list[Subunit]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Pair the matched atom positions ``(X_i, X_{i+1})`` of consecutive subunits (common keys)."""
    pairs = []
    for a, b in zip(subunits[:-1], subunits[1:], strict=True):
        index_b = {key: k for k, key in enumerate(b.keys)}
        rows = [(k, index_b[key]) for k, key in enumerate(a.keys) if key in index_b]
        ia = np.asarray([r[0] for r in rows], dtype=np.int64)
        ib = np.asarray([r[1] for r in rows], dtype=np.int64)
        pairs.append((a.positions[ia] if rows else np.zeros((0, 3)),
                      b.positions[ib] if rows else np.zeros((0, 3))))
    return pairs


def fit_filament_model(subunits: list[Subunit], source: str) -> HelixFit:
    """Screw fit of a model's subunits; clear errors for one subunit or a bad residual."""
    if len(subunits) < 2:
        raise TomosimError(
            f"helix: auto needs a filament model with at least 2 subunits; {source} has "
            f"{len(subunits)} (subunits are chains with the same sequence, or segments A1, A2, ...)"
        )
    try:
        fit = fit_helix(matched_pairs(subunits))
    except TomosimError as exc:
        raise TomosimError(f"helix: auto on {source}: {exc}") from None
    if fit.residual > MAX_HELIX_RESIDUAL:
        worst = fit.worst_pair
        raise TomosimError(
            f"helix: auto on {source}: its {len(subunits)} subunits are not one screw transform "
            f"apart (RMS residual {fit.residual:.2f} Å > {MAX_HELIX_RESIDUAL} Å; worst pair "
            f"{subunits[worst].name}->{subunits[worst + 1].name} {fit.worst_pair_residual:.2f} Å)"
        )
    return fit


# --------------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------------


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_subunit(
    structure: gemmi.Structure, subunit: Subunit, rotation: np.ndarray, translation: np.ndarray,
    path: Path,
) -> None:
    """Write the residues of ``subunit`` (only) from ``structure``, moved, as a PDB file.

    Each part becomes one chain (``A``, ``B``, ... in order of appearance); coordinates are
    rounded to 0.001 Å and the file has no header, so it is byte-identical for the same input.
    """
    model = structure[0]
    chain_names: dict[str, str] = {}
    for part, _, _ in subunit.members:
        chain_names.setdefault(part, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[len(chain_names) % 26])
    chains = {part: gemmi.Chain(name) for part, name in chain_names.items()}
    for part, chain_index, residue_index in subunit.members:
        residue = model[chain_index][residue_index].clone()
        for atom in residue:
            moved = rotation @ np.array([atom.pos.x, atom.pos.y, atom.pos.z]) + translation
            atom.pos = gemmi.Position(*(round(float(v), 3) for v in moved))
        chains[part].add_residue(residue)
    out = gemmi.Structure()
    new_model = gemmi.Model(1)
    for chain in chains.values():
        new_model.add_chain(chain)
    out.add_model(new_model)
    out.setup_entities()
    options = gemmi.PdbWriteOptions()
    options.minimal_file = True
    options.cryst1_record = False
    text = out.make_pdb_string(options)
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def helical_overlap(fit: HelixFit, positions: np.ndarray, clash: float = CLASH_DISTANCE) -> float:
    """Fraction of a subunit's atoms closer than ``clash`` Å to its own screw copies (±1, ±2).

    It measures how well one subunit of a model that is not exactly helical (an MD frame) fits
    the helical lattice: copies of a subunit that deviates from the average screw clash more.
    """
    copies = []
    for step in (-2, -1, 1, 2):
        moved = np.asarray(positions, dtype=np.float64)
        forward = step > 0
        for _ in range(abs(step)):
            moved = fit.motion.apply(moved) if forward else (moved - fit.motion.translation) @ (
                fit.motion.rotation)
        copies.append(moved)
    distance, _ = cKDTree(np.concatenate(copies)).query(positions)
    return float(np.mean(distance < clash))


def build_template(
    source: str,
    *,
    chains: list[str] | None = None,
    segments: list[str] | None = None,
    keep_ligands: bool = True,
    output: Path,
) -> SubunitTemplate:
    """Fit a filament model and write its middle subunit, in the filament frame, to ``output``.

    Parameters
    ----------
    source
        The filament model: a path or identifier (``pdb:5YU8``).
    chains, segments
        Optional selection of the model's chains / segment ids before the subunits are found.
    keep_ligands
        Keep ligands (nucleotides, ions) in the subunits.
    output
        Where to write the subunit (PDB text).

    Returns
    -------
    SubunitTemplate

    Raises
    ------
    TomosimError
        Unreadable model, unknown chain or segment, fewer than 2 subunits, a residual above
        :data:`MAX_HELIX_RESIDUAL` (the message gives it), or a subunit that no small rigid
        motion keeps from clashing with its screw copies more than with its real neighbours.
    """
    _, structure = read_filament_model(
        source, chains=chains, segments=segments, keep_ligands=keep_ligands
    )
    subunits = find_subunits(structure)
    fit = fit_filament_model(subunits, source)
    middle = len(subunits) // 2
    overlaps = [helical_overlap(fit, s.positions) for s in subunits]
    best = min(range(len(subunits)), key=lambda i: (round(overlaps[i], 4), abs(i - middle)))
    chosen = subunits[best]
    core_part = max(set(chosen.parts.tolist()), key=lambda p: (int(np.sum(chosen.parts == p)), p))
    frame = filament_frame(fit, chosen.positions[chosen.parts == core_part].mean(axis=0))
    neighbours = [subunits[i].positions for i in (best - 2, best - 1, best + 1, best + 2)
                  if 0 <= i < len(subunits)]
    distance, _ = cKDTree(np.concatenate(neighbours)).query(chosen.positions)
    in_model = int(np.sum(distance < CLASH_DISTANCE))
    screw = Placement(RigidMotion(np.eye(3), np.zeros(3)), tuple(
        RigidMotion(rotation_z(step * fit.twist), np.array([0.0, 0.0, step * fit.rise]))
        for step in (-2, -1, 1, 2)
    ))
    try:
        relief = relieve_clashes(frame.apply(chosen.positions), [screw], allowed=[in_model])
    except TomosimError as exc:
        raise TomosimError(f"{exc}: {source}") from None
    relieved = compose(frame, relief.motion)
    core_atoms = relieved.apply(chosen.positions[chosen.parts == core_part])
    motion = compose(relieved, onto_x_axis(core_atoms))  # core on +x at height 0
    moved = motion.apply(chosen.positions)
    core = moved[chosen.parts == core_part]
    reference = moved.mean(axis=0)
    radial = np.hypot(moved[:, 0], moved[:, 1])
    _write_subunit(structure, chosen, motion.rotation, motion.translation, output)
    n_atoms = len(chosen.positions)
    return SubunitTemplate(
        path=output,
        source=str(source),
        twist=fit.twist,
        rise=fit.rise,
        radius=float(np.hypot(reference[0], reference[1])),
        reference_azimuth=float(np.degrees(np.arctan2(reference[1], reference[0]))),
        reference_height=float(reference[2]),
        core_radius=float(np.hypot(*core.mean(axis=0)[:2])),
        outer_radius=float(radial.max() + ENVELOPE_MARGIN),
        inner_radius=float(max(0.0, radial.min() - ENVELOPE_MARGIN)),
        residual=fit.residual,
        n_subunits=len(subunits),
        core_residues=dict(chosen.residues[core_part]),
        overlap=relief.clashes_after[0] / n_atoms,
        source_overlap=in_model / n_atoms,
        relief_deg=relief.angle_deg,
        relief_shift=relief.shift,
    )


def _template_from_json(path: Path, data: dict[str, object]) -> SubunitTemplate:
    values = dict(data)
    residues = values.pop("core_residues")
    assert isinstance(residues, dict)
    return SubunitTemplate(
        path=path, core_residues={int(k): str(v) for k, v in residues.items()}, **values  # type: ignore[arg-type]
    )


@functools.lru_cache(maxsize=64)
def _cached_template(
    content: str, source: str, chains: tuple[str, ...] | None, segments: tuple[str, ...] | None,
    keep_ligands: bool, folder: Path,
) -> SubunitTemplate:
    key = hashlib.sha256(json.dumps(
        [content, chains, segments, keep_ligands, TEMPLATE_CODE_VERSION]
    ).encode()).hexdigest()[:32]
    pdb, meta = folder / f"{key}.pdb", folder / f"{key}.json"
    if pdb.is_file() and meta.is_file():
        try:
            data = json.loads(meta.read_text())
            if data.get("source") == source:
                return _template_from_json(pdb, data)
        except (ValueError, TypeError, KeyError, AssertionError):
            pass  # unreadable entry: rebuild it
    template = build_template(
        source, chains=list(chains) if chains is not None else None,
        segments=list(segments) if segments is not None else None, keep_ligands=keep_ligands,
        output=pdb,
    )
    data = {k: v for k, v in template.__dict__.items() if k != "path"}
    with atomic_path(meta) as tmp:
        tmp.write_text(json.dumps(data, sort_keys=True, indent=1))
    return template


def helix_template(
    source: str,
    *,
    chains: list[str] | None = None,
    segments: list[str] | None = None,
    keep_ligands: bool = True,
) -> SubunitTemplate:
    """Fit a filament model for ``helix: auto`` and return its subunit template (cached).

    Parameters
    ----------
    source
        The filament model (path or identifier; identifiers are fetched and cached by
        :func:`tomosim.sources.resolve_source`).
    chains, segments
        Optional selection of chains / segment ids of the model.
    keep_ligands
        Keep ligands (nucleotides, ions) in the subunit.

    Returns
    -------
    SubunitTemplate
        See :func:`build_template`; the subunit file lives in the template cache.
    """
    path = resolve_source(source)
    arguments = (
        _file_sha256(path), str(source), tuple(chains) if chains is not None else None,
        tuple(segments) if segments is not None else None, bool(keep_ligands),
        cache_dir("filament_templates"),
    )
    template = _cached_template(*arguments)
    if not template.path.is_file():  # removed from the cache folder since: build it again
        _cached_template.cache_clear()
        template = _cached_template(*arguments)
    return template


PRESET_TEMPLATES: dict[str, str] = {
    "actin": "actin_6bno.pdb.gz",
    "microtubule": "tubulin_5ij0.pdb.gz",
}
"""Shipped pre-aligned subunits of the presets (provenance: ``data/filaments/README.md``)."""

COFILACTIN_ENTRY = "pdb:5YU8"
"""The cofilactin preset's filament model: fetched by id on first use and fitted with
``helix: auto`` (cofilin-decorated F-actin, Tanaka et al. 2018, *Nat. Commun.* 9, 1860)."""


def preset_template_path(preset: str) -> Path:
    """Return the path of a shipped preset subunit (``actin``, ``microtubule``)."""
    if preset not in PRESET_TEMPLATES:
        raise TomosimError(
            f"preset {preset!r} has no shipped template ({sorted(PRESET_TEMPLATES)})"
        )
    data = resources.files("tomosim").joinpath("data/filaments", PRESET_TEMPLATES[preset])
    return Path(str(data))


def cofilactin_template() -> SubunitTemplate:
    """Return the cofilactin preset's subunit, fitted from :data:`COFILACTIN_ENTRY` (cached).

    Raises
    ------
    TomosimError
        In one line when the entry cannot be had (offline and not cached), naming the entry and
        how to supply it; never falls back to a coarse model.
    """
    try:
        return helix_template(COFILACTIN_ENTRY)
    except TomosimError as exc:
        raise TomosimError(
            f"the cofilactin preset needs PDB entry {COFILACTIN_ENTRY[4:]} ({exc}); put "
            f"{COFILACTIN_ENTRY[4:].lower()}.cif.gz in a $TOMOSIM_STRUCTURES folder, or give "
            "the decoration a source with helix: auto"
        ) from None


def core_identity(bare: dict[int, str], decorated: dict[int, str]) -> float:
    """Fraction of the bare subunit's residues found, with the same name, in a decorated core."""
    if not bare:
        return 0.0
    same = sum(1 for number, name in bare.items() if decorated.get(number) == name)
    return same / len(bare)


def template_residues(path: Path) -> dict[int, str]:
    """``{residue number: name}`` of the largest chain of a subunit file."""
    try:
        structure = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError, OSError) as exc:
        raise TomosimError(f"cannot read subunit template {path}: {exc}") from None
    chains = sorted(structure[0], key=lambda c: -len(c))
    if not chains:
        raise TomosimError(f"no atoms in subunit template {path}")
    return {_number(res): _residue_name(res.name) for res in chains[0]}


__all__ = [
    "COFILACTIN_ENTRY", "MAX_HELIX_RESIDUAL", "PRESET_TEMPLATES", "Subunit", "SubunitTemplate",
    "build_template", "cofilactin_template", "core_identity", "find_subunits",
    "fit_filament_model", "helix_template", "matched_pairs", "preset_template_path",
    "read_filament_model", "template_residues",
]
_ = math
