"""A tiny simulated run folder shared by the file-format tests (built once per test module)."""

from __future__ import annotations

from pathlib import Path

from tomosim.config import config_from_dict
from tomosim.pipeline import simulate

PIXEL = 10.0

CONFIG = {
    "seed": 11,
    "classes": ["apoferritin", "proteasome", "actin"],
    "sample": {"shape": [32, 64, 72], "pixel_size": PIXEL},
    "proteins": {
        "placement": "random",
        "min_gap": 10.0,
        "species": [
            {"name": "apoferritin", "source": "builtin:apoferritin", "count": 3},
            {"name": "proteasome", "source": "builtin:proteasome", "count": 2},
        ],
    },
    "filaments": [
        {"name": "actin", "preset": "actin", "count": 1, "length": [300, 400],
         "arrangement": "random"},
    ],
    "microscope": {
        "tilt": {"min_angle": -45, "max_angle": 45, "step": 15, "tilt_axis_angle": 5.0,
                 "shift_error": 20.0, "rotation_error": 1.0, "angle_error": 0.3},
        "optics": {"defocus_jitter_um": 0.2, "astigmatism_um": 0.1},
    },
    "output": {"previews": False, "tomogram_name": "TS_07"},
}


def make_run(folder: Path, *, shape: list[int] | None = None, **output: object) -> Path:
    """Simulate the tiny config into ``folder``; ``output`` overrides the output section."""
    tree = {**CONFIG, "output": {**CONFIG["output"], **output}}
    if shape is not None:
        tree["sample"] = {**CONFIG["sample"], "shape": shape}
    simulate(config_from_dict(tree), folder, progress=False)
    return folder
