"""Derive the filament subunit templates shipped in ``src/tomosim/data/filaments/``.

Run from the repository root with ../shared/structures beside it::

    PYTHONPATH=src python scripts/derive_filament_templates.py [../shared/structures]

``actin_6bno.pdb.gz``
    The middle subunit (chain H) of 6BNO_A15 (15 F-actin subunits built from PDB 6BNO by the
    afmize authors), moved into the filament frame by the ``helix: auto`` fit of all 15 subunits
    (:func:`tomosim.filament_templates.build_template`).
``tubulin_5ij0.pdb.gz``
    The αβ-tubulin dimer of PDB 5IJ0 (pristine, refined into a microtubule map), without
    hydrogens, superposed (Cα of sequence-aligned residues) onto the middle dimer (chains A/B)
    of the 3J6E lattice patch, whose three laterally adjacent protofilaments give the microtubule
    axis by the same screw fit; then turned so that ``+z`` is the plus end (β above α) and the
    dimer's mean atom position lies on ``+x``. Only 5IJ0 coordinates are shipped; the patch
    contributes the orientation (a rotation, i.e. a fact about PDB 3J6E). Finally moved by the
    smallest rigid motion that leaves no heavy atom within 2.2 Å of a neighbour on the 13- and
    14-protofilament lattices (:func:`tomosim.clash_relief.relieve_clashes`; 5IJ0's side chains
    at the lateral contacts are not the patch's).

Both files are written with gzip mtime 0, so reruns are byte-identical. The script prints the
helical values that ``tomosim.filaments.PRESETS`` holds.
"""

from __future__ import annotations

import dataclasses
import gzip
import sys
from pathlib import Path

import gemmi
import numpy as np

from tomosim.clash_relief import Relief, lattice_placement, relieve_clashes
from tomosim.filament_lattice import PRESETS, helical_lattice
from tomosim.filament_templates import (
    build_template,
    find_subunits,
    matched_pairs,
    read_filament_model,
)
from tomosim.helix import filament_frame, fit_helix, onto_x_axis, superpose

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "src" / "tomosim" / "data" / "filaments"


def _write_gz(text: str, path: Path) -> None:
    path.write_bytes(gzip.compress(text.encode(), mtime=0))


def _ca(chain: gemmi.Chain) -> tuple[list[str], np.ndarray]:
    names, xyz = [], []
    for res in chain:
        atom = res.find_atom("CA", "*")
        if atom is not None and gemmi.find_tabulated_residue(res.name) is not None:
            names.append(res.name)
            xyz.append([atom.pos.x, atom.pos.y, atom.pos.z])
    return names, np.asarray(xyz)


def _aligned_ca(a: gemmi.Chain, b: gemmi.Chain) -> tuple[np.ndarray, np.ndarray]:
    """Cα positions of identical residues paired by a global sequence alignment."""
    names_a, xyz_a = _ca(a)
    names_b, xyz_b = _ca(b)
    result = gemmi.align_string_sequences(names_a, names_b, [])
    ia = ib = 0
    pairs = []
    for count, op in _cigar(result.cigar_str()):
        if op == "M":
            for k in range(count):
                if names_a[ia + k] == names_b[ib + k]:
                    pairs.append((ia + k, ib + k))
            ia += count
            ib += count
        elif op == "I":
            ia += count
        else:
            ib += count
    rows = np.asarray(pairs)
    return xyz_a[rows[:, 0]], xyz_b[rows[:, 1]]


def _cigar(text: str) -> list[tuple[int, str]]:
    out, number = [], ""
    for char in text:
        if char.isdigit():
            number += char
        else:
            out.append((int(number), char))
            number = ""
    return out


def actin(shared: Path) -> None:
    """Write ``actin_6bno.pdb.gz`` and print its helix."""
    tmp = OUT / "actin_6bno.pdb"
    template = build_template(str(shared / "6BNO_A15.pdb.gz"), output=tmp)
    _write_gz(tmp.read_text(), OUT / "actin_6bno.pdb.gz")
    tmp.unlink()
    print(f"actin: twist {template.twist:.3f} deg, rise {template.rise:.3f} A, radius "
          f"{template.radius:.3f} A, outer {template.outer_radius:.2f} A, residual "
          f"{template.residual:.3f} A over {template.n_subunits} subunits")


def tubulin(shared: Path) -> None:
    """Write ``tubulin_5ij0.pdb.gz`` and print the lattice geometry of the 3J6E patch."""
    patch_source = str(shared / "3J6E_3PF_lattice_patch_TubulinNCs_SystemA.pdb.gz")
    _, patch = read_filament_model(patch_source)
    subunits = find_subunits(patch)
    fit = fit_helix(matched_pairs(subunits))
    print(f"3J6E patch lateral screw: twist {fit.twist:.3f} deg, rise {fit.rise:.3f} A, residual "
          f"{fit.residual:.3f} A (subunit order {[s.name for s in subunits]})")
    dimer = gemmi.read_structure(str(shared / "pdb5ij0.ent.gz"))
    dimer.remove_hydrogens()
    dimer.remove_waters()
    dimer.remove_empty_chains()
    while len(dimer) > 1:
        del dimer[len(dimer) - 1]
    model = dimer[0]
    patch_model = patch[0]
    moving, fixed = [], []
    for ours, theirs in (("A", "A"), ("B", "B")):
        a, b = _aligned_ca(model[ours], patch_model[theirs])
        moving.append(a)
        fixed.append(b)
    onto_patch = superpose(np.concatenate(moving), np.concatenate(fixed))
    rmsd = np.sqrt(np.mean(np.sum(
        (onto_patch.apply(np.concatenate(moving)) - np.concatenate(fixed)) ** 2, axis=1)))
    print(f"5IJ0 onto patch dimer A/B: {sum(len(m) for m in moving)} CA, RMSD {rmsd:.2f} A")
    xyz = np.array([[a.pos.x, a.pos.y, a.pos.z] for ch in model for r in ch for a in r])
    placed = onto_patch.apply(xyz)
    frame = filament_frame(fit, placed.mean(axis=0))
    in_frame = frame.apply(placed)
    n_alpha = sum(1 for r in model["A"] for _ in r)
    alpha_z, beta_z = in_frame[:n_alpha, 2].mean(), in_frame[n_alpha:, 2].mean()
    if beta_z < alpha_z:  # make +z the plus end (beta above alpha): turn 180 deg about x
        in_frame = in_frame * np.array([1.0, -1.0, -1.0])
    radius14 = float(np.hypot(*in_frame.mean(axis=0)[:2]))
    radius13 = radius14 * np.sin(np.pi / 14) / np.sin(np.pi / 13)
    placed, relief = _relieved_dimer(in_frame - in_frame.mean(axis=0), radius13, radius14)
    print(f"clash relief against the 13- and 14-pf lattices: {relief.angle_deg:.3f} deg, "
          f"{relief.shift:.3f} A; clashing atoms (13, 14 pf) {list(relief.clashes_before)} -> "
          f"{list(relief.clashes_after)} of {relief.n_atoms}")
    k = 0
    for ch in model:
        for r in ch:
            for atom in r:
                atom.pos = gemmi.Position(*(round(float(v), 3) for v in placed[k]))
                k += 1
    options = gemmi.PdbWriteOptions()
    options.minimal_file = True
    options.cryst1_record = False
    _write_gz(dimer.make_pdb_string(options), OUT / "tubulin_5ij0.pdb.gz")
    radial = np.hypot(placed[:, 0], placed[:, 1])
    radius = float(np.hypot(*placed.mean(axis=0)[:2]))
    print(f"tubulin dimer: radius in the 14-pf patch {radius14:.2f} A (13-pf with the same "
          f"lateral chord {radius13:.2f} A; after relief {radius:.2f} A), atoms from "
          f"{radial.min():.2f} to {radial.max():.2f} A from the axis, alpha/beta centre heights "
          f"{alpha_z:.2f}/{beta_z:.2f} A")


def _relieved_dimer(
    local: np.ndarray, radius13: float, radius14: float
) -> tuple[np.ndarray, Relief]:
    """Relieve the dimer (coordinates about its mean atom) against the 13- and 14-pf lattices.

    Returns it placed as subunit 0 of the 13-pf lattice and turned so that its mean atom lies on
    ``+x`` at height 0 (a symmetry of the lattice), with the relief.
    """
    base = PRESETS["microtubule"]
    reach = 2.0 * float(np.linalg.norm(local, axis=1).max()) + 3.0
    placements = []
    for n_pf, radius in ((13, radius13), (14, radius14)):
        params = dataclasses.replace(base, protofilaments=n_pf, radius=radius,
                                     outer_radius=None, inner_radius=0.0)
        positions, rotations = helical_lattice(3 * n_pf, params)
        placements.append(lattice_placement(positions, rotations, n_pf + 5, reach=reach))
    relief = relieve_clashes(local, placements)
    placed = relief.motion.apply(local) + np.array([radius13, 0.0, 0.0])
    return onto_x_axis(placed).apply(placed), relief


def main() -> None:
    """Derive both templates."""
    shared = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "structures"
    OUT.mkdir(parents=True, exist_ok=True)
    actin(shared)
    tubulin(shared)


if __name__ == "__main__":
    main()
