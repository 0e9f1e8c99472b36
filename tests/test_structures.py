"""read_structure: filters, chains, assemblies, gzip, implicit hydrogens and bad input.

The tests write their own tiny PDB and mmCIF files: chain A (ALA-GLY-PRO with one explicit
hydrogen, a water and a zinc ion), chain B (one ALA), and a two-operator biological assembly
(identity; 180° about z plus a translation of (10, 0, 5) Å).
"""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import gemmi
import numpy as np
import pytest
from scipy.spatial import cKDTree

from conftest import shared_structure
from tomosim.errors import TomosimError
from tomosim.structures import HYDROGEN_TABLE, implicit_hydrogens, read_structure

# (record, atom, residue, chain, residue number, element, implicit H expected)
_ATOMS = [
    ("ATOM", "N", "ALA", "A", 1, "N", 1),
    ("ATOM", "CA", "ALA", "A", 1, "C", 1),
    ("ATOM", "C", "ALA", "A", 1, "C", 0),
    ("ATOM", "O", "ALA", "A", 1, "O", 0),
    ("ATOM", "CB", "ALA", "A", 1, "C", 3),
    ("ATOM", "H", "ALA", "A", 1, "H", 0),
    ("ATOM", "N", "GLY", "A", 2, "N", 1),
    ("ATOM", "CA", "GLY", "A", 2, "C", 2),
    ("ATOM", "C", "GLY", "A", 2, "C", 0),
    ("ATOM", "O", "GLY", "A", 2, "O", 0),
    ("ATOM", "N", "PRO", "A", 3, "N", 0),
    ("ATOM", "CA", "PRO", "A", 3, "C", 1),
    ("ATOM", "C", "PRO", "A", 3, "C", 0),
    ("ATOM", "O", "PRO", "A", 3, "O", 0),
    ("ATOM", "CB", "PRO", "A", 3, "C", 2),
    ("ATOM", "CG", "PRO", "A", 3, "C", 2),
    ("ATOM", "CD", "PRO", "A", 3, "C", 2),
    ("HETATM", "O", "HOH", "A", 101, "O", 0),
    ("HETATM", "ZN", "ZN", "A", 102, "Zn", 0),
    ("ATOM", "N", "ALA", "B", 1, "N", 1),
    ("ATOM", "CA", "ALA", "B", 1, "C", 1),
    ("ATOM", "C", "ALA", "B", 1, "C", 0),
    ("ATOM", "O", "ALA", "B", 1, "O", 0),
    ("ATOM", "CB", "ALA", "B", 1, "C", 3),
]
_RNG = np.random.default_rng(7)
_XYZ = np.round(_RNG.uniform(-20, 20, size=(len(_ATOMS), 3)), 3)
_ROTATION = np.diag([-1.0, -1.0, 1.0])
_SHIFT = np.array([10.0, 0.0, 5.0])
HEAVY_PROTEIN = [i for i, a in enumerate(_ATOMS) if a[5] != "H" and a[2] not in ("HOH", "ZN")]
WATER = [i for i, a in enumerate(_ATOMS) if a[2] == "HOH"]
ION = [i for i, a in enumerate(_ATOMS) if a[2] == "ZN"]
HYDROGEN = [i for i, a in enumerate(_ATOMS) if a[5] == "H"]


def _pdb_text(*, with_assembly: bool = True) -> str:
    lines = ["HEADER    TEST STRUCTURE"]
    if with_assembly:
        lines += [
            "REMARK 350 BIOMOLECULE: 1",
            "REMARK 350 APPLY THE FOLLOWING TO CHAINS: A, B",
        ]
        for number, (rotation, shift) in enumerate(
            [(np.eye(3), np.zeros(3)), (_ROTATION, _SHIFT)], start=1
        ):
            for row in range(3):
                r = rotation[row]
                lines.append(
                    f"REMARK 350   BIOMT{row + 1}{number:4d}{r[0]:10.6f}{r[1]:10.6f}{r[2]:10.6f}"
                    f"{shift[row]:15.5f}"
                )
    for serial, ((record, atom, residue, chain, number, element, _), xyz) in enumerate(
        zip(_ATOMS, _XYZ, strict=False), start=1
    ):
        name = f"{atom:<4}" if len(element) == 2 else f" {atom:<3}"
        lines.append(
            f"{record:<6}{serial:5d} {name} {residue:>3} {chain}{number:4d}    "
            f"{xyz[0]:8.3f}{xyz[1]:8.3f}{xyz[2]:8.3f}{1.0:6.2f}{20.0:6.2f}          "
            f"{element.upper():>2}"
        )
    lines += ["END", ""]
    return "\n".join(lines)


# mmCIF: label chains A (protein), B (protein), C (water), D (zinc); author chains H and L.
_LABEL_ASYM = {("A", False): "A", ("B", False): "B", ("A", "HOH"): "C", ("A", "ZN"): "D"}
_AUTH_ASYM = {"A": "H", "B": "L"}


def _mmcif_text() -> str:
    lines = [
        "data_TEST",
        "#",
        "loop_",
        "_entity.id",
        "_entity.type",
        "1 polymer",
        "2 polymer",
        "3 water",
        "4 non-polymer",
        "#",
        "loop_",
        *(
            f"_atom_site.{tag}"
            for tag in (
                "group_PDB id type_symbol label_atom_id label_alt_id label_comp_id label_asym_id "
                "label_entity_id label_seq_id Cartn_x Cartn_y Cartn_z occupancy B_iso_or_equiv "
                "auth_seq_id auth_asym_id pdbx_PDB_model_num"
            ).split()
        ),
    ]
    entity = {"A": 1, "B": 2, "C": 3, "D": 4}
    for serial, ((record, atom, residue, chain, number, element, _), xyz) in enumerate(
        zip(_ATOMS, _XYZ, strict=False), start=1
    ):
        het = residue if residue in ("HOH", "ZN") else False
        label = _LABEL_ASYM[(chain, het)]
        seq = number if not het else "."
        lines.append(
            f"{record} {serial} {element.upper()} {atom} . {residue} {label} {entity[label]} {seq} "
            f"{xyz[0]:.3f} {xyz[1]:.3f} {xyz[2]:.3f} 1.00 20.00 {number} {_AUTH_ASYM[chain]} 1"
        )
    r, t = _ROTATION, _SHIFT
    lines += [
        "#",
        "_pdbx_struct_assembly.id 1",
        "_pdbx_struct_assembly.details author_defined_assembly",
        "#",
        "_pdbx_struct_assembly_gen.assembly_id 1",
        "_pdbx_struct_assembly_gen.oper_expression 1,2",
        "_pdbx_struct_assembly_gen.asym_id_list A,B,C,D",
        "#",
        "loop_",
        "_pdbx_struct_oper_list.id",
        "_pdbx_struct_oper_list.type",
        *(f"_pdbx_struct_oper_list.matrix[{i}][{j}]" for i in (1, 2, 3) for j in (1, 2, 3)),
        *(f"_pdbx_struct_oper_list.vector[{i}]" for i in (1, 2, 3)),
        "1 'identity operation' 1 0 0 0 1 0 0 0 1 0 0 0",
        "2 'point symmetry operation' "
        + " ".join(f"{v:g}" for v in r.ravel())
        + " "
        + " ".join(f"{v:g}" for v in t),
        "#",
        "",
    ]
    return "\n".join(lines)


@pytest.fixture
def pdb_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.pdb"
    path.write_text(_pdb_text())
    return path


@pytest.fixture
def cif_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.cif"
    path.write_text(_mmcif_text())
    return path


def _sorted_rows(positions: np.ndarray) -> np.ndarray:
    rounded = np.round(positions, 3)
    return rounded[np.lexsort(rounded.T[::-1])]


# --------------------------------------------------------------------------------------------
# Filters and content
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pdb", "cif"])
def test_default_keeps_protein_and_ions_drops_water_and_hydrogens(kind, pdb_file, cif_file):
    atoms = read_structure(pdb_file if kind == "pdb" else cif_file)
    expected = sorted(HEAVY_PROTEIN + ION)
    assert len(atoms) == len(expected)
    np.testing.assert_allclose(_sorted_rows(atoms.positions), _sorted_rows(_XYZ[expected]))
    assert Counter(atoms.elements.tolist()) == Counter(_ATOMS[i][5] for i in expected)
    assert "Zn" in atoms.elements.tolist()  # gemmi's element names, usable by gemmi.Element
    np.testing.assert_allclose(atoms.b_factors, 20.0)
    np.testing.assert_allclose(atoms.occupancies, 1.0)
    assert atoms.positions.dtype == np.float64 and atoms.positions.shape == (len(expected), 3)


@pytest.mark.parametrize("kind", ["pdb", "cif"])
@pytest.mark.parametrize(
    ("options", "indices"),
    [
        ({"keep_water": True}, HEAVY_PROTEIN + ION + WATER),
        ({"keep_ligands": False}, HEAVY_PROTEIN),
        ({"keep_hydrogens": True}, HEAVY_PROTEIN + ION + HYDROGEN),
        ({"keep_water": True, "keep_hydrogens": True}, list(range(len(_ATOMS)))),
    ],
)
def test_filters(kind, options, indices, pdb_file, cif_file):
    atoms = read_structure(pdb_file if kind == "pdb" else cif_file, **options)
    np.testing.assert_allclose(_sorted_rows(atoms.positions), _sorted_rows(_XYZ[sorted(indices)]))


@pytest.mark.parametrize("kind", ["pdb", "cif"])
def test_implicit_hydrogens_table(kind, pdb_file, cif_file):
    atoms = read_structure(pdb_file if kind == "pdb" else cif_file, keep_water=True)
    expected = {tuple(np.round(_XYZ[i], 3)): _ATOMS[i][6] for i in range(len(_ATOMS))}
    for position, count in zip(np.round(atoms.positions, 3), atoms.hydrogens, strict=False):
        assert count == expected[tuple(position)]
    # ALA CB methyl, GLY CA, PRO N and CD, the zinc ion
    assert implicit_hydrogens("ALA", "CB") == 3
    assert implicit_hydrogens("GLY", "CA") == 2
    assert implicit_hydrogens("PRO", "N") == 0 and implicit_hydrogens("PRO", "CD") == 2
    assert implicit_hydrogens("ZN", "ZN") == 0
    explicit = read_structure(pdb_file, keep_hydrogens=True)
    assert np.all(explicit.hydrogens == 0)


def test_hydrogen_table_chemistry():
    """Independent checks: hydrogen totals of free residues from their molecular formulas."""
    # residue in a chain = free amino acid minus H2O; free formulas (neutral, uncharged):
    # ALA C3H7NO2, GLY C2H5NO2, SER C3H7NO3, TRP C11H12N2O2, LYS C6H14N2O2, PHE C9H11NO2.
    # In-chain H = free H - 2 (water) + 1 for lysine's protonated NZ, -1 for the backbone
    # N-H counted as 1 (the free amine has 2 H, one lost to the peptide bond).
    free_h = {"ALA": 7, "GLY": 5, "SER": 7, "TRP": 12, "PHE": 11, "VAL": 11, "LEU": 13}
    for residue, hydrogens in free_h.items():
        assert sum(HYDROGEN_TABLE[residue].values()) == hydrogens - 2, residue
    assert sum(HYDROGEN_TABLE["LYS"].values()) == 14 - 2 + 1  # NZ as -NH3+
    assert sum(HYDROGEN_TABLE["ASP"].values()) == 7 - 2 - 1  # carboxylate
    # nucleotides in a chain: sugar H + base H (+ 2'-OH for RNA)
    # ribose C5'H2 C4'H C3'H C2'H O2'H C1'H = 7, adenine C8H C2H N6H2 = 4 (AMP C10H14N5O7P
    # has 14 H: these 11, the 3'-OH and two phosphate OH, all gone in a chain at neutral pH)
    assert sum(HYDROGEN_TABLE["A"].values()) == 14 - 3
    # deoxyribose 7 (two on C2', no 2'-OH), thymine N3H C6H C7H3 = 5 (dTMP C10H15N2O8P: 15 H)
    assert sum(HYDROGEN_TABLE["DT"].values()) == 15 - 3
    assert implicit_hydrogens("DT", "C5M") == 3  # old name of C7
    assert implicit_hydrogens("U", "O2*") == 1 and implicit_hydrogens("U", "O2") == 0


def test_chain_selection(pdb_file, cif_file):
    atoms = read_structure(pdb_file, chains=["B"])
    chain_b = [i for i, a in enumerate(_ATOMS) if a[3] == "B"]
    np.testing.assert_allclose(_sorted_rows(atoms.positions), _sorted_rows(_XYZ[chain_b]))
    assert set(atoms.chain_ids.tolist()) == {"B"}
    # mmCIF: chains are selected by author id (H, L), not label id (A, B, C, D)
    cif_atoms = read_structure(cif_file, chains=["L"])
    np.testing.assert_allclose(_sorted_rows(cif_atoms.positions), _sorted_rows(_XYZ[chain_b]))
    with pytest.raises(TomosimError, match="unknown chain A .*available: H, L"):
        read_structure(cif_file, chains=["A"])


@pytest.mark.parametrize("kind", ["pdb", "cif"])
def test_assembly_expansion(kind, pdb_file, cif_file):
    path = pdb_file if kind == "pdb" else cif_file
    single = read_structure(path)
    expanded = read_structure(path, assembly="1")
    assert len(expanded) == 2 * len(single)
    copy = single.positions @ _ROTATION.T + _SHIFT
    np.testing.assert_allclose(
        _sorted_rows(expanded.positions),
        _sorted_rows(np.concatenate([single.positions, copy])),
        atol=2e-3,
    )
    assert np.array_equal(np.sort(expanded.hydrogens), np.sort(np.tile(single.hydrogens, 2)))
    # chain selection happens before expansion
    only_b = read_structure(path, assembly="1", chains=["B" if kind == "pdb" else "L"])
    assert len(only_b) == 2 * 5


def test_gzip_reads_the_same(pdb_file, cif_file, tmp_path):
    for path in (pdb_file, cif_file):
        gz = tmp_path / (path.name + ".gz")
        gz.write_bytes(gzip.compress(path.read_bytes()))
        plain, packed = read_structure(path), read_structure(gz)
        np.testing.assert_array_equal(plain.positions, packed.positions)
        np.testing.assert_array_equal(plain.hydrogens, packed.hydrogens)


def test_builtin_through_read_structure():
    from tomosim.builtin_structures import builtin_atoms

    atoms = read_structure("builtin:actin")
    assert atoms is builtin_atoms("actin")
    cofilin = read_structure("builtin:cofilactin", chains=["C"])
    assert set(cofilin.chain_ids.tolist()) == {"C"} and 0 < len(cofilin) < 2000
    with pytest.raises(TomosimError, match="no assembly"):
        read_structure("builtin:actin", assembly="1")
    with pytest.raises(TomosimError, match="unknown chain Q"):
        read_structure("builtin:actin", chains=["Q"])
    with pytest.raises(TomosimError, match="unknown builtin structure 'spaceship'"):
        read_structure("builtin:spaceship")


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(TomosimError, match="file not found.*nothing.pdb"):
        read_structure(tmp_path / "nothing.pdb")


@pytest.mark.parametrize(("name", "message"), [
    ("model.xyz", "unknown atomic model format '.xyz'"),
    ("model", "unknown atomic model format '\\(no extension\\)'"),
    ("density.mrc", "density map, not an atomic model"),
])
def test_unknown_format(name, message, tmp_path):
    path = tmp_path / name
    path.write_text(_pdb_text())
    with pytest.raises(TomosimError, match=message) as info:
        read_structure(path)
    assert name in str(info.value)


def test_corrupt_and_truncated_gzip(tmp_path):
    truncated = tmp_path / "truncated.pdb.gz"
    truncated.write_bytes(gzip.compress(_pdb_text().encode())[:-20])
    with pytest.raises(TomosimError, match="gzip.*truncated.pdb.gz"):
        read_structure(truncated)
    not_gzip = tmp_path / "plain.cif.gz"
    not_gzip.write_text(_mmcif_text())
    with pytest.raises(TomosimError, match="gzip.*plain.cif.gz"):
        read_structure(not_gzip)


def test_not_a_structure(tmp_path):
    empty = tmp_path / "empty.pdb"
    empty.write_text("HEADER    NOTHING\nEND\n")
    with pytest.raises(TomosimError, match="no atoms in .*empty.pdb"):
        read_structure(empty)
    garbage = tmp_path / "garbage.cif"
    garbage.write_text("this is not mmCIF\n")
    with pytest.raises(TomosimError, match="cannot read atomic model .*garbage.cif"):
        read_structure(garbage)


def test_no_atoms_after_selection_names_the_selection(tmp_path):
    only_water = tmp_path / "water.pdb"
    only_water.write_text(
        "\n".join(line for line in _pdb_text(with_assembly=False).splitlines() if "HOH" in line)
        + "\nEND\n"
    )
    with pytest.raises(TomosimError, match="after dropping water \\(keep_water=False\\)"):
        read_structure(only_water)
    assert len(read_structure(only_water, keep_water=True)) == 1
    only_ion = tmp_path / "ion.pdb"
    only_ion.write_text(
        "\n".join(line for line in _pdb_text(with_assembly=False).splitlines() if " ZN " in line)
        + "\nEND\n"
    )
    with pytest.raises(TomosimError, match="after dropping ligands and ions"):
        read_structure(only_ion, keep_ligands=False)


def test_unknown_assembly_lists_available(pdb_file, tmp_path):
    with pytest.raises(TomosimError, match="unknown assembly '7'.*available: 1"):
        read_structure(pdb_file, assembly="7")
    bare = tmp_path / "bare.pdb"
    bare.write_text(_pdb_text(with_assembly=False))
    with pytest.raises(TomosimError, match="defines no assemblies"):
        read_structure(bare, assembly="1")


def test_unknown_chain_lists_available(pdb_file):
    with pytest.raises(TomosimError, match="unknown chain Q in .*tiny.pdb.*available: A, B"):
        read_structure(pdb_file, chains=["A", "Q"])


# --------------------------------------------------------------------------------------------
# Real structures (skipped when ../shared/structures is absent)
# --------------------------------------------------------------------------------------------


def test_real_apoferritin_4v1w():
    atoms = read_structure(shared_structure("4v1w.cif.gz"))
    assert len(atoms) == 32736
    assert len(set(atoms.chain_ids.tolist())) == 24
    extent = np.ptp(atoms.positions, axis=0)
    assert np.all((extent > 115) & (extent < 130))


def test_real_2gtl_remark_350_assembly():
    path = shared_structure("2GTL.pdb.gz")
    single = read_structure(path)
    assembly = read_structure(path, assembly="1")
    assert len(single) == 19648
    assert len(assembly) == 12 * len(single)
    # the operators of REMARK 350, applied by gemmi independently of tomosim
    structure = gemmi.read_structure(str(path))
    operators = structure.assemblies[0].generators[0].operators
    first = np.array(structure[0][0][0][0].pos.tolist())
    for operator in operators:
        moved = np.array(operator.transform.apply(gemmi.Position(*first)).tolist())
        assert np.min(np.linalg.norm(assembly.positions - moved, axis=1)) < 1e-3


def test_real_5ij0_drops_explicit_hydrogens_and_table_matches_them():
    path = shared_structure("5ij0.cif.gz")
    kept = read_structure(path, keep_hydrogens=True)
    atoms = read_structure(path)
    assert len(kept) == 13304 and "H" in kept.elements.tolist()
    assert len(atoms) == 13304 - 6523 and "H" not in atoms.elements.tolist()
    # the riding hydrogens of the deposited model, assigned to their nearest heavy atom
    is_h = kept.elements == "H"
    distance, nearest = cKDTree(kept.positions[~is_h]).query(kept.positions[is_h])
    assert distance.max() < 1.25
    counted = np.bincount(nearest, minlength=len(atoms))
    assert counted.sum() == atoms.hydrogens.sum()
    # all atoms agree except histidine tautomers (the file protonates ND1 on some)
    assert np.mean(counted == atoms.hydrogens) > 0.995
