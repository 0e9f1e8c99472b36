"""Labels: the class table (id, name, colour), ``classes.csv``, and checks of label volumes.

The labels themselves are made with the potential, in :func:`tomosim.rendering.render_objects`.

Class ids come from :meth:`tomosim.config.SimulationConfig.class_ids`: ``0`` is background, the
config's classes follow in order (1, 2, ...), and an id never shifts when its class places nothing.
``labels.mrc`` holds uint8 class ids (255 is reserved for "not labelled" in fine-tuning labels);
``instances.mrc`` holds one id per object (0 = none), and ``labels == instance_class[instances]``.
"""

from __future__ import annotations

import colorsys
import csv
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tomosim.errors import TomosimError
from tomosim.io import write_text

IGNORE_LABEL = 255
"""Label value meaning "not labelled": such voxels contribute no loss and no score."""

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


@dataclass(frozen=True)
class ClassTable:
    """Label ids and their names; id 0 is always ``background``.

    Attributes
    ----------
    ids
        Label ids in increasing order, starting with 0.
    names
        One name per id.
    colours
        One colour string per id (as read, e.g. ``#ff8800``; empty if unknown).
    """

    ids: tuple[int, ...]
    names: tuple[str, ...]
    colours: tuple[str, ...]

    def name_of(self, label_id: int) -> str:
        """The name of ``label_id`` (``class_<id>`` if the table does not list it)."""
        lookup = dict(zip(self.ids, self.names, strict=False))
        return lookup.get(int(label_id), f"class_{int(label_id)}")

    def id_of(self, name: str) -> int:
        """The id of class ``name``; raises :class:`TomosimError` if unknown."""
        lookup = dict(zip(self.names, self.ids, strict=False))
        if name not in lookup:
            raise TomosimError(f"unknown class name {name!r}; known classes: {list(self.names)}")
        return lookup[name]


def make_class_table(
    ids: Sequence[int], names: Sequence[str], colours: Sequence[str] | None = None
) -> ClassTable:
    """Validate ids/names (unique, 0..254) and add ``background`` = 0 if absent; sorted by id."""
    colours = list(colours) if colours is not None else [""] * len(ids)
    rows = {}
    for label_id, name, colour in zip(ids, names, colours, strict=False):
        label_id = int(label_id)
        name = str(name).strip()
        if not 0 <= label_id < IGNORE_LABEL:
            raise TomosimError(f"class id {label_id} ({name!r}) is outside 0..254")
        if label_id in rows or not name:
            raise TomosimError(f"class id {label_id} is repeated or has no name")
        rows[label_id] = (name, str(colour) if colour == colour else "")  # NaN colour -> ""
    rows.setdefault(0, ("background", "#000000"))
    names_only = [n for n, _ in rows.values()]
    if len(set(names_only)) != len(names_only):
        raise TomosimError(f"class names must be unique, got {sorted(names_only)}")
    order = sorted(rows)
    return ClassTable(
        ids=tuple(order),
        names=tuple(rows[i][0] for i in order),
        colours=tuple(rows[i][1] for i in order),
    )


def read_class_table(path: str | os.PathLike[str]) -> ClassTable:
    """Read ``classes.csv`` (columns ``id,name,colour``; colour optional).

    Raises
    ------
    TomosimError
        Missing file, missing columns, repeated or out-of-range ids, repeated names.
    """
    p = Path(path)
    if not p.is_file():
        raise TomosimError(f"class table not found: {p}")
    try:
        table = pd.read_csv(p)
    except (OSError, ValueError) as exc:
        raise TomosimError(f"class table is not readable CSV ({exc}): {p}") from None
    if not {"id", "name"} <= set(table.columns):
        raise TomosimError(f"class table needs columns id,name (got {list(table.columns)}): {p}")
    try:
        ids = [int(v) for v in table["id"]]
    except (TypeError, ValueError):
        raise TomosimError(f"class table has a non-integer id: {p}") from None
    colours = list(table["colour"]) if "colour" in table.columns else None
    try:
        return make_class_table(ids, list(table["name"]), colours)
    except TomosimError as exc:
        raise TomosimError(f"{exc}: {p}") from None


def classes_csv_text(table: ClassTable) -> str:
    """The ``classes.csv`` text: header ``id,name,colour`` and one row per class, newline-ended."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "name", "colour"])
    writer.writerows(zip(table.ids, table.names, table.colours, strict=True))
    return out.getvalue()


def write_class_table(path: str | os.PathLike[str], table: ClassTable) -> None:
    """Write ``table`` as ``classes.csv`` (``id,name,colour``) atomically."""
    write_text(path, classes_csv_text(table))


def merge_class_tables(tables: Sequence[ClassTable]) -> ClassTable:
    """The union of several tables; the same name must have the same id everywhere."""
    by_id: dict[int, tuple[str, str]] = {}
    for table in tables:
        for label_id, name, colour in zip(table.ids, table.names, table.colours, strict=False):
            if label_id == 0:
                continue
            if label_id in by_id and by_id[label_id][0] != name:
                raise TomosimError(
                    f"class id {label_id} is {by_id[label_id][0]!r} in one folder and {name!r} in "
                    "another; give the data sets the same class list"
                )
            by_id.setdefault(label_id, (name, colour))
    ids = sorted(by_id)
    return make_class_table(ids, [by_id[i][0] for i in ids], [by_id[i][1] for i in ids])


def colour_hex(colour: tuple[int, int, int]) -> str:
    """``#rrggbb`` of an RGB colour (0-255 each)."""
    r, g, b = colour
    return f"#{r:02x}{g:02x}{b:02x}"


def class_table(class_ids: Mapping[str, int]) -> ClassTable:
    """The class table of a simulation: background and every class, by id, with its colour.

    Parameters
    ----------
    class_ids
        ``{name: id}`` as :meth:`tomosim.config.SimulationConfig.class_ids` gives them (config
        order, never shifted; ``background`` = 0).

    Returns
    -------
    ClassTable
        Colours are :func:`class_colour` of the id, as ``#rrggbb``.
    """
    rows = sorted(class_ids.items(), key=lambda item: item[1])
    return make_class_table(
        [i for _, i in rows], [name for name, _ in rows],
        [colour_hex(class_colour(i)) for _, i in rows],
    )


def label_colours(labels: np.ndarray) -> np.ndarray:
    """RGB image of a label array: ``labels.shape + (3,)`` uint8 colours of :func:`class_colour`."""
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


def labels_consistent(
    labels: np.ndarray, instances: np.ndarray, instance_class: np.ndarray
) -> bool:
    """True when every voxel's label is the class of its instance (and 0 where there is none)."""
    return label_mismatches(labels, instances, instance_class) == 0


def label_ids(data: np.ndarray, path: str | os.PathLike[str]) -> np.ndarray:
    """Class ids as uint8 from a label volume read from ``path``, with 255 = not labelled.

    MRC mode 0 holds bytes that tools read as signed (mrcfile, napari) or unsigned (IMOD,
    tomosim); a voxel painted 255 in one reads as -1 in the other. Both mean "not labelled":
    int8 data are reinterpreted as unsigned bytes (-1 -> 255), and in wider integer types -1 is
    mapped to 255.

    Parameters
    ----------
    data
        Label volume of any shape; integer dtype with values in -1..255.
    path
        The file it came from, for the error message.

    Raises
    ------
    TomosimError
        Float data (a tomogram rather than labels) or ids outside -1..255.
    """
    if data.dtype == np.uint8:
        return data
    if data.dtype == np.int8:
        return data.view(np.uint8)
    if data.dtype.kind not in "iu":
        raise TomosimError(
            f"labels must be integer class ids (MRC mode 0, 1 or 6), got {data.dtype} values "
            f"(is this a tomogram?): {path}"
        )
    if data.size:
        low, high = int(data.min()), int(data.max())
        if low < -1 or high > IGNORE_LABEL:
            raise TomosimError(
                f"label ids must lie in 0..255 (-1 or 255 = not labelled), found {low}..{high}: "
                f"{path}"
            )
    return np.where(data == -1, IGNORE_LABEL, data).astype(np.uint8)
