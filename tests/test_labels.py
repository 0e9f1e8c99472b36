"""Labels: class table (stable ids and colours), classes.csv text, label/instance consistency."""

from __future__ import annotations

import numpy as np

from tomosim.config import config_from_dict
from tomosim.labels import (
    class_colour,
    class_table,
    classes_csv_text,
    colour_hex,
    label_colours,
    label_mismatches,
    labels_consistent,
    make_class_table,
)


def config(classes=None, species=("ribosome", "proteasome")):
    tree = {"proteins": {"species": [{"name": n, "source": "x", "count": 0} for n in species]}}
    if classes is not None:
        tree["classes"] = classes
    return config_from_dict(tree)


def rows(table):
    return list(zip(table.ids, table.names, table.colours, strict=True))


def test_class_table_ids_follow_the_config_and_never_shift():
    table = class_table(config(["ribosome", "empty", "proteasome"]).class_ids())
    assert [(i, n) for i, n, _ in rows(table)] == [(0, "background"), (1, "ribosome"), (2, "empty"), (3, "proteasome")]
    # without a class list: order of first use; a later species keeps its id when others place nothing
    table = class_table(config(species=("a", "b", "c")).class_ids())
    assert [(i, n) for i, n, _ in rows(table)] == [(0, "background"), (1, "a"), (2, "b"), (3, "c")]


def test_colours_are_stable_and_distinct():
    assert class_colour(0) == (0, 0, 0)
    colours = [class_colour(i) for i in range(1, 255)]
    assert len(set(colours)) == 254
    assert colours == [class_colour(i) for i in range(1, 255)]  # a function of the id only
    # the first classes are far apart (Kelly's colours of maximum contrast)
    first = np.array(colours[:20], float)
    distance = np.sqrt(((first[:, None] - first[None]) ** 2).sum(-1))
    assert distance[~np.eye(20, dtype=bool)].min() > 25
    # the same id gets the same colour in any config
    a = dict((n, c) for _, n, c in rows(class_table(config(["x", "ribosome", "proteasome"]).class_ids())))
    b = dict((i, c) for i, _, c in rows(class_table(config(["proteasome", "ribosome"]).class_ids())))
    assert a["ribosome"] == b[2] == colour_hex(class_colour(2))
    assert a["proteasome"] != b[1]


def test_classes_csv_text():
    table = make_class_table([0, 1], ["background", "ribosome"], ["#000000", colour_hex((243, 195, 0))])
    text = classes_csv_text(table)
    assert text == "id,name,colour\n0,background,#000000\n1,ribosome,#f3c300\n"


def test_label_colours_image():
    labels = np.array([[0, 1], [2, 0]], np.uint8)
    image = label_colours(labels)
    assert image.shape == (2, 2, 3) and image.dtype == np.uint8
    assert tuple(image[0, 1]) == class_colour(1) and tuple(image[0, 0]) == (0, 0, 0)


def test_labels_consistent_and_mismatches():
    instances = np.array([[0, 1, 1], [2, 2, 3]], np.uint32)
    instance_class = np.array([0, 5, 7, 0])  # instance 3 is a distractor: class 0
    labels = np.array([[0, 5, 5], [7, 7, 0]], np.uint8)
    assert labels_consistent(labels, instances, instance_class)
    wrong = labels.copy()
    wrong[0, 0] = 5  # labelled without an instance
    wrong[1, 2] = 7  # distractor labelled
    assert label_mismatches(wrong, instances, instance_class) == 2
    assert not labels_consistent(wrong, instances, instance_class)
    unknown = instances.copy()
    unknown[0, 1] = 9  # an instance id missing from the table
    assert label_mismatches(labels, unknown, instance_class) == 1
    assert not labels_consistent(labels[:1], instances, instance_class)  # shape mismatch
