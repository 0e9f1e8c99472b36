"""Benchmark: training on the fly against training on a stored set, seconds per iteration.

Trains the default 2.5D U-Net (depth 3, 16 base channels, 128 px patches, batch 8) for the same
number of iterations twice in this process, on the benchmark phantoms of ``bench_dataset.py``
(256 x 256 x 128 voxels at 10 Å, 41 tilts, ~200 proteins, 10 filaments):

1. on a stored set: the phantoms the on-the-fly run will see, simulated beforehand (not timed),
   with :func:`tomosim.train.training.train_network`;
2. on the fly: :func:`tomosim.train.training.train_on_the_fly` with 1 background worker
   simulating fresh phantoms while the network trains (pool of 4, a new phantom every
   ``--refresh`` iterations).

Reports seconds per iteration of both, their ratio (the cost of simulating next to training on
the same cores), how long training waited for phantoms and the phantoms per hour the worker
delivered. Writes ``benchmarks/results/on_the_fly.json``.

Run: ``python3 benchmarks/bench_on_the_fly.py [--quick] [--iterations N] [--refresh R]``
(``--quick``: 128 x 128 x 64 phantoms, 64 px patches, 24 iterations.)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench_dataset import peak_rss_mb, phantom_tree

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small phantoms and patches")
    parser.add_argument("--iterations", type=int, default=None, help="default 120 (quick: 24)")
    parser.add_argument("--refresh", type=int, default=20, help="iterations per new phantom")
    parser.add_argument("--out", type=Path, default=RESULTS / "on_the_fly.json")
    args = parser.parse_args()
    iterations = args.iterations or (24 if args.quick else 120)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    import torch

    from tomosim.dataset import generate_dataset
    from tomosim.train.config import TrainConfig
    from tomosim.train.data import prepare_training_volume, read_simulation_folder
    from tomosim.train.on_the_fly import on_the_fly_phantom_count, stream_class_table
    from tomosim.train.training import train_network, train_on_the_fly

    torch.set_num_threads(os.cpu_count() or 1)
    tree = phantom_tree(args.quick)
    seed = 31
    settings = TrainConfig.model_validate({
        "patch_size": 64 if args.quick else 128, "batch_size": 8, "epochs": 1,
        "iterations_per_epoch": iterations, "validation_fraction": 0.0,
        "on_the_fly": {"pool_size": 4, "refresh_every": args.refresh, "workers": 1,
                       "validation_phantoms": 0},
    })
    count = on_the_fly_phantom_count(settings.on_the_fly, iterations)
    classes = stream_class_table(tree, seed, count)
    scratch = Path(tempfile.mkdtemp(prefix="tomosim-bench-otf-"))
    try:
        start = time.perf_counter()
        index = generate_dataset(tree, count, scratch / "set", seed=seed, progress=False)
        simulate_s = time.perf_counter() - start
        print(f"{count} phantoms simulated beforehand in {simulate_s:.1f} s", flush=True)
        volumes = [
            prepare_training_volume(read_simulation_folder(folder), classes=classes, pixel_size=10.0)
            for folder in index.folders()
        ]
        # the stored run draws from all phantoms at once: the same data, without the sliding pool
        start = time.perf_counter()
        train_network(volumes, classes=classes, pixel_size=10.0, config=settings,
                      output_dir=scratch / "stored")
        stored_s = time.perf_counter() - start
        print(f"stored set: {iterations} iterations in {stored_s:.1f} s", flush=True)
        start = time.perf_counter()
        result = train_on_the_fly(tree, phantom_seed=seed, config=settings,
                                  output_dir=scratch / "fly")
        fly_s = time.perf_counter() - start
        final = result.history[-1]
        print(f"on the fly: {iterations} iterations in {fly_s:.1f} s; waited "
              f"{final['first_pool_wait_s']:.1f} s for the first pool (worker start included) and "
              f"{final['waited_for_phantoms_s']:.1f} s later; {final['phantoms_seen']} phantoms", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    shape = tree["sample"]["shape"]
    size = (f"{shape[2]}x{shape[1]}x{shape[0]} phantoms, patch {settings.patch_size}, batch "
            f"{settings.batch_size}, {iterations} iterations")
    per_hour = final["phantoms_seen"] / fly_s * 3600
    result_json = {
        "quick": args.quick, "cpu_count": os.cpu_count(), "iterations": iterations,
        "refresh_every": args.refresh, "phantoms": count, "simulate_beforehand_s": simulate_s,
        "stored_seconds": stored_s, "on_the_fly_seconds": fly_s,
        "seconds_per_iteration_stored": stored_s / iterations,
        "seconds_per_iteration_on_the_fly": fly_s / iterations,
        "first_pool_wait_s": final["first_pool_wait_s"],
        "waited_for_phantoms_s": final["waited_for_phantoms_s"], "phantoms_seen": final["phantoms_seen"],
        "peak_rss_mb": peak_rss_mb(),
        "summary": [
            {"stage": "train on a stored set", "size": size, "time_s": stored_s,
             "throughput": f"{stored_s / iterations:.3f} s/iteration", "peak_memory_mb": peak_rss_mb()},
            {"stage": "train on the fly (1 worker)", "size": size, "time_s": fly_s,
             "throughput": f"{fly_s / iterations:.3f} s/iteration, {per_hour:.0f} phantoms/h; "
                           f"waited {final['first_pool_wait_s']:.1f} s at start, "
                           f"{final['waited_for_phantoms_s']:.1f} s later",
             "ratio": stored_s / fly_s, "alternative": "stored set (simulation not counted)"},
        ],
    }
    args.out.write_text(json.dumps(result_json, indent=2) + "\n")
    print(f"s/iteration: stored {stored_s / iterations:.3f}, on the fly {fly_s / iterations:.3f} "
          f"(ratio {stored_s / fly_s:.2f}); wrote {args.out}")


if __name__ == "__main__":
    main()
