"""How one spec value is read and checked: YAML text, the one coercion of every field's value (YAML,
form text, stored trial params) and its range / choices check, with errors that name the field."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, get_args, get_origin

import yaml

MAX_LIST = 4
"""At most this many values in a list field (hidden layers of the dense head)."""


class SpecError(ValueError):
    """A spec value is wrong; the message starts with the dotted field name."""


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases: a spec has no use for them, and nested ones multiply (a few
    hundred bytes of `*name` lists stand for a billion values, which every walk of the document re-enters)."""

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            line = self.peek_event().start_mark.line + 1
            raise SpecError(f"spec: line {line}: YAML aliases (*name, <<: *name) are not accepted in a spec; "
                            "write the values out")
        return super().compose_node(parent, index)


def load_yaml(text: str) -> Any:
    """`yaml.safe_load` without aliases, refusing a key given twice in one mapping (PyYAML silently keeps
    the last)."""
    loader = _SpecLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_duplicate_keys(node, "")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _refuse_duplicate_keys(node: yaml.Node, prefix: str) -> None:
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicate_keys(item, f"{prefix.removesuffix('.')}[{i}].")
    elif isinstance(node, yaml.MappingNode):
        seen: set[tuple[str, str]] = set()
        for key, value in node.value:
            if (key.tag, key.value) in seen:
                line = key.start_mark.line + 1
                raise SpecError(f"{prefix}{key.value}: given twice (again on line {line}); keep one")
            seen.add((key.tag, key.value))
            _refuse_duplicate_keys(value, f"{prefix}{key.value}.")


def element_kind(kind: Any) -> type | None:
    """The element type of a list field (`tuple[int, ...]`), else None."""
    return get_args(kind)[0] if get_origin(kind) is tuple else None


def coerce(value: Any, kind: Any, where: str) -> Any:
    """`value` as a field of type `kind` holds it, or SpecError naming `where`: the one coercion of YAML,
    form text and stored trial params."""
    element = element_kind(kind)
    if element is not None:
        return _coerce_list(value, element, where)
    if (kind is bool) != isinstance(value, bool):       # bool is an int to Python, never to a spec
        expected = "true or false" if kind is bool else kind.__name__
        raise SpecError(f"{where}: expected {expected}, got {value!r}")
    if kind is float and isinstance(value, int):
        return float(value)
    if kind in (int, float, str, dict) and not isinstance(value, kind):
        raise SpecError(f"{where}: expected {kind.__name__}, got {value!r}")
    if kind is float and math.isnan(value):
        raise SpecError(f"{where}: nan is not a number")
    return value


def _coerce_list(value: Any, element: type, where: str) -> tuple:
    """A list field from a number, a list or tuple, or the text form "512 128" (the form's, and the one
    Optuna stores for a longer list)."""
    if isinstance(value, str):
        value = value.split()
        value = [_parse_number(part, element, _item_where(where, i, value)) for i, part in enumerate(value)]
    elif not isinstance(value, (list, tuple)):
        value = [value]
    if not 1 <= len(value) <= MAX_LIST:
        raise SpecError(f"{where}: give 1 to {MAX_LIST} values (one per layer), got {len(value)}")
    return tuple(coerce(item, element, _item_where(where, i, value)) for i, item in enumerate(value))


def _item_where(where: str, index: int, items: Sequence) -> str:
    """Where an item of a list field is: `where[1]`, or just `where` when the list holds one value."""
    return f"{where}[{index}]" if len(items) > 1 else where


def _parse_number(text: str, kind: type, where: str) -> int | float:
    try:
        return kind(text)
    except ValueError:
        raise SpecError(f"{where}: {text!r} is not a{'n integer' if kind is int else ' number'}") from None


def check_value(meta: dict, kind: Any, value: Any, where: str) -> Any:
    value = coerce(value, kind, where)
    items = value if isinstance(value, tuple) else (value,)
    for i, item in enumerate(items):
        at = _item_where(where, i, items)
        if meta.get("choices") and item not in meta["choices"]:
            raise SpecError(f"{at}: {item!r} is not one of {', '.join(map(str, meta['choices']))}")
        if meta.get("low") is not None and item < meta["low"]:
            raise SpecError(f"{at}: {item!r} is below the minimum {meta['low']}")
        if meta.get("high") is not None and item > meta["high"]:
            raise SpecError(f"{at}: {item!r} is above the maximum {meta['high']}")
    return value
