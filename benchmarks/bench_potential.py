"""Benchmark: potential of apoferritin 4V1W (32,736 atoms) at 10 Å and 2 Å, first time, no cache.

Steps, each timed on its own:

1. numba JIT: the first :func:`tomosim.potential.atoms_to_potential` call on a 3-atom model. With
   ``--fresh-jit`` numba's on-disk cache is pointed at an empty folder, so this is a true
   compilation; otherwise it is usually a load from numba's cache.
2. reading the model: :func:`tomosim.structures.read_structure` of ``4v1w.cif.gz`` (from
   ``$TOMOSIM_STRUCTURES`` or ``../shared/structures``).
3. the potential, solvent ``none`` and ``ice``, at 10 Å and 2 Å: the first call (the number that
   the targets refer to) and the best of ``--repeats`` further calls.
4. end to end with an empty potential cache: :func:`tomosim.cache.load_potential` (hash the
   file, read, compute, write the cache entry), then the same call served from the cache.

Targets (issue 2): <= 0.5 s at 10 Å and <= 2 s at 2 Å on 2 cores, first time, no cache.

Writes ``benchmarks/results/potential.json``.

Run: ``python3 benchmarks/bench_potential.py [--quick] [--repeats N] [--fresh-jit]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
TARGETS_S = {10.0: 0.5, 2.0: 2.0}


def find_apoferritin() -> Path:
    names = ("4v1w.cif.gz", "4V1W.cif.gz", "4v1w.cif", "4V1W.cif")
    folders = [Path(p) for p in os.environ.get("TOMOSIM_STRUCTURES", "").split(os.pathsep) if p]
    folders.append(REPO.parent / "shared" / "structures")
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    sys.exit("bench_potential: 4v1w.cif.gz not found in $TOMOSIM_STRUCTURES or ../shared/structures")


def timed(function, *args, **kwargs) -> tuple[float, Any]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repeat")
    parser.add_argument("--repeats", type=int, default=3, help="further calls, best reported")
    parser.add_argument("--fresh-jit", action="store_true", help="compile numba from scratch")
    args = parser.parse_args()
    repeats = 1 if args.quick else max(1, args.repeats)
    scratch = Path(tempfile.mkdtemp(prefix="bench_potential_"))
    if args.fresh_jit:
        os.environ["NUMBA_CACHE_DIR"] = str(scratch / "numba")
    os.environ["TOMOSIM_CACHE_DIR"] = str(scratch / "cache")

    import numba
    import numpy as np

    from tomosim.config import PotentialConfig, StructureOptions
    from tomosim.cache import load_potential
    from tomosim.potential import atoms_to_potential
    from tomosim.structures import Atoms, read_structure

    tiny = Atoms(
        positions=np.array([[0.0, 0, 0], [1.5, 0, 0], [0, 1.5, 0]]),
        elements=np.array(["C", "N", "O"]),
        b_factors=np.zeros(3),
        occupancies=np.ones(3),
        chain_ids=np.array(["A"] * 3),
        hydrogens=np.array([1, 1, 0]),
    )
    jit_s, _ = timed(atoms_to_potential, tiny, 2.0, solvent="ice")
    path = find_apoferritin()
    read_s, atoms = timed(read_structure, path)

    rows: list[dict[str, Any]] = []
    for pixel in (10.0, 2.0):
        for solvent in ("none", "ice"):
            first_s, potential = timed(atoms_to_potential, atoms, pixel, solvent=solvent)
            again = [timed(atoms_to_potential, atoms, pixel, solvent=solvent)[0] for _ in range(repeats)]
            rows.append(
                {
                    "pixel_size": pixel,
                    "solvent": solvent,
                    "shape": list(potential.data.shape),
                    "first_s": round(first_s, 4),
                    "best_s": round(min(again), 4),
                    "target_s": TARGETS_S[pixel],
                    "meets_target": first_s <= TARGETS_S[pixel],
                    "integral_v_a3": round(potential.integral, 1),
                }
            )

    end_to_end: list[dict[str, Any]] = []
    for pixel in (10.0, 2.0):
        config = PotentialConfig(solvent="ice")
        cold_s, _ = timed(load_potential, path, pixel, potential=config, structure=StructureOptions())
        warm_s, _ = timed(load_potential, path, pixel, potential=config, structure=StructureOptions())
        end_to_end.append(
            {"pixel_size": pixel, "solvent": "ice", "cold_cache_s": round(cold_s, 4),
             "warm_cache_s": round(warm_s, 4)}
        )

    load = os.getloadavg()
    result = {
        "benchmark": "potential",
        "structure": str(path.name),
        "atoms": len(atoms),
        "implicit_hydrogens": int(atoms.hydrogens.sum()),
        "threads": numba.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_before_after": [round(x, 2) for x in load],
        "jit_s": round(jit_s, 3),
        "jit_kind": "compiled" if args.fresh_jit else "compiled or loaded from numba cache",
        "read_structure_s": round(read_s, 4),
        "potential": rows,
        "load_potential": end_to_end,
        "summary": [
            {
                "stage": f"potential {row['solvent']}",
                "size": f"4V1W {len(atoms)} atoms at {row['pixel_size']:g} Å, {'x'.join(map(str, row['shape']))}",
                "time_s": row["first_s"],
                "alternative": f"target {row['target_s']} s",
            }
            for row in rows
        ],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "potential.json").write_text(json.dumps(result, indent=2) + "\n")

    print(f"4V1W: {len(atoms)} atoms, {int(atoms.hydrogens.sum())} implicit H; "
          f"numba threads {numba.get_num_threads()}, load average {load[0]:.2f}")
    print(f"numba JIT ({result['jit_kind']}): {jit_s:.3f} s; read_structure: {read_s:.3f} s")
    print(f"{'pixel Å':>8} {'solvent':>8} {'shape':>14} {'first s':>9} {'best s':>8} {'target s':>9} ok")
    for row in rows:
        shape = "x".join(map(str, row["shape"]))
        print(f"{row['pixel_size']:>8g} {row['solvent']:>8} {shape:>14} {row['first_s']:>9.3f} "
              f"{row['best_s']:>8.3f} {row['target_s']:>9.1f} {'yes' if row['meets_target'] else 'NO'}")
    for row in end_to_end:
        print(f"load_potential {row['pixel_size']:g} Å ice: empty cache {row['cold_cache_s']:.3f} s "
              f"(hash + read + compute + write), from cache {row['warm_cache_s']:.3f} s")
    print(f"wrote {RESULTS / 'potential.json'}")


if __name__ == "__main__":
    main()
