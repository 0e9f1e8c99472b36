"""``tomosim reconstruct`` and the IMOD ``.tlt`` reader/writer, on tilt series written here."""

from __future__ import annotations

from pathlib import Path

import mrcfile
import numpy as np
import pytest

from tomosim.errors import TomosimError
from tomosim.io import read_mrc, read_tlt, write_mrc, write_tlt

ANGLES = np.arange(-60.0, 61.0, 4.0)
IMAGE_SHAPE = (32, 48)  # (y, x)
POINT = (6, -5, 4)  # (x, y, z) from the centre, pixels


def point_tilt_series(offset_xyz=POINT, angles=ANGLES, shape=IMAGE_SHAPE) -> np.ndarray:
    """A unit point projected to ``u = x cos θ + z sin θ`` (bilinear splat), row ``y``."""
    x, y, z = offset_xyz
    stack = np.zeros((len(angles), *shape), dtype=np.float32)
    for i, theta in enumerate(np.deg2rad(angles)):
        column = x * np.cos(theta) + z * np.sin(theta) + shape[1] // 2
        c0 = int(np.floor(column))
        f = column - c0
        stack[i, shape[0] // 2 + y, c0] += 1 - f
        stack[i, shape[0] // 2 + y, c0 + 1] += f
    return stack


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    stack_path = tmp_path / "ts.mrc"
    tlt_path = tmp_path / "ts.tlt"
    write_mrc(stack_path, point_tilt_series(), voxel_size=3.5, is_stack=True)
    write_tlt(tlt_path, ANGLES)
    return stack_path, tlt_path


def test_tlt_round_trip(tmp_path: Path) -> None:
    angles = np.array([-60.0, -0.5, 0.0, 12.3456, 60.0])
    write_tlt(tmp_path / "a.tlt", angles)
    np.testing.assert_array_equal(read_tlt(tmp_path / "a.tlt"), angles)


def test_read_tlt_accepts_imod_layout_and_rejects_garbage(tmp_path: Path) -> None:
    path = tmp_path / "imod.tlt"
    path.write_text("  -60.00\n\n   -58.00\n   0.00  extra\n")
    np.testing.assert_array_equal(read_tlt(path), [-60.0, -58.0, 0.0])
    bad = tmp_path / "bad.tlt"
    bad.write_text("-60\nabc\n")
    with pytest.raises(TomosimError, match=r"line 2 is not a number.*bad\.tlt"):
        read_tlt(bad)
    (tmp_path / "empty.tlt").write_text("\n")
    with pytest.raises(TomosimError, match="no angles"):
        read_tlt(tmp_path / "empty.tlt")
    with pytest.raises(TomosimError, match="not found"):
        read_tlt(tmp_path / "missing.tlt")


def test_reconstruct_writes_tomogram_with_point_in_place(run_cli, inputs, tmp_path) -> None:
    stack_path, tlt_path = inputs
    out = tmp_path / "tomo.mrc"
    code, stdout, stderr = run_cli(
        "reconstruct", stack_path, "--angles", tlt_path, "-o", out, "--thickness-px", 24
    )
    assert code == 0, stderr
    assert "tomo.mrc" in stdout
    tomogram = read_mrc(out)
    assert tomogram.data.dtype == np.float32
    assert tomogram.data.shape == (24, *IMAGE_SHAPE)
    assert tomogram.voxel_size == pytest.approx((3.5, 3.5, 3.5))
    expected = (24 // 2 + POINT[2], IMAGE_SHAPE[0] // 2 + POINT[1], IMAGE_SHAPE[1] // 2 + POINT[0])
    assert np.unravel_index(np.argmax(tomogram.data), tomogram.data.shape) == expected
    assert not list(tmp_path.glob(".*partial*"))


def test_reconstruct_binning_invert_and_filters(run_cli, inputs, tmp_path) -> None:
    stack_path, tlt_path = inputs
    plain, inverted = tmp_path / "plain.mrc", tmp_path / "inverted.mrc"
    common = ["--angles", tlt_path, "--thickness-px", 24, "--binning", 2, "--sirt-like-iterations", 5]
    assert run_cli("reconstruct", stack_path, *common, "-o", plain)[0] == 0
    code, _, stderr = run_cli(
        "reconstruct", stack_path, *common, "--invert", "--lowpass-cutoff", 0.3, "--lowpass-falloff", 0.05,
        "--tilt-axis-angle", 0.0, "-o", inverted,
    )
    assert code == 0, stderr
    binned = read_mrc(plain)
    assert binned.data.shape == (12, 16, 24)
    assert binned.voxel_size == pytest.approx((7.0, 7.0, 7.0))
    flipped = read_mrc(inverted).data
    peak = np.unravel_index(np.argmax(binned.data), binned.data.shape)
    assert np.unravel_index(np.argmin(flipped), flipped.shape) == peak
    assert abs(np.array(peak) - np.array([12 // 2 + 2, 16 // 2 - 2.5, 24 // 2 + 3])).max() <= 1


def test_reconstruct_with_phase_flip(run_cli, inputs, tmp_path) -> None:
    pytest.importorskip("tomosim.microscope.ctf")
    stack_path, tlt_path = inputs
    out = tmp_path / "flipped.mrc"
    code, _, stderr = run_cli(
        "reconstruct", stack_path, "--angles", tlt_path, "-o", out, "--thickness-px", 24,
        "--phase-flip", "--defocus-um", 2.0, "--voltage-kv", 300, "--cs-mm", 2.7,
        "--amplitude-contrast", 0.1,
    )
    assert code == 0, stderr
    assert read_mrc(out).data.shape == (24, *IMAGE_SHAPE)


def _assert_one_line_error(result, *fragments: str) -> None:
    code, _, stderr = result
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tomosim: error:")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in stderr


def test_angle_count_mismatch(run_cli, inputs, tmp_path) -> None:
    stack_path, _ = inputs
    short = tmp_path / "short.tlt"
    write_tlt(short, ANGLES[:-1])
    out = tmp_path / "tomo.mrc"
    result = run_cli("reconstruct", stack_path, "--angles", short, "-o", out, "--thickness-px", 8)
    _assert_one_line_error(result, "short.tlt", "ts.mrc", f"{ANGLES.size - 1} tilt angles")
    assert not out.exists()


def test_angles_outside_90(run_cli, inputs, tmp_path) -> None:
    stack_path, _ = inputs
    wide = tmp_path / "wide.tlt"
    write_tlt(wide, np.concatenate([ANGLES[:-1], [95.0]]))
    out = tmp_path / "tomo.mrc"
    result = run_cli("reconstruct", stack_path, "--angles", wide, "-o", out, "--thickness-px", 8)
    _assert_one_line_error(result, "wide.tlt", "95")
    assert not out.exists()


@pytest.mark.parametrize(
    "content", [None, "0\nnot-an-angle\n", "\n"], ids=["missing", "text", "empty"]
)
def test_unreadable_tilt_file(run_cli, inputs, tmp_path, content) -> None:
    stack_path, _ = inputs
    tlt = tmp_path / "broken.tlt"
    if content is not None:
        tlt.write_text(content)
    out = tmp_path / "tomo.mrc"
    result = run_cli("reconstruct", stack_path, "--angles", tlt, "-o", out, "--thickness-px", 8)
    _assert_one_line_error(result, "broken.tlt")
    assert not out.exists()


def test_stack_without_voxel_size(run_cli, inputs, tmp_path) -> None:
    _, tlt_path = inputs
    stack_path = tmp_path / "nopix.mrc"
    with mrcfile.new(stack_path) as mrc:
        mrc.set_data(point_tilt_series())
        mrc.voxel_size = 0.0
    out = tmp_path / "tomo.mrc"
    result = run_cli("reconstruct", stack_path, "--angles", tlt_path, "-o", out, "--thickness-px", 8)
    _assert_one_line_error(result, "nopix.mrc", "voxel size")
    assert not out.exists()


def test_bad_options(run_cli, inputs, tmp_path) -> None:
    stack_path, tlt_path = inputs
    out = tmp_path / "tomo.mrc"
    base = ["reconstruct", stack_path, "--angles", tlt_path, "-o", out]
    _assert_one_line_error(run_cli(*base, "--thickness-px", 0), "thickness_px")
    _assert_one_line_error(run_cli(*base), "--thickness-px")
    _assert_one_line_error(run_cli(*base, "--thickness-px", 8, "--phase-flip"), "--defocus-um")
    _assert_one_line_error(run_cli(*base, "--thickness-px", 8, "--binning", 64), "binning")
    _assert_one_line_error(
        run_cli(*base, "--thickness-px", 8, "--lowpass-cutoff", 0.9), "lowpass_cutoff"
    )
    assert not out.exists()
