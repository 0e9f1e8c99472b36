r"""The README's napari screenshot: a tomosim run folder opened with the tomosim reader plugin.

Headless (no display): a virtual X server and a Qt binding, neither needed by tomosim itself::

    apt-get install xvfb libgl1-mesa-dri libxkbcommon-x11-0 libxcb-cursor0 ...  # Debian 12
    pip install "tomosim[napari]" PyQt5
    TOMOSIM_OFFLINE=1 tomosim demo -o demo --set sample.shape=[64,200,200] \
        --set microscope.tilt.step=3 --seed 2
    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/napari_screenshot.py demo shot.png

Particles are drawn as rings 110 Å wide within ±60 Å of the displayed slice, so each ring should
sit on its labelled object.
"""

import sys

import napari

from tomosim.formats.napari import get_reader

run = sys.argv[1]
viewer = napari.Viewer(show=False)
for data, kwargs, kind in get_reader(run)(run):
    getattr(viewer, f"add_{kind}")(data, **kwargs)
tomo = viewer.layers["tomogram"]
viewer.window.resize(1400, 900)
viewer.reset_view()
viewer.dims.set_point(0, tomo.data.shape[0] // 2 * tomo.scale[0])
points = viewer.layers["particles"]
points.border_color = points.face_color.copy()
points.face_color = "transparent"
points.size = 110
points.projection_mode = "all"
viewer.dims.margin_left = (60.0, 0.0, 0.0)
viewer.dims.margin_right = (60.0, 0.0, 0.0)
for name in ("tomogram", "labels"):
    viewer.layers[name].projection_mode = "none"
viewer.layers.selection.active = viewer.layers["labels"]
viewer.screenshot(sys.argv[2], canvas_only=False)
viewer.close()
