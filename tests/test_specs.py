"""The sweep spec: YAML round trip, defaults, and errors that name the field."""
from pathlib import Path

import pytest

from core.spec.fields import fields_by_path
from core.spec.sweep import SpecError, SweepSpec, check_sweep_name


def spec_dict(**overrides):
    base = {"name": "grid-1", "data": {"dataset": "flowers5"}, "folds": 3,
            "search": {"method": "grid", "space": {"trainable_layers": [1, 2, 3], "batch_size": [32, 64]}}}
    base.update(overrides)
    return base


def test_yaml_round_trip_keeps_every_field():
    spec = SweepSpec.from_dict(spec_dict())
    again = SweepSpec.from_yaml(spec.to_yaml())
    assert again == spec
    assert again.params.backbone == "efficientnet_lite0"
    assert again.planned_trials() == 6
    assert again.grid()[0] == {"trainable_layers": 1, "batch_size": 32}


def test_ints_are_accepted_for_floats():
    spec = SweepSpec.from_dict(spec_dict(params={"learning_rate": 1}))
    assert spec.params.learning_rate == 1.0 and isinstance(spec.params.learning_rate, float)


@pytest.mark.parametrize("overrides, field", [
    ({"params": {"optimizer": "adamw"}}, "params.optimizer"),
    ({"params": {"dropout": 1.5}}, "params.dropout"),
    ({"params": {"colour": 1}}, "params.colour"),
    ({"folds": 1}, "folds"),
    ({"name": "bad name!"}, "name"),
    ({"data": {"dataset": ""}}, "data.dataset"),
    ({"search": {"method": "grid", "space": {"weights": ["none"]}}}, "search.space.weights"),
    ({"search": {"method": "grid", "space": {"batch_size": []}}}, "search.space.batch_size"),
    ({"search": {"method": "grid", "space": {"optimizer": ["sgd", "lion"]}}}, "search.space.optimizer[1]"),
    ({"search": {"method": "grid", "space": {"learning_rate": {"low": 0.1, "high": 1}}}},
     "search.space.learning_rate"),
    ({"search": {"method": "random", "space": {"learning_rate": {"low": 0.1, "high": 1}}}}, "search.budget"),
    ({"data": {"dataset": "x", "split": "ordered"}}, "data.train_count"),
    ({"params": {"backbone": "inception_v3"}}, "params.backbone"),
    ({"search": {"method": "grid", "space": {"backbone": ["vgg16", "inception_v3"]}}},
     "search.space.backbone[1]"),
    ({"params": {"learning_rate": float("nan")}}, "params.learning_rate"),
    ({"search": {"method": "grid", "space": {"dropout": [0.1, float("nan")]}}}, "search.space.dropout[1]"),
    ({"search": {"method": "tpe", "budget": 3, "space": {"momentum": {"low": float("nan"), "high": 0.9}}}},
     "search.space.momentum.low"),
    ({"params": {"epochs": True}}, "params.epochs"),
    ({"params": {"dropout": False}}, "params.dropout"),
    ({"search": {"method": "grid", "space": {"batch_size": [8, True]}}}, "search.space.batch_size[1]"),
    ({"search": {"method": "tpe", "budget": 3,
                 "space": {"learning_rate": {"low": 0.1, "high": 1, "log": "yes"}}}},
     "search.space.learning_rate.log"),
])
def test_errors_name_the_field(overrides, field):
    with pytest.raises(SpecError) as info:
        SweepSpec.from_dict(spec_dict(**overrides))
    assert str(info.value).startswith(field + ":"), str(info.value)


def test_random_search_with_ranges():
    spec = SweepSpec.from_dict(spec_dict(search={"method": "tpe", "budget": 7, "space": {
        "learning_rate": {"low": 1e-4, "high": 1e-1, "log": True}, "optimizer": ["sgd", "adam"]}}))
    assert spec.planned_trials() == 7


def test_invalid_yaml_is_a_spec_error():
    with pytest.raises(SpecError, match="not valid YAML"):
        SweepSpec.from_yaml("name: [unclosed")
    with pytest.raises(SpecError, match="mapping"):
        SweepSpec.from_yaml("- just\n- a list\n")


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_example_specs_are_valid(path):
    spec = SweepSpec.from_yaml(path.read_text())
    assert spec.name == path.stem and spec.planned_trials() >= 1


@pytest.mark.parametrize("text, field", [
    ("name: a\nname: b\ndata: {dataset: x}\n", "name"),
    ("name: a\ndata: {dataset: x}\nparams:\n  epochs: 3\n  epochs: 30\n", "params.epochs"),
    ("name: a\ndata: {dataset: x}\nsearch:\n  space: {batch_size: [8], batch_size: [16]}\n",
     "search.space.batch_size"),
])
def test_duplicate_yaml_keys_are_refused_by_field(text, field):
    with pytest.raises(SpecError, match=rf"^{field}: given twice"):
        SweepSpec.from_yaml(text)


def test_yaml_bytes_that_are_not_utf8_are_a_spec_error():
    assert SweepSpec.from_yaml(b"name: a\ndata: {dataset: x}\n").name == "a"
    with pytest.raises(SpecError, match=r"^spec: not UTF-8 text .*byte 0xff at position 6"):
        SweepSpec.from_yaml(b"name: \xff\ndata: {dataset: x}\n")


@pytest.mark.parametrize("name", ["", "-dash-first", "has space", "a/b", "x" * 101, "évian"])
def test_one_sweep_name_rule(name):
    with pytest.raises(SpecError, match="^name: "):
        check_sweep_name(name)
    with pytest.raises(SpecError, match="^name: "):
        SweepSpec.from_dict(spec_dict(name=name))
    assert check_sweep_name("flowers5-lite0_v2.1") == "flowers5-lite0_v2.1"


def test_the_spec_offers_exactly_the_registry_backbones():
    from core.models.backbones import list_backbones
    assert list(fields_by_path()["params.backbone"].choices) == list_backbones()
