"""Preview: scale bar length, legend for distractors, settings line."""

from __future__ import annotations

import numpy as np
import pytest

from tomosim.preview import add_scale_bar, compose


@pytest.mark.parametrize(("width", "pixel_size", "text", "bar_px"),
                         [(320, 10.0, "50 nm", 50), (512, 2.0, "20 nm", 100),
                          (200, 50.0, "200 nm", 40), (1000, 30.0, "500 nm", 167)])
def test_scale_bar_has_the_stated_length(width, pixel_size, text, bar_px) -> None:
    image, label = add_scale_bar(np.zeros((200, width), np.uint8), pixel_size)
    assert label == text
    white_columns = np.flatnonzero((image[..., 0] == 255).any(axis=0))
    assert white_columns.size == bar_px  # length_nm * 10 / pixel_size pixels
    assert np.all(np.diff(white_columns) == 1)


def test_compose_fits_legend_and_footer_text() -> None:
    panel = np.zeros((40, 40), np.uint8)
    narrow = compose([("p", panel)])
    wide = compose([("p", panel)], legend=[("distractors (labelled background)", None)],
                   footer=["300 kV, defocus 3 um, dose 100 e/A^2, tilts -60..60 deg step 3" * 3])
    assert wide.shape[1] > narrow.shape[1] and wide.shape[0] > narrow.shape[0]


def test_demo_preview_settings_line() -> None:
    from tomosim.pipeline import demo_config, preview_settings

    line = preview_settings(demo_config())
    assert line.startswith("300 kV, defocus 3 um, dose 100 e/A^2, tilts -60..60 deg step 3")
    assert line.isascii()
