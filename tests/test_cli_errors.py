"""One error path for every command: bad input, usage errors and OS errors.

Each case runs ``tomosim ...`` in-process and checks the contract of ``tomosim.cli.main``: exit
code 2, exactly one line ``tomosim: error: ...`` (usage errors may print the usage line before
it), that line naming the input at fault, no traceback, and no new or changed file anywhere in
the test's folders (inputs and outputs).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from tomosim.io import write_mrc, write_text, write_tlt

torch = pytest.importorskip("torch", reason="the segmentation commands need the train extra")

from cli_helpers import (  # noqa: E402
    CLASSES_CSV,
    TRAIN_YAML,
    assert_clean_error,
    simulation_folder,
    tree,
)
from cli_helpers import phantom_labels as _labels  # noqa: E402
from cli_helpers import phantom_tomogram as _tomogram  # noqa: E402

ANGLES = np.arange(-60.0, 61.0, 10.0)
SMALL = (
    "seed: 1\nsample: {shape: [16, 32, 32], pixel_size: 10.0}\n"
    "proteins: {species: [{name: apo, source: 'builtin:apoferritin', count: 1}]}\n"
    "microscope: {tilt: {min_angle: -30, max_angle: 30, step: 15}}\n"
)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every input file the cases refer to, as ``{in}/NAME``."""
    with warnings.catch_warnings():  # NaN and infinite inputs are written on purpose
        warnings.filterwarnings("ignore", "Data array contains", RuntimeWarning)
        return make_inputs(tmp_path_factory.mktemp("inputs"))


def make_inputs(root: Path) -> Path:
    """Write the inputs into ``root`` (a tiny model is trained there: a few seconds)."""
    from tomosim.cli import main

    write_mrc(root / "ts.mrc", np.ones((len(ANGLES), 16, 24), np.float32), voxel_size=5.0,
              is_stack=True)
    write_tlt(root / "ts.tlt", ANGLES)
    write_tlt(root / "short.tlt", ANGLES[:-1])
    write_tlt(root / "ninety.tlt", np.linspace(-90.0, 90.0, len(ANGLES)))
    (root / "garbage.tlt").write_text("-60\nabc\n")
    nan_stack = np.ones((len(ANGLES), 16, 24), np.float32)
    nan_stack[3, 4, 5] = np.nan
    write_mrc(root / "nan_ts.mrc", nan_stack, voxel_size=5.0, is_stack=True)
    write_mrc(root / "nopix.mrc", np.ones((len(ANGLES), 16, 24), np.float32), voxel_size=0.0)
    write_mrc(root / "image.mrc", np.ones((16, 24), np.float32), voxel_size=5.0)
    (root / "notmrc.mrc").write_bytes(b"this is not an MRC file" * 10)
    write_mrc(root / "tomo.mrc", _tomogram(), voxel_size=10.0)
    nan_tomo = _tomogram()
    nan_tomo[1, 2, 3] = np.nan
    write_mrc(root / "nan_tomo.mrc", nan_tomo, voxel_size=10.0)
    inf_tomo = _tomogram()
    inf_tomo[1, 2, 3] = np.inf
    write_mrc(root / "inf_tomo.mrc", inf_tomo, voxel_size=10.0)
    write_mrc(root / "coarse_tomo.mrc", _tomogram(), voxel_size=1000.0)
    write_mrc(root / "fine_tomo.mrc", _tomogram(), voxel_size=0.5)
    write_mrc(root / "labels.mrc", _labels(), voxel_size=10.0)
    write_text(root / "labels.classes.csv", CLASSES_CSV)
    write_mrc(root / "labels_float.mrc", _labels().astype(np.float32), voxel_size=10.0)
    write_mrc(root / "labels_small.mrc", _labels((4, 16, 16)), voxel_size=10.0)
    write_mrc(root / "labels_other_voxel.mrc", _labels(), voxel_size=7.0)
    write_mrc(root / "labels_int16.mrc", _labels().astype(np.int16) * 200, voxel_size=10.0)
    (root / "sim.yaml").write_text(SMALL)
    (root / "empty.yaml").write_text("")
    (root / "comments.yaml").write_text("# nothing here\n")
    (root / "bad.yaml").write_text("sample: [1, 2\n")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    (root / "unknown.yaml").write_text(SMALL + "bogus: 1\n")
    (root / "train.yaml").write_text(TRAIN_YAML)
    (root / "bad_train.yaml").write_text("network: {slices: 4}\n")
    (root / "bad_rec.yaml").write_text("reconstruction: {lowpass_cutoff: 2.0}\n")
    simulation_folder(root / "run")
    simulation_folder(root / "nan_run", tomogram=nan_tomo)
    simulation_folder(root / "float_run", labels=_labels().astype(np.float32))
    (root / "half_run").mkdir()
    write_mrc(root / "half_run" / "tomogram.mrc", _tomogram(), voxel_size=10.0)
    (root / "a_file").write_text("x")
    (root / "a_dir").mkdir()
    (root / "a_dir" / "keep.txt").write_text("keep")
    code = main(["train", str(root / "run"), "-o", str(root / "model"),
                 "--config", str(root / "train.yaml"), "--quiet", "--threads", "1"])
    assert code == 0
    (root / "model.pt").write_bytes((root / "model" / "model.pt").read_bytes())
    (root / "fake_model.pt").write_bytes(b"not a checkpoint")
    return root


LONG = "n" * 300
# (id, command line with {in} = inputs folder and {out} = a fresh output folder, texts the error
# line must contain)
CASES: list[tuple[str, str, tuple[str, ...]]] = [
    # usage errors: every command
    ("bare", "", ("missing command",)),
    ("unknown-command", "nosuchcmd", ("nosuchcmd",)),
    ("unknown-root-option", "--nope", ("--nope",)),
    ("demo-unknown-option", "demo --nope", ("--nope",)),
    ("demo-seed-abc", "demo -o {out}/d --seed abc", ("--seed",)),
    ("demo-max-memory-abc", "demo -o {out}/d --max-memory-gb lots", ("--max-memory-gb",)),
    ("simulate-no-config", "simulate", ("config",)),
    ("simulate-no-output", "simulate {in}/sim.yaml", ("--output",)),
    ("simulate-seed-abc", "simulate {in}/sim.yaml -o {out}/r --seed abc", ("--seed",)),
    ("reconstruct-no-args", "reconstruct", ("tilt_series",)),
    ("reconstruct-thickness-abc",
     "reconstruct {in}/ts.mrc --angles {in}/ts.tlt -o {out}/t.mrc --thickness-px abc",
     ("--thickness-px",)),
    ("reconstruct-old-flag",
     "reconstruct {in}/ts.mrc --angles {in}/ts.tlt -o {out}/t.mrc --thickness 8",
     ("--thickness",)),
    ("potential-no-args", "potential", ("source",)),
    ("potential-pixel-abc", "potential builtin:apoferritin -o {out}/p.mrc --pixel-size abc",
     ("--pixel-size",)),
    ("segment-no-args", "segment", ("model",)),
    ("segment-batch-abc", "segment {in}/model {in}/tomo.mrc -o {out}/l.mrc --batch-size x",
     ("--batch-size",)),
    ("train-threads-abc", "train {in}/run -o {out}/m --threads x", ("--threads",)),
    ("train-no-output", "train {in}/run", ("--output",)),
    ("finetune-no-args", "finetune", ("model",)),
    ("evaluate-no-args", "evaluate", ("prediction",)),
    ("pick-no-args", "pick", ("source",)),
    ("pick-old-flag", "pick {in}/labels.mrc -o {out}/p.star --min-size 3", ("--min-size",)),
    ("dataset-no-args", "dataset", ("config",)),
    ("dataset-count-abc", "dataset {in}/sim.yaml -n abc -o {out}/d", ("-n",)),
    # simulate / demo: config and plausibility, all before anything is written
    ("simulate-missing-config", "simulate {in}/missing.yaml -o {out}/r", ("missing.yaml",)),
    ("simulate-empty-config", "simulate {in}/empty.yaml -o {out}/r", ("empty.yaml", "empty")),
    ("simulate-comments-only", "simulate {in}/comments.yaml -o {out}/r", ("comments.yaml",)),
    ("simulate-bad-yaml", "simulate {in}/bad.yaml -o {out}/r", ("bad.yaml", "YAML")),
    ("simulate-list-yaml", "simulate {in}/list.yaml -o {out}/r", ("list.yaml", "mapping")),
    ("simulate-unknown-key", "simulate {in}/unknown.yaml -o {out}/r", ("bogus",)),
    ("simulate-tilt-plus-90",
     "simulate {in}/sim.yaml -o {out}/r --set microscope.tilt.max_angle=90", ("max_angle", "90")),
    ("simulate-tilt-minus-90",
     "simulate {in}/sim.yaml -o {out}/r --set microscope.tilt.min_angle=-90", ("min_angle",)),
    ("simulate-tilt-reversed",
     "simulate {in}/sim.yaml -o {out}/r --set microscope.tilt.min_angle=50", ("min_angle",)),
    ("simulate-ice-thicker-than-box",
     "simulate {in}/sim.yaml -o {out}/r --set sample.ice_thickness=5000",
     ("ice_thickness", "5000", "160")),
    ("simulate-vesicle-larger-than-box",
     "simulate {in}/sim.yaml -o {out}/r --set vesicles.count=1 --set vesicles.radius=[400,500]",
     ("vesicles.radius", "does not fit")),
    ("simulate-huge-sample",
     "simulate {in}/sim.yaml -o {out}/r --set sample.shape=[4096,4096,4096]", ("GiB", "4096")),
    ("simulate-too-big-for-limit",
     "simulate {in}/sim.yaml -o {out}/r --max-memory-gb 0.00001", ("GiB", "--max-memory-gb")),
    ("simulate-negative-memory-limit",
     "simulate {in}/sim.yaml -o {out}/r --max-memory-gb -1", ("--max-memory-gb",)),
    ("simulate-shape-tiny", "simulate {in}/sim.yaml -o {out}/r --set sample.shape=[2,32,32]",
     ("sample.shape",)),
    ("simulate-pixel-zero", "simulate {in}/sim.yaml -o {out}/r --set sample.pixel_size=0",
     ("pixel_size",)),
    ("simulate-seed-negative", "simulate {in}/sim.yaml -o {out}/r --seed -1", ("seed",)),
    ("simulate-set-no-equals", "simulate {in}/sim.yaml -o {out}/r --set sample.shape",
     ("--set",)),
    ("simulate-set-bad-yaml", "simulate {in}/sim.yaml -o {out}/r --set sample.shape=[1,",
     ("sample.shape",)),
    ("simulate-set-unknown-section", "simulate {in}/sim.yaml -o {out}/r --set nosuch.key=1",
     ("nosuch",)),
    ("simulate-unknown-species-source",
     "simulate {in}/sim.yaml -o {out}/r --set proteins.species.0.source=foo:1", ("foo:1",)),
    ("simulate-output-is-file", "simulate {in}/sim.yaml -o {in}/a_file", ("a_file",)),
    ("simulate-output-not-empty", "simulate {in}/sim.yaml -o {in}/a_dir",
     ("a_dir", "--overwrite")),
    ("simulate-name-too-long", "simulate {in}/sim.yaml -o {out}/" + LONG, (LONG[:50],)),
    ("demo-output-not-empty", "demo -o {in}/a_dir", ("a_dir", "--overwrite")),
    ("demo-output-is-file", "demo -o {in}/a_file", ("a_file",)),
    ("demo-bad-set", "demo -o {out}/d --set sample.pixel_size=-3", ("pixel_size",)),
    ("demo-too-big", "demo -o {out}/d --max-memory-gb 0.0001", ("GiB",)),
    # reconstruct
    ("reconstruct-missing-stack",
     "reconstruct {in}/missing.mrc --angles {in}/ts.tlt -o {out}/t.mrc --thickness-px 8",
     ("missing.mrc",)),
    ("reconstruct-missing-angles",
     "reconstruct {in}/ts.mrc --angles {in}/missing.tlt -o {out}/t.mrc --thickness-px 8",
     ("missing.tlt",)),
    ("reconstruct-angle-count",
     "reconstruct {in}/ts.mrc --angles {in}/short.tlt -o {out}/t.mrc --thickness-px 8",
     ("short.tlt", "ts.mrc")),
    ("reconstruct-angle-90",
     "reconstruct {in}/ts.mrc --angles {in}/ninety.tlt -o {out}/t.mrc --thickness-px 8",
     ("ninety.tlt", "90")),
    ("reconstruct-garbage-angles",
     "reconstruct {in}/ts.mrc --angles {in}/garbage.tlt -o {out}/t.mrc --thickness-px 8",
     ("garbage.tlt",)),
    ("reconstruct-not-mrc",
     "reconstruct {in}/notmrc.mrc --angles {in}/ts.tlt -o {out}/t.mrc --thickness-px 8",
     ("notmrc.mrc",)),
    ("reconstruct-no-voxel-size",
     "reconstruct {in}/nopix.mrc --angles {in}/ts.tlt -o {out}/t.mrc --thickness-px 8",
     ("nopix.mrc", "voxel size")),
    ("reconstruct-2d-image",
     "reconstruct {in}/image.mrc --angles {in}/ts.tlt -o {out}/t.mrc --thickness-px 8",
     ("image.mrc",)),
    ("reconstruct-nan-stack",
     "reconstruct {in}/nan_ts.mrc --angles {in}/ts.tlt -o {out}/t.mrc --thickness-px 8",
     ("nan_ts.mrc", "NaN")),
    ("reconstruct-no-thickness", "reconstruct {in}/ts.mrc --angles {in}/ts.tlt -o {out}/t.mrc",
     ("--thickness-px",)),
    ("reconstruct-thickness-zero",
     "reconstruct {in}/ts.mrc --angles {in}/ts.tlt -o {out}/t.mrc --thickness-px 0",
     ("thickness_px", "0")),
    ("reconstruct-thickness-million",
     "reconstruct {in}/ts.mrc --angles {in}/ts.tlt -o {out}/t.mrc --thickness-px 1000000",
     ("thickness_px", "1000000")),
    ("reconstruct-too-big-for-limit",
     "reconstruct {in}/ts.mrc --angles {in}/ts.tlt -o {out}/t.mrc --thickness-px 8000 "
     "--max-memory-gb 0.001", ("GiB", "8000")),
    ("reconstruct-binning",
     "reconstruct {in}/ts.mrc --angles {in}/ts.tlt -o {out}/t.mrc --thickness-px 8 --binning 64",
     ("binning", "64")),
    ("reconstruct-cutoff",
     "reconstruct {in}/ts.mrc --angles {in}/ts.tlt -o {out}/t.mrc --thickness-px 8 "
     "--lowpass-cutoff 0.9", ("lowpass_cutoff", "0.9")),
    ("reconstruct-falloff",
     "reconstruct {in}/ts.mrc --angles {in}/ts.tlt -o {out}/t.mrc --thickness-px 8 "
     "--lowpass-falloff -1", ("lowpass_falloff",)),
    ("reconstruct-phase-flip-no-defocus",
     "reconstruct {in}/ts.mrc --angles {in}/ts.tlt -o {out}/t.mrc --thickness-px 8 --phase-flip",
     ("--defocus-um",)),
    ("reconstruct-amplitude-contrast",
     "reconstruct {in}/ts.mrc --angles {in}/ts.tlt -o {out}/t.mrc --thickness-px 8 "
     "--phase-flip --defocus-um 3 --amplitude-contrast 1.5", ("amplitude_contrast", "1.5")),
    ("reconstruct-missing-config",
     "reconstruct {in}/ts.mrc --angles {in}/ts.tlt -o {out}/t.mrc --thickness-px 8 "
     "--config {in}/missing.yaml", ("missing.yaml",)),
    ("reconstruct-bad-config",
     "reconstruct {in}/ts.mrc --angles {in}/ts.tlt -o {out}/t.mrc --thickness-px 8 "
     "--config {in}/bad_rec.yaml", ("bad_rec.yaml", "lowpass_cutoff")),
    ("reconstruct-set-other-section",
     "reconstruct {in}/ts.mrc --angles {in}/ts.tlt -o {out}/t.mrc --thickness-px 8 "
     "--set sample.pixel_size=3", ("sample.pixel_size",)),
    ("reconstruct-set-unknown-key",
     "reconstruct {in}/ts.mrc --angles {in}/ts.tlt -o {out}/t.mrc --thickness-px 8 "
     "--set reconstruction.nosuch=3", ("nosuch",)),
    ("reconstruct-output-is-dir",
     "reconstruct {in}/ts.mrc --angles {in}/ts.tlt -o {in}/a_dir --thickness-px 8", ("a_dir",)),
    ("reconstruct-output-name-too-long",
     "reconstruct {in}/ts.mrc --angles {in}/ts.tlt -o {out}/" + LONG + ".mrc --thickness-px 8",
     (LONG[:50],)),
    # potential
    ("potential-missing-file", "potential {in}/missing.pdb -o {out}/p.mrc --pixel-size 2",
     ("missing.pdb",)),
    ("potential-unknown-prefix", "potential foo:1234 -o {out}/p.mrc --pixel-size 2", ("foo",)),
    ("potential-no-pixel-size", "potential builtin:apoferritin -o {out}/p.mrc",
     ("--pixel-size",)),
    ("potential-pixel-zero", "potential builtin:apoferritin -o {out}/p.mrc --pixel-size 0",
     ("pixel_size", "0")),
    ("potential-pixel-huge", "potential builtin:apoferritin -o {out}/p.mrc --pixel-size 1000",
     ("pixel_size", "1000")),
    ("potential-solvent", "potential builtin:apoferritin -o {out}/p.mrc --pixel-size 4 "
     "--solvent water", ("solvent", "water")),
    ("potential-b-factor", "potential builtin:apoferritin -o {out}/p.mrc --pixel-size 4 "
     "--b-factor -5", ("b_factor", "-5")),
    ("potential-mass-and-scale", "potential builtin:apoferritin -o {out}/p.mrc --pixel-size 4 "
     "--map-mass-kda 10 --map-scale-v 1", ("--map-mass-kda", "--map-scale-v")),
    ("potential-set-unknown", "potential builtin:apoferritin -o {out}/p.mrc --pixel-size 4 "
     "--set structure.nosuch=1", ("nosuch",)),
    ("potential-set-other-section", "potential builtin:apoferritin -o {out}/p.mrc "
     "--pixel-size 4 --set microscope.optics.cs_mm=1", ("microscope",)),
    ("potential-missing-config", "potential builtin:apoferritin -o {out}/p.mrc --pixel-size 4 "
     "--config {in}/missing.yaml", ("missing.yaml",)),
    ("potential-output-is-dir", "potential builtin:apoferritin -o {in}/a_dir --pixel-size 8",
     ("a_dir",)),
    # segment
    ("segment-missing-model", "segment {in}/nomodel {in}/tomo.mrc -o {out}/l.mrc", ("nomodel",)),
    ("segment-fake-model", "segment {in}/fake_model.pt {in}/tomo.mrc -o {out}/l.mrc",
     ("fake_model.pt",)),
    ("segment-missing-tomogram", "segment {in}/model {in}/missing.mrc -o {out}/l.mrc",
     ("missing.mrc",)),
    ("segment-nan-tomogram", "segment {in}/model {in}/nan_tomo.mrc -o {out}/l.mrc",
     ("nan_tomo.mrc", "NaN")),
    ("segment-inf-tomogram", "segment {in}/model {in}/inf_tomo.mrc -o {out}/l.mrc",
     ("inf_tomo.mrc",)),
    ("segment-coarse-header", "segment {in}/model {in}/coarse_tomo.mrc -o {out}/l.mrc",
     ("coarse_tomo.mrc", "1000")),
    ("segment-fine-header", "segment {in}/model {in}/fine_tomo.mrc -o {out}/l.mrc",
     ("fine_tomo.mrc", "0.5")),
    ("segment-2d", "segment {in}/model {in}/image.mrc -o {out}/l.mrc", ("image.mrc",)),
    ("segment-no-voxel-size", "segment {in}/model {in}/nopix.mrc -o {out}/l.mrc",
     ("nopix.mrc",)),
    ("segment-dtype", "segment {in}/model {in}/tomo.mrc -o {out}/l.mrc --probabilities {out}/p "
     "--probability-dtype int8", ("--probability-dtype", "int8")),
    ("segment-batch-zero", "segment {in}/model {in}/tomo.mrc -o {out}/l.mrc --batch-size 0",
     ("--batch-size",)),
    ("segment-threads-zero", "segment {in}/model {in}/tomo.mrc -o {out}/l.mrc --threads 0",
     ("--threads",)),
    ("segment-output-is-input", "segment {in}/model {in}/tomo.mrc -o {in}/tomo.mrc",
     ("tomo.mrc", "overwrite the input")),
    ("segment-too-big-for-limit",
     "segment {in}/model {in}/tomo.mrc -o {out}/l.mrc --max-memory-gb 0.000001", ("GiB",)),
    ("segment-output-is-dir", "segment {in}/model {in}/tomo.mrc -o {in}/a_dir --quiet",
     ("a_dir",)),
    # train
    ("train-nothing", "train -o {out}/m", ("DATA", "--on-the-fly")),
    ("train-both", "train {in}/run -o {out}/m --on-the-fly {in}/sim.yaml", ("--on-the-fly",)),
    ("train-missing-folder", "train {in}/missing -o {out}/m", ("missing",)),
    ("train-half-folder", "train {in}/half_run -o {out}/m", ("half_run", "has no")),
    ("train-into-its-data", "train {in}/run -o {in}/run", ("run", "overwrite the input")),
    ("train-into-simulation", "train {in}/run -o {in}/nan_run", ("nan_run", "simulation")),
    ("train-over-a-model", "train {in}/run -o {in}/model", ("model", "--resume", "--overwrite")),
    ("train-nan-tomogram", "train {in}/nan_run -o {out}/m", ("nan_run", "NaN")),
    ("train-float-labels", "train {in}/float_run -o {out}/m", ("float_run", "integer")),
    ("train-missing-config", "train {in}/run -o {out}/m --config {in}/missing.yaml",
     ("missing.yaml",)),
    ("train-bad-config", "train {in}/run -o {out}/m --config {in}/bad_train.yaml",
     ("slices",)),
    ("train-bad-set", "train {in}/run -o {out}/m --set network.depth=99", ("depth", "99")),
    ("train-threads-zero", "train {in}/run -o {out}/m --threads 0", ("--threads",)),
    ("train-on-the-fly-empty", "train --on-the-fly {in}/empty.yaml -o {out}/m",
     ("empty.yaml",)),
    # finetune
    ("finetune-into-model", "finetune {in}/model {in}/tomo.mrc {in}/labels.mrc -o {in}/model",
     ("model", "overwrite the input")),
    ("finetune-into-model-file-folder",
     "finetune {in}/model/model.pt {in}/tomo.mrc {in}/labels.mrc -o {in}/model",
     ("model", "overwrite the input")),
    ("finetune-over-a-model", "finetune {in}/model.pt {in}/tomo.mrc {in}/labels.mrc -o {in}/model",
     ("model", "--overwrite")),
    ("finetune-float-labels",
     "finetune {in}/model {in}/tomo.mrc {in}/labels_float.mrc -o {out}/ft",
     ("labels_float.mrc", "integer")),
    ("finetune-shape", "finetune {in}/model {in}/tomo.mrc {in}/labels_small.mrc -o {out}/ft",
     ("labels_small.mrc", "shape")),
    ("finetune-voxel-size",
     "finetune {in}/model {in}/tomo.mrc {in}/labels_other_voxel.mrc -o {out}/ft",
     ("labels_other_voxel.mrc", "7", "10")),
    ("finetune-ids-out-of-range",
     "finetune {in}/model {in}/tomo.mrc {in}/labels_int16.mrc -o {out}/ft",
     ("labels_int16.mrc", "400")),
    ("finetune-missing-labels", "finetune {in}/model {in}/tomo.mrc {in}/missing.mrc -o {out}/ft",
     ("missing.mrc",)),
    ("finetune-nan-tomogram",
     "finetune {in}/model {in}/nan_tomo.mrc {in}/labels.mrc -o {out}/ft", ("nan_tomo.mrc",)),
    ("finetune-missing-classes",
     "finetune {in}/model {in}/tomo.mrc {in}/labels.mrc -o {out}/ft --classes {in}/none.csv",
     ("none.csv",)),
    # evaluate
    ("evaluate-missing", "evaluate {in}/missing.mrc {in}/labels.mrc", ("missing.mrc",)),
    ("evaluate-float-truth", "evaluate {in}/labels.mrc {in}/tomo.mrc", ("tomo.mrc", "integer")),
    ("evaluate-float-prediction", "evaluate {in}/labels_float.mrc {in}/labels.mrc",
     ("labels_float.mrc", "integer")),
    ("evaluate-shape", "evaluate {in}/labels_small.mrc {in}/labels.mrc", ("shape",)),
    ("evaluate-voxel-size", "evaluate {in}/labels_other_voxel.mrc {in}/labels.mrc",
     ("labels_other_voxel.mrc", "7")),
    ("evaluate-out-of-range", "evaluate {in}/labels_int16.mrc {in}/labels.mrc",
     ("labels_int16.mrc",)),
    ("evaluate-output-is-input", "evaluate {in}/labels.mrc {in}/labels.mrc -o {in}/labels.mrc",
     ("labels.mrc", "overwrite the input")),
    ("evaluate-unknown-filament", "evaluate {in}/labels.mrc {in}/labels.mrc --filament nosuch",
     ("nosuch",)),
    ("evaluate-output-is-dir", "evaluate {in}/labels.mrc {in}/labels.mrc -o {in}/a_dir",
     ("a_dir",)),
    # pick
    ("pick-float-labels", "pick {in}/tomo.mrc -o {out}/p.star", ("tomo.mrc", "integer")),
    ("pick-min-size-zero", "pick {in}/labels.mrc -o {out}/p.star --min-size-px 0",
     ("--min-size-px",)),
    ("pick-output-is-input", "pick {in}/labels.mrc -o {in}/labels.mrc",
     ("labels.mrc", "overwrite the input")),
    ("pick-missing", "pick {in}/missing.mrc -o {out}/p.star", ("missing.mrc",)),
    ("pick-unknown-class", "pick {in}/labels.mrc -o {out}/p.star --class nosuch", ("nosuch",)),
    ("pick-output-is-dir", "pick {in}/labels.mrc -o {in}/a_dir", ("a_dir",)),
    # dataset
    ("dataset-count-zero", "dataset {in}/sim.yaml -n 0 -o {out}/d", ("-n",)),
    ("dataset-workers-zero", "dataset {in}/sim.yaml -n 1 -o {out}/d --workers 0", ("--workers",)),
    ("dataset-missing-config", "dataset {in}/missing.yaml -n 1 -o {out}/d", ("missing.yaml",)),
    ("dataset-empty-config", "dataset {in}/empty.yaml -n 1 -o {out}/d", ("empty.yaml",)),
    ("dataset-huge-sample",
     "dataset {in}/sim.yaml -n 2 -o {out}/d --set sample.shape=[4096,4096,4096]",
     ("GiB", "4096")),
    ("dataset-workers-too-big-for-limit",
     "dataset {in}/sim.yaml -n 4 -o {out}/d --workers 4 --max-memory-gb 0.001",
     ("GiB", "4 phantom(s)", "--max-memory-gb")),
    ("dataset-bad-set", "dataset {in}/sim.yaml -n 1 -o {out}/d --set sample.pixel_size=-1",
     ("pixel_size",)),
]


@pytest.mark.parametrize(("command", "named"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_one_line_exit_2_nothing_written(
    run_cli, inputs: Path, tmp_path: Path, command: str, named: tuple[str, ...]
) -> None:
    args = [a.format(**{"in": inputs, "out": tmp_path}) for a in command.split()]
    before = tree(inputs, tmp_path)
    assert_clean_error(run_cli(*args), *named)
    assert tree(inputs, tmp_path) == before


def test_the_sweep_is_large() -> None:
    commands = {c[1].split()[0] for c in CASES if c[1]}
    assert len(CASES) >= 100
    assert commands >= {"demo", "simulate", "reconstruct", "potential", "segment", "train",
                        "finetune", "evaluate", "pick", "dataset"}
