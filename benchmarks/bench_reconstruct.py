"""Benchmark: weighted backprojection of a 512 x 512 x 200 tomogram from 61 tilts.

Times :func:`tomosim.reconstruct.weighted_backprojection` (cosine-stretched backprojection, the
default, and the direct-interpolation loop as the alternative), and scikit-image ``iradon`` applied
row by row to the same data (each of the 512 y rows is one sinogram; a subset of rows is timed and
extrapolated). Reports voxel-tilt updates per second, the speed ratio and peak memory; writes
``benchmarks/results/reconstruct.json``.

Run: ``python3 benchmarks/bench_reconstruct.py [--iradon-rows 16] [--repeats 3] [--quick]``
(``--quick``: one repeat, 8 iradon rows, no direct-loop run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
import tracemalloc
from pathlib import Path

import numba
import numpy as np

from tomosim import reconstruct

SIZE_X, SIZE_Y, THICKNESS = 512, 512, 200
ANGLES = np.arange(-60.0, 60.0 + 1e-9, 2.0)  # 61 tilts


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _time_wbp(stack: np.ndarray, repeats: int) -> tuple[list[float], list[float]]:
    """Wall times of the whole reconstruction and of the backprojection kernel alone."""
    kernel = reconstruct._backproject
    kernel_times: list[float] = []

    def timed_kernel(*args):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        kernel(*args)
        kernel_times.append(time.perf_counter() - start)

    reconstruct._backproject = timed_kernel
    try:
        totals = []
        for _ in range(repeats):
            start = time.perf_counter()
            reconstruct.weighted_backprojection(stack, ANGLES, thickness_px=THICKNESS)
            totals.append(time.perf_counter() - start)
    finally:
        reconstruct._backproject = kernel
    return totals, kernel_times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iradon-rows", type=int, default=16, help="rows timed for iradon")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 repeat, 8 iradon rows, no direct")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "reconstruct.json"
    )
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.iradon_rows = 1, min(args.iradon_rows, 8)

    rng = np.random.default_rng(0)
    stack = rng.standard_normal((ANGLES.size, SIZE_Y, SIZE_X)).astype(np.float32)
    updates = SIZE_X * SIZE_Y * THICKNESS * ANGLES.size

    # warm-up: numba compilation (cached on disk after the first run)
    reconstruct.weighted_backprojection(stack[:, :8, :64], ANGLES, thickness_px=16)

    rss_before = _peak_rss_mb()
    tracemalloc.start()
    totals, kernels = _time_wbp(stack, args.repeats)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = _peak_rss_mb()

    # alternative: the direct loop for every tilt (no cosine stretching)
    limit = reconstruct.STRETCH_LIMIT_DEG
    reconstruct.STRETCH_LIMIT_DEG = -1.0
    try:
        direct = None if args.quick else _time_wbp(stack, 1)
    finally:
        reconstruct.STRETCH_LIMIT_DEG = limit

    # scikit-image iradon, row by row: sinogram (x positions, angles); skimage's angle = -ours
    from skimage.transform import iradon

    rows = min(args.iradon_rows, SIZE_Y)
    start = time.perf_counter()
    for y in range(rows):
        sinogram = stack[:, y, :].T.astype(np.float64)
        image = iradon(
            sinogram, theta=-ANGLES, filter_name="ramp", output_size=SIZE_X, circle=False
        )
        _ = image[SIZE_X // 2 - THICKNESS // 2 : SIZE_X // 2 - THICKNESS // 2 + THICKNESS]
    iradon_rows_s = time.perf_counter() - start
    iradon_total = iradon_rows_s * SIZE_Y / rows

    best = min(totals)
    result = {
        "problem": f"{SIZE_X}x{SIZE_Y}x{THICKNESS} from {ANGLES.size} tilts (-60..60 step 2)",
        "voxel_tilt_updates": updates,
        "threads": numba.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "wbp_seconds_best": best,
        "wbp_seconds_all": totals,
        "wbp_gupdates_per_s": updates / best / 1e9,
        "backprojection_kernel_seconds_best": min(kernels),
        "backprojection_kernel_gupdates_per_s": updates / min(kernels) / 1e9,
        "direct_loop_seconds": direct[0][0] if direct else None,
        "direct_loop_kernel_gupdates_per_s": updates / direct[1][0] / 1e9 if direct else None,
        "iradon_rows_timed": rows,
        "iradon_seconds_timed_rows": iradon_rows_s,
        "iradon_seconds_extrapolated": iradon_total,
        "speedup_vs_iradon": iradon_total / best,
        "peak_traced_numpy_mb_during_wbp": traced_peak / 2**20,
        "peak_rss_mb_before_wbp": rss_before,
        "peak_rss_mb_after_wbp": rss_after,
        "output_mb": SIZE_X * SIZE_Y * THICKNESS * 4 / 2**20,
    }
    result["summary"] = [
        {
            "stage": "reconstruct",
            "size": f"{SIZE_X}x{SIZE_Y}x{THICKNESS}, {ANGLES.size} tilts",
            "time_s": round(best, 3),
            "throughput": f"{result['wbp_gupdates_per_s']:.2f} G voxel-tilt/s",
            "peak_memory_mb": round(traced_peak / 2**20),
            "ratio": round(result["speedup_vs_iradon"], 1),
            "alternative": f"skimage iradon ({rows} rows timed, extrapolated)",
        }
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"weighted backprojection, {result['problem']}, {result['threads']} threads")
    print(f"{'method':<44}{'seconds':>10}{'G upd/s':>10}")
    print(f"{'tomosim WBP (stretched), best of ' + str(len(totals)):<44}{best:>10.2f}"
          f"{result['wbp_gupdates_per_s']:>10.2f}")
    print(f"{'  of which backprojection kernel':<44}{min(kernels):>10.2f}"
          f"{result['backprojection_kernel_gupdates_per_s']:>10.2f}")
    if direct:
        print(f"{'tomosim WBP, direct loop (alternative)':<44}{direct[0][0]:>10.2f}"
              f"{updates / direct[0][0] / 1e9:>10.2f}")
    label = f"skimage iradon, {rows} rows x {SIZE_Y / rows:g} (extrapolated)"
    print(f"{label:<44}{iradon_total:>10.1f}{updates / iradon_total / 1e9:>10.3f}")
    print(f"speed-up over iradon: {result['speedup_vs_iradon']:.0f}x")
    traced = result["peak_traced_numpy_mb_during_wbp"]
    print(f"peak memory: numpy (traced) {traced:.0f} MB during WBP; "
          f"process RSS {rss_before:.0f} MB before, {rss_after:.0f} MB after "
          f"(output {result['output_mb']:.0f} MB)")
    print(f"load average (1 min) at the end: {result['load_average_1min']:.2f}; wrote {args.out}")


if __name__ == "__main__":
    main()
