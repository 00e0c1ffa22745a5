"""The recommended preset as "the best model in N minutes" on the Sweep page: a time budget, the plan the
planner (`core.search.budget`) chooses for this dataset and this machine's measured speed, its estimate,
and the spec Launch runs. A form that differs from the preset runs as it is: the budget rewrites nothing."""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import streamlit as st

from core.search.budget import Data, plan_budget
from core.search.measure import MeasureError, measure_elsewhere
from core.spec.sweep import SweepSpec
from ui.spec_form import PRESET
from ui.widgets import plain, user_error

BUDGET_KEY = "spec.budget_minutes"
MEASURED_KEPT = 32
PLAN_FIELDS = ("time_limit_s", "plan", "plan_s")     # what a plan writes into the search (`BudgetPlan.spec`)


@st.cache_resource(show_spinner=False)
def _measured() -> OrderedDict:
    """(the split's sizes, Lite0's images/s) per dataset and split, measured once by this server (this machine)."""
    return OrderedDict()


def _measure_key(spec: SweepSpec) -> tuple:
    path = Path(spec.data.dataset)
    stamp = os.stat(path).st_mtime_ns if path.exists() else 0
    return repr(spec.to_dict()["data"]), spec.folds, stamp


def follows_preset(spec: SweepSpec) -> bool:
    """Whether the form holds the recommended preset's model, search and final model (what a plan rewrites);
    the data and name are the user's either way, and the folds at least (a plan with time left raises them to
    `core.search.budget.MORE_FOLDS`)."""
    preset, mine = SweepSpec.from_yaml(PRESET.read_bytes()).to_dict(), spec.to_dict()

    def rewritten(data: dict) -> tuple:
        search = {k: v for k, v in data["search"].items() if k not in PLAN_FIELDS}
        return data["params"], search, data["ensemble"], data["refit"]
    return rewritten(mine) == rewritten(preset)


def _planned(spec: SweepSpec, minutes: int, measured: tuple[Data, float]) -> SweepSpec:
    sizes, speed = measured
    plan = plan_budget(sizes, speed, minutes * 60)
    st.success(f"**Best model in {minutes} min** on this machine (EfficientNet-Lite0 at {speed:.0f} images/s; "
               f"{sizes.train} training and {sizes.test} test images, {sizes.classes} classes): "
               f"{plain(plan.describe())}. Launch runs this plan; the fields above are the preset it starts from.",
               icon=":material/timer:")
    return plan.spec(spec)


def budgeted(spec: SweepSpec) -> SweepSpec | None:
    """The spec to launch: the preset planned for the time budget, or the form's own spec when it differs from
    the preset; None while the plan waits for this machine's speed (a button measures it)."""
    if not follows_preset(spec):
        st.caption("The fields differ from the recommended preset, so the sweep runs exactly as they say: no time "
                   "budget rewrites them (the Recommended preset button brings the budget back).")
        return spec
    left, right = st.columns([1, 3], vertical_alignment="bottom")
    minutes = int(left.number_input("Time budget (minutes)", min_value=1, max_value=24 * 60, value=15, step=5,
                                    key=BUDGET_KEY,
                                    help="the best model in this many minutes: the planner fits the recommended "
                                         "preset (epochs, augmented views, 5 folds rather than 3, backbone, "
                                         "unfrozen layers, other depths for the ensemble) to this dataset and this "
                                         "machine's measured speed"))
    key, measured = _measure_key(spec), _measured()
    if key not in measured:
        slot = right.empty()
        if not slot.button("Plan for this machine", icon=":material/speed:",
                           help="times EfficientNet-Lite0 on this dataset's images in a process of its own, once "
                                "per dataset on this server (it decodes the images, which the sweep then reuses)"):
            st.caption("Launch runs the plan for your time budget: plan it first (a short speed measurement).")
            return None
        try:
            with st.spinner("Measuring this machine's speed on the dataset (EfficientNet-Lite0, once per dataset)…"):
                measured[key] = measure_elsewhere(spec)
        except MeasureError as error:
            user_error(error, "Check the dataset, or change a field to run the form as it is.")
            return None
        slot.empty()
        while len(measured) > MEASURED_KEPT:
            measured.popitem(last=False)
    return _planned(spec, minutes, measured[key])
