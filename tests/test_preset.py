"""The Sweep page's one-click recommended preset: examples/recommended.yaml in every field of the form but the
dataset, which stays the user's pick (AppTest on the real page)."""
from __future__ import annotations

from pathlib import Path

from apptest import button, no_errors, page

from core.spec.fields import fields_by_path, form_values
from core.spec.space import format_value
from core.spec.sweep import SweepSpec
from ui.spec_form import HIDDEN

PRESET = Path(__file__).resolve().parents[1] / "examples" / "recommended.yaml"


def test_the_recommended_preset_fills_the_form_but_keeps_the_chosen_dataset(data_root):
    at = page("views/2_Sweep.py")
    dataset = at.selectbox(key="spec.data.dataset").value
    at.number_input(key="spec.params.trainable_layers").set_value(5)      # the form opens on the preset: leave it
    at.multiselect(key="spec.swept").set_value([]).run()
    button(at, "Recommended preset").click().run()
    no_errors(at)
    values, space = form_values(SweepSpec.from_yaml(PRESET.read_text()))
    fields = fields_by_path()
    assert at.selectbox(key="spec.data.dataset").value == dataset == str(data_root / "colours")
    assert at.text_input(key="spec.name").value.startswith(values["name"])
    shown = {path: at.session_state[f"spec.{path}"] for path in values
             if path not in {"name", "data.dataset", *HIDDEN}}
    assert shown == {path: format_value(value) if fields[path].is_list else value
                     for path, value in values.items() if path in shown}
    assert at.number_input(key="spec.params.trainable_layers").value == values["params.trainable_layers"]
    assert at.selectbox(key="spec.params.head").value == values["params.head"]
    assert at.multiselect(key="spec.swept").value == list(space)
    for name, dim in space.items():
        if fields[f"params.{name}"].choices:
            assert at.multiselect(key=f"space.{name}").value == list(dim.values)
            assert at.selectbox(key=f"spec.params.{name}").disabled     # swept: its single value is off
        else:
            assert at.text_input(key=f"space.{name}").value == dim.describe()
            assert at.number_input(key=f"spec.params.{name}").disabled
