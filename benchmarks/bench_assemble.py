"""Benchmark: phantom assembly of a 512 x 512 x 200 voxel sample at 10 Å.

Target (issue 3): >= 1000 proteins of >= 4 species and >= 40 filaments, assembled with labels
(potentials already cached) in <= 5 s on 2 cores with peak memory <= 1.5 GB.

Templates are the built-in coarse models computed by ``tomosim.cache.load_potential`` at
``pixel_size / 2`` (from the on-disk cache after the first run) and are not timed. A small warm-up
assembly loads the compiled numba kernels first; the JIT load time is reported separately.

Usage::

    python3 benchmarks/bench_assemble.py [--repeat 3] [--threads 2] [--seed 0]

Prints a table and writes ``benchmarks/results/assemble.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed assemblies (best and all reported)")
    parser.add_argument("--threads", type=int, default=2, help="numba threads (the target has 2 cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results" / "assemble.json")
    return parser.parse_args()


ARGS = _arguments()
os.environ["NUMBA_NUM_THREADS"] = str(ARGS.threads)  # before numba is imported

import numpy as np  # noqa: E402
import psutil  # noqa: E402
from scenes import SCENE, PeakMemory  # noqa: E402

from tomosim.assemble import assemble_phantom  # noqa: E402
from tomosim.recipe import phantom_recipe  # noqa: E402
from tomosim.pipeline import compute_templates  # noqa: E402
from tomosim.config import config_from_dict  # noqa: E402
from tomosim.labels import labels_consistent  # noqa: E402

def main() -> int:
    config = config_from_dict(SCENE, seed=ARGS.seed)
    clock = time.perf_counter()
    templates = compute_templates(config)
    template_seconds = time.perf_counter() - clock

    # warm-up: load (or compile) the numba kernels on a small scene
    clock = time.perf_counter()
    small = config_from_dict(
        {**SCENE, "sample": {"shape": [64, 96, 96], "pixel_size": 10.0},
         "proteins": {**SCENE["proteins"], "species": [
             {**s, "count": 2} for s in SCENE["proteins"]["species"]]},
         "filaments": [{**f, "count": 1, "length": [300, 400]} for f in SCENE["filaments"]],
         "vesicles": {"count": 1, "radius": [150, 200]}},
    )
    assemble_phantom(phantom_recipe(small), templates, np.random.default_rng(0))
    jit_seconds = time.perf_counter() - clock

    baseline = psutil.Process().memory_info().rss
    runs = []
    phantom = None
    for _ in range(ARGS.repeat):
        del phantom
        phantom = None
        with PeakMemory() as memory:
            clock = time.perf_counter()
            cpu = time.process_time()
            phantom = assemble_phantom(phantom_recipe(config), templates, np.random.default_rng(ARGS.seed))
            seconds = time.perf_counter() - clock
            cpu = time.process_time() - cpu
        runs.append(
            {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_bytes": memory.peak,
             "stages": phantom.timings, "load_average": os.getloadavg()[0]}
        )

    placements = phantom.placements
    proteins = int(np.count_nonzero(placements.filament_id < 0))
    n_filaments = int(np.unique(placements.filament_id[placements.filament_id >= 0]).size)
    consistent = labels_consistent(phantom.labels, phantom.instances, phantom.instance_class)
    best = min(runs, key=lambda r: r["seconds"])
    result = {
        "benchmark": "assemble",
        "shape_zyx": list(config.sample.shape),
        "pixel_size": config.sample.pixel_size,
        "template_pixel_size": config.sample.pixel_size / 2,
        "threads": ARGS.threads,
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "machine": platform.platform(),
        "python": sys.version.split()[0],
        "proteins": proteins,
        "protein_species": len(config.proteins.species),
        "filaments": n_filaments,
        "filament_subunits": int(np.count_nonzero(placements.filament_id >= 0)),
        "vesicles": len(phantom.boxes),
        "instances": int(phantom.instances.max()),
        "labels_consistent": bool(consistent),
        "report": [vars(r) for r in phantom.report],
        "template_seconds": template_seconds,
        "jit_warmup_seconds": jit_seconds,
        "baseline_rss_bytes": baseline,
        "process_max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "runs": runs,
        "best_seconds": best["seconds"],
        "peak_rss_bytes": max(r["peak_rss_bytes"] for r in runs),
        "target_seconds": 5.0,
        "target_peak_bytes": 1.5e9,
    }
    result["meets_targets"] = bool(
        result["best_seconds"] <= 5.0 and result["peak_rss_bytes"] <= 1.5e9 and proteins >= 1000
        and n_filaments >= 40 and consistent
    )
    result["summary"] = [{
        "stage": "assemble (labels included)",
        "size": f"{'x'.join(map(str, config.sample.shape))} @ 10 Å, {proteins} proteins, "
                f"{n_filaments} filaments",
        "time_s": result["best_seconds"],
        "peak_memory_mb": result["peak_rss_bytes"] / 1e6,
    }]
    ARGS.output.parent.mkdir(parents=True, exist_ok=True)
    ARGS.output.write_text(json.dumps(result, indent=2) + "\n")

    print(f"assembly of {tuple(config.sample.shape)} voxels at {config.sample.pixel_size} Å, "
          f"{ARGS.threads} threads (load average {os.getloadavg()[0]:.2f})")
    print(f"  {proteins} proteins ({len(config.proteins.species)} species), {n_filaments} filaments "
          f"({result['filament_subunits']} subunits), {len(phantom.boxes)} vesicles; labels "
          f"consistent: {consistent}")
    print(f"  templates {template_seconds:.2f} s (not timed), JIT warm-up {jit_seconds:.2f} s")
    header = ("run", "wall s", "CPU s", "vesicles", "filaments", "proteins", "render", "RSS GB", "load")
    print(" ".join(f"{h:>9}" for h in header))
    for i, run in enumerate(runs):
        st = run["stages"]
        row = (i, run["seconds"], run["cpu_seconds"], st["vesicles"], st["filaments"],
               st["proteins"], st["render"], run["peak_rss_bytes"] / 1e9, run["load_average"])
        print(f"{row[0]:>9d} " + " ".join(f"{v:>9.2f}" for v in row[1:]))
    print(f"best {result['best_seconds']:.2f} s (target 5 s), peak RSS "
          f"{result['peak_rss_bytes'] / 1e9:.3f} GB (target 1.5 GB; baseline "
          f"{baseline / 1e9:.3f} GB) -> {'OK' if result['meets_targets'] else 'MISSED'}")
    print(f"wrote {ARGS.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
