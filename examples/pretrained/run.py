#!/usr/bin/env python3
"""Train the pretrained default model of ``tomosim segment default`` and write its model card.

One reproducible command (issue 12)::

    python3 examples/pretrained/run.py --threads 1

Steps, each one a ``tomosim`` command logged under ``WORKDIR/logs/``:

1. ``tomosim dataset phantoms.yaml -n N --seed 12``: training phantoms with randomised pixel
   size, ice, crowding, microscope (defocus, dose, tilt range and step, voltage, detector) and
   processing (low-pass, SIRT-like filter);
2. ``tomosim dataset phantoms.yaml -n M --seed 13``: held-out phantoms from the same
   distribution (never trained on);
3. ``tomosim train`` with ``train.yaml`` (10 Å/voxel, phantoms resampled to it);
4. ``tomosim segment`` and ``tomosim evaluate`` on every held-out tomogram;
5. the weights-only ``model.pt`` is copied to ``src/tomosim/data/models/default.pt`` and the card
   ``docs/pretrained_model.md`` is written from the scores (nothing in it is typed by hand).

``--quick`` shrinks everything to a smoke test and writes to ``WORKDIR`` only (never the shipped
model or the docs).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from example_steps import fmt, phantom_folders, run_step  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHIPPED = REPO / "src" / "tomosim" / "data" / "models" / "default.pt"
CARD = REPO / "docs" / "pretrained_model.md"
QUICK_SIMULATION = [
    "sample.shape=[32,96,96]", "sample.ice_thickness=250", "filaments.0.length=[300,500]",
    "filaments.1.length=[300,500]", "filaments.0.count=1", "filaments.1.count=2",
    "vesicles.radius=[100,150]", "microscope.tilt.step=6", "context.slab.thickness_gradient=0",
    "context.slab.roughness=0", "context.slab.curtain_amplitude=0", "context.contamination.count=0",
]
QUICK_TRAIN = [
    "epochs=1", "iterations_per_epoch=2", "batch_size=2", "patch_size=32", "network.depth=2",
    "network.base_channels=4", "validation_patches=2",
]


def drawn_pixel_sizes(dataset: Path) -> list[float]:
    """Pixel size each phantom drew (from its resolved config)."""
    import yaml

    sizes = []
    for folder in phantom_folders(dataset):
        tree = yaml.safe_load((folder / "config.resolved.yaml").read_text())
        sizes.append(float(tree["sample"]["pixel_size"]))
    return sizes


def summarise(reports: list[dict], heldout: Path) -> dict[str, dict[str, float | int | None]]:
    """Scores per class over the phantoms that contain it; stray voxels where it is absent.

    :func:`tomosim.train.metrics.summarise_evaluations`, plus ``stray_percent``: the voxels
    predicted as the class in phantoms without it, in % of those phantoms' voxels.
    """
    import mrcfile

    from tomosim.train.metrics import summarise_evaluations

    table = summarise_evaluations(reports)
    folders = phantom_folders(heldout)
    with mrcfile.open(folders[0] / "labels.mrc", header_only=True) as mrc:
        voxels = int(mrc.header.nx) * int(mrc.header.ny) * int(mrc.header.nz)
    for entry in table.values():
        absent = int(entry["absent_in"] or 0)
        stray = float(entry["absent_predicted_voxels"] or 0)
        entry["stray_percent"] = 100.0 * stray / (absent * voxels) if absent else None
    return table


def main() -> None:
    """Run the whole recipe."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=REPO / "pretrained_run")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--training-phantoms", type=int, default=32)
    parser.add_argument("--heldout-phantoms", type=int, default=6)
    parser.add_argument("--quick", action="store_true", help="smoke test; writes WORKDIR only")
    parser.add_argument("--reuse-model", action="store_true", help="skip training if model exists")
    parser.add_argument("--card-only", action="store_true",
                        help="only write the card again from WORKDIR/results.json and the model")
    parser.add_argument("--note", default="", help="a provenance note added to the card")
    args = parser.parse_args()
    work = args.workdir.resolve()
    logs = work / "logs"
    work.mkdir(parents=True, exist_ok=True)
    (work / ".gitignore").write_text("*\n")
    sim = [f"--set={s}" for s in QUICK_SIMULATION] if args.quick else []
    train_set = [f"--set={s}" for s in QUICK_TRAIN] if args.quick else []
    n_train = 2 if args.quick else args.training_phantoms
    n_held = 1 if args.quick else args.heldout_phantoms
    phantoms = HERE / "phantoms.yaml"
    model = work / "model"
    if args.card_only:  # the scores again from WORKDIR/scores, the times from results.json
        stored = json.loads((work / "results.json").read_text())
        reports = [json.loads((work / "scores" / f"{folder.name}.json").read_text())
                   for folder in phantom_folders(work / "heldout")]
        finish(summarise(reports, work / "heldout"), stored["times_s"], model, work, args)
        return
    times: dict[str, float] = {}
    times["training phantoms"] = run_step("dataset_train", [
        "dataset", str(phantoms), "-n", str(n_train), "-o", str(work / "train"), "--seed", "12",
        "--workers", "1", "--overwrite", *sim], logs)
    times["held-out phantoms"] = run_step("dataset_heldout", [
        "dataset", str(phantoms), "-n", str(n_held), "-o", str(work / "heldout"), "--seed", "13",
        "--workers", "1", "--overwrite", *sim], logs)
    if not (args.reuse_model and (model / "model.pt").is_file()):
        times["training"] = run_step("train", [
            "train", *map(str, phantom_folders(work / "train")), "-o", str(model),
            "--config", str(HERE / "train.yaml"), "--threads", str(args.threads), "--quiet",
            "--overwrite",
            *train_set], logs)
    reports = []
    segment_time = 0.0
    for folder in phantom_folders(work / "heldout"):
        prediction = work / "predictions" / f"{folder.name}.mrc"
        prediction.parent.mkdir(parents=True, exist_ok=True)
        segment_time += run_step(f"segment_{folder.name}", [
            "segment", str(model), str(folder / "tomogram.mrc"), "-o", str(prediction),
            "--threads", str(args.threads), "--quiet"], logs)
        scores = work / "scores" / f"{folder.name}.json"
        scores.parent.mkdir(parents=True, exist_ok=True)
        run_step(f"evaluate_{folder.name}", [
            "evaluate", str(prediction), str(folder / "labels.mrc"), "--classes",
            str(folder / "classes.csv"), "-o", str(scores)], logs)
        reports.append(json.loads(scores.read_text()))
    times["segment held-out"] = segment_time
    summary = summarise(reports, work / "heldout")
    (work / "results.json").write_text(json.dumps({"summary": summary, "times_s": times}, indent=2))
    finish(summary, times, model, work, args)


def finish(summary: dict, times: dict, model: Path, work: Path, args: argparse.Namespace) -> None:
    """Write the card; unless --quick, ship the model and the card."""
    metrics = json.loads((model / "metrics.json").read_text())
    size_mb = (model / "model.pt").stat().st_size / 1e6
    card = write_card(summary, times, metrics, args, size_mb,
                      drawn_pixel_sizes(work / "train"), drawn_pixel_sizes(work / "heldout"))
    if args.quick:
        (work / "pretrained_model.md").write_text(card)
        print(f"quick run done: {work}")
        return
    SHIPPED.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model / "model.pt", SHIPPED)
    CARD.write_text(card)
    print(f"wrote {SHIPPED} ({size_mb:.1f} MB) and {CARD}")


def write_card(
    summary: dict, times: dict, metrics: dict, args: argparse.Namespace, size_mb: float,
    train_sizes: list[float], held_sizes: list[float],
) -> str:
    """The model card (Markdown), from the run's numbers."""
    import yaml

    train_config = yaml.safe_load((HERE / "train.yaml").read_text())
    net = train_config["network"]
    rows = [f"| {name} | {s['dice_n']} | {fmt(s['dice'], s['dice_sd'])} | "
            f"{fmt(s['cl_dice'], s['cl_dice_sd'])} | {fmt(s['precision'])} | {fmt(s['recall'])} | "
            + (f"{s['absent_in']}: {s['stray_percent']:.2f} % |" if s["absent_in"] else "- |")
            for name, s in summary.items()]
    final = metrics.get("final") or {}
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# The pretrained default model (`tomosim segment default`)",
        "",
        f"_Written by `examples/pretrained/run.py` on {when} ({platform.machine()}, "
        f"{args.threads} threads, shared CPU)._",
        "",
        "```bash",
        "tomosim segment default my_tomogram.mrc -o labels.mrc      # offline, shipped model",
        f"python3 examples/pretrained/run.py --threads {args.threads}"
        "                 # retrain it (this page)",
        "```",
        "",
        "## Classes",
        "",
        "0 background, " + ", ".join(
            f"{i} {n}" for i, n in zip(metrics["classes"].values(), metrics["classes"], strict=True)
            if n != "background") + ". Everything else (other proteins, gold, contamination, ice, "
        "vacuum) is background.",
        "",
        "## Training data",
        "",
        f"{len(train_sizes)} phantoms from `examples/pretrained/phantoms.yaml` (seed 12). "
        "Filaments are built from real structures shipped with tomosim: f-actin from PDB 6BNO "
        "subunits on the 6BNO helix, microtubules from PDB 5IJ0 αβ-tubulin on a left-handed "
        "13-protofilament B-lattice with a seam (`preset: actin`, `preset: microtubule`). "
        "Ribosomes are the coarse `builtin:ribosome`; membranes are vesicle and sheet bilayers "
        "(free-form deformation 0–60 Å). Filament labels are envelopes: a tube of the outer "
        "radius around the axis (47 Å for actin; the microtubule wall, 81–143 Å, without the "
        "lumen), as annotators draw them. Cellular context: crowders (proteasome, apoferritin, "
        "tubulin dimers, actin monomers; 12–30 % of the volume, labelled background), "
        "a slab in vacuum whose thickness gradient, surface roughness and curtains are drawn from "
        "zero up (flat ice to a rough lamella), gold fiducials and ice "
        "contamination (background), and the realistic acquisition profile (drift, residual "
        "alignment errors, tilt-axis error, defocus mismatch). Each phantom draws its own pixel "
        f"size ({min(train_sizes):.1f}–{max(train_sizes):.1f} Å drawn), ice thickness "
        "(500–750 Å), crowding, voltage (200/300 kV), defocus (1.5–6 µm), amplitude contrast, "
        "dose (60–160 e/Å²), tilt range (±45–66°) and step (2°/3°), tilt order, detector "
        "(K3/Falcon 4) and processing (CTF phase flip or none, low-pass 0.3–0.5 cycles/px, "
        "SIRT-like filter 0/5/15 iterations). "
        "The network sees everything resampled to "
        f"**{metrics['pixel_size']:g} Å/voxel**; `segment` resamples any tomogram to it and maps "
        "the labels back. Intensity, contrast, noise and blur augmentations add to that.",
        "",
        f"Network: 2.5D U-Net, {net['slices']} slices in, depth {net['depth']}, "
        f"{net['base_channels']} base channels; {train_config['epochs']} × "
        f"{train_config['iterations_per_epoch']} iterations of {train_config['batch_size']} "
        f"patches of {train_config['patch_size']} px. Model file {size_mb:.1f} MB "
        "(`src/tomosim/data/models/default.pt`). Final training loss "
        f"{final.get('loss', float('nan')):.3f}, validation Dice "
        f"{final.get('validation_dice') or float('nan'):.3f}. The validation Dice is measured on "
        "class-balanced patches from the held-back last "
        f"{100 * float(train_config.get('validation_fraction', 0.1)):.0f} % of each training "
        "phantom's rows; at these sizes that strip is narrower than a patch, so the patches are "
        "mostly padding and the figure is far below whole-tomogram scores: read the held-out "
        "table.",
        "",
        "## Scores on held-out phantoms",
        "",
        f"{len(held_sizes)} phantoms from the same distribution with another seed (13), "
        f"pixel sizes {', '.join(f'{s:.1f}' for s in held_sizes)} Å, segmented whole at their own "
        "pixel size (`tomosim segment`) and scored against their labels (`tomosim evaluate`); "
        "mean ± s.d. over the phantoms that contain the class (a phantom without it scores no "
        "Dice; the voxels predicted as the class there are given as a percentage of their "
        "volume).",
        "",
        "| class | phantoms with it | Dice | clDice | precision | recall | "
        "phantoms without it: stray voxels |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Wall times: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in times.items()) + ".",
        "",
        *(["## Provenance", "", args.note, ""] if args.note else []),
        "## Limits",
        "",
        "- **Phantom-only**: trained on phantoms only. Cofilin-decorated actin is not in the "
        "training data (no cofilactin template ships offline); ribosomes and crowders are coarse "
        "globular models, so other large complexes will often be labelled ribosome. See "
        "docs/pseudo_real.md for scores on domain-shifted phantoms.",
        "- Expects IMOD-like contrast (protein dark); run `tomosim match` first: it reports the "
        "polarity, and `--invert` in the reconstruction flips it. `--match-spectrum` filters the "
        "tomogram to the training data's amplitude spectrum.",
        "- Pixel sizes far outside the trained 8–14 Å are resampled to 10 Å; very fine detail "
        "(below ~20 Å) is not used.",
        "- Scores are on phantoms like the training ones; real data will score lower. Fine-tune "
        "(`tomosim finetune default ...`) on a few corrected slabs of your own data.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
