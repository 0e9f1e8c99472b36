"""Run every benchmark and collect the results into one table.

Runs each ``benchmarks/bench_*.py`` that exists (in name order, one subprocess each, ``--quick``
passed on to scripts that accept it), reads the JSON each writes to
``benchmarks/results/NAME.json``, and prints one markdown table (stage, size, time, throughput,
peak memory, ratio vs alternative) under a description of the machine (CPU model, cores, RAM,
load, versions). Writes ``benchmarks/results/summary.json`` and ``docs/benchmarks.md``.

Run: ``python3 benchmarks/run_all.py [--quick] [--only dataset reconstruct] [--no-run]``

Result format
-------------
A benchmark's JSON may hold a ``"summary"`` list of rows with these keys (all but ``stage``
optional)::

    {"stage": "reconstruct", "size": "512x512x200, 61 tilts", "time_s": 3.2,
     "throughput": "8.1 G voxel-tilt/s", "peak_memory_mb": 612, "ratio": 95.0,
     "alternative": "skimage iradon"}

Results without ``"summary"`` are read by key names: ``problem``/``size`` for the size, the first
``*seconds_best``/``*seconds``/``time_s`` for the time, ``*per_s``/``*per_hour`` for throughput,
``peak*mb`` for memory and ``speedup*``/``ratio*`` for the ratio. The peak resident memory of the
benchmark process (measured here) fills in a missing memory figure.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"
DOC = REPO / "docs" / "benchmarks.md"
COLUMNS = ("stage", "size", "time", "throughput", "peak memory", "ratio vs alternative")
PACKAGES = ("tomosim", "numpy", "scipy", "numba", "gemmi", "mrcfile", "dask", "distributed", "torch",
            "scikit-image")


def machine_description() -> dict[str, Any]:
    """CPU model, cores, RAM, load, OS, Python and package versions, git commit."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram_gb = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout.strip() or None
    except OSError:
        commit = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "ram_gb": ram_gb,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
        "git_commit": commit,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def run_benchmark(script: Path, *, quick: bool, timeout: float) -> dict[str, Any]:
    """Run one benchmark script; returns exit code, wall time, peak RSS and its output tail."""
    command = [sys.executable, str(script)]
    if quick and "--quick" in script.read_text():
        command.append("--quick")
    start = time.perf_counter()
    with open(RESULTS / f"{script.stem}.log", "w") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        deadline = start + timeout
        status, usage = 0, None
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                _, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.2)
        process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    tail = (RESULTS / f"{script.stem}.log").read_text()[-2000:]
    timed_out = wall > timeout
    return {
        "command": " ".join(command[1:]),
        "exit_code": process.returncode,
        "timed_out": timed_out,
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1) if usage is not None else None,
        "output_tail": tail,
    }


def _find(result: dict[str, Any], *patterns: str, numeric: bool = True) -> tuple[str, Any] | None:
    for pattern in patterns:
        for key, value in result.items():
            if numeric and (isinstance(value, bool) or not isinstance(value, (int, float))):
                continue
            if "target" in key.lower() or "limit" in key.lower():  # goals, not measurements
                continue
            if fnmatch.fnmatchcase(key.lower(), pattern):
                return key, value
    return None


def rows_from_result(name: str, result: Any, run: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Table rows of one benchmark's JSON (see the module docstring)."""
    rss = None if run is None else run.get("peak_rss_mb")
    if isinstance(result, dict) and isinstance(result.get("summary"), list):
        rows = []
        for item in result["summary"]:
            if isinstance(item, dict):
                row = {"stage": str(item.get("stage", name)), **item}
                row.setdefault("peak_memory_mb", rss)
                rows.append(row)
        return rows
    if not isinstance(result, dict):
        return [{"stage": name, "note": "unreadable result"}]
    row: dict[str, Any] = {"stage": name}
    size = _find(result, "problem", "size", "shape", numeric=False)
    if size is not None:
        row["size"] = size[1]
    found = _find(result, "time_s", "wall_s", "*seconds_best", "*_seconds", "seconds*", "*_s")
    if found is not None:
        row["time_s"] = found[1]
    found = _find(result, "*per_hour*", "*per_s*", "*throughput*")
    if found is not None:
        row["throughput"] = f"{_number(found[1])} {found[0].replace('_', ' ')}"
    found = _find(result, "*peak*mb*", "*memory*mb*")
    row["peak_memory_mb"] = found[1] if found is not None else rss
    found = _find(result, "*speedup*", "*ratio*")
    if found is not None:
        row["ratio"] = found[1]
        row["alternative"] = found[0].replace("speedup_vs_", "").replace("_", " ")
    return [row]


def _number(value: Any) -> str:
    if isinstance(value, float):
        if value == 0 or 0.01 <= abs(value) < 1e5:
            return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
        return f"{value:.3g}"
    return str(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        time_s = row.get("time_s")
        ratio = row.get("ratio")
        memory = row.get("peak_memory_mb")
        cells = [
            str(row.get("stage", "")),
            str(row.get("size", "")),
            "" if time_s is None else f"{_number(float(time_s))} s",
            str(row.get("throughput", "")),
            "" if memory is None else f"{float(memory):,.0f} MB",
            "" if ratio is None else f"{_number(float(ratio))}× {row.get('alternative', '')}".strip(),
        ]
        if row.get("note"):
            cells[1] = (cells[1] + " " if cells[1] else "") + f"({row['note']})"
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return "\n".join(lines)


def machine_text(machine: dict[str, Any]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    return (
        f"Machine: {machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} usable), "
        f"{machine['ram_gb']} GB RAM, {machine['os']}, Python {machine['python']}; "
        f"load average {machine['load_average_1min']} at the start; commit {machine['git_commit']}; "
        f"{machine['date']}.\n\nVersions: {versions}."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to benchmarks that have it")
    parser.add_argument("--only", nargs="*", default=None, help="names to run (e.g. dataset)")
    parser.add_argument("--no-run", action="store_true", help="only collect existing results")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per benchmark")
    args = parser.parse_args()

    RESULTS.mkdir(parents=True, exist_ok=True)
    machine = machine_description()
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.only]
    runs: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    for script in scripts:
        name = script.stem.removeprefix("bench_")
        if not args.no_run:
            print(f"running {script.name} ...", flush=True)
            runs[name] = run_benchmark(script, quick=args.quick, timeout=args.timeout)
            state = "timed out" if runs[name]["timed_out"] else f"exit {runs[name]['exit_code']}"
            print(f"  {state} after {runs[name]['wall_s']:.0f} s", flush=True)
        result_path = RESULTS / f"{name}.json"
        run = runs.get(name)
        if run is not None and (run["exit_code"] != 0 or run["timed_out"]):
            why = "timed out" if run["timed_out"] else f"failed, exit {run['exit_code']}"
            rows.append({"stage": name, "note": f"{why}; see results/{script.stem}.log"})
            continue
        if not result_path.is_file():
            rows.append({"stage": name, "note": f"no results/{name}.json"})
            continue
        try:
            result = json.loads(result_path.read_text())
        except ValueError:
            result = None
        rows.extend(rows_from_result(name, result, run))

    table = markdown_table(rows)
    text = machine_text(machine)
    print()
    print(text)
    print()
    print(table)
    summary = {"machine": machine, "quick": args.quick, "rows": rows, "runs": runs}
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(
        "# Benchmarks\n\n"
        "Generated by `python3 benchmarks/run_all.py"
        + (" --quick" if args.quick else "")
        + "`, which runs every `benchmarks/bench_*.py` and collects `benchmarks/results/*.json`"
        " (see the docstring of `benchmarks/run_all.py` for the result format). Timings depend on"
        " the machine and on its load: other jobs sharing the cores slow every figure down.\n\n"
        + text + "\n\n" + table + "\n\n"
        + "Peak memory is the benchmark's own figure when it reports one, else the peak resident"
        " memory of its process. Per-benchmark details: `benchmarks/results/NAME.json`; logs:"
        " `benchmarks/results/bench_NAME.log`.\n"
        + NOTES
    )
    print(f"\nwrote {RESULTS / 'summary.json'} and {DOC}")
    failed = [r for r in runs.values() if r["exit_code"] != 0 or r["timed_out"]]
    return 1 if failed else 0


NOTES = """
## Reading the figures

- **Targets on 2 cores** (issues 2-6): potential of 4V1W <= 0.5 s at 10 Å and <= 2 s at 2 Å;
  assembly of the 512x512x200 scene (>= 1000 proteins, >= 40 filaments) <= 5 s and <= 1.5 GB;
  reconstruction <= 2 s and >= 50x scikit-image `iradon`; microscope stage <= 8 s; `simulate`
  end to end <= 15 s; `segment` <= 60 s; >= 300 phantoms/hour.
- **Dataset workers.** A worker is a Dask worker process that simulates one phantom at a time
  with `cores // workers` numba threads. The 1.8x target compares 2 single-threaded workers with
  1 single-threaded worker (adding a worker of the same size). `--workers 1` (in this process)
  runs one phantom at a time with numba threads on both cores, but a phantom keeps only about
  1.2-1.4 cores busy, so 2 workers beat it by less (the "vs in process" row): that is the gain a
  user of a 2-core machine sees from `--workers 2`. The machine is shared and its speed drifts by
  10-40 % within minutes, so the three runs are interleaved over three rounds and the medians
  shown, with each round's ratio. The "control" row runs fixed compute tasks (tomosim's WBP and
  projection kernels, no I/O) on the same 1- and 2-worker clusters in each round: its ratio is
  what this VM gave perfectly parallel work at the time (1.6-2.1 over this session's runs; its
  second core is not always a whole core), so a dataset ratio near it means the dataset path
  itself scales. Dask's default `MALLOC_TRIM_THRESHOLD_` in worker processes
  made phantoms ~40 % slower; tomosim's local cluster removes it (docs/dataset.md). The
  per-phantom seeds make the outputs byte-identical for any number of workers.
- **Training on the fly** shares the cores between simulating and training, so on 2 cores it is
  slower per iteration than training on a stored set (whose simulation is not counted in that
  row); it stores nothing and sees a fresh phantom every `refresh_every` iterations.
- **ASTRA** (`pip install astra-toolbox`, optional, not a dependency): its 3D algorithms need
  CUDA, so the CPU reference is its 2D FBP run row by row, which uses one thread (CPU time =
  wall time) while tomosim's WBP uses both cores; per core the ratio is about half the one shown.
  Both reconstruct the same projected ball phantom and their volumes are compared (correlation).
- `iradon` is timed on 16 of the 512 sinogram rows and extrapolated (its cost is linear in rows).
"""


if __name__ == "__main__":
    sys.exit(main())
