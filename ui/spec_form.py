"""The Sweep form, drawn from the spec schema (`core.spec.fields`): one widget per field, its range,
choices and help from the dataclass metadata; value lists for the swept parameters; YAML in and out."""
from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from core.data.datasets import DatasetError, dataset_path_in_roots
from core.spec.fields import (
    FormField,
    fields_by_path,
    form_fields,
    form_values,
    parse_values,
    spec_from_form,
    sweepable_params,
)
from core.spec.space import Choice, Dimension, format_value
from core.search.placement import EXECUTORS, Executor
from core.spec.sweep import SpecError, SweepSpec
from ui import state
from ui.widgets import plain

HIDDEN = {"storage", "search.space", "search.plan", "search.plan_s"}   # the server's store; the space has its
# own widgets; a time-budget plan's words and estimate are the planner's (ui/budget_plan.py)
SECTIONS = {"data": "Data", "params": "Model and training", "search": "Search", "": "Cross-validation",
            "resources": "Ray resources per trial"}
SWEPT_KEY = "spec.swept"
UPLOAD_ERROR_KEY = "spec.upload_error"
EXAMPLE_KEY = "spec.example"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PRESET = EXAMPLES / "recommended.yaml"


def _key(field: FormField) -> str:
    return f"spec.{field.path}"


def _space_key(name: str) -> str:
    return f"space.{name}"


def _choices(field: FormField) -> list[Any] | None:
    """The datasets found in the data roots (the metadata cannot hold them), else the metadata's choices."""
    if field.path == "data.dataset":
        return [str(p) for p in state.datasets()]
    return list(field.choices) if field.choices else None


def _format(field: FormField) -> Callable[[Any], str]:
    """How a choice is shown: a dataset by its name under its data root."""
    return (lambda p: state.dataset_label(Path(p))) if field.path == "data.dataset" else str


def _check_offered(field: FormField, value: Any, where: str) -> None:
    """SpecError naming the field and value when a widget does not offer `value` (a selectbox would
    silently show its first choice instead)."""
    choices, shown = _choices(field), _format(field)
    if choices is not None and value not in choices:
        raise SpecError(f"{where}: '{shown(value)}' is not one of the choices here "
                        f"({', '.join(map(shown, choices)) or 'none'})")


def _check_form_can_show(values: dict[str, Any], space: dict[str, Dimension]) -> None:
    """Every value of an uploaded spec is one the form can show; never substitute a choice."""
    by_path = fields_by_path()
    for path, value in values.items():
        if path not in HIDDEN:
            _check_offered(by_path[path], value, path)
    for name, dim in space.items():
        for i, value in enumerate(dim.values if isinstance(dim, Choice) else ()):
            _check_offered(by_path[f"params.{name}"], value, f"search.space.{name}[{i}]")


def _step(value: float) -> float:
    return 10.0 ** math.floor(math.log10(abs(value))) if value else 0.01


def field_widget(field: FormField, *, key: str | None = None, disabled: bool = False) -> Any:
    """The input for one spec field: its kind, range, choices and help from the schema (`key`: the Sweep
    form's own unless given, as the Dataset page's split preview does)."""
    key, label, default = key or _key(field), field.label, field.default
    common: dict[str, Any] = dict(key=key, help=field.help, disabled=disabled)
    fresh = key not in st.session_state       # pass a default only then, else Streamlit warns both were set
    choices = _choices(field)
    if choices is not None:
        index = choices.index(default) if fresh and default in choices else 0
        return st.selectbox(label, choices, format_func=_format(field), index=index, **common)
    if fresh:
        common["value"] = format_value(default) if field.is_list else default
    if field.kind is bool:
        return st.checkbox(label, **common)
    if field.kind is int:
        return st.number_input(label, min_value=int(field.low) if field.low is not None else None,
                               max_value=int(field.high) if field.high is not None else None,
                               step=1, **common)
    if field.kind is float:
        return st.number_input(label, min_value=field.low, max_value=field.high,
                               step=_step(field.default), format="%g", **common)
    return st.text_input(label, **common)


def load_uploaded_spec() -> None:
    """on_change of the YAML uploader: fill every widget from the spec (before they are drawn)."""
    upload = st.session_state.get("spec_upload")
    st.session_state.pop(UPLOAD_ERROR_KEY, None)
    if upload is None:
        return
    try:
        spec = SweepSpec.from_yaml(upload.getvalue())
        values, space = form_values(spec)
        values["data.dataset"] = str(dataset_path_in_roots(spec.data.dataset, state.settings().data_roots))
        _check_form_can_show(values, space)
    except (SpecError, DatasetError) as error:
        st.session_state[UPLOAD_ERROR_KEY] = f"{upload.name}: {error}"
        return
    _fill(values, space)


def load_example(path: Path = PRESET) -> None:
    """A spec of examples/ in every widget but the dataset (the user's): the preset button's on_click, the
    form's first state, and the example picker's choice."""
    st.session_state.pop(UPLOAD_ERROR_KEY, None)
    try:
        spec = SweepSpec.from_yaml(path.read_bytes())
        values, space = form_values(spec)
        del values["data.dataset"]
        _check_form_can_show(values, space)
    except (SpecError, OSError) as error:
        st.session_state[UPLOAD_ERROR_KEY] = f"{path.name}: {error}"
        return
    values["name"] = f"{spec.name}-{dt.datetime.now():%m%d-%H%M}"
    _fill(values, space)


def _load_picked_example() -> None:
    """on_change of the example picker."""
    picked = st.session_state.get(EXAMPLE_KEY)
    if picked:
        load_example(EXAMPLES / f"{picked}.yaml")


def example_names() -> list[str]:
    """The example specs (examples/*.yaml) by name, the recommended preset first."""
    return sorted((p.stem for p in EXAMPLES.glob("*.yaml")), key=lambda n: (n != PRESET.stem, n))


def _fill(values: dict[str, Any], space: dict[str, Dimension]) -> None:
    """Every widget of the given fields, and the swept parameters' lists, from a spec's form values."""
    by_path = fields_by_path()
    for path, value in values.items():
        if path not in HIDDEN:
            st.session_state[_key(by_path[path])] = format_value(value) if by_path[path].is_list else value
    st.session_state[SWEPT_KEY] = list(space)
    choice_fields = {f.name for f in sweepable_params() if _choices(f) is not None}
    for name, dim in space.items():
        st.session_state[_space_key(name)] = list(dim.values) if name in choice_fields else dim.describe()


def _defaults() -> None:
    """First visit: the recommended preset, a fresh sweep name and the sidebar's dataset."""
    dataset = state.chosen_dataset()
    if "spec.name" not in st.session_state:
        load_example()
        stem = dataset.stem if dataset else "sweep"
        st.session_state["spec.name"] = f"{stem}-{dt.datetime.now():%m%d-%H%M}"
    if dataset and "spec.data.dataset" not in st.session_state:
        st.session_state["spec.data.dataset"] = str(dataset)


def _swept_space(method: str) -> dict[str, Dimension]:
    """The value lists (or ranges) of the chosen swept parameters; SpecError names a bad one."""
    params = {f.name: f for f in sweepable_params()}
    swept = st.multiselect("Parameters to sweep", list(params), key=SWEPT_KEY,
                           help="each gets a list of values; a grid tries every combination")
    space: dict[str, Dimension] = {}
    for name in swept:
        field = params[name]
        choices = _choices(field)
        if choices is not None:
            space[name] = Choice(tuple(st.multiselect(f"{name} values", choices, key=_space_key(name),
                                                      help=field.help)))
        else:
            text = st.text_input(f"{name} values", key=_space_key(name),
                                 placeholder=f"{format_value(field.default)}, …",
                                 help=f"{field.help}; {_values_hint(field, method)}")
            space[name] = parse_values(text, field) if text.strip() else Choice(())
    return space


def _values_hint(field: FormField, method: str) -> str:
    if field.is_list:
        return "comma-separated choices, each space-separated numbers (e.g. 512 128, 256)"
    return "comma-separated values" + (", or low .. high [log] for random / TPE" if method != "grid" else "")


def _layout(fields: list[FormField]) -> list[tuple[int, str, list[FormField]]]:
    """(column, heading, fields): data | model and training over two columns | search and CV."""
    section = {name: [f for f in fields if f.section == name and f.path != "name"] for name in SECTIONS}
    half = (len(section["params"]) + 1) // 2
    return [(0, SECTIONS["data"], section["data"]), (1, SECTIONS["params"], section["params"][:half]),
            (2, "", section["params"][half:]), (3, SECTIONS["search"], section["search"]),
            (3, SECTIONS[""], section[""]), (3, SECTIONS["resources"], section["resources"])]


def executor_choice() -> Executor:
    """Where the sweep's workers run: worker processes on this server, or Ray tasks (the cluster in
    $RAY_ADDRESS, else a local Ray), each asking for the spec's Ray resources."""
    left, right = st.columns(2)
    kind = left.radio("Run on", EXECUTORS, key="executor.kind", horizontal=True,
                      format_func={"local": "this server", "ray": "Ray"}.get,
                      help="Ray: one task per worker on the cluster in $RAY_ADDRESS (else a local Ray), "
                           "placed by the Ray resources above; a task lost with its node is retried")
    workers = right.number_input("Workers", min_value=1, max_value=None if kind == "ray" else os.cpu_count() or 1,
                                 value=1, step=1, key="executor.workers",
                                 help="trials run at the same time, each in its own process")
    return Executor(kind, int(workers))


def sweep_form() -> tuple[SweepSpec | None, str | None]:
    """Draw the form; returns (spec, None) when it is valid, else (None, what is wrong)."""
    _defaults()
    st.file_uploader("Load a spec (YAML)", type=["yaml", "yml"], key="spec_upload", on_change=load_uploaded_spec,
                     help="a spec downloaded from this page or written for `python -m core sweep`")
    preset, example = st.columns([1, 3], vertical_alignment="bottom")
    preset.button("Recommended preset", on_click=load_example, icon=":material/recommend:",
                  help="the best model in your time budget: staged fine-tuning of EfficientNet-Lite0's top with "
                       "augmentation, its fold models kept as the final model (examples/recommended.yaml), planned "
                       "for this machine; only the dataset is yours to pick")
    example.selectbox("Or start from an example spec", example_names(), index=None, key=EXAMPLE_KEY,
                      on_change=_load_picked_example, placeholder="one per report in the design notes",
                      help="examples/*.yaml: each report's pipeline as a spec, filled into every field but the dataset")
    if UPLOAD_ERROR_KEY in st.session_state:
        st.error(plain(st.session_state[UPLOAD_ERROR_KEY]) + "\n\nFix the file and upload it again.")
    fields = [f for f in form_fields() if f.path not in HIDDEN]
    values: dict[str, Any] = {"name": field_widget(next(f for f in fields if f.path == "name")), "storage": ""}
    space: dict[str, Dimension] = {}
    error: str | None = None
    swept: list[str] = st.session_state.get(SWEPT_KEY, [])
    columns = st.columns(4, gap="medium")
    for column, heading, group in _layout(fields):
        with columns[column]:
            st.markdown(f"##### {heading or '&nbsp;'}")
            for field in group:
                values[field.path] = field_widget(field, disabled=field.section == "params" and field.name in swept)
            if group and group[0].section == "search":
                try:
                    space = _swept_space(values["search.method"])
                except SpecError as bad:
                    error = str(bad)
    if error:
        return None, error
    try:
        return spec_from_form(values, space), None
    except SpecError as bad:
        return None, str(bad)
