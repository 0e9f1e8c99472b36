"""OME-Zarr volumes: exact round trip, multiscale metadata as the ome-zarr reader reads it,
chunked and compressed storage, bad groups refused in one line, simulate writing OME-Zarr."""

from __future__ import annotations

import json

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")
ome_zarr_reader = pytest.importorskip("ome_zarr.reader")
from ome_zarr.io import parse_url  # noqa: E402

from formats_run import PIXEL, make_run  # noqa: E402
from tomosim.errors import TomosimError  # noqa: E402
from tomosim.formats.omezarr import read_ome_zarr, write_ome_zarr  # noqa: E402
from tomosim.formats.volumes import read_volume  # noqa: E402
from tomosim.io import read_mrc, write_mrc  # noqa: E402
from tomosim.pipeline import output_paths  # noqa: E402


def _library_read(path):
    """The ome-zarr package's own reader: the image node's arrays and its metadata."""
    nodes = list(ome_zarr_reader.Reader(parse_url(str(path)))())
    image = nodes[0]
    return [np.asarray(level) for level in image.data], image.metadata


def test_round_trip_levels_and_library_reader(tmp_path):
    rng = np.random.default_rng(0)
    volume = rng.normal(size=(20, 34, 40)).astype(np.float32)
    path = tmp_path / "tomogram.zarr"
    write_ome_zarr(path, volume, voxel_size=7.5, levels=3, chunks=(16, 16, 16))
    back = read_ome_zarr(path)
    np.testing.assert_array_equal(back.data, volume)
    assert back.voxel_size == (7.5, 7.5, 7.5) and back.origin == (0.0, 0.0, 0.0)
    levels, metadata = _library_read(path)
    assert [level.shape for level in levels] == [(20, 34, 40), (10, 17, 20), (5, 8, 10)]
    np.testing.assert_array_equal(levels[0], volume)
    # level 1 is the 2x2x2 block mean
    np.testing.assert_allclose(
        levels[1], volume.reshape(10, 2, 17, 2, 20, 2).mean(axis=(1, 3, 5)), rtol=1e-5, atol=1e-6
    )
    scales = [t[0]["scale"] for t in metadata["coordinateTransformations"]]
    assert scales == [[7.5] * 3, [15.0] * 3, [30.0] * 3]
    assert [a["name"] for a in metadata["axes"]] == ["z", "y", "x"]
    assert read_ome_zarr(path, level=2).voxel_size == (30.0, 30.0, 30.0)
    array = zarr.open_array(str(path / "0"), mode="r")
    assert array.chunks == (16, 16, 16) and array.compressor is not None


def test_labels_keep_ids_and_storage_is_compressed(tmp_path):
    labels = np.zeros((32, 64, 64), np.uint8)
    labels[4:20, 10:40, 5:30] = 3
    labels[22:30, 40:60, 40:60] = 7
    path = tmp_path / "labels.zarr"
    write_ome_zarr(path, labels, voxel_size=(10.0, 8.0, 8.0), levels=2, labels=True)
    back = read_ome_zarr(path)
    assert back.data.dtype == np.uint8 and back.voxel_size == (10.0, 8.0, 8.0)
    np.testing.assert_array_equal(back.data, labels)
    np.testing.assert_array_equal(read_ome_zarr(path, level=1).data, labels[::2, ::2, ::2])
    stored = sum(f.stat().st_size for f in (path / "0").iterdir() if not f.name.startswith("."))
    assert stored < labels.nbytes / 10


def test_groups_without_multiscales_or_scale_are_refused(tmp_path, run_cli):
    plain = tmp_path / "plain.zarr"
    group = zarr.open_group(str(plain), mode="w")
    group.create_dataset("0", data=np.zeros((4, 4, 4), np.float32))
    with pytest.raises(TomosimError, match="no multiscales metadata"):
        read_volume(plain)
    noscale = tmp_path / "noscale.zarr"
    write_ome_zarr(noscale, np.zeros((4, 4, 4), np.float32), voxel_size=5.0)
    attrs = json.loads((noscale / ".zattrs").read_text())
    attrs["multiscales"][0]["datasets"][0]["coordinateTransformations"] = [
        {"type": "translation", "translation": [0, 0, 0]}
    ]
    (noscale / ".zattrs").write_text(json.dumps(attrs))
    with pytest.raises(TomosimError, match="invalid OME-Zarr multiscales metadata"):
        read_volume(noscale)
    code, out, err = run_cli("evaluate", str(plain), str(plain))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "no multiscales metadata" in lines[0] and "Traceback" not in err


def test_simulate_writes_ome_zarr_volumes(tmp_path):
    both = make_run(tmp_path / "both", volume_format="both", ome_zarr_levels=2)
    for name, path in output_paths(both, "both").items():
        assert path.exists() or name == "preview.png", name  # previews are off
    for stem in ("ground_truth", "labels", "instances", "tomogram"):
        mrc = read_mrc(both / f"{stem}.mrc", require_voxel_size=False)
        zarr_volume = read_volume(both / f"{stem}.zarr")
        np.testing.assert_array_equal(zarr_volume.data, mrc.data.astype(zarr_volume.data.dtype))
        assert zarr_volume.voxel_size == (PIXEL, PIXEL, PIXEL)
    # the same seed gives byte-identical files, OME-Zarr chunks and alignment files included
    again = make_run(tmp_path / "again", volume_format="both", ome_zarr_levels=2)
    files = sorted(p.relative_to(both) for p in both.rglob("*") if p.is_file())
    assert any(f.suffix == ".xf" for f in files) and any("zarr" in str(f) for f in files)
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for name in files:
        assert (both / name).read_bytes() == (again / name).read_bytes(), name
    only = make_run(tmp_path / "only", volume_format="ome-zarr")
    assert not (only / "tomogram.mrc").exists() and (only / "tomogram.zarr").is_dir()
    assert (only / "tiltseries.mrc").is_file()  # IMOD and RELION read the series as MRC
    from tomosim.train.data import read_simulation_folder

    data = read_simulation_folder(only)
    np.testing.assert_array_equal(data.tomogram, read_volume(both / "tomogram.zarr").data)


@pytest.mark.filterwarnings("ignore::UserWarning")  # random noise: no ice edges, no polarity
def test_match_reads_ome_zarr_like_mrc(tmp_path, run_cli):
    volume = np.random.default_rng(0).normal(size=(40, 48, 48)).astype(np.float32)
    write_mrc(tmp_path / "t.mrc", volume, voxel_size=7.5)
    write_ome_zarr(tmp_path / "t.zarr", volume, voxel_size=7.5, levels=2)
    results = []
    for name in ("t.mrc", "t.zarr"):
        out = tmp_path / name.replace(".", "_") / "match.yaml"
        code, _, err = run_cli("match", tmp_path / name, "-o", out, "--no-picture")
        assert code == 0, err
        summary = json.loads(out.with_suffix(".json").read_text())
        assert summary.pop("tomogram") == str(tmp_path / name)
        results.append(summary)
    assert results[0] == results[1] and results[0]["pixel_size"] == 7.5
