"""Structures: atomic models (PDB, mmCIF, AlphaFold) and density maps (MRC/MAP, EMDB) as arrays.

Positions are ``(x, y, z)`` in Å; map arrays are ``(z, y, x)`` (CONVENTIONS.md).

* :func:`read_structure` reads an atomic model (a file, ``pdb:``/``afdb:`` identifier, or
  ``builtin:NAME``) into :class:`Atoms`, with filters, chain selection and biological assembly
  expansion, and counts the implicit hydrogens of standard residues.
* :func:`read_map` reads a density map (a file or ``emdb:`` identifier) into :class:`DensityMap`;
  :func:`resample_map` changes its pixel size, :func:`threshold_mask` thresholds it.

Identifiers are resolved by :func:`tomosim.sources.resolve_source`.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gemmi
import mrcfile
import numpy as np
from scipy import ndimage

from tomosim.atoms import Atoms
from tomosim.builtin_structures import builtin_atoms
from tomosim.errors import TomosimError
from tomosim.io import read_mrc
from tomosim.sources import (
    MAP_SUFFIXES,
    MMCIF_SUFFIXES,
    MODEL_SUFFIXES,
    builtin_name,
    file_suffix,
    is_builtin,
    parse_identifier,
    resolve_source,
)

# --------------------------------------------------------------------------------------------
# Implicit hydrogens of standard residues
# --------------------------------------------------------------------------------------------

# Hydrogens bonded to each heavy atom of the standard amino acids in a peptide chain at neutral pH
# (Lys NZ as -NH3+, Arg guanidinium protonated, Asp/Glu carboxylates and C-terminal OXT
# deprotonated, His neutral with H on NE2, Cys thiol, Tyr hydroxyl). Backbone: amide N-H (none for
# proline), CA-H (two for glycine). Chain termini are not treated specially.
_BACKBONE_HYDROGENS = {"N": 1, "CA": 1, "C": 0, "O": 0, "OXT": 0}
_SIDE_CHAIN_HYDROGENS: dict[str, dict[str, int]] = {
    "ALA": {"CB": 3},
    "ARG": {"CB": 2, "CG": 2, "CD": 2, "NE": 1, "CZ": 0, "NH1": 2, "NH2": 2},
    "ASN": {"CB": 2, "CG": 0, "OD1": 0, "ND2": 2},
    "ASP": {"CB": 2, "CG": 0, "OD1": 0, "OD2": 0},
    "CYS": {"CB": 2, "SG": 1},
    "GLN": {"CB": 2, "CG": 2, "CD": 0, "OE1": 0, "NE2": 2},
    "GLU": {"CB": 2, "CG": 2, "CD": 0, "OE1": 0, "OE2": 0},
    "GLY": {},
    "HIS": {"CB": 2, "CG": 0, "ND1": 0, "CD2": 1, "CE1": 1, "NE2": 1},
    "ILE": {"CB": 1, "CG1": 2, "CG2": 3, "CD1": 3},
    "LEU": {"CB": 2, "CG": 1, "CD1": 3, "CD2": 3},
    "LYS": {"CB": 2, "CG": 2, "CD": 2, "CE": 2, "NZ": 3},
    "MET": {"CB": 2, "CG": 2, "SD": 0, "CE": 3},
    "PHE": {"CB": 2, "CG": 0, "CD1": 1, "CD2": 1, "CE1": 1, "CE2": 1, "CZ": 1},
    "PRO": {"CB": 2, "CG": 2, "CD": 2},
    "SER": {"CB": 2, "OG": 1},
    "THR": {"CB": 1, "OG1": 1, "CG2": 3},
    "TRP": {
        "CB": 2, "CG": 0, "CD1": 1, "CD2": 0, "NE1": 1, "CE2": 0, "CE3": 1, "CZ2": 1, "CZ3": 1,
        "CH2": 1,
    },
    "TYR": {"CB": 2, "CG": 0, "CD1": 1, "CD2": 1, "CE1": 1, "CE2": 1, "CZ": 0, "OH": 1},
    "VAL": {"CB": 1, "CG1": 3, "CG2": 3},
}
# Common variants: selenomethionine, force-field histidine tautomers, disulfide cysteine.
_SIDE_CHAIN_HYDROGENS["MSE"] = {"CB": 2, "CG": 2, "SE": 0, "CE": 3}
_SIDE_CHAIN_HYDROGENS["HID"] = {**_SIDE_CHAIN_HYDROGENS["HIS"], "ND1": 1, "NE2": 0}
_SIDE_CHAIN_HYDROGENS["HIE"] = _SIDE_CHAIN_HYDROGENS["HIS"]
_SIDE_CHAIN_HYDROGENS["HIP"] = {**_SIDE_CHAIN_HYDROGENS["HIS"], "ND1": 1}
_SIDE_CHAIN_HYDROGENS["HSD"] = _SIDE_CHAIN_HYDROGENS["HID"]
_SIDE_CHAIN_HYDROGENS["HSE"] = _SIDE_CHAIN_HYDROGENS["HIE"]
_SIDE_CHAIN_HYDROGENS["HSP"] = _SIDE_CHAIN_HYDROGENS["HIP"]
_SIDE_CHAIN_HYDROGENS["CYX"] = {"CB": 2, "SG": 0}

# Nucleotides: the sugar-phosphate backbone (phosphate without H; ribose C2' carries one H and
# the 2'-OH in RNA, deoxyribose C2' two H) and the bases in their standard tautomers.
_RNA_BACKBONE_HYDROGENS = {
    "P": 0, "OP1": 0, "OP2": 0, "OP3": 0, "O5'": 0, "C5'": 2, "C4'": 1, "O4'": 0, "C3'": 1,
    "O3'": 0, "C2'": 1, "O2'": 1, "C1'": 1,
}
_DNA_BACKBONE_HYDROGENS = {**_RNA_BACKBONE_HYDROGENS, "C2'": 2}
del _DNA_BACKBONE_HYDROGENS["O2'"]
_BASE_HYDROGENS: dict[str, dict[str, int]] = {
    "A": {"N9": 0, "C8": 1, "N7": 0, "C5": 0, "C6": 0, "N6": 2, "N1": 0, "C2": 1, "N3": 0, "C4": 0},
    "G": {
        "N9": 0, "C8": 1, "N7": 0, "C5": 0, "C6": 0, "O6": 0, "N1": 1, "C2": 0, "N2": 2, "N3": 0,
        "C4": 0,
    },
    "C": {"N1": 0, "C2": 0, "O2": 0, "N3": 0, "C4": 0, "N4": 2, "C5": 1, "C6": 1},
    "U": {"N1": 0, "C2": 0, "O2": 0, "N3": 1, "C4": 0, "O4": 0, "C5": 1, "C6": 1},
    "T": {"N1": 0, "C2": 0, "O2": 0, "N3": 1, "C4": 0, "O4": 0, "C5": 0, "C7": 3, "C6": 1},
}

HYDROGEN_TABLE: dict[str, dict[str, int]] = {
    **{res: {**_BACKBONE_HYDROGENS, **side} for res, side in _SIDE_CHAIN_HYDROGENS.items()},
    **{base: {**_RNA_BACKBONE_HYDROGENS, **_BASE_HYDROGENS[base]} for base in "ACGU"},
    **{"D" + base: {**_DNA_BACKBONE_HYDROGENS, **_BASE_HYDROGENS[base]} for base in "ACGT"},
}
"""Hydrogens bonded to each heavy atom, by residue name and atom name (PDB/CCD names).

Standard amino acids at neutral pH (plus MSE, CYX and the force-field histidines HID/HIE/HIP,
HSD/HSE/HSP) and the nucleotides A, C, G, U, DA, DC, DG, DT. Written from the chemistry of the
residues; atoms not listed carry no implicit hydrogens."""
HYDROGEN_TABLE["PRO"]["N"] = 0
HYDROGEN_TABLE["GLY"]["CA"] = 2

# Older or force-field atom names -> current wwPDB names.
_ATOM_NAME_ALIASES = {"O1P": "OP1", "O2P": "OP2", "O3P": "OP3", "C5M": "C7"}
_RESIDUE_ATOM_ALIASES = {("ILE", "CD"): "CD1"}


def implicit_hydrogens(residue_name: str, atom_name: str) -> int:
    """Number of hydrogens bonded to heavy atom ``atom_name`` of residue ``residue_name``.

    0 for anything not in :data:`HYDROGEN_TABLE` (ligands, ions, unknown atoms). Accepts the old
    names O1P/O2P, C5M and ``*`` for primes, and CD for isoleucine CD1.
    """
    table = HYDROGEN_TABLE.get(residue_name.upper())
    if table is None:
        return 0
    name = atom_name.upper().replace("*", "'")
    name = _ATOM_NAME_ALIASES.get(name, name)
    name = _RESIDUE_ATOM_ALIASES.get((residue_name.upper(), name), name)
    return table.get(name, 0)


# --------------------------------------------------------------------------------------------
# Reading atomic models
# --------------------------------------------------------------------------------------------



def read_structure(
    source: str | os.PathLike[str],
    *,
    assembly: str | None = None,
    chains: list[str] | tuple[str, ...] | None = None,
    segments: list[str] | tuple[str, ...] | None = None,
    keep_water: bool = False,
    keep_ligands: bool = True,
    keep_hydrogens: bool = False,
) -> Atoms:
    """Read an atomic model (first model only) into :class:`Atoms`.

    Parameters
    ----------
    source
        A PDB or mmCIF file (``.pdb``, ``.ent``, ``.cif``, ``.mmcif``, each optionally ``.gz``;
        AlphaFold models are such files), an identifier ``pdb:4V1W`` / ``afdb:P68135`` resolved
        by :func:`tomosim.sources.resolve_source`, or ``builtin:NAME`` for the coarse models of
        :mod:`tomosim.builtin_structures`.
    assembly
        Biological assembly id to expand (PDB REMARK 350 / mmCIF ``pdbx_struct_assembly``,
        e.g. ``"1"``); ``None`` keeps the deposited coordinates. Copies of a chain are named by
        gemmi's ``AddNumber`` scheme (chain ``A`` -> ``A1``, ``A2``, ...).
    chains
        Author chain ids to keep (before assembly expansion); ``None`` keeps all.
    segments
        Segment ids to keep (PDB columns 73-76, as written by CHARMM/NAMD/VMD models where one
        chain holds many molecules); ``None`` keeps all.
    keep_water
        Keep water molecules.
    keep_ligands
        Keep non-polymer residues (ligands, ions, glycans).
    keep_hydrogens
        Keep explicit hydrogen and deuterium atoms. When they are dropped (the default),
        ``Atoms.hydrogens`` counts the implicit hydrogens of standard amino acids and
        nucleotides (:data:`HYDROGEN_TABLE`); when they are kept it is 0 everywhere.

    Returns
    -------
    Atoms
        Positions ``(x, y, z)`` in Å as in the file (after the assembly operators).

    Raises
    ------
    TomosimError
        Missing file, unknown format, truncated or corrupt gzip, no atoms after a selection
        (naming it), unknown assembly id (listing those available), unknown chain id.
    """
    if isinstance(chains, str):
        chains = [chains]
    if is_builtin(source):
        return _builtin_structure(source, assembly=assembly, chains=chains)
    path = resolve_source(source)
    label = str(source) if parse_identifier(source) is not None else str(path)
    structure = _read_model_file(path)
    model = structure[0]

    if chains is not None:
        available = list(dict.fromkeys(chain.name for chain in model))
        unknown = [chain for chain in chains if chain not in available]
        if unknown:
            raise TomosimError(
                f"unknown chain {', '.join(map(str, unknown))} in {label} "
                f"(available: {', '.join(available)})"
            )
        for index in reversed(range(len(model))):
            if model[index].name not in chains:
                del model[index]
    if segments is not None:
        present = list(dict.fromkeys(res.segment.strip() for chain in model for res in chain))
        missing = [seg for seg in segments if seg not in present]
        if missing:
            shown = ", ".join(present[:20]) + (" ..." if len(present) > 20 else "")
            raise TomosimError(
                f"unknown segment {', '.join(missing)} in {label} (available: {shown or 'none'})"
            )
        wanted = set(segments)
        _drop_residues(model, lambda residue: residue.segment.strip() not in wanted)
        structure.remove_empty_chains()
    if not keep_water:
        _drop_residues(model, _is_water)
        _require_atoms(model, label, "dropping water (keep_water=False)")
    if not keep_ligands:
        _drop_residues(model, lambda residue: not _is_water(residue) and not _is_polymer(residue))
        _require_atoms(model, label, "dropping ligands and ions (keep_ligands=False)")
    if not keep_hydrogens:
        model.remove_hydrogens()
        _require_atoms(model, label, "dropping hydrogens (keep_hydrogens=False)")
    structure.remove_empty_chains()

    if assembly is not None:
        model = _expand_assembly(structure, model, str(assembly), label)
        _require_atoms(model, label, f"expanding assembly {assembly} (its chains were removed)")

    extras = [f"assembly {assembly}"] if assembly is not None else []
    if chains is not None:
        extras.append(f"chains {','.join(chains)}")
    if segments is not None:
        extras.append(f"segments {','.join(segments)}")
    name = f"{label} [{'; '.join(extras)}]" if extras else label
    return _model_to_atoms(model, implicit=not keep_hydrogens, name=name)


def _drop_residues(model: gemmi.Model, condition: Callable[[gemmi.Residue], bool]) -> None:
    for chain in model:
        for index in reversed(range(len(chain))):
            if condition(chain[index]):
                del chain[index]


def _require_atoms(model: gemmi.Model, label: str, step: str) -> None:
    if model.count_atom_sites() == 0:
        raise TomosimError(f"no atoms left in {label} after {step}")


def _is_water(residue: gemmi.Residue) -> bool:
    return residue.entity_type == gemmi.EntityType.Water or residue.is_water()


def _is_polymer(residue: gemmi.Residue) -> bool:
    """A residue of a protein or nucleic-acid chain.

    gemmi's entity type, or, for files whose SEQRES does not match the coordinates (processed
    files where gemmi splits a chain), an amino acid or nucleotide known to gemmi's residue table.
    """
    if residue.entity_type == gemmi.EntityType.Polymer:
        return True
    info = gemmi.find_tabulated_residue(residue.name)
    return info is not None and (info.is_amino_acid() or info.is_nucleic_acid())


def _read_model_file(path: Path) -> gemmi.Structure:
    """Read a PDB/mmCIF file (optionally gzipped) with gemmi; first model, entities set up."""
    compressed = path.suffix.lower() == ".gz"
    suffix = file_suffix(path)
    if suffix in MAP_SUFFIXES:
        raise TomosimError(f"{path} is a density map, not an atomic model: read it with read_map")
    if suffix not in MODEL_SUFFIXES:
        known = ", ".join(MODEL_SUFFIXES)
        raise TomosimError(
            f"unknown atomic model format {suffix or '(no extension)'!r}: {path} "
            f"(expected {known}, optionally .gz)"
        )
    if compressed:
        _check_gzip(path)
    try:
        if suffix in MMCIF_SUFFIXES:
            document = gemmi.cif.read(str(path))
            if len(document) == 0:
                raise ValueError("no data block")
            _complete_assembly_tags(document[0])
            structure = gemmi.make_structure_from_block(document[0])
            structure.merge_chain_parts()  # as gemmi.read_structure does
        else:
            structure = gemmi.read_structure(str(path), format=gemmi.CoorFormat.Pdb)
    except (RuntimeError, ValueError, OSError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TomosimError(f"cannot read atomic model {path}: {message}") from None
    if len(structure) == 0 or structure[0].count_atom_sites() == 0:
        raise TomosimError(f"no atoms in {path} (not a {suffix[1:].upper()} coordinate file?)")
    while len(structure) > 1:
        del structure[len(structure) - 1]
    structure.setup_entities()
    return structure


def _complete_assembly_tags(block: gemmi.cif.Block) -> None:
    """Add the optional ``_pdbx_struct_assembly`` columns as ``?`` where a file lacks them.

    gemmi (0.7) ignores assemblies whose table lacks any of ``details``, ``method_details``,
    ``oligomeric_details`` and ``oligomeric_count``; wwPDB files have them all, hand-written or
    processed files often do not.
    """
    optional = ("details", "method_details", "oligomeric_details", "oligomeric_count")
    table = block.find("_pdbx_struct_assembly.", ["id", *(f"?{tag}" for tag in optional)])
    if len(table) == 0:
        return
    missing = [
        f"_pdbx_struct_assembly.{tag}"
        for column, tag in enumerate(optional, start=1)
        if not table.has_column(column)
    ]
    if not missing:
        return
    loop = table.loop
    if loop is not None:
        loop.add_columns(missing, "?")
    else:
        for tag in missing:
            block.set_pair(tag, "?")


def _check_gzip(path: Path) -> None:
    """Decompress ``path`` to the end; TomosimError if it is truncated or not gzip."""
    try:
        with gzip.open(path, "rb") as fh:
            while fh.read(1 << 22):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        raise TomosimError(f"corrupt or truncated gzip file ({exc}): {path}") from None


def _expand_assembly(
    structure: gemmi.Structure, model: gemmi.Model, assembly: str, label: str
) -> gemmi.Model:
    available = [a.name for a in structure.assemblies]
    chosen = next((a for a in structure.assemblies if a.name == assembly), None)
    if chosen is None:
        listed = ", ".join(available) if available else "none: the file defines no assemblies"
        raise TomosimError(f"unknown assembly {assembly!r} in {label} (available: {listed})")
    # With a log, gemmi skips (chains or subchains) that the filters removed instead of failing.
    log = io.StringIO()
    try:
        return gemmi.make_assembly(chosen, model, gemmi.HowToNameCopiedChain.AddNumber, log)
    except (RuntimeError, ValueError) as exc:
        raise TomosimError(f"cannot expand assembly {assembly!r} of {label}: {exc}") from None


def _model_to_atoms(model: gemmi.Model, *, implicit: bool, name: str) -> Atoms:
    count = model.count_atom_sites()
    positions = np.empty((count, 3), dtype=np.float64)
    b_factors = np.empty(count, dtype=np.float64)
    occupancies = np.empty(count, dtype=np.float64)
    hydrogens = np.zeros(count, dtype=np.int64)
    elements: list[str] = []
    chain_ids: list[str] = []
    index = 0
    for chain in model:
        for residue in chain:
            table = HYDROGEN_TABLE.get(residue.name) if implicit else None
            for atom in residue:
                pos = atom.pos
                positions[index] = (pos.x, pos.y, pos.z)
                b_factors[index] = atom.b_iso
                occupancies[index] = atom.occ
                if table is not None:
                    hydrogens[index] = implicit_hydrogens(residue.name, atom.name)
                elements.append(atom.element.name)
                chain_ids.append(chain.name)
                index += 1
    return Atoms(
        positions=positions[:index],
        elements=np.array(elements, dtype=str),
        b_factors=b_factors[:index],
        occupancies=np.clip(occupancies[:index], 0.0, 1.0),
        chain_ids=np.array(chain_ids, dtype=str),
        hydrogens=hydrogens[:index],
        name=name,
    )


def _builtin_structure(
    source: str | os.PathLike[str],
    *,
    assembly: str | None,
    chains: list[str] | tuple[str, ...] | None,
) -> Atoms:
    atoms = builtin_atoms(builtin_name(source))
    if assembly is not None:
        raise TomosimError(f"{source} is a builtin model and has no assembly {assembly!r}")
    if chains is None:
        return atoms
    available = list(dict.fromkeys(atoms.chain_ids.tolist()))
    unknown = [chain for chain in chains if chain not in available]
    if unknown:
        raise TomosimError(
            f"unknown chain {', '.join(unknown)} in {source} (available: {', '.join(available)})"
        )
    keep = np.isin(atoms.chain_ids, list(chains))
    return Atoms(
        positions=atoms.positions[keep],
        elements=atoms.elements[keep],
        b_factors=atoms.b_factors[keep],
        occupancies=atoms.occupancies[keep],
        chain_ids=atoms.chain_ids[keep],
        hydrogens=atoms.hydrogens[keep],
        name=f"{atoms.name} [chains {','.join(chains)}]",
    )


# --------------------------------------------------------------------------------------------
# Density maps
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DensityMap:
    """A density map (EM map, simulated density) with its sampling.

    Attributes
    ----------
    data
        ``(z, y, x)`` float32 map values as stored (arbitrary units).
    pixel_size
        Å per voxel (cubic voxels).
    origin
        ``(x, y, z)`` position in Å of voxel ``(0, 0, 0)``: the MRC header origin, or, when that
        is zero, ``nstart * pixel_size`` (the MRC 2014 reading used by EMDB maps that carry only
        ``nxstart``/``nystart``/``nzstart``).
    name
        Where the map came from (file name or identifier).
    """

    data: np.ndarray
    pixel_size: float
    origin: tuple[float, float, float]
    name: str = ""


def read_map(source: str | os.PathLike[str]) -> DensityMap:
    """Read a density map (MRC/MAP/CCP4, optionally ``.gz``, or ``emdb:NNNN``).

    Raises
    ------
    TomosimError
        Missing file, unknown format, unreadable MRC, a map that is not 3D, zero or non-cubic
        voxel size.
    """
    identifier = parse_identifier(source)
    if identifier is not None and identifier.prefix != "emdb":
        raise TomosimError(f"{identifier.text} is not a density map identifier (use emdb:NNNN)")
    path = resolve_source(source)
    label = identifier.text if identifier is not None else str(path)
    suffix = file_suffix(path)
    if suffix in MODEL_SUFFIXES:
        raise TomosimError(f"{path} is an atomic model, not a map: read it with read_structure")
    if suffix not in MAP_SUFFIXES:
        raise TomosimError(
            f"unknown map format {suffix or '(no extension)'!r}: {path} "
            f"(expected {', '.join(MAP_SUFFIXES)}, optionally .gz)"
        )
    if path.suffix.lower() == ".gz":
        _check_gzip(path)
    volume = read_mrc(path, require_voxel_size=False)
    voxel = np.asarray(volume.voxel_size, dtype=np.float64)
    if np.any(voxel <= 0):
        raise TomosimError(
            f"map has zero voxel size (header {tuple(voxel[::-1])} Å, x y z): {label}"
        )
    if np.ptp(voxel) > 1e-4 * voxel.max():
        raise TomosimError(f"map voxels are not cubic ({tuple(voxel[::-1])} Å, x y z): {label}")
    if volume.data.ndim != 3:
        raise TomosimError(f"not a 3D map (shape {volume.data.shape}): {label}")
    pixel_size = float(str(np.float32(voxel.mean())))  # 1.742, not 1.7419999837875366
    origin = volume.origin
    if not any(origin):
        try:
            with mrcfile.open(path, header_only=True, permissive=True) as mrc:
                header = mrc.header
                start = (int(header.nxstart), int(header.nystart), int(header.nzstart))
        except (OSError, ValueError):
            start = (0, 0, 0)
        origin = tuple(float(s) * pixel_size for s in start)  # type: ignore[assignment]
    return DensityMap(
        data=np.ascontiguousarray(volume.data, dtype=np.float32),
        pixel_size=pixel_size,
        origin=tuple(float(str(np.float32(value))) for value in origin),  # type: ignore[arg-type]
        name=label,
    )


def resample_map(
    data: np.ndarray,
    pixel_size: float,
    new_pixel_size: float,
    *,
    shape: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """Resample a ``(z, y, x)`` map to a new pixel size, conserving its integral.

    The map is treated as a density (value per Å³): the output samples the same continuous
    function on the new grid, so ``sum * pixel_size**3`` is conserved. The centre voxel
    ``shape // 2`` of the output lies at the same physical point as the centre voxel of the input
    (CONVENTIONS.md), so the two box centres coincide.

    Method: when downsampling by ``f = new_pixel_size / pixel_size > 1``, the map is first
    low-passed with a Gaussian of σ = ½·√(f² − 1) input voxels (anti-aliasing: with the input
    voxel's own width, the result has a resolution of about half a new voxel and is attenuated
    to ≈ e^{−π²/8} ≈ 0.3 at the new Nyquist frequency); then the map is sampled at the new voxel
    centres by cubic B-spline interpolation (``scipy.ndimage.map_coordinates`` along each axis,
    applied as one matrix per axis since the spline is separable; zero outside the box).
    Upsampling uses the spline alone. Integrals and centroids are kept to well below
    1 % and 0.1 new voxel for maps that are smooth at the new sampling.

    Parameters
    ----------
    data
        ``(z, y, x)`` map.
    pixel_size, new_pixel_size
        Input and output Å per voxel.
    shape
        ``(z, y, x)`` output shape; default ``round(data.shape * pixel_size / new_pixel_size)``
        (at least 1), the same physical box size.

    Returns
    -------
    np.ndarray
        ``shape`` float32 map.
    """
    volume = np.asarray(data, dtype=np.float64)
    if volume.ndim != 3:
        raise TomosimError(f"resample_map needs a 3D (z, y, x) map, got shape {volume.shape}")
    if not (np.isfinite(pixel_size) and pixel_size > 0):
        raise TomosimError(f"pixel size must be positive, got {pixel_size}")
    if not (np.isfinite(new_pixel_size) and new_pixel_size > 0):
        raise TomosimError(f"new pixel size must be positive, got {new_pixel_size}")
    factor = float(new_pixel_size) / float(pixel_size)
    if shape is None:
        shape = tuple(max(1, round(n / factor)) for n in volume.shape)
    out_shape = tuple(int(n) for n in shape)
    if len(out_shape) != 3 or min(out_shape) < 1:
        raise TomosimError(f"resample_map: output shape must be 3 positive sizes, got {shape}")
    if factor > 1:
        volume = ndimage.gaussian_filter(volume, 0.5 * np.sqrt(factor**2 - 1), mode="constant")
    # separable: one interpolation matrix per axis, applied as matrix products
    matrices = [
        _spline_matrix(old_size, new_size, factor)
        for old_size, new_size in zip(volume.shape, out_shape, strict=False)
    ]
    nz, ny, nx = volume.shape
    resampled = (matrices[0] @ volume.reshape(nz, ny * nx)).reshape(out_shape[0], ny, nx)
    resampled = np.tensordot(resampled, matrices[1], axes=([1], [1]))  # (z', x, y')
    resampled = resampled.transpose(0, 2, 1).reshape(-1, nx) @ matrices[2].T  # (z' y', x')
    return resampled.reshape(out_shape).astype(np.float32)


def _spline_matrix(old_size: int, new_size: int, factor: float) -> np.ndarray:
    """``(new_size, old_size)`` matrix of cubic B-spline interpolation along one axis.

    Output sample ``j`` is at input index ``old_size // 2 + (j - new_size // 2) * factor`` (the
    centre voxels coincide); zero outside the input (``mode="grid-constant"``). Column ``i`` is
    the interpolation of the unit vector ``e_i``, so the matrix reproduces
    ``scipy.ndimage.map_coordinates(order=3)`` exactly, by linearity.
    """
    positions = old_size // 2 + (np.arange(new_size) - new_size // 2) * factor
    matrix = np.empty((new_size, old_size))
    unit = np.zeros(old_size)
    for i in range(old_size):
        unit[i] = 1.0
        matrix[:, i] = ndimage.map_coordinates(
            unit, positions[None, :], order=3, mode="grid-constant", cval=0.0, prefilter=True
        )
        unit[i] = 0.0
    return matrix


def threshold_mask(data: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean mask of the voxels at or above ``threshold`` (same shape as ``data``)."""
    return np.asarray(data) >= threshold
