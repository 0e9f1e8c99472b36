"""Benchmark: filament and vesicle placement in a 512 x 512 x 200 voxel sample at 10 Å.

Times :func:`tomosim.filaments.place_filaments` for the filament scene of ``bench_assemble.py``
(28 decorated actin filaments 1000–3000 Å and 12 microtubules 1500–3500 Å, random worm-like
chains) and for the ``sheets`` and ``bundle`` arrangements, and
:func:`tomosim.membranes.place_vesicles` + :func:`tomosim.membranes.vesicle_potential` for
spherical and ellipsoidal vesicles. One untimed warm-up run loads the compiled numba kernels.
Other processes may load the machine: the numbers are wall-clock seconds, best of ``--repeat``.

Usage::

    python3 benchmarks/bench_filaments.py [--repeat 3] [--threads 2]

Prints a table and writes ``benchmarks/results/filaments.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="numba threads")
    parser.add_argument("--quick", action="store_true", help="accepted for run_all; same work")
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "filaments.json"
    )
    return parser.parse_args()


ARGS = _arguments()
os.environ["NUMBA_NUM_THREADS"] = str(ARGS.threads)  # before numba is imported

import numpy as np  # noqa: E402

from tomosim.config import DecorationConfig, FilamentSpecies, VesiclesConfig  # noqa: E402
from tomosim.filament_paths import subunit_occupancy  # noqa: E402
from tomosim.filaments import place_filaments  # noqa: E402
from tomosim.membranes import place_vesicles, vesicle_potential  # noqa: E402
from tomosim.recipe import vesicle_population  # noqa: E402

SHAPE = (200, 512, 512)
PIXEL_SIZE = 10.0
CLASS_IDS = {"background": 0, "actin": 1, "cofilactin": 2, "microtubule": 3, "membrane": 4}

SCENES = {
    "random (28 actin + 12 MT)": [
        FilamentSpecies(
            name="actin", preset="actin", count=28, length=(1000, 3000), arrangement="random",
            decoration=DecorationConfig(label="cofilactin", fraction=0.4, mean_segment_subunits=25),
        ),
        FilamentSpecies(
            name="microtubule", preset="microtubule", count=12, length=(1500, 3500),
            arrangement="random",
        ),
    ],
    "sheets (40 actin)": [
        FilamentSpecies(
            name="actin", preset="actin", count=40, length=(1000, 3000), arrangement="sheets",
            filaments_per_sheet=8, sheet_angle_step=30.0,
        ),
    ],
    "bundle (37 actin)": [
        FilamentSpecies(
            name="actin", preset="actin", count=37, length=(2000, 4000), arrangement="bundle",
            bundle_spacing=120.0,
        ),
    ],
}

VESICLES = {
    "2 spheres r 400-700": VesiclesConfig(count=2, radius=(400.0, 700.0)),
    "10 ellipsoids r 300-500, aspect 1.5": VesiclesConfig(count=10, radius=(300.0, 500.0),
                                                         max_aspect=1.5),
}


def run_filaments(species_list: list[FilamentSpecies], seed: int) -> tuple[float, int, int]:
    rng = np.random.default_rng(seed)
    occupancy = np.zeros(SHAPE, dtype=bool)
    start = time.perf_counter()
    subunits = filaments = 0
    next_instance, next_filament = 1, 0
    for species in species_list:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            placed = place_filaments(
                species, shape=SHAPE, pixel_size=PIXEL_SIZE, rng=rng, class_ids=CLASS_IDS,
                first_instance_id=next_instance, first_filament_id=next_filament,
                occupancy=occupancy,
            )
        if len(placed):
            next_instance = int(placed.instance_id.max()) + 1
            next_filament = int(placed.filament_id.max()) + 1
            occupancy |= subunit_occupancy(placed.positions, shape=SHAPE, pixel_size=PIXEL_SIZE,
                                           radius=30.0)
            subunits += len(placed)
            filaments += int(np.unique(placed.filament_id).size)
    return time.perf_counter() - start, filaments, subunits


def run_vesicles(config: VesiclesConfig, seed: int) -> tuple[float, int, int]:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vesicles = place_vesicles(vesicle_population(config), shape=SHAPE, pixel_size=PIXEL_SIZE,
                                  rng=np.random.default_rng(seed))
    voxels = 0
    for vesicle in vesicles:
        box = vesicle_potential(vesicle, pixel_size=PIXEL_SIZE, shape=SHAPE,
                                thickness=config.thickness)
        voxels += box.data.size
    return time.perf_counter() - start, len(vesicles), voxels


def main() -> None:
    run_filaments(list(SCENES.values())[0][:1], seed=99)  # warm-up: numba kernels
    run_vesicles(list(VESICLES.values())[1], seed=99)
    rows = []
    for name, species_list in SCENES.items():
        times = [run_filaments(species_list, seed=i) for i in range(ARGS.repeat)]
        best = min(t[0] for t in times)
        rows.append({"stage": f"filaments: {name}", "size": "512x512x200 @ 10 Å",
                     "time_s": round(best, 3),
                     "throughput": f"{times[0][1]} filaments, {times[0][2]} subunits",
                     "all_seconds": [round(t[0], 3) for t in times]})
    for name, config in VESICLES.items():
        times = [run_vesicles(config, seed=i) for i in range(ARGS.repeat)]
        best = min(t[0] for t in times)
        rows.append({"stage": f"vesicles: {name}", "size": "512x512x200 @ 10 Å",
                     "time_s": round(best, 3),
                     "throughput": f"{times[0][1]} vesicles, {times[0][2] / 1e6:.1f} M box voxels",
                     "all_seconds": [round(t[0], 3) for t in times]})
    print(f"{'stage':<50} {'best s':>8}  what")
    for row in rows:
        print(f"{row['stage']:<50} {row['time_s']:>8.3f}  {row['throughput']}")
    ARGS.output.parent.mkdir(parents=True, exist_ok=True)
    ARGS.output.write_text(json.dumps({"summary": rows, "threads": ARGS.threads,
                                       "load_average": os.getloadavg()}, indent=2))


if __name__ == "__main__":
    main()
