#!/usr/bin/env python3
"""The CZII-like picking experiment of issue 13: train a picking network on tomosim phantoms of the
six CZII challenge classes, and score its picks (F-beta, beta = 4) on held-out phantoms imaged with
other microscope settings.

Steps (each one a ``tomosim`` command, logged under ``WORKDIR/logs/``):

1. resolve the six structures by PDB id (``$TOMOSIM_STRUCTURES``, the download cache, a download
   unless ``--offline``); every id that cannot be had is replaced by its stand-in from
   ``../shared/structures`` (:data:`STAND_INS`), and the page says which was used;
2. ``tomosim dataset training.yaml``: training phantoms (630 x 630 x 184 at 10.012 Å);
3. ``tomosim dataset heldout.yaml``: held-out phantoms (defocus, dose, tilt range and ice outside
   the training ranges);
4. ``tomosim train --task picking`` with ``train.yaml``;
5. ``tomosim pick`` on every held-out tomogram, then one ``tomosim evaluate-picks --czii-weights``
   over all of them (counts summed over tomograms per class, as in the challenge);
6. the table (per class and weighted F-beta) is written into ``docs/czii_like.md`` between
   ``<!-- BEGIN GENERATED czii_like -->`` and ``<!-- END GENERATED czii_like -->``, with the
   command, the machine, the wall times and the structures used. ``WORKDIR/results.json`` holds
   the same numbers.

Usage::

    python3 examples/czii_like/run.py --threads 2                  # default run, ~15 min on 2 cores
    python3 examples/czii_like/run.py --train-phantoms 16 --epochs 20 --heldout-phantoms 4
    python3 examples/czii_like/run.py --quick --workdir /tmp/czii_quick   # smoke test, ~1 min

``--quick`` shrinks everything and writes its page to ``WORKDIR/czii_like.md`` unless ``--doc`` is
given, so it never overwrites the real results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import starfile

from tomosim.particles import write_particles_star

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from example_steps import phantom_folders, run_step  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SHARED = Path(os.environ.get("TOMOSIM_SHARED_STRUCTURES", REPO.parent / "shared" / "structures"))
MARKERS = "<!-- BEGIN GENERATED czii_like -->", "<!-- END GENERATED czii_like -->"

# species index in training.yaml / heldout.yaml -> (class, PDB id, stand-in, its structure
# options, what the stand-in is). Masses scale the density maps to volts (tomosim potential).
STAND_INS = [
    (0, "apo-ferritin", "pdb:4V1W", "4v1w.cif.gz", {}, "the entry itself (atoms)"),
    (1, "beta-amylase", "pdb:1FA2", "polnet_pdbs/2cg9.pdb.gz", {},
     "Hsp90-Sba1 2CG9 (atoms): a protein of similar mass, not beta-amylase"),
    (2, "beta-galactosidase", "pdb:6X1Q", "polnet_templates_10A/1f4a.mrc.gz",
     {"map_mass_kda": 465.0}, "polnet density of beta-galactosidase 1F4A, scaled to 465 kDa"),
    (3, "ribosome", "pdb:6EK0", "polnet_templates_10A/4v4r.mrc.gz",
     {"map_mass_kda": 2500.0}, "polnet density of the 70S ribosome 4V4R, scaled to 2.5 MDa"),
    (4, "thyroglobulin", "pdb:6SCJ", "polnet_templates_10A/7n4y.mrc.gz",
     {"map_mass_kda": 660.0}, "polnet density 7N4Y (probably thyroglobulin), scaled to 660 kDa"),
    (5, "virus-like-particle", "pdb:6N4V", "polnet_templates_10A/8tux.mrc.gz",
     {"map_mass_kda": 2500.0},
     "polnet density 8TUX (near-spherical, VLP-sized), scaled to an assumed 2.5 MDa"),
]

QUICK_SIMULATION = [
    "sample.shape=[48,160,160]", "sample.ice_thickness=400", "microscope.tilt.step=6",
    *[f"proteins.species.{k}.count=2" for k in range(8)],
]
QUICK_TRAIN = [
    "epochs=1", "iterations_per_epoch=2", "batch_size=2", "patch_size=32",
    "network.base_channels=4", "network.depth=2", "network.residual_units=1",
    "validation_patches=2", "validation_fraction=0.25",
]


def choose_structures(mode: str) -> tuple[list[str], list[dict[str, str]]]:
    """``--set`` overrides that replace unavailable ids by stand-ins, and a row per class."""
    from tomosim.errors import TomosimError
    from tomosim.sources import resolve_source

    overrides, rows = [], []
    for index, name, identifier, stand_in, options, what in STAND_INS:
        found = None
        if mode != "stand-ins":
            try:
                found = resolve_source(identifier)
            except TomosimError as exc:
                if mode == "ids":
                    sys.exit(f"{name}: {identifier} is not available ({exc})")
        if found is not None:
            rows.append({"class": name, "requested": identifier, "used": identifier,
                         "note": f"resolved to {found.name}"})
            continue
        if not (SHARED / stand_in).is_file():
            sys.exit(f"{name}: {identifier} is not available and neither is the stand-in "
                     f"{SHARED / stand_in}")
        overrides += [f"proteins.species.{index}.source={SHARED / stand_in}",
                      f"proteins.species.{index}.structure={json.dumps(options)}"]
        rows.append({"class": name, "requested": identifier, "used": f"stand-in {stand_in}",
                     "note": what})
    return overrides, rows


def renamed(star: Path, name: str) -> pd.DataFrame:
    """A particle table with ``rlnTomoName`` set to ``name`` (one name per phantom)."""
    table = starfile.read(star, always_dict=True)
    frame = table["particles"] if "particles" in table else next(iter(table.values()))
    frame = frame.copy()
    frame["rlnTomoName"] = name
    return frame


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {os.cpu_count()} cores, load average {load:.1f} at the end"


def commit() -> str:
    try:
        return subprocess.check_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                       text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_page(doc: Path, section: str) -> None:
    """Put ``section`` between the markers of ``doc`` (created if missing), atomically."""
    begin, end = MARKERS
    fresh = f"# CZII-like picking experiment\n\n{begin}\n{end}\n"
    text = doc.read_text() if doc.is_file() else fresh
    if begin not in text or end not in text:
        text = text.rstrip("\n") + f"\n\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    tmp = doc.with_name(doc.name + ".tmp")
    tmp.write_text(f"{head}{begin}\n{section.rstrip()}\n{end}{tail}")
    tmp.replace(doc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=REPO / "czii_like_run")
    parser.add_argument("--doc", type=Path, default=None, help="page to write (docs/czii_like.md)")
    parser.add_argument("--train-phantoms", type=int, default=3)
    parser.add_argument("--heldout-phantoms", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=None, help="override train.yaml's epochs")
    parser.add_argument("--iterations-per-epoch", type=int, default=None)
    parser.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a train.yaml value (repeatable), e.g. patch_size=64")
    parser.add_argument("--workers", type=int, default=1, help="tomosim dataset --workers")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--structures", choices=("auto", "ids", "stand-ins"), default="auto",
                        help="auto: the PDB ids where available, else stand-ins")
    parser.add_argument("--offline", action="store_true", help="never download (TOMOSIM_OFFLINE)")
    parser.add_argument("--quick", action="store_true", help="tiny smoke-test run")
    args = parser.parse_args()

    work = args.workdir.resolve()
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if not (work / ".gitignore").exists():
        (work / ".gitignore").write_text("*\n")
    doc = args.doc or (work / "czii_like.md" if args.quick else REPO / "docs" / "czii_like.md")
    if SHARED.is_dir():
        given = os.environ.get("TOMOSIM_STRUCTURES", "").split(os.pathsep)
        paths = [str(SHARED), *filter(None, given)]
        os.environ["TOMOSIM_STRUCTURES"] = os.pathsep.join(paths)
    if args.offline:
        os.environ["TOMOSIM_OFFLINE"] = "1"
    start = time.monotonic()
    structure_overrides, structure_rows = choose_structures(args.structures)
    simulation = [*structure_overrides, *(QUICK_SIMULATION if args.quick else [])]
    training = [*(QUICK_TRAIN if args.quick else [])]
    if args.epochs is not None:
        training.append(f"epochs={args.epochs}")
    if args.iterations_per_epoch is not None:
        training.append(f"iterations_per_epoch={args.iterations_per_epoch}")
    training += args.train_set
    times: dict[str, float] = {}
    sets = {"train": (HERE / "training.yaml", args.train_phantoms, 1),
            "heldout": (HERE / "heldout.yaml", args.heldout_phantoms, 2)}
    for name, (config, count, seed) in sets.items():
        times[f"simulate {name}"] = run_step(f"dataset_{name}", [
            "dataset", str(config), "-n", str(count), "-o", str(work / name), "--seed", str(seed),
            "--workers", str(args.workers), "--overwrite",
            *[item for o in simulation for item in ("--set", o)]], logs)
    model = work / "model"
    times["train"] = run_step("train", [
        "train", *map(str, phantom_folders(work / "train")), "-o", str(model),
        "--config", str(HERE / "train.yaml"), "--task", "picking", "--threads", str(args.threads),
        "--quiet", *[item for o in training for item in ("--set", o)]], logs)
    truths, picks = [], []
    times["pick"] = 0.0
    for folder in phantom_folders(work / "heldout"):
        out = work / "picks" / f"{folder.name}.star"
        out.parent.mkdir(exist_ok=True)
        times["pick"] += run_step(f"pick_{folder.name}", [
            "pick", str(model), str(folder / "tomogram.mrc"), "-o", str(out),
            "--tomogram-name", folder.name, "--threads", str(args.threads), "--quiet"], logs)
        truths.append(renamed(folder / "particles.star", folder.name))
        picks.append(renamed(out, folder.name))
    write_particles_star(work / "truth_all.star", pd.concat(truths))
    write_particles_star(work / "picks_all.star", pd.concat(picks))
    run_step("evaluate", [
        "evaluate-picks", str(work / "truth_all.star"), str(work / "picks_all.star"),
        "--czii-weights", "-o", str(work / "scores.json")], logs)
    scores = json.loads((work / "scores.json").read_text())
    total = time.monotonic() - start
    command = "python3 examples/czii_like/run.py " + shlex.join(sys.argv[1:])
    results = {"command": command, "structures": structure_rows, "times_s": times,
               "total_s": total, "scores": scores, "machine": machine(), "commit": commit()}
    (work / "results.json").write_text(json.dumps(results, indent=2) + "\n")

    def show(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines = [
        f"Command: `{command.strip()}` (commit {results['commit']}; {machine()}).",
        "",
        f"Training: {args.train_phantoms} phantoms from `examples/czii_like/training.yaml`; "
        f"held out: {args.heldout_phantoms} phantoms from `heldout.yaml` (defocus 5-6 µm, "
        "70 e/Å², ±50°, thinner ice: all outside the training ranges); network and targets: "
        "`train.yaml`" + (" (quick smoke-test settings)" if args.quick else "") + ".",
        "",
        "Structures used:",
        "",
        "| class | requested | used | note |",
        "|---|---|---|---|",
        *[f"| {r['class']} | {r['requested']} | {r['used']} | {r['note']} |"
          for r in structure_rows],
        "",
        f"Picks on the held-out phantoms, F-beta with beta = {scores['beta']:g}, a pick counts "
        f"within {scores['distance_fraction']:g} x the class radius (one-to-one matching), "
        "counts summed over the held-out tomograms; weights as in the challenge:",
        "",
        "| class | radius Å | weight | true | picked | TP | FP | FN | precision | recall | F4 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *[f"| {c['name']} | {c['radius']:g} | {c['weight']:g} | {c['true_particles']} | "
          f"{c['predicted_particles']} | {c['true_positives']} | {c['false_positives']} | "
          f"{c['false_negatives']} | {show(c['precision'])} | {show(c['recall'])} | "
          f"{show(c['fbeta'])} |" for c in scores["classes"]],
        f"| **weighted** | | | | | | | | | | **{show(scores['weighted_fbeta'])}** |",
        "",
        "Wall times: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items())
        + f"; total {total:.0f} s.",
    ]
    write_page(doc, "\n".join(lines))
    print(f"weighted F4 {show(scores['weighted_fbeta'])}; wrote {doc} and {work / 'results.json'}")


if __name__ == "__main__":
    main()
