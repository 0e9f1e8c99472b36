"""Training the 2.5D U-Net: loss, patches, augmentation, overfitting, determinism, resuming.

Synthetic phantoms are made here (balls = "ribosome", thin rods = "actin", dark in noise), so the
tests do not depend on the simulator. Other test files import :func:`write_phantom_folder`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from tomosim.errors import TomosimError  # noqa: E402
from tomosim.io import read_mrc, write_mrc, write_text  # noqa: E402
from tomosim.train.config import AugmentationConfig, TrainConfig, load_train_config  # noqa: E402

torch.set_num_threads(1)

CLASSES_CSV = "id,name,colour\n1,ribosome,#ff0000\n2,actin,#00ff00\n"
NO_AUGMENTATION = {
    "flip_x": False, "flip_y": False, "rotate_180": False, "reverse_slices": False,
    "intensity_scale": 0, "intensity_shift": 0, "contrast": 0, "noise_std": 0, "blur_sigma_px": 0,
}
TINY = {
    "network": {"depth": 2, "base_channels": 8, "residual_units": 1},
    "patch_size": 32, "batch_size": 4, "epochs": 6, "iterations_per_epoch": 25,
    "learning_rate": 0.01, "validation_fraction": 0.0, "augmentation": NO_AUGMENTATION,
}


# --------------------------------------------------------------------------------------------
# Synthetic phantoms, defined in Å so they can be drawn at any voxel size
# --------------------------------------------------------------------------------------------


def phantom_objects(seed: int = 0, extent_a: tuple[float, float, float] = (160.0, 640.0, 640.0)):
    """Balls (centre z, y, x in Å, radius Å) and rods along x or y (z, y|x in Å, radius Å)."""
    rng = np.random.default_rng(seed)
    ez, ey, ex = extent_a
    balls = [(rng.uniform([40, 60, 60], [ez - 40, ey - 60, ex - 60]), rng.uniform(30, 45))
             for _ in range(6)]
    rods = [(rng.uniform(30, ez - 30), rng.uniform(60, min(ey, ex) - 60), bool(rng.random() < 0.5))
            for _ in range(3)]
    return balls, rods


def render_phantom(
    voxel_size: float, *, seed: int = 0, extent_a=(160.0, 640.0, 640.0), noise: float = 0.3,
    rods: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(tomogram float32, labels uint8) of the phantom on a grid of ``voxel_size`` Å."""
    shape = tuple(int(round(e / voxel_size)) for e in extent_a)
    z, y, x = (axis * voxel_size for axis in np.indices(shape, dtype=np.float64))
    labels = np.zeros(shape, np.uint8)
    balls, rod_list = phantom_objects(seed, extent_a)
    for height, across, along_x in rod_list if rods else []:
        other = y if along_x else x
        labels[(z - height) ** 2 + (other - across) ** 2 <= 15.0**2] = 2
    for centre, radius in balls:
        labels[(z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius**2] = 1
    rng = np.random.default_rng(seed + 1000)
    image = -1.0 * (labels == 1) - 0.7 * (labels == 2) + rng.normal(0, noise, shape)
    return image.astype(np.float32), labels


def write_phantom_folder(
    root: Path, *, voxel_size: float = 10.0, seed: int = 0, origin=(0.0, 0.0, 0.0)
) -> Path:
    """A simulation-like folder: tomogram.mrc, labels.mrc, classes.csv."""
    root.mkdir(parents=True, exist_ok=True)
    image, labels = render_phantom(voxel_size, seed=seed)
    write_mrc(root / "tomogram.mrc", image, voxel_size=voxel_size, origin=origin)
    write_mrc(root / "labels.mrc", labels, voxel_size=voxel_size, origin=origin)
    write_text(root / "classes.csv", CLASSES_CSV)
    return root


def tiny_config(**changes) -> TrainConfig:
    tree = {**TINY, **changes}
    return TrainConfig.model_validate(tree)


def prepared(folder: Path):
    from tomosim.train.data import prepare_training_volume, read_simulation_folder

    data = read_simulation_folder(folder)
    return data, prepare_training_volume(data, classes=data.classes, pixel_size=10.0)


def dice(prediction: np.ndarray, truth: np.ndarray, label: int) -> float:
    p, t = prediction == label, truth == label
    return 2.0 * (p & t).sum() / (p.sum() + t.sum())


# --------------------------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------------------------


def test_train_config_defaults_yaml_and_overrides(tmp_path):
    config = TrainConfig()
    assert config.network.slices == 5 and config.patch_size % 2**config.network.depth == 0
    path = tmp_path / "train.yaml"
    path.write_text("network:\n  depth: 4\npatch_size: 64\naugmentation:\n  flip_x: false\n")
    loaded = load_train_config(path, overrides=["batch_size=2", "network.base_channels=8"], seed=7)
    assert (loaded.network.depth, loaded.network.base_channels, loaded.patch_size) == (4, 8, 64)
    assert loaded.batch_size == 2 and loaded.seed == 7 and not loaded.augmentation.flip_x
    assert loaded.augmentation.flip_y  # untouched defaults stay


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("network.slices=4", "must be odd"),
        ("patch_size=60", "multiple of 2**network.depth"),
        ("learning_rate=-1", "learning_rate"),
        ("unknown_key=1", "unknown_key"),
        ("validation_fraction=0.9", "validation_fraction"),
    ],
)
def test_train_config_rejects_bad_values(override, message):
    with pytest.raises(TomosimError, match=message.replace("*", r"\*")):
        load_train_config(None, overrides=[override])


# --------------------------------------------------------------------------------------------
# Loss: unlabelled voxels (255) get no gradient
# --------------------------------------------------------------------------------------------


def test_unlabelled_voxels_receive_no_gradient():
    from tomosim.train.training import segmentation_loss

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, generator=generator, requires_grad=True)
    target = torch.randint(0, 3, (2, 8, 8), generator=generator)
    ignored = torch.rand(2, 8, 8, generator=generator) < 0.4
    target[ignored] = 255
    loss = segmentation_loss(logits, target, dice_weight=1.0)
    loss.backward()
    gradient = logits.grad.permute(0, 2, 3, 1)  # (batch, y, x, classes)
    assert torch.count_nonzero(gradient[ignored]) == 0
    assert torch.all(gradient[~ignored].abs().sum(dim=-1) > 0)
    # the loss does not depend on the scores of unlabelled voxels at all
    changed = logits.detach().clone()
    changed.permute(0, 2, 3, 1)[ignored] = torch.randn(int(ignored.sum()), 3, generator=generator) * 50
    assert segmentation_loss(changed, target, dice_weight=1.0) == pytest.approx(loss.item(), abs=1e-6)


def test_batch_without_labels_gives_zero_loss_and_gradient():
    from tomosim.train.training import segmentation_loss

    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss = segmentation_loss(logits, torch.full((1, 4, 4), 255), dice_weight=1.0)
    loss.backward()
    assert loss.item() == 0.0 and torch.count_nonzero(logits.grad) == 0


# --------------------------------------------------------------------------------------------
# Data: normalisation, class tables, patches, augmentation
# --------------------------------------------------------------------------------------------


def test_robust_normalise_centres_and_scales():
    from tomosim.train.data import robust_normalise

    volume = np.random.default_rng(0).normal(5.0, 2.0, (20, 50, 50))
    volume[0, 0, :10] = 1e6  # outliers are clipped, not allowed to set the scale
    out = robust_normalise(volume)
    q25, median, q75 = np.percentile(out, [25, 50, 75])
    assert out.dtype == np.float32 and abs(median) < 0.02
    assert (q75 - q25) / 1.349 == pytest.approx(1.0, rel=0.02) and out.max() == 10.0


def test_class_tables_merge_by_name_and_reject_conflicts(tmp_path):
    from tomosim.labels import make_class_table, merge_class_tables, read_class_table

    (tmp_path / "a.csv").write_text(CLASSES_CSV)
    table = read_class_table(tmp_path / "a.csv")
    assert table.ids == (0, 1, 2) and table.names == ("background", "ribosome", "actin")
    other = make_class_table([3], ["membrane"])
    assert merge_class_tables([table, other]).names == ("background", "ribosome", "actin", "membrane")
    with pytest.raises(TomosimError, match="class id 2"):
        merge_class_tables([table, make_class_table([2], ["microtubule"])])
    (tmp_path / "bad.csv").write_text("id,name\n1,a\n1,b\n")
    with pytest.raises(TomosimError, match="repeated"):
        read_class_table(tmp_path / "bad.csv")


def test_patches_are_class_balanced():
    from tomosim.train.data import TrainingVolume, make_patch_source, sample_patches

    labels = np.zeros((10, 64, 64), np.uint8)
    labels[:, 40:, :] = 1  # a large class
    labels[4:7, 10:13, 20:23] = 2  # a rare class: 27 of 40960 voxels
    volume = TrainingVolume(image=np.zeros(labels.shape, np.float32), labels=labels, name="t")
    rng = np.random.default_rng(0)
    source = make_patch_source(volume, y_range=(0, 64), rng=rng)
    images, patches = sample_patches([source], count=300, patch_size=16, slices=5, rng=rng)
    assert images.shape == (300, 5, 16, 16) and patches.shape == (300, 16, 16)
    with_rare = np.mean([(p == 2).any() for p in patches])
    assert 0.2 < with_rare < 0.5  # about 1/3; uniform sampling would give < 0.02


def test_patches_stay_inside_their_y_range_and_pad_with_ignore():
    from tomosim.train.data import TrainingVolume, extract_patch

    labels = np.zeros((6, 20, 40), np.uint8)
    labels[:, 15:, :] = 1  # rows 15.. are "validation", must never appear
    image = np.arange(20, dtype=np.float32)[None, :, None] * np.ones((6, 20, 40), np.float32)
    volume = TrainingVolume(image=image, labels=labels, name="t")
    patch, patch_labels = extract_patch(
        volume, centre=(0, 14, 39), y_range=(0, 15), patch_size=16, slices=3
    )
    assert patch.shape == (3, 16, 16) and patch[:, :15].max() <= 14
    assert np.all(patch_labels[15:] == 255) and not np.any(patch_labels == 1)


def test_augmentation_keeps_image_and_labels_aligned():
    from tomosim.train.augmentation import augment_patch

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, (12, 12)).astype(np.uint8)
    image = np.stack([labels + 10.0 * k for k in range(5)]).astype(np.float32)
    geometric = AugmentationConfig(**{**NO_AUGMENTATION, "flip_x": True, "flip_y": True,
                                      "rotate_180": True, "reverse_slices": True})
    seen_reversed = False
    for _ in range(20):
        out_image, out_labels = augment_patch(image, labels, config=geometric, rng=rng)
        assert np.array_equal(out_image[2] - 20.0, out_labels)  # the centre slice stays the centre
        offsets = out_image[:, 0, 0] - out_labels[0, 0]
        assert np.array_equal(offsets, [0, 10, 20, 30, 40]) or np.array_equal(offsets, [40, 30, 20, 10, 0])
        seen_reversed |= offsets[0] == 40
    assert seen_reversed
    untouched, same_labels = augment_patch(image, labels, config=AugmentationConfig(**NO_AUGMENTATION), rng=rng)
    assert np.array_equal(untouched, image) and np.array_equal(same_labels, labels)
    noisy, noisy_labels = augment_patch(image, labels, config=AugmentationConfig(probability=1.0), rng=rng)
    assert np.array_equal(np.sort(noisy_labels, axis=None), np.sort(labels, axis=None))
    assert not np.allclose(np.sort(noisy, axis=None), np.sort(image, axis=None))


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def test_tiny_network_overfits_one_phantom(tmp_path):
    from tomosim.train.inference import segment_tomogram
    from tomosim.train.training import train_network

    data, volume = prepared(write_phantom_folder(tmp_path / "phantom"))
    result = train_network(
        [volume], classes=data.classes, pixel_size=10.0, config=tiny_config(),
        output_dir=tmp_path / "model",
    )
    labels = segment_tomogram(result.checkpoint, data.tomogram, voxel_size=data.voxel_size)
    assert dice(labels, data.labels, 1) > 0.9 and dice(labels, data.labels, 2) > 0.9
    for name in ("model.pt", "last.pt", "metrics.json", "training_curve.png", "classes.csv",
                 "config.resolved.yaml"):
        assert (tmp_path / "model" / name).is_file()
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_training_is_deterministic_and_resumes_to_the_same_weights(tmp_path):
    from tomosim.train.checkpoint import load_checkpoint
    from tomosim.train.training import train_network

    data, volume = prepared(write_phantom_folder(tmp_path / "phantom"))
    config = tiny_config(
        epochs=3, iterations_per_epoch=4, validation_fraction=0.25, validation_patches=4,
        augmentation=AugmentationConfig().model_dump(),  # all augmentations on: their rng too
    )
    common = {"classes": data.classes, "pixel_size": 10.0, "config": config}
    train_network([volume], output_dir=tmp_path / "a", **common)
    train_network([volume], output_dir=tmp_path / "b", **common)
    for name in ("model.pt", "last.pt", "metrics.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()

    class Interrupted(Exception):
        pass

    def stop_after_first(record):
        if record["epoch"] == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        train_network([volume], output_dir=tmp_path / "c", on_epoch_end=stop_after_first, **common)
    assert load_checkpoint(tmp_path / "c" / "last.pt").iteration == 4
    epochs_run = []
    result = train_network(
        [volume], output_dir=tmp_path / "c", resume=True,
        on_epoch_end=lambda record: epochs_run.append(record["epoch"]), **common,
    )
    assert epochs_run == [2, 3] and result.checkpoint.iteration == 12
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    uninterrupted = load_checkpoint(tmp_path / "a" / "model.pt").weights
    resumed = load_checkpoint(tmp_path / "c" / "model.pt").weights
    assert all(torch.equal(uninterrupted[k], resumed[k]) for k in uninterrupted)


def test_resume_without_checkpoint_or_with_other_classes_is_refused(tmp_path):
    from tomosim.labels import make_class_table
    from tomosim.train.training import train_network

    data, volume = prepared(write_phantom_folder(tmp_path / "phantom"))
    config = tiny_config(epochs=1, iterations_per_epoch=1)
    with pytest.raises(TomosimError, match="nothing to resume"):
        train_network([volume], classes=data.classes, pixel_size=10.0, config=config,
                      output_dir=tmp_path / "m", resume=True)
    train_network([volume], classes=data.classes, pixel_size=10.0, config=config, output_dir=tmp_path / "m")
    other = make_class_table([1, 2], ["ribosome", "microtubule"])
    with pytest.raises(TomosimError, match="classes"):
        train_network([volume], classes=other, pixel_size=10.0, config=config,
                      output_dir=tmp_path / "m", resume=True)


def test_train_cli_writes_model_and_resume_continues_iterations(tmp_path, run_cli):
    import json

    folder = write_phantom_folder(tmp_path / "phantom")
    config = tmp_path / "train.yaml"
    config.write_text(
        "network: {depth: 2, base_channels: 4, residual_units: 0}\n"
        "patch_size: 32\nbatch_size: 2\nepochs: 1\niterations_per_epoch: 3\nvalidation_patches: 2\n"
    )
    code, out, err = run_cli("train", folder, "-o", tmp_path / "model", "--config", config, "--quiet")
    assert code == 0, err
    assert "1 epochs, 3 iterations" in out
    code, out, err = run_cli("train", folder, "-o", tmp_path / "model", "--resume", "--set", "epochs=2",
                             "--quiet")
    assert code == 0, err
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert metrics["iterations"] == 6 and [r["epoch"] for r in metrics["history"]] == [1, 2]
    assert "validation_dice" in metrics["final"]


def test_train_cli_bad_input_is_one_line_exit_2(tmp_path, run_cli):
    folder = write_phantom_folder(tmp_path / "phantom")
    code, _, err = run_cli("train", tmp_path / "missing", "-o", tmp_path / "m")
    assert code == 2 and "not found" in err and len(err.strip().splitlines()) == 1
    write_mrc(folder / "labels.mrc", np.zeros((4, 8, 8), np.uint8), voxel_size=10.0)
    code, _, err = run_cli("train", folder, "-o", tmp_path / "m")
    assert code == 2 and "labels shape" in err and len(err.strip().splitlines()) == 1
    blank = write_phantom_folder(tmp_path / "blank")
    image = read_mrc(blank / "tomogram.mrc").data
    write_mrc(blank / "tomogram.mrc", image, voxel_size=0.0)
    code, _, err = run_cli("train", blank, "-o", tmp_path / "m")
    assert code == 2 and "no voxel size" in err
    code, _, err = run_cli("train", folder, "-o", tmp_path / "m", "--set", "network.slices=4")
    assert code == 2 and "odd" in err


# --------------------------------------------------------------------------------------------
# Fine-tuning
# --------------------------------------------------------------------------------------------


def test_finetune_learns_from_labelled_voxels_only(tmp_path, run_cli):
    from tomosim.train.checkpoint import load_checkpoint

    phantom = write_phantom_folder(tmp_path / "phantom")
    config = tmp_path / "train.yaml"
    config.write_text(
        "network: {depth: 2, base_channels: 4, residual_units: 0}\n"
        "patch_size: 32\nbatch_size: 2\nepochs: 1\niterations_per_epoch: 2\nvalidation_fraction: 0\n"
        "finetune: {epochs: 2, phantom_fraction: 0.5}\n"
    )
    assert run_cli("train", phantom, "-o", tmp_path / "model", "--config", config, "--quiet")[0] == 0
    real = write_phantom_folder(tmp_path / "real", seed=5, voxel_size=12.0)
    partial = read_mrc(real / "labels.mrc").data.copy()
    partial[:, :, 30:] = 255  # only the left part is annotated
    write_mrc(real / "partial.mrc", partial, voxel_size=12.0)
    code, out, err = run_cli(
        "finetune", tmp_path / "model", real / "tomogram.mrc", real / "partial.mrc",
        "-o", tmp_path / "tuned", "--phantoms", phantom, "--classes", real / "classes.csv", "--quiet",
    )
    assert code == 0, err
    tuned = load_checkpoint(tmp_path / "tuned")
    start = load_checkpoint(tmp_path / "model")
    assert tuned.classes == start.classes and tuned.pixel_size == start.pixel_size == 10.0
    assert tuned.iteration == 4 and tuned.config["finetune"]["learning_rate"] == 1e-4
    assert any(not torch.equal(tuned.weights[k], start.weights[k]) for k in start.weights)

    (real / "other.csv").write_text("id,name,colour\n1,ribosome,#f00\n2,membrane,#00f\n")
    code, _, err = run_cli(
        "finetune", tmp_path / "model", real / "tomogram.mrc", real / "partial.mrc",
        "-o", tmp_path / "bad", "--classes", real / "other.csv", "--quiet",
    )
    assert code == 2 and "'membrane'" in err and "unknown to the model" in err
    code, _, err = run_cli(
        "finetune", tmp_path / "model", real / "tomogram.mrc", real / "partial.mrc",
        "-o", tmp_path / "bad", "--set", "network.depth=3", "--quiet",
    )
    assert code == 2 and "network" in err
