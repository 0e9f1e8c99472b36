"""`tomosim potential`: a readable MRC on good input; one line, exit 2 and no file on bad input."""

from __future__ import annotations

import gzip
from pathlib import Path

import mrcfile
import numpy as np
import pytest

PDB_LINES = [
    "ATOM      1  N   GLY A   1       0.000   0.000   0.000  1.00 20.00           N",
    "ATOM      2  CA  GLY A   1       1.458   0.000   0.000  1.00 20.00           C",
    "ATOM      3  C   GLY A   1       2.009   1.420   0.000  1.00 20.00           C",
    "ATOM      4  O   GLY A   1       1.251   2.390   0.000  1.00 20.00           O",
    "ATOM      5  N   CYS A   2       3.332   1.536   0.000  1.00 20.00           N",
    "ATOM      6  CA  CYS A   2       3.970   2.845   0.000  1.00 20.00           C",
    "ATOM      7  SG  CYS A   2       5.200   3.100   1.500  1.00 20.00           S",
    "END",
]

# Σ f_e(0) of the atoms above plus implicit H (GLY N 1, CA 2; CYS N 1, CA 1, SG 1), from Peng et
# al. 1996: N 2.2135, C 2.5088, O 1.9834, S 5.1604, H 0.5288 Å
F0_SUM = 2 * 2.2135 + 3 * 2.5088 + 1.9834 + 5.1604 + 6 * 0.5288


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "dipeptide.pdb"
    path.write_text("\n".join(PDB_LINES) + "\n")
    return path


def test_potential_writes_mrc_with_voxel_size(run_cli, model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "pot.mrc"
    code, stdout, stderr = run_cli("potential", model, "-o", out, "--pixel-size", "1.5")
    assert code == 0, stderr
    assert stdout.count("\n") == 1 and "integral" in stdout and "shape" in stdout
    with mrcfile.open(out) as mrc:
        assert float(mrc.voxel_size.x) == pytest.approx(1.5)
        assert float(mrc.voxel_size.z) == pytest.approx(1.5)
        data = np.asarray(mrc.data, dtype=np.float64)
    assert data.sum() * 1.5**3 == pytest.approx(47.878 * F0_SUM, rel=0.01)
    assert [p.name for p in out.parent.iterdir()] == ["pot.mrc"]


def test_potential_options(run_cli, model: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.mrc"
    ice = tmp_path / "ice.mrc"
    assert run_cli("potential", model, "-o", plain, "--pixel-size", "2", "--no-hydrogens")[0] == 0
    code, _, err = run_cli(
        "potential", model, "-o", ice, "--pixel-size", "2", "--solvent", "ice",
        "--resolution", "8", "--b-factor", "10", "--chains", "A", "--no-cache",
    )
    assert code == 0, err
    with mrcfile.open(plain) as mrc:
        no_h = float(np.asarray(mrc.data, dtype=np.float64).sum()) * 8.0
    assert no_h == pytest.approx(47.878 * (F0_SUM - 6 * 0.5288), rel=0.01)
    with mrcfile.open(ice) as mrc:
        border = np.asarray(mrc.data)[0]
    assert np.abs(border).max() < 1e-3


def _truncated_gzip(tmp_path: Path) -> Path:
    payload = gzip.compress(("\n".join(PDB_LINES * 50) + "\n").encode())
    path = tmp_path / "cut.pdb.gz"
    path.write_bytes(payload[: len(payload) // 2])
    return path


def _empty_model(tmp_path: Path) -> Path:
    path = tmp_path / "empty.pdb"
    path.write_text("HEADER    NOTHING HERE\nEND\n")
    return path


def _unknown_format(tmp_path: Path) -> Path:
    path = tmp_path / "model.xyz"
    path.write_text("3\n\nC 0 0 0\n")
    return path


def _zero_voxel_map(tmp_path: Path) -> Path:
    path = tmp_path / "zero.mrc"
    with mrcfile.new(path) as mrc:
        mrc.set_data(np.ones((8, 8, 8), dtype=np.float32))
        mrc.voxel_size = 0.0
    return path


@pytest.mark.parametrize(
    ("make_source", "pixel", "expected"),
    [
        (lambda tmp, model: tmp / "missing.pdb", "2", "not found"),
        (lambda tmp, model: _unknown_format(tmp), "2", "unknown"),
        (lambda tmp, model: _empty_model(tmp), "2", "no atoms"),
        (lambda tmp, model: _truncated_gzip(tmp), "2", "gzip"),
        (lambda tmp, model: model, "-1", "pixel_size"),
        (lambda tmp, model: model, "1000", "pixel_size"),
        (lambda tmp, model: model, "0", "pixel_size"),
        (lambda tmp, model: "foo:1234", "2", "unknown identifier prefix"),
        (lambda tmp, model: _zero_voxel_map(tmp), "2", "voxel size"),
    ],
    ids=[
        "missing-file", "unknown-format", "empty-model", "truncated-gzip", "pixel-negative",
        "pixel-absurd", "pixel-zero", "unknown-prefix", "map-zero-voxel-size",
    ],
)
def test_bad_input_exit_2_one_line_no_file(
    run_cli, model: Path, tmp_path: Path, make_source, pixel: str, expected: str
) -> None:
    source = make_source(tmp_path, model)
    out = tmp_path / "out" / "bad.mrc"
    code, _, stderr = run_cli("potential", source, "-o", out, "--pixel-size", pixel)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("tomosim: error:")
    assert expected in lines[0]
    named = pixel if "pixel" in expected else Path(str(source)).name
    assert named in lines[0]
    assert "Traceback" not in stderr
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())


def test_mass_and_scale_are_exclusive(run_cli, model: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.mrc"
    code, _, stderr = run_cli(
        "potential", model, "-o", out, "--pixel-size", "2", "--map-mass-kda", "10", "--map-scale-v", "1"
    )
    assert code == 2 and "--map-mass-kda" in stderr and not out.exists()


def test_map_source_scaled_by_mass(run_cli, tmp_path: Path) -> None:
    from tomosim.io import write_mrc

    z, y, x = np.indices((24, 24, 24)) - 12
    blob = np.exp(-(x**2 + y**2 + z**2) / (2 * 3.0**2)).astype(np.float32)
    source = tmp_path / "blob.map"
    write_mrc(source, blob, voxel_size=1.2)
    out = tmp_path / "blob_pot.mrc"
    code, _, stderr = run_cli(
        "potential", source, "-o", out, "--pixel-size", "2.4", "--map-mass-kda", "20"
    )
    assert code == 0, stderr
    with mrcfile.open(out) as mrc:
        integral = float(np.asarray(mrc.data, dtype=np.float64).sum()) * 2.4**3
        assert float(mrc.voxel_size.x) == pytest.approx(2.4)
    from tomosim.potential import protein_potential_integral_per_kda

    assert integral == pytest.approx(20 * protein_potential_integral_per_kda(), rel=1e-3)
