"""Amplitude-spectrum matching for training and inference.

Training (``spectrum_match`` in the training config): every training tomogram, as the network
sees it (resampled to the model's pixel size and robustly normalised), is filtered so that its
radial amplitude spectrum equals a random mixture of the target tomograms' spectra (weights
drawn from a flat Dirichlet distribution, one draw per tomogram, from the run's seed), then
normalised again. The network thus learns on phantoms whose contrast per spatial frequency
(CTF envelope, noise colour, reconstruction filter) is that of the user's data.

Inference (``segment --match-spectrum``): the user's tomogram, on the model grid and normalised,
is filtered to the spectrum of the training data stored in the model, then normalised again.

Both use :func:`tomosim.spectrum.match_spectrum`; phases are kept, so structures do not move.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tomosim.errors import TomosimError
from tomosim.formats.volumes import read_volume
from tomosim.spectrum import (
    RadialSpectrum,
    match_spectrum,
    mean_spectrum,
    radial_amplitude_spectrum,
)
from tomosim.train.config import SpectrumTarget
from tomosim.train.data import (
    NORMALISATION,
    TrainingVolume,
    needs_resampling,
    resample_volume,
    robust_normalise,
)

CLIP = float(NORMALISATION["clip"])
"""Clip of :func:`tomosim.train.data.robust_normalise`, as in training."""


def target_spectrum(target: SpectrumTarget, *, pixel_size: float) -> RadialSpectrum:
    """Spectrum of a target tomogram on the model grid (resampled to ``pixel_size``, normalised).

    Raises
    ------
    TomosimError
        Unreadable file; no voxel size and none stated; a stated pixel size that differs from
        the header's by more than 1 %; not 3D. The message names the file.
    """
    volume = read_volume(target.path, require_voxel_size=False)
    header = float(volume.voxel_size[2])
    if target.pixel_size is not None and header > 0 and abs(header / target.pixel_size - 1) > 0.01:
        raise TomosimError(
            f"spectrum-match target has pixel size {header:g} Å in its header, not the stated "
            f"{target.pixel_size:g} Å: {target.path}"
        )
    if header <= 0 and target.pixel_size is None:
        raise TomosimError(
            f"spectrum-match target has no voxel size: state it ({{path, pixel_size}}): "
            f"{target.path}"
        )
    voxel = volume.voxel_size if header > 0 else (target.pixel_size,) * 3
    if volume.data.ndim != 3 or min(volume.data.shape) < 8:
        raise TomosimError(
            f"spectrum-match target must be a 3D tomogram of at least 8 voxels per axis, got "
            f"shape {volume.data.shape}: {target.path}"
        )
    image = np.asarray(volume.data, dtype=np.float32)
    if needs_resampling(voxel, pixel_size):  # type: ignore[arg-type]
        image = resample_volume(image, voxel_size=voxel, pixel_size=pixel_size)  # type: ignore[arg-type]
    image = robust_normalise(image, clip=CLIP)
    try:
        return radial_amplitude_spectrum(image, pixel_size=pixel_size)
    except TomosimError as exc:
        raise TomosimError(f"{exc}: {target.path}") from None


def match_training_volumes(
    volumes: Sequence[TrainingVolume],
    targets: Sequence[RadialSpectrum],
    *,
    pixel_size: float,
    rng: np.random.Generator,
) -> list[TrainingVolume]:
    """Filter each volume's image to a random mixture of ``targets`` and normalise it again.

    Parameters
    ----------
    volumes
        Training volumes at ``pixel_size`` (normalised images).
    targets
        Target spectra at ``pixel_size`` (:func:`target_spectrum`).
    pixel_size
        Å per voxel of the volumes.
    rng
        Draws one set of mixing weights per volume (flat Dirichlet).

    Returns
    -------
    list of TrainingVolume
        New volumes with the matched images and the same labels.
    """
    out = []
    for volume in volumes:
        weights = rng.dirichlet(np.ones(len(targets)))
        mixed = mean_spectrum(list(targets), weights)
        image = match_spectrum(volume.image, pixel_size=pixel_size, target=mixed)
        image = robust_normalise(image, clip=CLIP)
        out.append(TrainingVolume(image=image, labels=volume.labels, name=volume.name))
    return out


def training_spectrum(
    images: Sequence[np.ndarray], *, pixel_size: float
) -> RadialSpectrum | None:
    """Mean radial amplitude spectrum of normalised training images (stored in the model).

    Images with fewer than 8 voxels along an axis are skipped; None if none is left.
    """
    usable = [i for i in images if i.ndim == 3 and min(i.shape) >= 8]
    if not usable:
        return None
    return mean_spectrum([radial_amplitude_spectrum(i, pixel_size=pixel_size) for i in usable])


def match_to_model(image: np.ndarray, spectrum: dict, *, pixel_size: float) -> np.ndarray:
    """Filter a normalised tomogram on the model grid to the model's training spectrum.

    Raises
    ------
    TomosimError
        The model was trained at another pixel size than its stored spectrum (damaged model).
    """
    target = RadialSpectrum.from_dict(spectrum)
    matched = match_spectrum(image, pixel_size=pixel_size, target=target)
    return robust_normalise(matched, clip=CLIP)
