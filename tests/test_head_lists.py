"""List-valued dense heads: widths and dropouts as lists in YAML, the search space, Optuna's store, charts."""
from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from core.results import charts
from core.results.importance import param_importances
from core.search.oracle import make_sampler, suggest
from core.spec.space import Choice
from core.spec.sweep import SpecError, SweepSpec, TrialParams

REPO = Path(__file__).resolve().parents[1]


def spec_of(params: dict | None = None, space: dict | None = None, method: str = "grid",
            budget: int = 0) -> SweepSpec:
    return SweepSpec.from_dict({"name": "heads", "data": {"dataset": "colours"}, "params": params or {},
                                "search": {"method": method, "budget": budget, "space": space or {}}})


@pytest.mark.parametrize("given, expected", [
    (256, (256,)), ([512, 128], (512, 128)), ((64, 32, 16), (64, 32, 16)), ("512 128", (512, 128)),
    ("  64 ", (64,)),
])
def test_widths_in_every_form_become_one_tuple(given, expected):
    assert spec_of({"dense_units": given}).params.dense_units == expected
    assert TrialParams(dense_units=given).dense_units == expected          # direct construction too


def test_dropouts_are_floats_and_old_scalar_specs_still_load():
    assert spec_of({"dropout": 0.3}).params.dropout == (0.3,)
    rates = spec_of({"dense_units": [64, 32], "dropout": [0, 0.2]}).params.dropout
    assert rates == (0.0, 0.2) and all(type(r) is float for r in rates)
    spec = SweepSpec.from_yaml((REPO / "examples" / "recommended.yaml").read_bytes())
    assert (spec.params.dense_units, spec.params.dropout) == ((256,), (0.3,))
    assert spec_of({"dense_units": [64, 32], "dropout": "0 0.25"}).params.dropout == (0.0, 0.25)


@pytest.mark.parametrize("params, space, line", [
    ({"dense_units": [512, 128, 64], "dropout": [0.5, 0.2]}, {}, r"^params\.dropout: 2 rates for 3 layers"),
    ({"dense_units": [512, 5000]}, {}, r"^params\.dense_units\[1\]: 5000 is above the maximum 4096"),
    ({"dropout": [0.2, 0.95]}, {}, r"^params\.dropout\[1\]: 0\.95 is above"),
    ({"dense_units": []}, {}, r"^params\.dense_units: .*1 to 4"),
    ({"dense_units": [8, 8, 8, 8, 8]}, {}, r"^params\.dense_units: .*1 to 4"),
    ({"dense_units": "512 x"}, {}, r"^params\.dense_units\[1\]: 'x' is not"),
    ({"dense_units": [64, True]}, {}, r"^params\.dense_units\[1\]: expected int"),
    ({"dense_units": 1.5}, {}, r"^params\.dense_units: expected int"),
    ({}, {"dense_units": [[512, 128], [16, 9000]]}, r"^search\.space\.dense_units\[1\]\[1\]: 9000 is above"),
    ({}, {"dense_units": [[512, 128], []]}, r"^search\.space\.dense_units\[1\]: .*1 to 4"),
])
def test_a_bad_list_names_the_field_or_element(params, space, line):
    with pytest.raises(SpecError, match=line):
        spec_of(params, space)


def test_a_range_of_a_list_field_is_refused():
    with pytest.raises(SpecError, match=r"^search\.space\.dense_units: .*list of values"):
        spec_of(space={"dense_units": {"low": 8, "high": 64}}, method="random", budget=3)


def test_an_impossible_swept_combination_fails_where_the_trial_values_meet():
    spec = spec_of({"dropout": [0.5, 0.2]}, {"dense_units": [[512, 128], 256]})
    assert spec.trial_params({"dense_units": "512 128"}).dense_units == (512, 128)
    with pytest.raises(SpecError, match=r"^params\.dropout: 2 rates for 1 layer"):
        spec.trial_params({"dense_units": 256})


def test_yaml_writes_lists_and_reads_back_equal():
    spec = spec_of({"head": "dense_dropout", "dense_units": [512, 128], "dropout": [0.5, 0.2]},
                   {"dense_units": [[512, 128], 256], "dropout": [0.1, [0.3, 0.2]]})
    text = spec.to_yaml()
    data = yaml.safe_load(text)
    assert data["params"]["dense_units"] == [512, 128] and data["params"]["dropout"] == [0.5, 0.2]
    assert data["search"]["space"]["dense_units"] == [[512, 128], [256]]
    assert SweepSpec.from_yaml(text) == spec


def test_the_space_holds_tuples_and_old_number_lists_keep_their_meaning():
    spec = spec_of(space={"dense_units": [[512, 128], 256]})
    assert spec.search.space["dense_units"] == Choice(((512, 128), (256,)))
    assert spec.planned_trials() == 2
    assert spec.grid() == [{"dense_units": (512, 128)}, {"dense_units": (256,)}]
    assert spec.search.space["dense_units"].describe() == "512 128, 256"
    old = spec_of(space={"dense_units": [256, 512]})
    assert old.search.space["dense_units"] == Choice(((256,), (512,))) and old.planned_trials() == 2


def _run_trials(storage: str, spec: SweepSpec, trials: int) -> None:
    """Run `trials` trials of the study through a fresh storage object, as a new worker process would."""
    study = optuna.load_study(study_name=spec.name, storage=optuna.storages.RDBStorage(storage),
                              sampler=make_sampler(spec))
    study.optimize(lambda trial: float(sum(spec.trial_params(suggest(trial, spec)).dense_units)),
                   n_trials=trials)


def test_a_grid_of_lists_runs_in_a_real_sqlite_study_and_reopens(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    spec = spec_of(space={"dense_units": [[512, 128], [64, 32]], "dropout": [0.1, [0.3, 0.2]]})
    optuna.create_study(study_name=spec.name, storage=storage)
    _run_trials(storage, spec, 2)
    _run_trials(storage, spec, 2)               # reopened: the stored distributions must match the new ones
    trials = optuna.load_study(study_name=spec.name, storage=storage).trials
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    stored = {(t.params["dense_units"], t.params["dropout"]) for t in trials}
    assert stored == {("512 128", 0.1), ("512 128", "0.3 0.2"), ("64 32", 0.1), ("64 32", "0.3 0.2")}
    back = {(spec.trial_params(t.params).dense_units, spec.trial_params(t.params).dropout) for t in trials}
    assert back == {((512, 128), (0.1,)), ((512, 128), (0.3, 0.2)), ((64, 32), (0.1,)),
                    ((64, 32), (0.3, 0.2))}


def test_random_search_over_lists_suggests_primitives(tmp_path):
    spec = spec_of(space={"dense_units": [[64, 32], 16, [8, 8, 8]]}, method="random", budget=6)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'r.db'}", sampler=make_sampler(spec))
    for _ in range(6):
        trial = study.ask()
        values = suggest(trial, spec)
        assert values["dense_units"] in ("64 32", 16, "8 8 8")
        study.tell(trial, 0.5)


def test_charts_and_importance_take_a_mixed_width_column():
    widths = ["512 128", 256, "512 128", 256, "64 32 16", 256]
    trials = pd.DataFrame([dict(sweep="s", number=i, state="COMPLETE", value=0.1 + i / 50, value_std=0.01,
                                fold_errors=[0.1, 0.2], dense_units=w, learning_rate=(1e-3, 1e-2)[i % 2],
                                duration_s=1.0) for i, w in enumerate(widths)])
    parallel = charts.parallel_coordinates(trials, ["dense_units", "learning_rate"])
    assert list(parallel.data[0].dimensions[0].ticktext) == ["512 128", "256", "64 32 16"]
    assert charts.error_vs_param(trials, "dense_units").data
    assert charts.error_surface_3d(trials, "dense_units", "learning_rate").data
    assert set(param_importances(trials, "mean_decrease_impurity").index) == {"dense_units", "learning_rate"}


def test_a_mixed_width_column_is_shown_as_text_so_arrow_takes_the_table():
    import pyarrow as pa

    from core.results.tables import mixed_as_text
    trials = pd.DataFrame({"number": [0, 1], "dense_units": ["512 128", 256], "value": [0.2, 0.3],
                           "fold_errors": [[0.1, 0.3], [0.2, 0.4]]})
    with pytest.raises(pa.ArrowTypeError):
        pa.Table.from_pandas(trials)
    shown = mixed_as_text(trials)
    assert shown["dense_units"].tolist() == ["512 128", "256"] and shown["value"].tolist() == [0.2, 0.3]
    assert shown["fold_errors"].tolist() == [[0.1, 0.3], [0.2, 0.4]]         # lists are not mixed scalars
    assert pa.Table.from_pandas(shown).num_rows == 2
