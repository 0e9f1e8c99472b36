#!/usr/bin/env python3
"""The seed experiment of issue 5, end to end: does a U-Net trained on tomosim phantoms segment
f-actin, cofilactin and microtubules in tomograms imaged with *other* microscope settings?

Steps (each one a ``tomosim`` command, logged under ``WORKDIR/logs/``):

1. ``tomosim dataset training.yaml``: the training phantoms (randomised microscope, ice, crowding);
2. ``tomosim dataset heldout.yaml``: held-out phantoms imaged with settings outside or at the edge
   of the training ranges (never seen in training, never used to choose settings);
3. ``tomosim dataset training.yaml --seed 3``: a few fresh phantoms from the *training*
   distribution, an in-distribution control that separates the generalisation gap from what the
   model cannot do at all;
4. ``tomosim train``: the 5-slice U-Net of ``train.yaml`` on the training phantoms;
5. ``tomosim segment`` and ``tomosim evaluate`` for every held-out and control tomogram against its
   ``labels.mrc``;
6. the per-class table (mean over phantoms of Dice, IoU, precision, recall, clDice) is written
   into the documentation page between the markers ``<!-- BEGIN GENERATED SECTION -->`` and
   ``<!-- END GENERATED SECTION -->`` (``--section``, default ``baseline``; the rest of the page is
   left alone, so each variant of the experiment can have its own block), with the command,
   the machine, the wall times and the settings. ``WORKDIR/results.json`` holds the same numbers.

Usage::

    python3 examples/seed_experiment/run.py --threads 2          # full run, ~30 min on 2 cores
    python3 examples/seed_experiment/run.py --quick --workdir /tmp/seed_quick   # smoke test, ~30 s

Phantoms, model, predictions, scores and logs go to ``--workdir`` (default
``seed_experiment_run/`` in the repository, which gets its own ``.gitignore``); about 110 MB per
phantom, 9 GB for the default sets.

``--quick`` shrinks everything (tiny volumes, two training phantoms, a few iterations) and writes
its page to ``WORKDIR/seed_experiment.md`` unless ``--doc`` is given, so it never overwrites the
real results. Re-running the full experiment reuses complete phantom folders (``tomosim dataset``
resumes; ``--overwrite`` is passed, so a folder made from an older version of a config is
replaced rather than mixed in) and retrains unless ``--reuse-model`` is given.

``--real`` runs the same experiment on the real-structure filaments of issue 10
(``training_real.yaml``, ``heldout_real.yaml``: 6BNO actin, the CofilinSevering cofilactin 18-mer
fitted with ``helix: auto``, 5IJ0 microtubules, envelope labels); it reads the structures from
``TOMOSIM_STRUCTURES`` or, when that is unset, from ``../shared/structures`` beside the repository,
works in ``seed_experiment_real/`` and writes the generated block ``real`` of the page::

    python3 examples/seed_experiment/run.py --real --threads 2 --train-phantoms 24 \
        --heldout-phantoms 8 --control-phantoms 2 --set epochs=4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from example_steps import run_step  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CLASSES = ("actin", "cofilactin", "microtubule")
MARKERS = "<!-- BEGIN GENERATED {0} -->", "<!-- END GENERATED {0} -->"

# --quick: the same configs shrunk to a few seconds per step. Filament lengths must fit the box.
QUICK_SIMULATION = [
    "sample.shape=[32,96,96]",
    "sample.ice_thickness=300",
    "filaments.0.count=2", "filaments.0.length=[300,500]",
    "filaments.1.count=1", "filaments.1.length=[300,500]",
    "filaments.2.count=1", "filaments.2.length=[300,500]",
    "proteins.species.0.count=3", "proteins.species.1.count=3", "proteins.species.2.count=5",
    "microscope.tilt.step=6",
]
QUICK_HELDOUT = [*QUICK_SIMULATION[:-1], "microscope.tilt.choice.0.step=6",
                 "microscope.tilt.choice.1.step=6"]
QUICK_TRAIN = [
    "epochs=1", "iterations_per_epoch=2", "batch_size=2", "patch_size=32",
    "network.base_channels=4", "network.depth=2", "network.residual_units=1",
    "validation_patches=2", "validation_fraction=0.25",
]


def structures_folder() -> Path:
    """The ``../shared/structures`` folder beside the repository (used when unset elsewhere)."""
    return REPO.parent / "shared" / "structures"


def phantom_folders(dataset: Path) -> list[Path]:
    return sorted(p for p in dataset.glob("phantom_*") if (p / "config.resolved.yaml").is_file())


def dataset_hash(dataset: Path) -> str | None:
    try:
        return json.loads((dataset / "index.json").read_text()).get("config_hash")
    except (OSError, ValueError):
        return None


def simulate_set(
    name: str, config: Path, count: int, dataset: Path, *, seed: int, workers: int,
    overrides: list[str], logs: Path,
) -> tuple[float, str]:
    """``tomosim dataset`` (resumes complete phantoms); returns (seconds, note on the time).

    The time of a run that simulated the whole set is kept in ``DATASET/simulation_time.json``;
    when a later run finds the set complete, that recorded time is reported instead.
    """
    before = (dataset_hash(dataset), len(phantom_folders(dataset)))
    seconds = run_step(name, [
        "dataset", str(config), "-n", str(count), "-o", str(dataset), "--seed", str(seed),
        "--workers", str(workers), "--overwrite", *overrides], logs)
    record = dataset / "simulation_time.json"
    same = before[0] is not None and before[0] == dataset_hash(dataset)
    if same and before[1] >= count:  # nothing was simulated this time
        if not record.is_file():
            return seconds, "already simulated; the time of that run was not recorded"
        recorded = json.loads(record.read_text())
        return recorded["seconds"], f"recorded when simulated, {recorded['finished'][:16]} UTC"
    record.write_text(json.dumps({
        "seconds": seconds, "finished": datetime.now(timezone.utc).isoformat(),
        "resumed_from": before[1] if same else 0}, indent=2) + "\n")
    return seconds, f"resumed with {before[1]} of {count} done" if same and before[1] else ""


def read_drawn_settings(dataset: Path) -> dict[str, dict[str, str]]:
    """Per phantom folder: the microscope and ice values it drew (from index.csv)."""
    import csv

    wanted = {
        "defocus µm": "microscope.optics.defocus_um",
        "dose e/Å²": "microscope.dose.total_dose_e_per_a2",
        "ice Å": "sample.ice_thickness",
        "tilt min": "microscope.tilt.min_angle",
        "tilt max": "microscope.tilt.max_angle",
    }
    out: dict[str, dict[str, str]] = {}
    with open(dataset / "index.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            values = {}
            for label, key in wanted.items():
                raw = row.get(key, "")
                values[label] = f"{float(raw):.3g}" if raw not in ("", None) else "fixed"
            out[row["folder"]] = values
    return out


def summarise(reports: list[dict]) -> dict[str, dict[str, float | int | None]]:
    """Per class: scores over the phantoms that contain the class, pooled Dice.

    :func:`tomosim.train.metrics.summarise_evaluations`: a phantom without a class (a filament
    that found no free place) is left out of that class's means, and the voxels it predicts for
    the class are counted under ``absent_predicted_voxels``.
    """
    from tomosim.train.metrics import summarise_evaluations

    return summarise_evaluations(reports, CLASSES)


def confusion(dataset: Path, predictions: Path) -> list[list[int]]:
    """Voxel counts ``[true class][predicted class]`` (ids 0..3) summed over the phantoms."""
    import numpy as np

    from tomosim.io import read_mrc

    size = len(CLASSES) + 1
    counts = np.zeros((size, size), dtype=np.int64)
    for folder in phantom_folders(dataset):
        truth = read_mrc(folder / "labels.mrc", require_voxel_size=False).data.astype(np.int64)
        predicted = read_mrc(predictions / f"{folder.name}.mrc", require_voxel_size=False).data
        keep = (truth < size) & (predicted < size)
        pairs = truth[keep] * size + predicted[keep].astype(np.int64)
        counts += np.bincount(pairs, minlength=size * size).reshape(size, size)
    return counts.tolist()


def one_voxel_references(dataset: Path) -> dict[str, dict[str, float | None]]:
    """What a one-voxel mistake costs: mean Dice of each class's true mask against itself moved
    by one voxel along x, and grown by one voxel (6-connected dilation), over the phantoms."""
    import numpy as np
    from scipy import ndimage

    from tomosim.io import read_mrc

    scores: dict[str, dict[str, list[float]]] = {n: {"shift": [], "dilate": []} for n in CLASSES}
    for folder in phantom_folders(dataset):
        truth = read_mrc(folder / "labels.mrc", require_voxel_size=False).data
        for label_id, name in enumerate(CLASSES, start=1):
            mask = truth == label_id
            if not mask.any():
                continue
            for key, moved in (("shift", np.roll(mask, 1, axis=2)),
                               ("dilate", ndimage.binary_dilation(mask))):
                scores[name][key].append(2.0 * (mask & moved).sum() / (mask.sum() + moved.sum()))
    return {name: {key: float(np.mean(values)) if values else None for key, values in s.items()}
            for name, s in scores.items()}


def confusion_table(counts: list[list[int]]) -> list[str]:
    names = ["background", *CLASSES]
    lines = ["| true ↓ predicted → | " + " | ".join(names) + " | true voxels |",
             "|---" * (len(names) + 2) + "|"]
    for name, row in zip(names, counts, strict=True):
        total = sum(row)
        cells = [f"{v / total:.3f}" if total else "–" for v in row]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {total} |")
    return lines


def fmt(value: float | None, sd: float | None = None) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")


def class_table(summary: dict[str, dict]) -> list[str]:
    lines = [
        "| class | Dice (mean ± s.d.) | IoU | precision | recall | clDice | pooled Dice "
        "| phantoms with the class |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in CLASSES:
        s = summary[name]
        lines.append(
            f"| {name} | {fmt(s['dice'], s['dice_sd'])} | {fmt(s['iou'])} | {fmt(s['precision'])} "
            f"| {fmt(s['recall'])} | {fmt(s['cl_dice'])} | {fmt(s['pooled_dice'])} "
            f"| {s['dice_n']} |"
        )
    absent = [f"{name} is absent from {s['absent_in']} phantom(s) (its filaments found no free "
              f"place) and left out of its means; {s['absent_predicted_voxels']} voxels were "
              f"labelled {name} there" for name, s in summary.items() if s["absent_in"]]
    if absent:
        lines += ["", "; ".join(absent) + "."]
    return lines


def per_phantom_table(reports: list[dict], settings: dict[str, dict[str, str]]) -> list[str]:
    columns = ["defocus µm", "dose e/Å²", "ice Å", "tilt min", "tilt max"]
    lines = [
        "| phantom | " + " | ".join(columns) + " | "
        + " | ".join(f"Dice {c}" for c in CLASSES) + " |",
        "|---" * (1 + len(columns) + len(CLASSES)) + "|",
    ]
    for report in reports:
        folder = report["phantom"]
        dice = {c["name"]: (c["dice"] if c["true_voxels"] else "absent") for c in report["classes"]}
        drawn = settings.get(folder, {})
        lines.append(
            f"| {folder} | " + " | ".join(drawn.get(c, "?") for c in columns) + " | "
            + " | ".join(d if isinstance(d := dice.get(c), str) else fmt(d) for c in CLASSES)
            + " |"
        )
    return lines


def machine_description() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f", {pages / 2**30:.1f} GiB RAM"
    except (ValueError, OSError, AttributeError):
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{model}, {os.cpu_count()} cores ({usable} usable){memory}, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for name in ("tomosim", "torch", "monai", "numpy", "numba"):
        try:
            parts.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            pass
    return ", ".join(parts)


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
        return head + (" (src/ has uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_page(doc: Path, body: str, *, title: str, section: str) -> None:
    """Replace the generated block ``section`` of ``doc`` (or add it, or create the page)."""
    begin, end = (marker.format(section) for marker in MARKERS)
    block = f"{begin}\n{body.rstrip()}\n{end}"
    if doc.is_file():
        text = doc.read_text()
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            text = head + block + rest.split(end, 1)[1]
        else:
            text = text.rstrip() + "\n\n" + block + "\n"
    else:
        text = f"# {title}\n\n{block}\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    tmp = doc.with_name(f".{doc.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, doc)


def evaluate_set(
    name: str, dataset: Path, model: Path, work: Path, logs: Path, threads: list[str]
) -> tuple[list[dict], float]:
    """Segment and evaluate every phantom of ``dataset``; returns the reports and wall seconds."""
    predictions = work / "predictions" / name
    scores = work / "scores" / name
    predictions.mkdir(parents=True, exist_ok=True)
    scores.mkdir(parents=True, exist_ok=True)
    reports, seconds = [], 0.0
    for folder in phantom_folders(dataset):
        predicted = predictions / f"{folder.name}.mrc"
        report = scores / f"{folder.name}.json"
        seconds += run_step(f"segment_{name}_{folder.name}", [
            "segment", str(model), str(folder / "tomogram.mrc"), "-o", str(predicted),
            *threads, "--quiet"], logs)
        seconds += run_step(f"evaluate_{name}_{folder.name}", [
            "evaluate", str(predicted), str(folder / "labels.mrc"),
            "--classes", str(folder / "classes.csv"), "-o", str(report)], logs)
        loaded = json.loads(report.read_text())
        loaded["phantom"] = folder.name
        reports.append(loaded)
    return reports, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few iterations")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where phantoms, model and scores go (default: seed_experiment_run/)")
    parser.add_argument("--doc", type=Path, default=None,
                        help="page to write (default: docs/seed_experiment.md; "
                             "--quick: WORKDIR/seed_experiment.md)")
    parser.add_argument("--train-phantoms", type=int, default=None, help="default 64 (quick: 2)")
    parser.add_argument("--heldout-phantoms", type=int, default=None, help="default 16 (quick: 1)")
    parser.add_argument("--control-phantoms", type=int, default=None,
                        help="in-distribution control phantoms, default 4 (quick: 1)")
    parser.add_argument("--workers", type=int, default=1, help="tomosim dataset --workers")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (train, segment)")
    parser.add_argument("--reuse-model", action="store_true",
                        help="keep WORKDIR/model if it finished (its recorded training time "
                             "is reported)")
    parser.add_argument("--real", action="store_true",
                        help="real-structure filaments (training_real.yaml, heldout_real.yaml; "
                             "needs ../shared/structures or TOMOSIM_STRUCTURES)")
    parser.add_argument("--section", default=None,
                        help="name of the generated block of the page to write (one per variant; "
                             "default baseline, with --real: real)")
    parser.add_argument("--set", dest="train_overrides", action="append", default=[],
                        help="extra training override section.key=value (recorded on the page)")
    options = parser.parse_args()

    quick = options.quick
    suffix = "_real" if options.real else ""
    section = options.section or ("real" if options.real else "baseline")
    if options.real and not os.environ.get("TOMOSIM_STRUCTURES"):
        folder = structures_folder()
        if not folder.is_dir():
            sys.exit(f"--real needs the structures: {folder} is missing and "
                     "TOMOSIM_STRUCTURES is not set")
        os.environ["TOMOSIM_STRUCTURES"] = str(folder)
    training_yaml, heldout_yaml = f"training{suffix}.yaml", f"heldout{suffix}.yaml"
    work = (options.workdir
            or REPO / (("seed_experiment_quick" if quick else "seed_experiment_run") + suffix))
    work = work.resolve()
    doc = options.doc or (
        work / "seed_experiment.md" if quick else REPO / "docs" / "seed_experiment.md")
    n_train = options.train_phantoms or (2 if quick else 64)
    n_heldout = options.heldout_phantoms or (1 if quick else 16)
    n_control = options.control_phantoms
    if n_control is None:
        n_control = 1 if quick else 4
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (work / ".gitignore").write_text("# written by examples/seed_experiment/run.py\n*\n")
    threads = ["--threads", str(options.threads)] if options.threads else []
    simulation_set = [a for o in (QUICK_SIMULATION if quick else []) for a in ("--set", o)]
    heldout_set = [a for o in (QUICK_HELDOUT if quick else []) for a in ("--set", o)]
    train_set = [a for o in (QUICK_TRAIN if quick else []) + options.train_overrides
                 for a in ("--set", o)]
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    started = datetime.now(timezone.utc)
    times: dict[str, float] = {}
    notes: dict[str, str] = {}

    train_data, heldout_data, control_data = work / "train", work / "heldout", work / "control"
    sets = [("simulate training set", "dataset_train", training_yaml, n_train, train_data, 1,
             simulation_set),
            ("simulate held-out set", "dataset_heldout", heldout_yaml, n_heldout, heldout_data,
             2, heldout_set)]
    if n_control:
        sets.append(("simulate control set", "dataset_control", training_yaml, n_control,
                     control_data, 3, simulation_set))
    for label, step, config_name, count, dataset, seed, overrides in sets:
        times[label], notes[label] = simulate_set(
            step, HERE / config_name, count, dataset, seed=seed, workers=options.workers,
            overrides=overrides, logs=logs)

    model = work / "model"
    timing_file = model / "training_time.json"
    if options.reuse_model and (model / "metrics.json").is_file() and timing_file.is_file():
        recorded = json.loads(timing_file.read_text())
        times["train"] = recorded["seconds"]
        notes["train"] = (
            f"model reused, time recorded when trained, {recorded['finished'][:16]} UTC")
    else:
        shutil.rmtree(model, ignore_errors=True)
        folders = [str(p) for p in phantom_folders(train_data)]
        times["train"] = run_step("train", [
            "train", *folders, "-o", str(model), "--config", str(HERE / "train.yaml"),
            *train_set, *threads, "--quiet"], logs)
        timing_file.write_text(json.dumps({
            "seconds": times["train"], "finished": datetime.now(timezone.utc).isoformat(),
            "machine": machine_description()}, indent=2) + "\n")

    heldout_reports, times["segment + evaluate held-out"] = evaluate_set(
        "heldout", heldout_data, model, work, logs, threads)
    control_reports = []
    if n_control:
        control_reports, times["segment + evaluate control"] = evaluate_set(
            "control", control_data, model, work, logs, threads)

    heldout_confusion = confusion(heldout_data, work / "predictions" / "heldout")
    references = one_voxel_references(heldout_data)
    heldout_summary = summarise(heldout_reports)
    control_summary = summarise(control_reports) if control_reports else None
    metrics = json.loads((model / "metrics.json").read_text())
    final = metrics.get("final") or {}
    resolved = (model / "config.resolved.yaml").read_text()
    validation_share = float(yaml.safe_load(resolved)["validation_fraction"])
    goal = all((heldout_summary[c]["dice"] or 0.0) >= 0.8 for c in CLASSES)
    results = {
        "quick": quick, "real_structures": options.real, "started": started.isoformat(),
        "command": shlex.join(sys.argv),
        "machine": machine_description(), "load_average_at_start": load_start,
        "versions": versions(), "commit": git_commit(), "times_s": times,
        "phantoms": {"train": n_train, "heldout": n_heldout, "control": n_control},
        "heldout": heldout_summary, "control": control_summary,
        "heldout_confusion": heldout_confusion, "one_voxel_references": references,
        "heldout_per_phantom": heldout_reports, "control_per_phantom": control_reports,
        "final_training_record": final, "goal_dice_0_8_met": goal,
    }
    (work / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    held_settings = read_drawn_settings(heldout_data)
    lines = [
        f"_Written by `examples/seed_experiment/run.py` on {started:%Y-%m-%d %H:%M} UTC"
        + (" in **quick mode** (smoke test: tiny volumes, a few iterations; the numbers mean "
           "nothing)" if quick else "") + "._",
        "",
        "#### Held-out set: per-class scores",
        "",
        f"{n_heldout} held-out phantoms (microscope settings outside or at the edge of the "
        "training ranges). Each score is computed per phantom over the whole tomogram "
        "(`tomosim evaluate`, all voxels), then averaged over the phantoms that contain the class; "
        "*pooled Dice* counts the voxels of all phantoms together. Goal of issue 5: "
        "mean Dice ≥ 0.8 for each class — "
        + ("**met**." if goal else "**not met**."),
        "",
        *class_table(heldout_summary),
        "",
        "For scale, the Dice of the *true* labels against themselves moved by one voxel along x: "
        + ", ".join(f"{n} {fmt(references[n]['shift'])}" for n in CLASSES)
        + "; grown by one voxel: "
        + ", ".join(f"{n} {fmt(references[n]['dilate'])}" for n in CLASSES) + ".",
        "",
    ]
    if control_summary is not None:
        lines += [
            f"#### In-distribution control ({n_control} fresh phantoms from `{training_yaml}`, "
            "dataset seed 3)",
            "",
            *class_table(control_summary),
            "",
        ]
    lines += [
        "#### Held-out set: where the voxels of each class went",
        "",
        "Fraction of the true voxels of each class (rows) that the network gave each label "
        "(columns), all held-out phantoms together.",
        "",
        *confusion_table(heldout_confusion),
        "",
        "#### Held-out phantoms one by one",
        "",
        *per_phantom_table(heldout_reports, held_settings),
        "",
        "#### Run",
        "",
        "From the repository root:",
        "",
        "```bash",
        shlex.join(["python3", *sys.argv]),
        "```",
        "",
        f"- machine: {machine_description()}; load average {load_start:.2f} at the start "
        "(other jobs may have shared the cores)",
        f"- software: {versions()}; commit {git_commit()}",
        f"- phantoms: {n_train} training (`{training_yaml}`, dataset seed 1), {n_heldout} "
        f"held-out (`{heldout_yaml}`, seed 2), {n_control} control (`{training_yaml}`, seed 3)",
        "- wall times: " + "; ".join(
            (f"{k} {v / 60:.1f} min" if v >= 60 else f"{k} {v:.0f} s")
            + (f" ({notes[k]})" if notes.get(k) else "") for k, v in times.items()),
        f"- training: {metrics.get('epochs')} epochs, {metrics.get('iterations')} iterations, "
        f"final loss {fmt(final.get('loss'))}, validation Dice (class-balanced patches from the "
        f"held-back {validation_share:.0%} of the y extent of every training tomogram) "
        f"{fmt(final.get('validation_dice'))} "
        + "(" + ", ".join(f"{k} {fmt(v)}" for k, v in
                          (final.get("validation_dice_per_class") or {}).items()) + ")",
        "",
        "<details><summary>resolved training settings (model/config.resolved.yaml)</summary>",
        "",
        "```yaml",
        resolved.rstrip(),
        "```",
        "",
        "</details>",
    ]
    write_page(doc, "\n".join(lines) + "\n",
               title="Seed experiment" + (" (quick mode)" if quick else ""),
               section=section)
    print(f"results: {work / 'results.json'}; page: {doc}")
    for line in class_table(heldout_summary):
        print(line)


if __name__ == "__main__":
    main()
