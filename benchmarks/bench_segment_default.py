"""Benchmark: ``tomosim segment default`` of a 512 x 512 x 200 tomogram, matching included.

Target (issue 12): <= 30 s on 2 CPU cores for the whole command (reading the tomogram, spectrum
matching, the network on every slice, writing the labels), i.e. what a user waits for.

The tomogram is Gaussian noise with dark balls at 10 Å (the model's pixel size; inference cost
does not depend on the content). Timed:

- the ``tomosim segment default TOMO -o LABELS --match-spectrum --threads N --quiet`` command in
  a fresh process (wall time, interpreter and torch start included), twice: right after the
  tomogram was written (on a VM the first run pays for touching freshly written pages), then
  again;
- in-process :func:`tomosim.train.inference.segment_tomogram` with and without
  ``match_spectrum`` (the first network call warmed up; glibc told to keep freed memory, as the
  CLI does).

CPU time is reported next to wall time: the machine may be shared. With ``--device cuda`` (where
a GPU exists) the in-process rows are timed on it too.

Usage::

    python3 benchmarks/bench_segment_default.py [--threads 2] [--shape 200 512 512]

Prints a table and writes ``benchmarks/results/segment_default.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tomosim.io import write_mrc
from tomosim.memory import retain_freed_memory
from tomosim.train.checkpoint import load_checkpoint, network_from_checkpoint
from tomosim.train.inference import segment_tomogram


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shape", type=int, nargs=3, default=(200, 512, 512), help="z y x")
    parser.add_argument("--device", default="cpu", help="device of the in-process rows")
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "segment_default.json"
    )
    return parser.parse_args()


def tomogram(shape: tuple[int, int, int]) -> np.ndarray:
    """Noise with a few hundred dark balls (float32)."""
    rng = np.random.default_rng(0)
    volume = rng.normal(size=shape).astype(np.float32)
    for _ in range(300):
        c = rng.integers(8, np.array(shape) - 8)
        volume[c[0] - 5 : c[0] + 5, c[1] - 5 : c[1] + 5, c[2] - 5 : c[2] + 5] -= 2.0
    return volume


def cpu_seconds() -> float:
    """CPU time of this process and its finished children, s."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    """Run the cases and print the table."""
    args = _arguments()
    torch.set_num_threads(args.threads)
    shape = tuple(args.shape)
    volume = tomogram(shape)  # type: ignore[arg-type]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "tomo.mrc"
        write_mrc(path, volume, voxel_size=10.0)
        command = [sys.executable, "-m", "tomosim.cli", "segment", "default", str(path), "-o",
                   str(Path(scratch) / "labels.mrc"), "--match-spectrum", "--threads",
                   str(args.threads), "--quiet"]
        for run in ("first run, file just written", "repeat"):
            cpu0, wall0 = cpu_seconds(), time.perf_counter()
            subprocess.run(command, check=True, env={**os.environ, "TOMOSIM_OFFLINE": "1"},
                           stdout=subprocess.DEVNULL)
            rows.append((f"tomosim segment default --match-spectrum (CLI, {run})",
                         time.perf_counter() - wall0, cpu_seconds() - cpu0))
    retain_freed_memory()  # as the CLI's network commands do (tomosim.cli.common.require_torch)
    model = load_checkpoint("default")
    network = network_from_checkpoint(model)
    segment_tomogram(model, volume[:8], voxel_size=(10.0,) * 3, network=network,
                     device=args.device)  # warm-up
    for match in (False, True):
        cpu0, wall0 = cpu_seconds(), time.perf_counter()
        segment_tomogram(model, volume, voxel_size=(10.0,) * 3, network=network,
                         match_spectrum=match, device=args.device)
        rows.append((f"segment_tomogram in-process, match_spectrum={match}, {args.device}",
                     time.perf_counter() - wall0, cpu_seconds() - cpu0))
    print(f"segment default, tomogram (z, y, x) {shape}, {args.threads} threads, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible")
    for name, wall, cpu in rows:
        print(f"  {name:78s} wall {wall:7.1f} s   cpu {cpu:7.1f} s")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "shape": list(shape), "threads": args.threads, "device": args.device,
        "load_average": os.getloadavg(),
        "rows": [{"case": n, "wall_s": round(w, 2), "cpu_s": round(c, 2)} for n, w, c in rows],
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
