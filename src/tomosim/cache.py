"""Cache: potentials of structure sources, computed once and kept on disk.

:func:`load_potential` is the bridge from a structure source (a file, a database identifier or a
builtin model) to the physics of :mod:`tomosim.potential`: it resolves and reads the source,
computes its potential and keeps the result in :func:`tomosim.io.cache_dir` ``("potentials")``,
keyed by a hash of everything that changes it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from tomosim import builtin_structures
from tomosim.config import PotentialConfig, StructureOptions
from tomosim.io import atomic_path, cache_dir
from tomosim.potential import (
    ICE_POTENTIAL_V,
    POTENTIAL_CODE_VERSION,
    Potential,
    atoms_to_potential,
    check_pixel_size,
    map_to_potential,
)
from tomosim.sources import builtin_name, is_builtin, resolve_source, source_kind
from tomosim.structures import read_map, read_structure


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cache_key(description: dict[str, object]) -> str:
    text = json.dumps(description, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def _read_cached(path: Path, key: str) -> Potential | None:
    """The cached potential at ``path``, or None if absent, corrupt or for another key."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            if str(stored["key"]) != key:
                return None
            data = np.ascontiguousarray(stored["data"], dtype=np.float32)
            centre = tuple(float(v) for v in stored["centre_a"])
            potential = Potential(
                data=data,
                pixel_size=float(stored["pixel_size"]),
                centre_a=(centre[0], centre[1], centre[2]),
                solvent=str(stored["solvent"]),
                name=str(stored["name"]),
            )
    except Exception:  # noqa: BLE001 - any unreadable entry is simply recomputed
        return None
    if potential.data.ndim != 3 or len(centre) != 3:
        return None
    return potential


def _write_cached(path: Path, key: str, potential: Potential) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            key=np.array(key),
            data=potential.data,
            pixel_size=np.array(potential.pixel_size),
            centre_a=np.array(potential.centre_a),
            solvent=np.array(potential.solvent),
            name=np.array(potential.name),
        )


def load_potential(
    source: str | os.PathLike[str],
    pixel_size: float,
    *,
    potential: PotentialConfig,
    structure: StructureOptions,
) -> Potential:
    """The potential of a structure source at ``pixel_size``, from the on-disk cache if there.

    Parameters
    ----------
    source
        ``builtin:NAME``, ``pdb:ID``, ``afdb:ACC`` or a ``.pdb/.cif/.ent(.gz)`` path (atomic
        model, :func:`atoms_to_potential`); ``emdb:ID`` or a ``.mrc/.map(.gz)`` path (density
        map, :func:`map_to_potential`).
    pixel_size
        Å per voxel, in (0, 50].
    potential
        Solvent, hydrogens, B-factor, resolution, hydration shell, ice potential, cache on/off.
    structure
        Assembly, chains, water/ligand/hydrogen selection (models); mass, scale, threshold (maps).

    Returns
    -------
    Potential
        For files and database entries the reference point (``centre_a``) is the mean atom
        position (models) or the map's centre voxel (maps). Builtin models are centred on their
        model origin, which :mod:`tomosim.builtin_structures` defines as their reference point
        (the mean atom position, except ``cofilactin``: the actin subunit centre).

    Notes
    -----
    The cache lives in :func:`tomosim.io.cache_dir` ``("potentials")``. Its key is a hash of the
    file content (sha256; for builtins the name, ``BUILTIN_VERSION`` if the generator defines one,
    and the sha256 of the generator's source file), the pixel size,
    every option that changes the result and :data:`POTENTIAL_CODE_VERSION`. Entries are written
    atomically; an unreadable entry is recomputed and replaced.

    Raises
    ------
    TomosimError
        Anything :func:`tomosim.sources.resolve_source`, the readers or the converters reject.
    """
    pixel = check_pixel_size(pixel_size, f" for {source}")
    builtin = is_builtin(source)
    if builtin:
        kind = "model"
        generator = Path(builtin_structures.__file__)
        version = getattr(builtin_structures, "BUILTIN_VERSION", "")
        content = f"builtin:{builtin_name(source)}:{version}:{_file_sha256(generator)}"
    else:
        path = resolve_source(source)
        kind = source_kind(path)
        content = _file_sha256(path)

    options = potential.model_dump(mode="json")
    options.pop("cache", None)
    selection = structure.model_dump(mode="json")
    if kind == "model":
        selection = {k: v for k, v in selection.items() if not k.startswith("map_")}
    else:
        selection = {k: v for k, v in selection.items() if k.startswith("map_")}
        for unused in ("hydrogens", "b_factor", "resolution", "hydration_shell"):
            options.pop(unused, None)
    key = _cache_key(
        {
            "content": content,
            "kind": kind,
            "pixel_size": repr(pixel),
            "potential": options,
            "structure": selection,
            "code": POTENTIAL_CODE_VERSION,
            "ice_default": ICE_POTENTIAL_V,
        }
    )
    cache_file = cache_dir("potentials") / f"{key}.npz" if potential.cache else None
    if cache_file is not None:
        cached = _read_cached(cache_file, key)
        if cached is not None:
            return cached

    if kind == "model":
        atoms = read_structure(
            source,
            assembly=structure.assembly,
            chains=structure.chains,
            segments=structure.segments,
            keep_water=structure.keep_water,
            keep_ligands=structure.keep_ligands,
            keep_hydrogens=structure.keep_hydrogens,
        )
        result = atoms_to_potential(
            atoms,
            pixel,
            b_factor=potential.b_factor,
            resolution=potential.resolution,
            hydrogens=potential.hydrogens,
            solvent=potential.solvent,
            hydration_shell=potential.hydration_shell,
            ice_potential_v=potential.ice_potential_v,
            centre=(0.0, 0.0, 0.0) if builtin else None,
        )
    else:
        result = map_to_potential(
            read_map(source),
            pixel,
            mass_kda=structure.map_mass_kda,
            scale_v=structure.map_scale_v,
            threshold=structure.map_threshold,
            solvent=potential.solvent,
            ice_potential_v=potential.ice_potential_v,
        )
    if cache_file is not None:
        _write_cached(cache_file, key, result)
    return result
