"""Devices, spectrum matching in training and inference, and the pretrained default model."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from test_train import prepared, render_phantom, tiny_config, write_phantom_folder  # noqa: E402
from tomosim.errors import TomosimError  # noqa: E402
from tomosim.io import read_mrc, write_mrc  # noqa: E402
from tomosim.spectrum import (  # noqa: E402
    RadialSpectrum,
    radial_amplitude_spectrum,
    spectrum_difference,
)
from tomosim.train.config import SpectrumTarget  # noqa: E402
from tomosim.train.data import robust_normalise  # noqa: E402

torch.set_num_threads(1)
NO_CUDA = not torch.cuda.is_available()


def target_tomogram(path, voxel_size=10.0, seed=5):
    """A 'real' tomogram with another spectrum than the phantoms: smoothed, coloured noise."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    image, _ = render_phantom(10.0, seed=seed, noise=0.6)
    image = ndimage.gaussian_filter(image, 1.2) + 0.2 * rng.normal(size=image.shape)
    write_mrc(path, image.astype(np.float32), voxel_size=voxel_size)
    return path


@pytest.mark.skipif(not NO_CUDA, reason="a CUDA GPU is available here")
@pytest.mark.parametrize("command", ["train", "segment", "finetune"])
def test_device_cuda_without_gpu_is_one_line_exit_2(tmp_path, run_cli, command):
    args = {
        "train": ["train", tmp_path, "-o", tmp_path / "m"],
        "segment": ["segment", tmp_path / "m", tmp_path / "t.mrc", "-o", tmp_path / "l.mrc"],
        "finetune": ["finetune", tmp_path / "m", tmp_path / "t.mrc", tmp_path / "l.mrc", "-o",
                     tmp_path / "f"],
    }[command]
    code, _, err = run_cli(*args, "--device", "cuda")
    assert code == 2 and "--device cuda" in err and len(err.strip().splitlines()) == 1


def test_unknown_device_is_refused():
    from tomosim.train.device import resolve_device

    with pytest.raises(TomosimError, match="--device must be one of"):
        resolve_device("tpu")
    assert resolve_device("cpu").type == "cpu"


@pytest.mark.skipif(not NO_CUDA, reason="auto picks the GPU here")
def test_device_cpu_and_auto_give_the_default_results(tmp_path):
    from tomosim.train.inference import segment_tomogram
    from tomosim.train.training import train_network

    data, volume = prepared(write_phantom_folder(tmp_path / "phantom"))
    config = tiny_config(epochs=1, iterations_per_epoch=3, validation_fraction=0.25,
                         validation_patches=2)
    common = {"classes": data.classes, "pixel_size": 10.0, "config": config}
    default = train_network([volume], output_dir=tmp_path / "default", **common)
    for device in ("cpu", "auto"):
        other = train_network([volume], output_dir=tmp_path / device, device=device, **common)
        assert (tmp_path / device / "model.pt").read_bytes() == (
            tmp_path / "default" / "model.pt").read_bytes()
        assert other.checkpoint.history == default.checkpoint.history
    image, _ = render_phantom(10.0, seed=3)
    labels = segment_tomogram(default.checkpoint, image, voxel_size=(10.0,) * 3)
    again = segment_tomogram(default.checkpoint, image, voxel_size=(10.0,) * 3, device="cpu")
    assert np.array_equal(labels, again)


def test_spectrum_match_training_filters_phantoms_to_the_target(tmp_path):
    from tomosim.train.spectrum_matching import match_training_volumes, target_spectrum
    from tomosim.train.training import train_network

    data, volume = prepared(write_phantom_folder(tmp_path / "phantom"))
    target_path = target_tomogram(tmp_path / "real.mrc")
    target = target_spectrum(SpectrumTarget(path=str(target_path)), pixel_size=10.0)
    before = radial_amplitude_spectrum(volume.image, pixel_size=10.0)
    (matched,) = match_training_volumes([volume], [target], pixel_size=10.0,
                                        rng=np.random.default_rng(0))
    after = radial_amplitude_spectrum(matched.image, pixel_size=10.0)
    # normalisation rescales: compare shapes (spectra over their band-1.. mean)

    def shape(s: RadialSpectrum) -> RadialSpectrum:
        return RadialSpectrum(s.pixel_size, s.amplitude / s.amplitude[1:].mean())

    assert np.max(np.abs(spectrum_difference(shape(before), shape(target))[1:])) > 0.2
    # clipping at ±10 robust s.d. after matching may touch a few voxels: within 5 %
    assert np.all(np.abs(spectrum_difference(shape(after), shape(target))[1:]) < 0.05)
    assert np.array_equal(matched.labels, volume.labels)
    # through train_network: the stored training spectrum is the target's shape
    config = tiny_config(epochs=1, iterations_per_epoch=1, validation_fraction=0.25,
                         validation_patches=2, spectrum_match=[str(target_path)])
    result = train_network([volume], classes=data.classes, pixel_size=10.0, config=config,
                           output_dir=tmp_path / "model")
    stored = RadialSpectrum.from_dict(result.checkpoint.spectrum)
    assert np.all(np.abs(spectrum_difference(shape(stored), shape(target))[1:]) < 0.05)


def test_spectrum_match_target_with_other_pixel_size_is_one_line_exit_2(tmp_path, run_cli):
    folder = write_phantom_folder(tmp_path / "phantom")
    target = target_tomogram(tmp_path / "real.mrc", voxel_size=12.0)
    config = tmp_path / "train.yaml"
    config.write_text(f"spectrum_match:\n  - {{path: {target}, pixel_size: 10.0}}\n")
    code, _, err = run_cli("train", folder, "-o", tmp_path / "m", "--config", config, "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "12 Å in its header, not the stated 10 Å" in err and str(target) in err
    assert not (tmp_path / "m" / "model.pt").exists()


def test_segment_match_spectrum_filters_input_to_training_spectrum(tmp_path, run_cli):
    from tomosim.train.checkpoint import load_checkpoint
    from tomosim.train.spectrum_matching import match_to_model

    data, volume = prepared(write_phantom_folder(tmp_path / "phantom"))
    code, _, err = run_cli(
        "train", tmp_path / "phantom", "-o", tmp_path / "m", "--quiet",
        "--set", "epochs=1", "--set", "iterations_per_epoch=2", "--set", "batch_size=2",
        "--set", "patch_size=32", "--set", "network.depth=2", "--set", "network.base_channels=4",
        "--set", "validation_patches=2",
    )
    assert code == 0, err
    model = load_checkpoint(tmp_path / "m")
    real = target_tomogram(tmp_path / "real.mrc")
    image = robust_normalise(read_mrc(real).data)
    matched = match_to_model(image, model.spectrum, pixel_size=10.0)
    stored = RadialSpectrum.from_dict(model.spectrum)
    got = radial_amplitude_spectrum(matched, pixel_size=10.0)
    ratio = got.amplitude[1:] / stored.amplitude[1:]
    assert np.all(np.abs(ratio / ratio.mean() - 1) < 0.05)
    code, out, err = run_cli("segment", tmp_path / "m", real, "-o", tmp_path / "l.mrc",
                             "--match-spectrum", "--quiet")
    assert code == 0, err
    assert read_mrc(tmp_path / "l.mrc").data.shape == read_mrc(real).data.shape


def test_segment_default_runs_offline_on_a_small_tomogram(tmp_path, run_cli, monkeypatch):
    from tomosim.train.checkpoint import default_model_path, load_checkpoint

    monkeypatch.setenv("TOMOSIM_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # no local file called "default"
    path = default_model_path()
    assert path.is_file() and path.stat().st_size <= 25e6
    model = load_checkpoint("default")
    names = set(model.classes.names)
    assert {"actin", "microtubule", "membrane", "ribosome"} <= names
    image, _ = render_phantom(model.pixel_size, seed=2, extent_a=(320.0, 480.0, 480.0))
    write_mrc(tmp_path / "t.mrc", image, voxel_size=model.pixel_size)
    code, out, err = run_cli("segment", "default", tmp_path / "t.mrc", "-o", tmp_path / "l.mrc",
                             "--quiet", "--match-spectrum")
    assert code == 0, err
    labels = read_mrc(tmp_path / "l.mrc").data
    assert labels.shape == image.shape and set(np.unique(labels)) <= set(model.classes.ids)
