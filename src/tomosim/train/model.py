"""The 2.5D U-Net: ``slices`` adjacent z-slices in as channels, class scores for the centre slice.

Built on MONAI's :class:`monai.networks.nets.UNet` with ``spatial_dims=2`` (Ronneberger et al.
2015, MICCAI; residual units after Kerfoot et al. 2018, STACOM). Level ``i`` of the network has
``base_channels * 2**i`` feature channels and halves the image ``depth`` times, so its input's y
and x sizes must be multiples of ``2**depth``: :func:`predict_logits` pads by reflection and crops.

The default (5 slices, depth 3, 16 base channels, two-convolution residual units, batch norm) is
small enough to segment a 512 x 512 x 200 tomogram on two CPU cores in well under a minute (see
benchmarks/bench_segment.py). Batch normalisation is the default because its inference statistics
do not depend on the image size, so whole slices see the same normalisation as training patches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.nets import UNet

from tomosim.train.config import NetworkConfig


def build_network(network: NetworkConfig, *, classes: int) -> torch.nn.Module:
    """A 2D U-Net mapping ``(batch, slices, y, x)`` to ``(batch, classes, y, x)`` logits.

    Parameters
    ----------
    network
        Architecture: slices (input channels), depth, base_channels, residual_units, norm, dropout.
    classes
        Number of output classes, background included.

    Notes
    -----
    Weights are initialised from torch's global generator; seed it (``torch.manual_seed``) for
    reproducible networks.
    """
    channels = tuple(network.base_channels * 2**level for level in range(network.depth + 1))
    return UNet(
        spatial_dims=2,
        in_channels=network.slices,
        out_channels=classes,
        channels=channels,
        strides=(2,) * network.depth,
        num_res_units=network.residual_units,
        norm=network.norm,
        dropout=network.dropout,
    )


def predict_logits(network: torch.nn.Module, images: torch.Tensor, *, depth: int) -> torch.Tensor:
    """Run ``network`` on ``(batch, slices, y, x)`` images of any y, x size.

    y and x are padded up to multiples of ``2**depth`` by reflection (by repetition where the
    image is too small to reflect) and the logits are cropped back to the input size.
    """
    step = 2**depth
    ny, nx = images.shape[-2:]
    pad_y, pad_x = (-ny) % step, (-nx) % step
    if pad_y or pad_x:
        mode = "reflect" if pad_y < ny and pad_x < nx else "replicate"
        images = F.pad(images, (0, pad_x, 0, pad_y), mode=mode)
    logits = network(images)
    return logits[..., :ny, :nx]
