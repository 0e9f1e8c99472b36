"""On-disk size of a run's volumes as MRC and as OME-Zarr (zstd, multiscale); not a bench_* script
(run_all.py runs those with --quick), since it needs a run folder.

Usage: ``python benchmarks/volume_format_sizes.py RUN_FOLDER [--levels 3]``. Writes the run's
MRC volumes again as OME-Zarr into a temporary folder and prints both sizes per volume. Sizes
are deterministic (no timing here).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from tomosim.formats.omezarr import write_ome_zarr
from tomosim.io import read_mrc


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("--levels", type=int, default=3)
    args = parser.parse_args()
    total_mrc = total_zarr = 0
    with tempfile.TemporaryDirectory() as tmp:
        for stem, labels in (("ground_truth", False), ("labels", True), ("instances", True),
                             ("tomogram", False)):
            mrc = args.run / f"{stem}.mrc"
            volume = read_mrc(mrc, require_voxel_size=False)
            out = Path(tmp) / f"{stem}.zarr"
            write_ome_zarr(out, volume.data, voxel_size=volume.voxel_size, levels=args.levels,
                           labels=labels)
            size_mrc, size_zarr = mrc.stat().st_size, folder_size(out)
            total_mrc += size_mrc
            total_zarr += size_zarr
            print(f"{stem:13s} {volume.data.dtype!s:8s} MRC {size_mrc / 1e6:8.2f} MB   "
                  f"OME-Zarr ({args.levels} levels) {size_zarr / 1e6:8.2f} MB   "
                  f"ratio {size_zarr / size_mrc:.2f}")
    print(f"{'total':13s} {'':8s} MRC {total_mrc / 1e6:8.2f} MB   "
          f"OME-Zarr ({args.levels} levels) {total_zarr / 1e6:8.2f} MB   "
          f"ratio {total_zarr / total_mrc:.2f}")


if __name__ == "__main__":
    main()
