"""napari reader plugin: the npe2 manifest validates and points at the reader; the reader returns
the expected layers for a run folder (no display); with napari installed, a headless ViewerModel
accepts every layer with the class colours and positions intact."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from formats_run import PIXEL, make_run
from tomosim.formats.napari import get_reader
from tomosim.formats.run_folder import read_particle_star
from tomosim.io import read_mrc

MANIFEST = Path(__file__).resolve().parents[1] / "src" / "tomosim" / "napari.yaml"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("napari") / "run")


def test_manifest_validates_with_npe2():
    npe2 = pytest.importorskip("npe2")
    manifest = npe2.PluginManifest.from_file(MANIFEST)
    reader = manifest.contributions.readers[0]
    command = next(c for c in manifest.contributions.commands if c.id == reader.command)
    module, _, name = command.python_name.partition(":")
    assert getattr(importlib.import_module(module), name) is get_reader
    assert reader.accepts_directories


def test_reader_layers(run, tmp_path):
    assert get_reader(str(tmp_path)) is None  # not a run folder
    assert get_reader(str(run / "tomogram.mrc")) is None
    reader = get_reader(str(run))
    layers = {kwargs["name"]: (data, kwargs, kind) for data, kwargs, kind in reader(str(run))}
    assert set(layers) == {"tomogram", "labels", "particles", "tilt series"}
    data, kwargs, kind = layers["tomogram"]
    assert kind == "image" and kwargs["scale"] == (PIXEL,) * 3
    np.testing.assert_array_equal(data, read_mrc(run / "tomogram.mrc").data)
    data, kwargs, kind = layers["labels"]
    assert kind == "labels"
    np.testing.assert_array_equal(data, read_mrc(run / "labels.mrc", require_voxel_size=False).data)
    np.testing.assert_allclose(kwargs["colormap"][1], [0xF3 / 255, 0xC3 / 255, 0.0, 1.0])
    assert kwargs["features"].set_index("index").loc[2, "class"] == "proteasome"
    data, kwargs, kind = layers["particles"]
    _, particles = read_particle_star(run / "particles.star")
    assert kind == "points" and data.shape == (len(particles), 3)
    expected = particles[["rlnCoordinateZ", "rlnCoordinateY", "rlnCoordinateX"]].to_numpy() * PIXEL
    np.testing.assert_allclose(data, expected)
    assert list(kwargs["features"]["class"]) == list(particles.tomosimClassName)
    data, kwargs, kind = layers["tilt series"]
    assert kind == "image" and not kwargs["visible"] and data.shape[0] == 7
    np.testing.assert_allclose(kwargs["metadata"]["tilt_angles_deg"], np.arange(-45, 46, 15))


def test_layers_load_into_a_headless_napari_viewer_model(run):
    components = pytest.importorskip("napari.components")
    viewer = components.ViewerModel()
    for data, kwargs, kind in get_reader(str(run))(str(run)):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    assert [layer.name for layer in viewer.layers] == [
        "tomogram", "labels", "particles", "tilt series"
    ]
    labels = viewer.layers["labels"]
    np.testing.assert_allclose(labels.colormap.map(np.array([1]))[0],
                               [0xF3 / 255, 0xC3 / 255, 0.0, 1.0], atol=1e-6)
    points = viewer.layers["particles"]
    # world coordinates of a point equal the tomogram's world coordinates of its voxel
    tomogram = viewer.layers["tomogram"]
    voxel = np.round(points.data[0] / PIXEL).astype(int)
    np.testing.assert_allclose(tomogram.data_to_world(voxel), voxel * PIXEL)


def test_ome_zarr_volumes_come_as_lazy_multiscale_levels(tmp_path):
    zarr = pytest.importorskip("zarr")
    run = make_run(tmp_path / "zarr_run", volume_format="ome-zarr", ome_zarr_levels=2)
    layers = {kwargs["name"]: (data, kwargs, kind) for data, kwargs, kind in get_reader(str(run))(str(run))}
    data, kwargs, kind = layers["tomogram"]
    assert kind == "image" and kwargs["multiscale"] and len(data) == 2
    assert all(isinstance(level, zarr.Array) for level in data)  # not read into memory
    assert kwargs["scale"] == (PIXEL,) * 3
    assert data[1].shape == tuple(n // 2 for n in data[0].shape)
    from tomosim.formats.volumes import read_volume

    np.testing.assert_array_equal(data[0][...], read_volume(run / "tomogram.zarr").data)
    labels, kwargs, _ = layers["labels"]
    np.testing.assert_array_equal(labels[0][...], read_volume(run / "labels.zarr").data)
