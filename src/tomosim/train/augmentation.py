"""Augmentations of training patches that leave the missing wedge where it is.

The beam travels along z and the tilt axis is y (CONVENTIONS.md), so the missing wedge lies in
the k_x-k_z plane of Fourier space. Mirroring x or y, rotating 180° about z and reversing the
slice order (z) map that wedge onto itself; a 90° rotation about z or a transpose of x and y would
turn it onto the y axis, which real tomograms never show, so they are not offered. Intensity
changes act in normalised units (robust standard deviations, see
:func:`tomosim.train.data.robust_normalise`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from tomosim.train.config import AugmentationConfig


def augment_patch(
    image: np.ndarray,
    labels: np.ndarray,
    *,
    config: AugmentationConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Randomly transform one ``(slices, y, x)`` image stack and its ``(y, x)`` labels.

    Geometric: x flip, y flip, 180° rotation about z, slice-order reversal (each with chance 1/2
    when switched on). Intensity (each with chance ``config.probability``): gain ``1 ± scale``,
    offset ``± shift``, contrast stretch about the patch mean ``1 ± contrast``, Gaussian noise of
    s.d. up to ``noise_std``, in-plane Gaussian blur of s.d. up to ``blur_sigma_px`` (not along z,
    so the axial resolution is untouched).

    Returns
    -------
    image, labels
        New contiguous arrays of the same shapes and dtypes.
    """
    if config.flip_x and rng.random() < 0.5:
        image, labels = image[:, :, ::-1], labels[:, ::-1]
    if config.flip_y and rng.random() < 0.5:
        image, labels = image[:, ::-1, :], labels[::-1, :]
    if config.rotate_180 and rng.random() < 0.5:
        image, labels = image[:, ::-1, ::-1], labels[::-1, ::-1]
    if config.reverse_slices and rng.random() < 0.5:
        image = image[::-1]
    image = np.array(image, dtype=np.float32)
    labels = np.ascontiguousarray(labels)
    p = config.probability
    if config.blur_sigma_px > 0 and rng.random() < p:
        sigma = rng.uniform(0.0, config.blur_sigma_px)
        image = ndimage.gaussian_filter(image, sigma=(0.0, sigma, sigma), mode="reflect")
    if config.contrast > 0 and rng.random() < p:
        mean = image.mean()
        stretch = np.float32(1.0 + rng.uniform(-config.contrast, config.contrast))
        image = mean + (image - mean) * stretch
    if config.intensity_scale > 0 and rng.random() < p:
        image *= np.float32(1.0 + rng.uniform(-config.intensity_scale, config.intensity_scale))
    if config.intensity_shift > 0 and rng.random() < p:
        image += np.float32(rng.uniform(-config.intensity_shift, config.intensity_shift))
    if config.noise_std > 0 and rng.random() < p:
        sigma = rng.uniform(0.0, config.noise_std)
        image += rng.normal(0.0, sigma, size=image.shape).astype(np.float32)
    return image.astype(np.float32, copy=False), labels


def augment_batch(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    config: AugmentationConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Apply :func:`augment_patch` to each of ``(batch, slices, y, x)`` / ``(batch, y, x)``."""
    out_images = np.empty_like(images)
    out_labels = np.empty_like(labels)
    for i in range(images.shape[0]):
        out_images[i], out_labels[i] = augment_patch(images[i], labels[i], config=config, rng=rng)
    return out_images, out_labels
