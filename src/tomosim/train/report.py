"""Training report: ``metrics.json`` and ``training_curve.png`` of a trained model's folder."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from tomosim.io import atomic_path, write_text
from tomosim.train.checkpoint import ModelCheckpoint


def write_training_report(output_dir: str | os.PathLike[str], checkpoint: ModelCheckpoint) -> None:
    """Write ``metrics.json`` (final record, history, classes, torch threads) and the curve."""
    root = Path(output_dir)
    history = checkpoint.history
    report = {
        "epochs": checkpoint.epoch,
        "iterations": checkpoint.iteration,
        "pixel_size": checkpoint.pixel_size,
        # the weights depend on torch's thread count (CONVENTIONS.md): recorded to reproduce them
        "torch_threads": torch.get_num_threads(),
        "classes": dict(zip(checkpoint.classes.names, checkpoint.classes.ids, strict=False)),
        "final": history[-1] if history else None,
        "history": history,
    }
    write_text(root / "metrics.json", json.dumps(report, indent=2) + "\n")
    image = draw_training_curve(history)
    with atomic_path(root / "training_curve.png") as tmp:
        image.save(tmp, format="PNG")


def draw_training_curve(history: Sequence[dict[str, Any]], *, size: tuple[int, int] = (900, 360)):
    """Two panels drawn with Pillow: loss (training, validation) and validation Dice per epoch.

    Returns
    -------
    PIL.Image.Image
        An RGB image of ``size`` (width, height) pixels.
    """
    from PIL import Image, ImageDraw

    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    epochs = [r["epoch"] for r in history]
    panels = [
        ("loss", [("training", [r["loss"] for r in history], (31, 119, 180)),
                  ("validation", [r.get("validation_loss") for r in history], (255, 127, 14))]),
        ("validation Dice", [("mean foreground", [r.get("validation_dice") for r in history],
                              (44, 160, 44))]),
    ]
    panel_width = width // len(panels)
    for index, (title, series) in enumerate(panels):
        left, top = index * panel_width + 60, 30
        right, bottom = (index + 1) * panel_width - 20, height - 40
        draw.rectangle((left, top, right, bottom), outline="black")
        draw.text((left, 8), title, fill="black")
        values = [v for _, ys, _ in series for v in ys if v is not None]
        if title == "validation Dice":
            low, high = 0.0, 1.0
        else:
            low, high = (min(values), max(values)) if values else (0.0, 1.0)
            if high - low < 1e-12:
                low, high = low - 0.5, high + 0.5
        first, last = (min(epochs), max(epochs)) if epochs else (0, 1)
        span = max(1, last - first)

        def point(epoch: float, value: float) -> tuple[float, float]:
            # called within this iteration only
            x = left + (epoch - first) / span * (right - left)  # noqa: B023
            y = bottom - (value - low) / (high - low) * (bottom - top)  # noqa: B023
            return x, y

        for tick in range(5):
            value = low + (high - low) * tick / 4
            _, y = point(first, value)
            draw.line((left - 4, y, left, y), fill="black")
            draw.text((4 + index * panel_width, y - 6), f"{value:.3g}", fill="black")
        for tick in sorted({first, last, (first + last) // 2}):
            x, _ = point(tick, low)
            draw.line((x, bottom, x, bottom + 4), fill="black")
            draw.text((x - 6, bottom + 6), str(tick), fill="black")
        draw.text(((left + right) // 2 - 15, height - 16), "epoch", fill="black")
        for line, (name, ys, colour) in enumerate(series):
            points = [point(e, v) for e, v in zip(epochs, ys, strict=False) if v is not None]
            if len(points) > 1:
                draw.line(points, fill=colour, width=2)
            for x, y in points:
                draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour)
            draw.text((right - 120, top + 6 + 14 * line), name, fill=colour)
    return image
