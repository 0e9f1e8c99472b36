"""CLI conventions: flags named as config fields, labels painted 255 or -1, plain help text."""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import typer

from cli_helpers import CLASSES_CSV, phantom_labels, phantom_tomogram
from tomosim.cli import app
from tomosim.config import (
    OpticsConfig,
    PotentialConfig,
    ReconstructionConfig,
    SampleConfig,
    StructureOptions,
    TiltConfig,
)
from tomosim.io import read_mrc, write_mrc

# options that are not config fields: inputs, outputs and run controls
NOT_FIELDS = {"--output", "--angles", "--config", "--set", "--max-memory-gb", "--help"}


def _options(command: str) -> dict[str, str]:
    """Long option name -> parameter name of a command."""
    group = typer.main.get_command(app)
    cmd = group.commands[command]  # type: ignore[attr-defined]
    out = {}
    for param in cmd.params:
        for opt in getattr(param, "opts", []):
            if opt.startswith("--"):
                out[opt] = param.name
    return out


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def test_reconstruct_flags_are_config_field_names() -> None:
    fields = {_flag(f) for f in ReconstructionConfig.model_fields}
    fields |= {_flag(f) for f in OpticsConfig.model_fields} | {_flag("tilt_axis_angle")}
    assert "tilt_axis_angle" in TiltConfig.model_fields
    flags = set(_options("reconstruct")) - NOT_FIELDS
    assert flags <= fields, flags - fields
    assert {"--thickness-px", "--lowpass-cutoff", "--lowpass-falloff",
            "--sirt-like-iterations"} <= flags


def test_potential_flags_are_config_field_names() -> None:
    fields = {_flag(f) for f in PotentialConfig.model_fields}
    fields |= {_flag(f) for f in StructureOptions.model_fields}
    fields |= {_flag("pixel_size")}
    assert "pixel_size" in SampleConfig.model_fields
    flags = set(_options("potential")) - NOT_FIELDS
    assert flags <= fields, flags - fields
    assert {"--map-mass-kda", "--map-scale-v", "--map-threshold", "--cache"} <= flags


def test_pick_flags_are_the_function_parameter_names() -> None:
    import inspect

    from tomosim.train.picking import pick_particles

    parameters = {_flag(p) for p in inspect.signature(pick_particles).parameters}
    flags = set(_options("pick"))
    assert {"--min-size-px", "--tomogram-name"} <= flags & parameters


def test_no_drifting_names_left() -> None:
    drifted = {"--thickness", "--cutoff", "--falloff", "--sirt-like", "--mass-kda", "--scale-v",
               "--min-size", "--tomo-name", "--no-cache"}
    everywhere = set()
    for command in typer.main.get_command(app).commands:  # type: ignore[attr-defined]
        everywhere |= set(_options(command))
    assert not drifted & everywhere
    assert "--threshold" not in _options("potential")  # map_threshold is --map-threshold


def test_help_has_no_bool_metavar(run_cli) -> None:
    for command in ("reconstruct", "potential", "segment", "train", "simulate"):
        code, out, _ = run_cli(command, "--help")
        assert code == 0 and "<bool>" not in out and "--help" in out, out


# --------------------------------------------------------------------------------------------
# "Not labelled": 255 written unsigned (IMOD) and -1 read back as signed (mrcfile, napari)
# --------------------------------------------------------------------------------------------


def _signed_byte_file(path: Path, labels: np.ndarray) -> None:
    """What napari/mrcfile save: mode 0 int8 without IMOD's unsigned flag, 255 stored as -1."""
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(labels.view(np.int8))
        mrc.voxel_size = 10.0


def test_int8_minus_one_reads_as_not_labelled(tmp_path: Path) -> None:
    from tomosim.labels import label_ids

    labels = phantom_labels()
    labels[:, :, :6] = 255
    _signed_byte_file(tmp_path / "signed.mrc", labels)
    raw = read_mrc(tmp_path / "signed.mrc").data
    assert raw.dtype == np.int8 and (raw == -1).sum() == (labels == 255).sum()
    np.testing.assert_array_equal(label_ids(raw, "signed.mrc"), labels)
    wide = labels.astype(np.int16)
    wide[labels == 255] = -1
    np.testing.assert_array_equal(label_ids(wide, "wide.mrc"), labels)


def test_evaluate_ignores_minus_one_like_255(run_cli, tmp_path: Path) -> None:
    truth = phantom_labels()
    prediction = truth.copy()
    prediction[:, :, :6] = 2  # wrong everywhere in the left part ...
    truth[:, :, :6] = 255  # ... which the truth marks "not labelled"
    write_mrc(tmp_path / "pred.mrc", prediction, voxel_size=10.0)
    write_mrc(tmp_path / "truth255.mrc", truth, voxel_size=10.0)
    _signed_byte_file(tmp_path / "truth_signed.mrc", truth)
    (tmp_path / "classes.csv").write_text(CLASSES_CSV)
    reports = {}
    for name in ("truth255", "truth_signed"):
        code, _, err = run_cli("evaluate", tmp_path / "pred.mrc", tmp_path / f"{name}.mrc",
                               "--classes", tmp_path / "classes.csv", "-o",
                               tmp_path / f"{name}.json")
        assert code == 0, err
        reports[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert reports["truth255"]["classes"] == reports["truth_signed"]["classes"]
    # outside the unlabelled part the prediction is right: Dice 1 for every class
    assert all(c["dice"] == pytest.approx(1.0) for c in reports["truth255"]["classes"]
               if c["true_voxels"])


def test_finetune_reads_minus_one_as_not_labelled(tmp_path: Path) -> None:
    from tomosim.train.data import make_class_table, read_labelled_tomogram

    labels = phantom_labels()
    labels[:4] = 255
    write_mrc(tmp_path / "tomo.mrc", phantom_tomogram(), voxel_size=10.0)
    write_mrc(tmp_path / "l255.mrc", labels, voxel_size=10.0)
    _signed_byte_file(tmp_path / "lsigned.mrc", labels)
    table = make_class_table([1, 2], ["ball", "rod"])
    a = read_labelled_tomogram(tmp_path / "tomo.mrc", tmp_path / "l255.mrc", table)
    b = read_labelled_tomogram(tmp_path / "tomo.mrc", tmp_path / "lsigned.mrc", table)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert (b.labels == 255).sum() == (labels == 255).sum()
