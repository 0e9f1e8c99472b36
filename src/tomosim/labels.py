"""Labels: the class table (id, name, colour) and consistency checks of label volumes.

Class ids come from :meth:`tomosim.config.SimulationConfig.class_ids`: ``0`` is background, the
config's classes follow in order (1, 2, ...), and an id never shifts when its class places nothing.
``labels.mrc`` holds uint8 class ids (255 is reserved for "not labelled" in fine-tuning labels);
``instances.mrc`` holds one id per object (0 = none), and ``labels == instance_class[instances]``.
"""

from __future__ import annotations

import colorsys

import numpy as np

from tomosim.config import SimulationConfig

BACKGROUND_COLOUR = (0, 0, 0)

# Kelly's colours of maximum contrast, without white and black (Kelly 1965, "Twenty-two colors of
# maximum contrast", Color Engineering 3(6)), in Kelly's order.
KELLY_COLOURS: tuple[tuple[int, int, int], ...] = (
    (0xF3, 0xC3, 0x00), (0x87, 0x56, 0x92), (0xF3, 0x84, 0x00), (0xA1, 0xCA, 0xF1),
    (0xBE, 0x00, 0x32), (0xC2, 0xB2, 0x80), (0x84, 0x84, 0x82), (0x00, 0x88, 0x56),
    (0xE6, 0x8F, 0xAC), (0x00, 0x67, 0xA5), (0xF9, 0x93, 0x79), (0x60, 0x4E, 0x97),
    (0xF6, 0xA6, 0x00), (0xB3, 0x44, 0x6C), (0xDC, 0xD3, 0x00), (0x88, 0x2D, 0x17),
    (0x8D, 0xB6, 0x00), (0x65, 0x45, 0x22), (0xE2, 0x58, 0x22), (0x2B, 0x3D, 0x26),
)

GOLDEN_RATIO_CONJUGATE = 0.6180339887498949


def class_colour(class_id: int) -> tuple[int, int, int]:
    """The RGB colour (0-255) of a class id; depends on the id only, so it is stable.

    0 is black; ids 1-20 take Kelly's colours of maximum contrast; higher ids walk the hue circle
    by the golden angle, with saturation and value cycling so that all 254 ids stay distinct.
    """
    class_id = int(class_id)
    if class_id <= 0:
        return BACKGROUND_COLOUR
    if class_id <= len(KELLY_COLOURS):
        return KELLY_COLOURS[class_id - 1]
    k = class_id - len(KELLY_COLOURS)
    hue = (k * GOLDEN_RATIO_CONJUGATE) % 1.0
    saturation = (0.55, 0.8, 0.95)[k % 3]
    value = (0.95, 0.75, 0.6)[(k // 3) % 3]
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return int(round(255 * r)), int(round(255 * g)), int(round(255 * b))


def class_table(config: SimulationConfig) -> list[tuple[int, str, tuple[int, int, int]]]:
    """``[(id, name, (r, g, b)), ...]`` for background and every class of the config, by id.

    Ids are those of ``config.class_ids()`` (config order, never shifted); colours are
    :func:`class_colour` of the id.
    """
    ids = config.class_ids()
    return [(i, name, class_colour(i)) for name, i in sorted(ids.items(), key=lambda item: item[1])]


def classes_csv_text(table: list[tuple[int, str, tuple[int, int, int]]]) -> str:
    """The ``classes.csv`` text: header ``id,name,colour`` and one row per class, colour ``#rrggbb``."""
    lines = ["id,name,colour"]
    for class_id, name, (r, g, b) in table:
        lines.append(f"{class_id},{name},#{r:02x}{g:02x}{b:02x}")
    return "\n".join(lines) + "\n"


def label_colours(labels: np.ndarray) -> np.ndarray:
    """RGB image of a label array: ``labels.shape + (3,)`` uint8, colours of :func:`class_colour`."""
    lookup = np.array([class_colour(i) for i in range(256)], np.uint8)
    return lookup[np.asarray(labels, np.uint8)]


def label_mismatches(labels: np.ndarray, instances: np.ndarray, instance_class: np.ndarray) -> int:
    """Number of voxels where ``labels`` disagrees with the class of the instance there.

    Parameters
    ----------
    labels
        ``(z, y, x)`` class ids.
    instances
        ``(z, y, x)`` instance ids, 0 = no object (must then be labelled 0).
    instance_class
        ``(max_id + 1,)`` class id of every instance id (entry 0 is ignored: background is 0).
        An instance id beyond the table counts as a mismatch.

    Returns
    -------
    int
        Voxels with ``labels != instance_class[instances]`` (with ``instance_class[0] = 0``).
    """
    labels = np.asarray(labels)
    instances = np.asarray(instances, np.int64)
    if labels.shape != instances.shape:
        return max(labels.size, instances.size)
    table = np.asarray(instance_class, np.int64).copy()
    if table.size == 0:
        table = np.zeros(1, np.int64)
    table[0] = 0
    known = instances < table.size
    expected = np.where(known, table[np.where(known, instances, 0)], -1)
    return int(np.count_nonzero(expected != labels))


def labels_consistent(labels: np.ndarray, instances: np.ndarray, instance_class: np.ndarray) -> bool:
    """True when every voxel's label is the class of its instance (and 0 where there is none)."""
    return label_mismatches(labels, instances, instance_class) == 0
