"""The Sweep form schema comes from the spec dataclasses; values parse to typed lists; spec round-trips."""
from __future__ import annotations

import dataclasses

import pytest
import yaml

from core.spec.fields import (
    fields_by_path,
    form_fields,
    form_values,
    parse_values,
    spec_from_form,
    sweepable_params,
)
from core.search.sweep_plan import SweepPlan
from core.spec.space import Choice, Range, format_value
from core.spec.sweep import SpecError, SweepSpec, TrialParams, sweepable_fields


def test_every_leaf_field_once_with_its_metadata() -> None:
    paths = [f.path for f in form_fields()]
    assert len(paths) == len(set(paths))
    assert {f"params.{f.name}" for f in dataclasses.fields(TrialParams)} <= set(paths)
    lr = fields_by_path()["params.learning_rate"]
    assert (lr.kind, lr.default, lr.low, lr.high, lr.sweepable) == (float, 1e-3, 1e-6, 10.0, True)
    assert fields_by_path()["data.split"].choices == ("stratified", "ordered")
    assert [f.name for f in sweepable_params()] == sweepable_fields()


def test_parse_values_types_lists_and_ranges() -> None:
    by = fields_by_path()
    assert parse_values("1, 2,5", by["params.trainable_layers"]) == Choice((1, 2, 5))
    assert parse_values("1e-4, 0.01", by["params.learning_rate"]) == Choice((1e-4, 0.01))
    assert parse_values("adam, sgd", by["params.optimizer"]) == Choice(("adam", "sgd"))
    assert parse_values("1e-4 .. 1e-1 log", by["params.learning_rate"]) == Range(1e-4, 0.1, True)
    with pytest.raises(SpecError, match=r"^search.space.batch_size\[1\]: 'x' is not an integer"):
        parse_values("32, x", by["params.batch_size"])
    with pytest.raises(SpecError, match="^search.space.head: only numeric"):
        parse_values("a .. b", by["params.head"])
    with pytest.raises(SpecError, match="at least one value"):
        parse_values("  ", by["params.epochs"])


def test_list_fields_parse_from_spaces_and_commas_and_round_trip() -> None:
    by = fields_by_path()
    assert parse_values("16 8, 4", by["params.dense_units"]) == Choice(((16, 8), (4,)))
    assert parse_values("0.5 0.2, 0.3", by["params.dropout"]) == Choice(((0.5, 0.2), (0.3,)))
    with pytest.raises(SpecError, match=r"^search.space.dense_units\[1\]\[1\]: 'x' is not"):
        parse_values("16 8, 4 x", by["params.dense_units"])
    with pytest.raises(SpecError, match="^search.space.dense_units: only numeric"):
        parse_values("8 .. 64", by["params.dense_units"])
    spec = SweepSpec.from_dict({"name": "lists", "data": {"dataset": "colours"},
                                "params": {"head": "dense_dropout", "dense_units": [64, 32],
                                           "dropout": [0.5, 0.2]},
                                "search": {"space": {"dense_units": [[16, 8], 8]}}})
    values, space = form_values(spec)
    assert format_value(values["params.dense_units"]) == "64 32"
    assert space["dense_units"].describe() == "16 8, 8"
    assert spec_from_form(values, space) == spec
    typed = values | {"params.dense_units": "64 32", "params.dropout": "0.5 0.2"}   # as the text inputs give
    assert spec_from_form(typed, {"dense_units": parse_values("16 8, 8", by["params.dense_units"])}) == spec


def test_form_round_trip_and_sizes() -> None:
    spec = SweepSpec.from_dict({"name": "grid", "data": {"dataset": "colours"}, "folds": 2,
                                "params": {"backbone": "mobilenetv2", "image_size": 32},
                                "search": {"space": {"batch_size": [8, 16], "optimizer": ["adam", "sgd"]}}})
    values, space = form_values(spec)
    assert "search.space" not in values and space == {"batch_size": Choice((8, 16)),
                                                      "optimizer": Choice(("adam", "sgd"))}
    assert spec_from_form(values, space) == spec
    assert space["batch_size"].describe() == "8, 16"
    assert parse_values(Range(1e-4, 0.1, True).describe(),
                        fields_by_path()["params.learning_rate"]) == Range(1e-4, 0.1, True)
    assert SweepPlan.of(spec).trials == 4 == spec.planned_trials()
    tpe = SweepSpec.from_dict(spec.to_dict() | {"search": {"method": "tpe", "budget": 7, "space": {}}})
    assert SweepPlan.of(tpe).describe().startswith("7 trials x 2 folds = 14 trainings")


def test_spec_from_form_names_the_bad_field() -> None:
    values, _ = form_values(SweepSpec(name="x"))
    values["data.dataset"] = "colours"
    values["folds"] = 1
    with pytest.raises(SpecError, match="^folds: 1 is below the minimum 2"):
        spec_from_form(values, {})


# --- an uploaded spec through the real form (AppTest): refused by field, never silently changed ---------

def _form_page() -> None:
    """The Sweep form alone, as the Sweep page draws it."""
    import streamlit as st

    from ui.spec_form import sweep_form
    spec, error = sweep_form()
    st.text(error or spec.to_yaml())


@pytest.fixture
def two_datasets(tmp_path, monkeypatch):
    """A data root whose first dataset ('alpha') is what a substituted choice would turn into."""
    from conftest import write_class_folders
    root = tmp_path / "data"
    write_class_folders(root / "alpha", per_class=2)
    write_class_folders(root / "good", per_class=2, classes={"cats": (200, 40, 40), "dogs": (40, 60, 200)})
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", str(root))
    monkeypatch.setenv("TRANSFERLAB_STORAGE", f"sqlite:///{tmp_path / 'runs.db'}")
    return root


def upload(text: str):
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_function(_form_page, default_timeout=30).run()
    at.file_uploader(key="spec_upload").upload("mine.yaml", text.encode(), "application/x-yaml").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("body, field, value", [
    ("data: {dataset: good/cats}", "data.dataset", "good/cats"),
    ("data: {dataset: good}\nparams: {backbone: inception_v3}", "params.backbone", "inception_v3"),
    ("data: {dataset: good}\nsearch: {space: {backbone: [mobilenetv2, inception_v3]}}",
     "search.space.backbone[1]", "inception_v3"),
    ("data: {dataset: good}\nparams: {learning_rate: .nan}", "params.learning_rate", "nan"),
    ("data: {dataset: good}\nsearch: {space: {dropout: [0.1, .nan]}}", "search.space.dropout[1]", "nan"),
])
def test_an_uploaded_value_the_form_cannot_show_is_refused_by_field(two_datasets, body, field, value):
    at = upload(f"name: mine\n{body}\n")
    errors = [e.value.replace("\\", "") for e in at.error]       # unescaped Markdown
    assert any(f"{field}:" in e and value in e for e in errors), errors
    assert at.text_input(key="spec.name").value != "mine"          # nothing of the refused file was loaded


def test_an_uploaded_spec_the_form_can_show_is_kept_exactly(two_datasets):
    at = upload("name: mine\ndata: {dataset: good}\nparams: {backbone: mobilenetv2, learning_rate: 0.02}\n"
                "search: {space: {backbone: [resnet50, vgg16]}}\n")
    assert not at.error, [e.value for e in at.error]
    assert at.selectbox(key="spec.data.dataset").value == str(two_datasets.resolve() / "good")
    assert at.number_input(key="spec.params.learning_rate").value == 0.02
    assert at.multiselect(key="space.backbone").value == ["resnet50", "vgg16"]


def test_an_upload_error_quoting_the_file_is_plain_text(two_datasets):
    at = upload("name: mine\ndata: {dataset: good}\nparams: {backbone: '![x](http://example.invalid/a.png)'}\n")
    assert "params.backbone" in at.error[0].value and "\\!\\[x\\]\\(http" in at.error[0].value


def test_an_uploaded_list_valued_head_shows_as_text_and_comes_back(two_datasets):
    at = upload("name: mine\ndata: {dataset: good}\nparams: {head: dense_dropout, dense_units: [512, 128], "
                "dropout: [0.5, 0.2]}\nsearch: {space: {dense_units: [[16, 8], 8]}}\n")
    assert not at.error, [e.value for e in at.error]
    assert at.text_input(key="spec.params.dense_units").value == "512 128"
    assert at.text_input(key="spec.params.dropout").value == "0.5 0.2"
    assert at.text_input(key="space.dense_units").value == "16 8, 8"
    at.text_input(key="spec.params.dropout").input("0.3").run()
    shown = yaml.safe_load(at.text[0].value)
    assert shown["params"]["dense_units"] == [512, 128] and shown["params"]["dropout"] == [0.3]
    assert shown["search"]["space"]["dense_units"] == [[16, 8], [8]]
