"""The Sweep page opens on the recommended preset as "the best model in N minutes", and the plan it shows
before launch is the one that runs: trials, folds, stages, refit and ensemble as the spec decides them
(issue 20; issue 23, item 2: it said "then 1 final refit" with refit off)."""
from __future__ import annotations

from pathlib import Path

import pytest
from apptest import button, no_errors, page
from streamlit.testing.v1 import AppTest

from core.search.budget import Data, plan_budget
from core.search.sweep_plan import SweepPlan
from core.spec.fields import form_values
from core.spec.sweep import SweepSpec, load_yaml

PRESET = Path(__file__).resolve().parents[1] / "examples" / "recommended.yaml"


def plan_text(at: AppTest) -> str:
    """The page's plan line, as plain text (the page escapes its Markdown)."""
    return next(i.value for i in at.info if "trains" in i.value).replace("\\", "")


def sweep_page() -> AppTest:
    at = page("views/2_Sweep.py")
    no_errors(at)
    return at


def test_the_form_opens_on_the_preset_and_plans_it_for_the_time_budget(data_root: Path) -> None:
    from ui.budget_plan import _measure_key, _measured
    at = sweep_page()
    values, space = form_values(SweepSpec.from_yaml(PRESET.read_text()))
    assert at.number_input(key="spec.params.trainable_layers").value == values["params.trainable_layers"]
    assert at.selectbox(key="spec.params.head").value == values["params.head"]
    assert at.multiselect(key="spec.swept").value == list(space)
    assert at.number_input(key="spec.budget_minutes").value == 15
    assert button(at, "Launch").disabled and button(at, "Plan for this machine")  # the plan needs the speed first

    form = SweepSpec.from_yaml(PRESET.read_text())
    form.name, form.data.dataset = at.text_input(key="spec.name").value, str(data_root / "colours")
    sizes = Data(train=300, test=60, classes=3)
    _measured()[_measure_key(form)] = (sizes, 40.0)          # as the button's measurement leaves it
    at.run()
    no_errors(at)
    plan = plan_budget(sizes, 40.0, 15 * 60)
    assert plan.describe().replace("\\", "") in at.success[0].value.replace("\\", "")
    assert plan_text(at) == f"This sweep trains {SweepPlan.of(plan.spec(form)).describe()}."
    assert not button(at, "Launch").disabled
    at.number_input(key="spec.budget_minutes").set_value(1).run()
    assert "too little time to fine-tune" in at.success[0].value

    at.number_input(key="spec.params.epochs").set_value(3).run()     # an edit: the form runs as it says
    no_errors(at)
    assert not at.success and any("no time budget rewrites them" in c.value for c in at.caption)
    assert "up to 3 more" in plan_text(at) and not button(at, "Launch").disabled


def test_the_plan_text_says_what_refit_and_ensemble_make_the_final_model(data_root: Path) -> None:
    at = sweep_page()
    at.multiselect(key="spec.swept").set_value([]).run()            # network trials only
    text = plan_text(at)
    assert text.startswith("This sweep trains 1 trial x 3 folds = 3 trainings; each network fold trains the head "
                           "2 epochs on the frozen backbone, then the top 40 layers with the head up to 6 more")
    assert "the best trial's 3 fold models kept as the final model (no refit)" in text and "final refit" not in text
    at.checkbox(key="spec.refit").check().run()
    assert "then 1 final refit of the best trial on the whole train part, with the best trial's 3 fold models " \
           "averaged (and with flip TTA) as variants" in plan_text(at)
    at.checkbox(key="spec.ensemble").uncheck().run()
    assert plan_text(at).endswith("up to 6 more; then 1 final refit of the best trial on the whole train part.")
    at.checkbox(key="spec.refit").uncheck().run()
    assert at.error and button(at, "Launch").disabled               # neither: no final model, refused


def test_a_best_svm_trial_is_refit_even_without_refit() -> None:
    spec = SweepSpec.from_yaml(PRESET.read_text())
    assert SweepPlan.of(spec).final() == ("the best trial's 3 fold models kept as the final model (no refit); if the "
                                          "best trial is of kind svm, 1 final refit of the best trial on the whole "
                                          "train part")


@pytest.mark.slow
def test_the_speed_is_measured_in_a_process_of_its_own(tiny_dataset: Path) -> None:
    from core.search.measure import measure_elsewhere
    spec = SweepSpec.from_dict({"name": "speed", "data": {"dataset": str(tiny_dataset)}})
    sizes, speed = measure_elsewhere(spec)
    assert sizes == Data(train=30, test=6, classes=3, folds=3) and speed > 0


def test_the_plan_counts_the_frozen_features_svm_once_in_a_grid_over_depth() -> None:
    data = load_yaml(PRESET.read_text())
    data["search"]["space"] = {"kind": ["network", "svm"], "trainable_layers": [40, 60]}
    plan = SweepPlan.of(SweepSpec.from_dict(data))
    assert plan.describe().startswith(
        "3 trials x 3 folds = 9 trainings (1 more grid point the same fit as another, not fitted again); ")
    assert plan.final().startswith("the best trial's 3 fold models (with the next best trials' where their "
                                   "out-of-fold scores say they help) kept as the final model")
