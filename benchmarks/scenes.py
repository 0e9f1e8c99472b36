"""Shared benchmark scenes and a peak-memory sampler (imported by the bench_*.py scripts)."""

from __future__ import annotations

import threading
import time

import psutil

SCENE = {
    "seed": 0,
    "classes": ["ribosome", "proteasome", "apoferritin", "tubulin", "actin", "cofilactin",
                "microtubule", "membrane"],
    "sample": {"shape": [200, 512, 512], "pixel_size": 10.0},
    "potential": {"solvent": "ice"},
    "proteins": {
        "placement": "random",
        "min_gap": 10.0,
        "species": [
            {"name": "ribosome", "source": "builtin:ribosome", "count": 250},
            {"name": "proteasome", "source": "builtin:proteasome", "count": 250},
            {"name": "apoferritin", "source": "builtin:apoferritin", "count": 300},
            {"name": "tubulin", "source": "builtin:tubulin", "count": 200},
            {"name": "decoy", "source": "builtin:apoferritin", "count": 50, "label": "background"},
        ],
    },
    # the coarse built-in subunits on the lattices of earlier versions, so that the timings stay
    # comparable and offline; bench_real_filaments.py times the real-structure presets
    "filaments": [
        {"name": "actin", "preset": "actin", "source": "builtin:actin", "rise": 27.5,
         "twist": -166.7, "radius": 15.8, "outer_radius": 48.0, "count": 28,
         "length": [1000, 3000], "arrangement": "random",
         "decoration": {"preset": None, "source": "builtin:cofilactin", "rise": 27.0,
                        "twist": -162.0, "radius": 16.0, "outer_radius": 72.0,
                        "label": "cofilactin", "fraction": 0.4, "mean_segment_subunits": 25}},
        {"name": "microtubule", "preset": "microtubule", "source": "builtin:tubulin",
         "radius": 110.0, "start": 3, "outer_radius": 140.0, "count": 12,
         "length": [1500, 3500], "arrangement": "random"},
    ],
    "vesicles": {"count": 2, "radius": [400, 700]},
}


class PeakMemory:
    """Samples the process RSS every 5 ms in a thread; ``peak`` in bytes."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
