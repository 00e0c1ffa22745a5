"""The Sweep page's form, derived from the spec dataclasses: one entry per field, never written twice.

Pure (no Streamlit): the schema of each input (kind, default, range, choices, help), parsing of the
value lists a user types for swept parameters, and the round trip form values <-> `SweepSpec`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any, get_origin, get_type_hints

from core.spec.space import RANGE_SEPARATOR, Choice, Dimension, Range
from core.spec.sweep import SpecError, SweepSpec, TrialParams
from core.spec.values import coerce

SECTIONS = ("data", "params", "search", "")   # "" = the top-level fields of SweepSpec


def field_label(name: str) -> str:
    """How a field or parameter is named to people, on the form and on every chart axis."""
    return name.replace("_", " ")


@dataclass(frozen=True)
class FormField:
    """One input of the form: `path` is the dotted spec field ("params.learning_rate")."""

    path: str
    kind: type
    default: Any
    help: str
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    sweepable: bool = False

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def label(self) -> str:
        return field_label(self.name)

    @property
    def is_list(self) -> bool:
        """A list field (`tuple[int, ...]`): typed as space-separated numbers, "512 128"."""
        return get_origin(self.kind) is tuple

    @property
    def section(self) -> str:
        return self.path.rsplit(".", 1)[0] if "." in self.path else ""


def form_fields(cls: type = SweepSpec, prefix: str = "") -> list[FormField]:
    """Every leaf field of the spec, nested dataclasses flattened, in declaration order."""
    hints = get_type_hints(cls)
    out: list[FormField] = []
    instance = cls()
    for f in fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            out += form_fields(kind, f"{prefix}{f.name}.")
            continue
        meta = f.metadata
        out.append(FormField(path=f"{prefix}{f.name}", kind=kind, default=getattr(instance, f.name),
                             help=meta.get("help", ""), choices=meta.get("choices"), low=meta.get("low"),
                             high=meta.get("high"), sweepable=bool(meta.get("sweepable"))))
    return out


def fields_by_path() -> dict[str, FormField]:
    return {f.path: f for f in form_fields()}


def sweepable_params() -> list[FormField]:
    return [f for f in form_fields(TrialParams, "params.") if f.sweepable]


def _parse_one(text: str, kind: Any, where: str) -> Any:
    text = text.strip()
    if get_origin(kind) is tuple:
        return coerce(text, kind, where)
    try:
        if kind is int:
            number = float(text)
            if not number.is_integer():
                raise ValueError
            return int(number)
        if kind is float:
            return float(text)
    except ValueError:
        raise SpecError(f"{where}: {text!r} is not a{'n integer' if kind is int else ' number'}") from None
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise SpecError(f"{where}: {text!r} is not true or false")
        return text.lower() == "true"
    return text


def parse_values(text: str, field: FormField) -> Dimension:
    """A typed choice from "1, 2, 5" (of a list field: "512 128, 256"), or a range from "1e-4 .. 1e-1 log"
    (random / TPE); the inverse of `Dimension.describe`."""
    where = f"search.space.{field.name}"
    text = text.strip()
    if not text:
        raise SpecError(f"{where}: give at least one value (separate values with commas)")
    if RANGE_SEPARATOR in text:
        if field.kind not in (int, float):
            raise SpecError(f"{where}: only numeric parameters take a range")
        log = text.lower().endswith("log")
        low_text, high_text = text.removesuffix("log").removesuffix("LOG").split(RANGE_SEPARATOR, 1)
        return Range(_parse_one(low_text, field.kind, f"{where}.low"),
                     _parse_one(high_text, field.kind, f"{where}.high"), log)
    return Choice(tuple(_parse_one(part, field.kind, f"{where}[{i}]")
                        for i, part in enumerate(text.split(",")) if part.strip()))


def spec_from_form(values: dict[str, Any], space: dict[str, Dimension]) -> SweepSpec:
    """A validated spec from the form's field values (by dotted path) and the swept parameters' values."""
    tree: dict[str, Any] = {}
    for path, value in values.items():
        node = tree
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    tree.setdefault("search", {})["space"] = dict(space)
    return SweepSpec.from_dict(tree)


def form_values(spec: SweepSpec) -> tuple[dict[str, Any], dict[str, Dimension]]:
    """(field values by dotted path, swept space) of a spec: what the form shows for an uploaded YAML."""
    values = {}
    for field in form_fields():
        node: Any = spec
        for part in field.path.split("."):
            node = getattr(node, part)
        values[field.path] = node
    space = values.pop("search.space")
    return values, space
