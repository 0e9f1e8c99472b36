"""Preview: PNG pictures a person can look at (slices, label overlays, power spectra).

Pure functions build ``(height, width, 3)`` uint8 RGB arrays; :func:`write_png` writes one
atomically. Array axes follow CONVENTIONS.md: a volume is ``(z, y, x)``; an xy slice is shown with
y down the page, an xz slice with z down the page.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from tomosim.io import atomic_path


def to_gray(image: np.ndarray, *, percentiles: tuple[float, float] = (0.5, 99.5)) -> np.ndarray:
    """Scale a 2D array to uint8 grey levels between two percentiles (robust contrast)."""
    img = np.asarray(image, dtype=np.float64)
    finite = img[np.isfinite(img)]
    if finite.size == 0:
        return np.zeros(img.shape, np.uint8)
    lo, hi = np.percentile(finite, percentiles)
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        return np.full(img.shape, 128, np.uint8)
    return (np.clip((img - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def overlay_labels(
    gray: np.ndarray,
    labels: np.ndarray,
    colours: dict[int, tuple[int, int, int]],
    *,
    alpha: float = 0.45,
) -> np.ndarray:
    """Blend class colours over a grey image where ``labels > 0``; returns RGB uint8."""
    rgb = np.repeat(gray[..., None], 3, axis=2).astype(np.float64)
    for class_id, colour in colours.items():
        if class_id == 0:
            continue
        mask = labels == class_id
        if mask.any():
            rgb[mask] = (1 - alpha) * rgb[mask] + alpha * np.asarray(colour, np.float64)
    return rgb.astype(np.uint8)


def power_spectrum(image: np.ndarray) -> np.ndarray:
    """Centred log power spectrum of a 2D image (zero frequency at ``shape // 2``)."""
    img = np.asarray(image, dtype=np.float64)
    img = img - img.mean()
    window = np.outer(np.hanning(img.shape[0]), np.hanning(img.shape[1]))
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(img * window))) ** 2
    return np.log1p(spectrum / max(float(np.median(spectrum)), 1e-30))


def _as_rgb(panel: np.ndarray) -> np.ndarray:
    return np.repeat(panel[..., None], 3, axis=2) if panel.ndim == 2 else panel


SCALE_BAR_NM = (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
"""Scale bar lengths to choose from, nm."""


def add_scale_bar(panel: np.ndarray, pixel_size: float) -> tuple[np.ndarray, str]:
    """Draw a scale bar into the lower left of an image; return the image and its length.

    Parameters
    ----------
    panel
        ``(y, x)`` grey or ``(y, x, 3)`` RGB uint8 image.
    pixel_size
        Å per pixel.

    Returns
    -------
    tuple
        RGB uint8 image with a white bar (black outline) about a fifth of its width long, and
        the bar's length as ASCII text (``"100 nm"``, ``"1 um"``: the default font has no µ).
    """
    rgb = _as_rgb(np.asarray(panel, np.uint8)).copy()
    height, width = rgb.shape[:2]
    target_nm = width * pixel_size / 10.0 / 5.0
    length_nm = min(SCALE_BAR_NM, key=lambda nm: abs(np.log(nm / target_nm)))
    length_px = max(1, round(length_nm * 10.0 / pixel_size))
    thick = max(2, height // 60)
    x0, y1 = max(1, width // 20), height - max(2, height // 20)
    y0, x1 = y1 - thick, min(width - 2, x0 + length_px)
    if y0 > 1 and x1 > x0:
        rgb[y0 - 1 : y1 + 1, x0 - 1 : x1 + 1] = 0
        rgb[y0:y1, x0:x1] = 255
    text = f"{length_nm / 1000:g} um" if length_nm >= 1000 else f"{length_nm} nm"
    return rgb, text


def compose(
    panels: Sequence[tuple[str, np.ndarray]],
    *,
    columns: int = 2,
    max_panel_size: int = 384,
    legend: Sequence[tuple[str, tuple[int, int, int] | None]] = (),
    footer: Sequence[str] = (),
) -> np.ndarray:
    """Arrange titled panels (grey uint8 or RGB uint8) in a grid, with a legend and footer.

    A legend entry with colour None is drawn as an empty box (things shown but not coloured,
    e.g. distractor particles labelled background); ``footer`` lines are printed below.
    """
    font = ImageFont.load_default()
    title_h, pad = 16, 6
    scaled: list[tuple[str, Image.Image]] = []
    for title, panel in panels:
        im = Image.fromarray(_as_rgb(np.asarray(panel, np.uint8)))
        factor = max_panel_size / max(im.size)
        if factor < 1 or max(im.size) < 128:
            size = (max(1, round(im.size[0] * factor)), max(1, round(im.size[1] * factor)))
            im = im.resize(
                size, Image.Resampling.NEAREST if factor > 1 else Image.Resampling.BILINEAR
            )
        scaled.append((title, im))
    columns = max(1, min(columns, len(scaled)))
    rows = -(-len(scaled) // columns)
    cell_w = max(im.size[0] for _, im in scaled) + pad
    cell_h = max(im.size[1] for _, im in scaled) + title_h + pad
    legend_h = 18 if legend else 0
    footer_h = 14 * len(footer)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    legend_w = sum(24 + int(measure.textlength(name, font=font)) for name, _ in legend)
    text_w = max([legend_w, *(int(measure.textlength(t, font=font)) for t in footer)], default=0)
    width = max(cell_w * columns + pad, text_w + 2 * pad)
    canvas = Image.new("RGB", (width, cell_h * rows + pad + legend_h + footer_h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for k, (title, im) in enumerate(scaled):
        x0 = pad + (k % columns) * cell_w
        y0 = pad + (k // columns) * cell_h
        draw.text((x0, y0), title, fill=(0, 0, 0), font=font)
        canvas.paste(im, (x0, y0 + title_h))
    x = pad
    for name, colour in legend:
        y = canvas.size[1] - footer_h - legend_h + 3
        if colour is None:
            draw.rectangle([x, y, x + 10, y + 10], outline=(0, 0, 0))
        else:
            draw.rectangle([x, y, x + 10, y + 10], fill=tuple(colour))
        draw.text((x + 14, y - 1), name, fill=(0, 0, 0), font=font)
        x += 24 + int(draw.textlength(name, font=font))
    for k, line in enumerate(footer):
        draw.text((pad, canvas.size[1] - footer_h + 14 * k), line, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def write_png(path: str | os.PathLike[str], rgb: np.ndarray) -> None:
    """Write an RGB (or grey) uint8 array as PNG, atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(rgb, np.uint8)).save(tmp, format="PNG")
