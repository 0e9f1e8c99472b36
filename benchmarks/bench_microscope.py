"""Benchmark: the microscope stage on 256^3 and 512 x 512 x 200 phantoms at 10 Å with 61 tilts.

Times :func:`tomosim.microscope.projection.project_volume` (61 tilts, -60..60 step 2; about 3.2 G
voxel-tilt updates), the whole :func:`tomosim.microscope.image_formation.simulate_tilt_series`
with the default microscope config (dose-symmetric scheme, defocus gradient, exposure filter,
energy filter, k3 detector, shot noise), the part of it that is not projection (CTF, dose,
detector and noise), and, if :mod:`tomosim.reconstruct` is importable, the weighted
backprojection of the simulated series; the target is simulation plus reconstruction <= 8 s on 2
cores (512 x 512 x 200). Each size is timed the same way (the 512 x 512 x 200 figures are also
the top-level keys of the JSON). Peak memory: tracemalloc peak of numpy allocations during the simulation and the peak RSS of
the process. Writes ``benchmarks/results/microscope.json``.

Run: ``python3 benchmarks/bench_microscope.py [--repeats 2] [--quick]`` (``--quick``: one repeat).
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

from tomosim.config import MicroscopeConfig
from tomosim.microscope.image_formation import simulate_tilt_series
from tomosim.recipe import acquisition, optics
from tomosim.microscope.projection import project_volume

SHAPES = ((256, 256, 256), (200, 512, 512))
"""(z, y, x) phantom sizes; the last is the reference size of the 8 s target."""
PIXEL_SIZE = 10.0
ANGLES = np.arange(-60.0, 60.0 + 1e-9, 2.0)  # 61 tilts


def make_phantom(rng: np.random.Generator, shape: tuple[int, int, int], count: int) -> np.ndarray:
    """Random balls of 3-12 voxels radius and 0.5-3 V, 12 voxels clear of the z faces, float32."""
    volume = np.zeros(shape, dtype=np.float32)
    radii = rng.uniform(3, 12, count)
    centres = rng.uniform([12, 0, 0], [shape[0] - 12, shape[1], shape[2]], size=(count, 3))
    volts = rng.uniform(0.5, 3.0, count).astype(np.float32)
    for radius, centre, value in zip(radii, centres, volts, strict=True):
        low = np.maximum(np.floor(centre - radius).astype(int), 0)
        high = np.minimum(np.ceil(centre + radius).astype(int) + 1, shape)
        z, y, x = np.ogrid[low[0]:high[0], low[1]:high[1], low[2]:high[2]]
        inside = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 < radius**2
        region = volume[low[0]:high[0], low[1]:high[1], low[2]:high[2]]
        np.maximum(region, inside * value, out=region)
    return volume


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def bench_size(shape: tuple[int, int, int], repeats: int) -> dict:
    """Projection, whole tilt series and reconstruction of one phantom size (best of ``repeats``)."""
    from tomosim.reconstruct import weighted_backprojection

    count = int(round(3000 * np.prod(shape) / (200 * 512 * 512)))  # same crowding at every size
    volume = make_phantom(np.random.default_rng(0), shape, count)
    config = MicroscopeConfig()
    projection_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        project_volume(volume, ANGLES, pixel_size=PIXEL_SIZE)
        projection_times.append(time.perf_counter() - start)
    simulate_times = []
    series = None
    rss_before = _peak_rss_mb()
    for index in range(repeats):
        if index == 0:
            tracemalloc.start()
        start = time.perf_counter()
        series = simulate_tilt_series(
            volume, pixel_size=PIXEL_SIZE, ice_thickness=None, acquisition=acquisition(config),
            optics=optics(config.optics), ice_potential_v=4.5, rng=np.random.default_rng(1),
        )
        simulate_times.append(time.perf_counter() - start)
        if index == 0:
            traced_peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
    assert series is not None
    rss_after_simulate = _peak_rss_mb()
    reconstruct_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        weighted_backprojection(series.images, series.angles_deg, thickness_px=shape[0])
        reconstruct_times.append(time.perf_counter() - start)
    projection, simulate, reconstruct = min(projection_times), min(simulate_times), min(reconstruct_times)
    updates = int(np.prod(shape)) * ANGLES.size
    label = f"{shape[2]}x{shape[1]}x{shape[0]}"
    print(f"{label}: projection {projection:.2f} s ({updates / projection / 1e9:.2f} G updates/s), "
          f"CTF + dose + noise {simulate - projection:.2f} s, tilt series {simulate:.2f} s "
          f"(peak traced {traced_peak_mb:.0f} MB), reconstruction {reconstruct:.2f} s, "
          f"total {simulate + reconstruct:.2f} s", flush=True)
    return {
        "problem": f"{label} at {PIXEL_SIZE} Å, 61 tilts (-60..60 step 2)",
        "shape_zyx": list(shape),
        "voxel_tilt_updates": updates,
        "projection_seconds_best": projection,
        "projection_gupdates_per_s": updates / projection / 1e9,
        "simulate_seconds_best": simulate,
        "simulate_seconds_all": simulate_times,
        "ctf_dose_noise_seconds": simulate - projection,
        "reconstruct_seconds_best": reconstruct,
        "reconstruct_gupdates_per_s": updates / reconstruct / 1e9,
        "microscope_plus_reconstruct_seconds": simulate + reconstruct,
        "peak_traced_numpy_mb_during_simulate": traced_peak_mb,
        "peak_rss_mb_before_simulate": rss_before,
        "peak_rss_mb_after_simulate": rss_after_simulate,
        "volume_mb": volume.nbytes / 2**20,
        "series_mb": series.images.nbytes / 2**20,
    }


def summary_rows(row: dict) -> list[dict]:
    shape = row["shape_zyx"]
    size = f"{shape[2]}x{shape[1]}x{shape[0]}, 61 tilts"
    return [
        {"stage": "microscope: projection", "size": size, "time_s": round(row["projection_seconds_best"], 3),
         "throughput": f"{row['projection_gupdates_per_s']:.2f} G voxel-tilt/s"},
        {"stage": "microscope: CTF + dose + detector + noise", "size": size,
         "time_s": round(row["ctf_dose_noise_seconds"], 3)},
        {"stage": "microscope: tilt series (projection + CTF + dose + detector)", "size": size,
         "time_s": round(row["simulate_seconds_best"], 3),
         "peak_memory_mb": round(row["peak_traced_numpy_mb_during_simulate"])},
        {"stage": "microscope: reconstruction (WBP of the series)", "size": size,
         "time_s": round(row["reconstruct_seconds_best"], 3),
         "throughput": f"{row['reconstruct_gupdates_per_s']:.2f} G voxel-tilt/s"},
        {"stage": "microscope + reconstruction", "size": size,
         "time_s": round(row["microscope_plus_reconstruct_seconds"], 3),
         "alternative": "target 8 s on 2 cores at 512x512x200"},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="one repeat")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "microscope.json"
    )
    args = parser.parse_args()
    repeats = 1 if args.quick else max(1, args.repeats)
    # warm-up: compile the numba kernels (cached on disk afterwards)
    small = make_phantom(np.random.default_rng(0), (32, 32, 32), 3)
    project_volume(small[:8, :16, :16], ANGLES[:2], pixel_size=PIXEL_SIZE)
    simulate_tilt_series(
        small, pixel_size=PIXEL_SIZE, ice_thickness=None,
        acquisition=acquisition(MicroscopeConfig()), optics=optics(MicroscopeConfig().optics),
        ice_potential_v=4.5, rng=np.random.default_rng(0),
    )
    sizes = [bench_size(shape, repeats) for shape in SHAPES]
    result = {
        **sizes[-1],
        "threads": numba.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "target_seconds": 8.0,
        "sizes": sizes,
        "summary": [row for size in sizes for row in summary_rows(size)],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
