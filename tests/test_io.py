"""MRC writing: header statistics, voxel size, modes, byte order, identical bytes."""

from __future__ import annotations

import mrcfile
import numpy as np
import pytest

from tomosim.array_statistics import BLOCK, summary_statistics
from tomosim.io import read_mrc, write_mrc


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int16, np.uint16, np.uint8, np.int8])
def test_summary_statistics_match_numpy_in_float64(dtype):
    rng = np.random.default_rng(3)
    data = (rng.normal(40.0, 30.0, size=(7, 33, 301)) if dtype != np.uint8
            else rng.integers(0, 256, size=(7, 33, 301)))
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        data = np.clip(np.round(data), info.min, info.max)
    data = data.astype(dtype)
    exact = data.astype(np.float64)
    summary = summary_statistics(data)
    assert summary.minimum == exact.min() and summary.maximum == exact.max()
    assert summary.mean == pytest.approx(exact.mean(), rel=1e-12, abs=1e-12)
    assert summary.std == pytest.approx(exact.std(), rel=1e-12)


def test_summary_statistics_no_cancellation():
    # a large offset with a small spread: E[x^2] - mean^2 would lose every digit in float32
    data = (1e4 + np.random.default_rng(0).normal(0.0, 1e-2, size=3 * BLOCK + 17)).astype(np.float32)
    summary = summary_statistics(data)
    assert summary.std == pytest.approx(data.astype(np.float64).std(), rel=1e-9)
    assert summary.mean == pytest.approx(data.astype(np.float64).mean(), rel=1e-12)


def test_write_mrc_header_is_valid_mrc2014_and_stats_are_of_the_stored_values(tmp_path):
    labels = np.zeros((4, 20, 30), np.uint8)
    labels[1, 2:5, 3:9] = 255
    labels[2] = 7
    write_mrc(tmp_path / "labels.mrc", labels, voxel_size=(12.0, 10.0, 8.0), origin=(1.0, 2.0, 3.0))
    with open(tmp_path / "log", "w") as log:  # closed: an open file warns (warnings are errors)
        assert mrcfile.validate(str(tmp_path / "labels.mrc"), print_file=log)
    with mrcfile.open(tmp_path / "labels.mrc") as mrc:
        header = mrc.header
        assert int(header.mode) == 0 and (int(header.nx), int(header.ny), int(header.nz)) == (30, 20, 4)
        # statistics of the bytes as MRC2014 mode 0 defines them (signed: 255 reads -1), which
        # mrcfile.validate checks; IMOD's unsigned flag makes IMOD and tomosim read 255
        signed = labels.view(np.int8).astype(np.float64)
        assert float(header.dmin) == -1 and float(header.dmax) == 7
        assert float(header.dmean) == pytest.approx(signed.mean(), rel=1e-6)
        assert float(header.rms) == pytest.approx(signed.std(), rel=1e-6)
    back = read_mrc(tmp_path / "labels.mrc")
    assert np.array_equal(back.data, labels) and back.voxel_size == (12.0, 10.0, 8.0)
    assert back.origin == (1.0, 2.0, 3.0)


@pytest.mark.parametrize("dtype", [">f4", ">i2", "<f8", "bool", "int64"])
def test_write_mrc_converts_byte_order_and_types(tmp_path, dtype):
    data = np.arange(2 * 3 * 5).reshape(2, 3, 5)
    data = (data % 2 if dtype == "bool" else data).astype(dtype)
    write_mrc(tmp_path / "v.mrc", data, voxel_size=5.0)
    back = read_mrc(tmp_path / "v.mrc").data
    assert back.dtype.isnative and np.array_equal(back, data.astype(np.float64))
    with mrcfile.open(tmp_path / "v.mrc") as mrc:
        assert float(mrc.header.dmax) == float(data.max())


def test_write_mrc_tilt_stack_is_marked_and_same_bytes_every_time(tmp_path):
    stack = np.random.default_rng(1).normal(size=(5, 16, 24)).astype(np.float32)
    write_mrc(tmp_path / "a.mrc", stack, voxel_size=2.0, is_stack=True)
    write_mrc(tmp_path / "b.mrc", stack, voxel_size=2.0, is_stack=True)
    assert (tmp_path / "a.mrc").read_bytes() == (tmp_path / "b.mrc").read_bytes()
    with mrcfile.open(tmp_path / "a.mrc") as mrc:
        assert int(mrc.header.ispg) == 0 and mrc.is_image_stack()
    assert not list(tmp_path.glob(".*"))  # no temporary files left
