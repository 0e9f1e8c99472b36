"""Randomised configs: draw every phantom of a training set from distributions in one YAML file.

Any value of a config may be written as a *distribution*; :func:`draw_config` walks the raw YAML
tree and replaces each one by a value drawn from a passed ``numpy.random.Generator``, returning a
plain tree that :func:`tomosim.config.config_from_dict` validates. The same generator state gives
the same tree.

Syntax
------
``{uniform: [a, b]}``
    A float drawn uniformly from ``[a, b)``; needs ``a < b``.
``{normal: [mean, sd]}``, optionally ``{normal: [mean, sd], min: x, max: y}``
    A float from a normal distribution with standard deviation ``sd >= 0``, clipped to
    ``[min, max]`` when given (clipping, not re-drawing: the bounds can occur).
``{loguniform: [a, b]}``
    A float whose logarithm is uniform between ``log a`` and ``log b``; needs ``0 < a < b``.
``{randint: [a, b]}``
    An integer drawn uniformly from ``a, a + 1, ..., b`` (both ends included); needs ``a <= b``.
``{choice: [v1, v2, ...]}``
    One of the listed values, each equally likely. The values may be anything: numbers, strings,
    lists, whole sections or species entries (distributions inside the chosen value are drawn too).
``{sample: k, from: [item1, item2, ...]}``
    A list of ``k`` items chosen from ``from`` without replacement, kept in their listed order
    (``k`` may itself be a distribution, e.g. ``{randint: [1, 3]}``); distributions inside the
    chosen items are drawn too. Meant for species lists::

        proteins:
          species:
            sample: {randint: [2, 3]}
            from:
              - {name: ribosome, source: "builtin:ribosome", count: {randint: [10, 60]}}
              - {name: proteasome, source: "builtin:proteasome", count: {randint: [10, 60]}}
              - {name: apoferritin, source: "builtin:apoferritin", count: {randint: [10, 60]}}
        sample:
          pixel_size: {uniform: [9.0, 11.0]}
          ice_thickness: {normal: [900, 100], min: 600, max: 1200}
        microscope:
          optics:
            defocus_um: {loguniform: [1.5, 6.0]}
          detector:
            preset: {choice: [k3, falcon4]}

A mapping is a distribution when it has one of the keys above (plus ``min``/``max`` for
``normal``), or the key ``from`` (then exactly ``sample`` and ``from``). A one-key mapping whose
key is a near miss of a distribution name (``{unifrom: [1, 2]}``) and not a config key is rejected
rather than passed on.

The per-phantom seed is drawn too: :func:`draw_config` sets ``seed`` to an integer drawn *first*
from the generator (before any distribution), so a phantom's simulation seed does not change when
distributions are added to or removed from the config.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from pydantic import BaseModel

from tomosim.config import SimulationConfig
from tomosim.errors import TomosimError

DISTRIBUTIONS = ("uniform", "normal", "loguniform", "randint", "choice", "sample")
_CLIP_KEYS = ("min", "max")
SEED_LIMIT = 2**63 - 1


@functools.cache
def _config_field_names() -> frozenset[str]:
    """Every field name in every section of :class:`tomosim.config.SimulationConfig`."""
    names: set[str] = set()
    pending: list[type[BaseModel]] = [SimulationConfig]
    seen: set[type] = set()
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, field in model.model_fields.items():
            names.add(name)
            pending.extend(_models_in(field.annotation))
    return frozenset(names)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in getattr(annotation, "__args__", ()) or ():
        out.extend(_models_in(arg))
    return out


def is_distribution(node: Any) -> bool:
    """True when ``node`` is a distribution mapping (``{uniform: [a, b]}``, ``{sample: k}``)."""
    if not isinstance(node, dict):
        return False
    return "from" in node or any(key in node for key in DISTRIBUTIONS if key != "sample")


def has_distributions(tree: Any) -> bool:
    """True when any value anywhere in ``tree`` is a distribution."""
    if is_distribution(tree):
        return True
    if isinstance(tree, dict):
        return any(has_distributions(value) for value in tree.values())
    if isinstance(tree, list):
        return any(has_distributions(value) for value in tree)
    return False


def draw_config(tree: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """Replace every distribution in a raw config tree by a drawn value.

    Parameters
    ----------
    tree
        The raw YAML tree (as ``yaml.safe_load`` returns it), possibly holding distributions
        (see the module docstring for the syntax). It is not modified.
    rng
        Source of all randomness. The simulation ``seed`` is drawn first, then the distributions
        in document order, so the same generator state gives the same tree.

    Returns
    -------
    dict
        A plain tree without distributions, with ``seed`` set to the drawn per-phantom seed,
        ready for :func:`tomosim.config.config_from_dict`.

    Raises
    ------
    TomosimError
        A malformed distribution, one line naming its key path (``sample.pixel_size: ...``).
    """
    drawn, _ = draw_config_with_values(tree, rng)
    return drawn


def draw_config_with_values(
    tree: dict[str, Any], rng: np.random.Generator
) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`draw_config`, also returning the drawn values by dotted key path.

    Returns
    -------
    (tree, values)
        ``values`` maps a dotted path to each drawn value, in draw order, starting with ``seed``.
        List elements that are mappings with a ``name`` are addressed by that name, others by
        their index (``proteins.species.ribosome.count``, ``sample.shape.0``). A ``sample`` of
        named items records the chosen names. Values are plain Python scalars or lists.
    """
    if not isinstance(tree, dict):
        raise TomosimError("a config must be a mapping of sections")
    drawer = _Drawer(rng)
    seed = int(rng.integers(0, SEED_LIMIT))
    body = {key: value for key, value in tree.items() if key != "seed"}
    drawn = drawer.walk(body, ())
    drawn["seed"] = seed
    values = {"seed": seed, **drawer.values}
    return drawn, values


def flatten_values(values: dict[str, Any]) -> dict[str, Any]:
    """Drawn values as scalars for a table: lists and mappings become compact JSON strings."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, (dict, list, tuple)):
            out[key] = json.dumps(value, separators=(",", ":"))
        else:
            out[key] = value
    return out


class _Drawer:
    """Walks a tree, drawing distributions in document order and recording what it drew."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.values: dict[str, Any] = {}
        self.config_keys = _config_field_names()

    def walk(self, node: Any, path: tuple[str, ...]) -> Any:
        if isinstance(node, dict):
            if is_distribution(node):
                return self.draw(node, path)
            self.reject_near_miss(node, path)
            return {key: self.walk(value, (*path, str(key))) for key, value in node.items()}
        if isinstance(node, list):
            labels = _element_labels(node)
            return [
                self.walk(item, (*path, label))
                for item, label in zip(node, labels, strict=False)
            ]
        return copy.deepcopy(node)

    def reject_near_miss(self, node: dict[str, Any], path: tuple[str, ...]) -> None:
        """Reject ``{unifrom: [1, 2]}``: one key, close to a distribution name, not a config key."""
        keys = [key for key in node if key not in _CLIP_KEYS]
        if len(keys) != 1 or not isinstance(keys[0], str) or keys[0] in self.config_keys:
            return
        close = difflib.get_close_matches(keys[0].lower(), DISTRIBUTIONS, n=1, cutoff=0.75)
        if close:
            raise TomosimError(
                f"{_where(path)}: unknown distribution {keys[0]!r} "
                f"(did you mean {close[0]!r}? known: {', '.join(DISTRIBUTIONS)})"
            )

    def draw(self, node: dict[str, Any], path: tuple[str, ...]) -> Any:
        where = _where(path)
        if "from" in node:
            extra = sorted(str(key) for key in node if key not in ("sample", "from"))
            if extra or "sample" not in node:
                found = ", ".join(str(key) for key in node)
                raise TomosimError(
                    f"{where}: sampling a list needs exactly the keys sample and from, got {found}"
                )
            return self.draw_sample(node, path)
        kinds = [key for key in DISTRIBUTIONS if key in node and key != "sample"]
        if len(kinds) > 1:
            raise TomosimError(f"{where}: one distribution per value, got {' and '.join(kinds)}")
        kind = kinds[0]
        allowed = {kind, *(_CLIP_KEYS if kind == "normal" else ())}
        extra = [str(key) for key in node if key not in allowed]
        if extra:
            hint = " (min/max clip only normal)" if set(extra) & set(_CLIP_KEYS) else ""
            raise TomosimError(f"{where}: unexpected key(s) {', '.join(extra)} in {kind}{hint}")
        args = node[kind]
        if kind == "choice":
            if not isinstance(args, list) or not args:
                raise TomosimError(
                    f"{where}: choice needs a non-empty list of values, got {args!r}"
                )
            index = int(self.rng.integers(len(args)))
            value = self.walk(args[index], path)
        elif kind == "randint":
            low, high = _pair(args, kind, where, integers=True)
            if low > high:
                raise TomosimError(
                    f"{where}: randint needs [a, b] with a <= b, got [{low}, {high}]"
                )
            value = int(self.rng.integers(low, high, endpoint=True))
        elif kind == "uniform":
            low, high = _pair(args, kind, where)
            if not low < high:
                raise TomosimError(f"{where}: uniform needs [a, b] with a < b, got [{low}, {high}]")
            value = float(self.rng.uniform(low, high))
        elif kind == "loguniform":
            low, high = _pair(args, kind, where)
            if not 0 < low < high:
                raise TomosimError(
                    f"{where}: loguniform needs [a, b] with 0 < a < b, got [{low}, {high}]"
                )
            value = float(math.exp(self.rng.uniform(math.log(low), math.log(high))))
        else:  # normal
            mean, sd = _pair(args, kind, where)
            if sd < 0:
                raise TomosimError(f"{where}: normal needs a standard deviation >= 0, got {sd}")
            low = _bound(node, "min", where)
            high = _bound(node, "max", where)
            if low is not None and high is not None and low > high:
                raise TomosimError(f"{where}: normal min {low} is larger than max {high}")
            value = float(self.rng.normal(mean, sd))
            if low is not None:
                value = max(value, low)
            if high is not None:
                value = min(value, high)
        self.record(path, value)
        return value

    def draw_sample(self, node: dict[str, Any], path: tuple[str, ...]) -> list[Any]:
        where = _where(path)
        items = node["from"]
        if not isinstance(items, list) or not items:
            raise TomosimError(f"{where}: sample needs a non-empty list 'from', got {items!r}")
        count = node["sample"]
        if is_distribution(count):
            count = self.draw(count, (*path, "sample"))
        if isinstance(count, bool) or not isinstance(count, int):
            raise TomosimError(f"{where}: sample needs an integer count, got {count!r}")
        if not 0 <= count <= len(items):
            raise TomosimError(
                f"{where}: cannot sample {count} of {len(items)} items "
                f"(needs 0 <= k <= {len(items)})"
            )
        chosen = sorted(int(i) for i in self.rng.choice(len(items), size=count, replace=False))
        labels = _element_labels(items)
        self.record(path, [_record_label(items[i], labels[i]) for i in chosen])
        return [self.walk(items[i], (*path, labels[i])) for i in chosen]

    def record(self, path: tuple[str, ...], value: Any) -> None:
        self.values[".".join(path)] = copy.deepcopy(value)


def _element_labels(items: list[Any]) -> list[str]:
    """Path labels of list elements: a mapping's ``name`` when all names are unique, else index."""
    names = [item.get("name") if isinstance(item, dict) else None for item in items]
    if all(isinstance(name, str) and name for name in names) and len(set(names)) == len(names):
        return [str(name) for name in names]
    return [str(i) for i in range(len(items))]


def _record_label(item: Any, label: str) -> Any:
    if isinstance(item, dict) and item.get("name") == label:
        return label
    return item if not isinstance(item, (dict, list)) else int(label)


def _where(path: Iterable[str]) -> str:
    parts = list(path)
    return "config key " + (".".join(parts) if parts else "(root)")


def _number(value: Any, where: str, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TomosimError(f"{where}: {what} must be a finite number, got {value!r}")
    return value


def _pair(args: Any, kind: str, where: str, *, integers: bool = False) -> tuple[Any, Any]:
    if not isinstance(args, list) or len(args) != 2:
        raise TomosimError(f"{where}: {kind} needs a list of two numbers [a, b], got {args!r}")
    first = _number(args[0], where, f"{kind} bounds")
    second = _number(args[1], where, f"{kind} bounds")
    if integers:
        if not all(isinstance(v, int) or float(v).is_integer() for v in (first, second)):
            raise TomosimError(f"{where}: {kind} needs two integers [a, b], got {args!r}")
        return int(first), int(second)
    return float(first), float(second)


def _bound(node: dict[str, Any], key: str, where: str) -> float | None:
    if key not in node or node[key] is None:
        return None
    return float(_number(node[key], where, f"normal {key}"))
