"""What the AppTest suites share: the app's entry, a page opened through it, checks on a run, the Sweep page's
form filled with a tiny sweep, a sweep with a running trial's live curves, a stand-in driver, and the delete
clicks."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TF_TIMEOUT = 120            # a page run that imports TensorFlow


def page(path: str | None = None, timeout: float = 60) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=timeout).run()
    assert not at.exception, at.exception
    if path:
        at.switch_page(path).run()
    return at


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def tiny_spec(name: str, dataset: Path):
    from core.spec.sweep import SweepSpec
    return SweepSpec.from_dict({"name": name, "data": {"dataset": str(dataset)}, "folds": 2,
                                "search": {"space": {"batch_size": [8, 16]}}})

LIVE_CURVES = {"fold 1": {"loss": [1.2, 0.9, 0.7], "val_loss": [1.3, 1.0, 0.9],
                          "accuracy": [0.4, 0.6, 0.7], "val_accuracy": [0.3, 0.5, 0.6]}}


def fake_running_trial(name: str, dataset: str) -> None:
    """A stopped sweep whose trial 0 is still RUNNING with live curves (as a worker writes them mid-fold)."""
    from core.runs.records import LiveProgress
    from core.runs.store import RunStore
    from core.spec.sweep import SweepSpec
    store = RunStore()
    store.create_sweep(SweepSpec.from_dict({"name": name, "data": {"dataset": dataset}, "folds": 2,
                                            "search": {"space": {"batch_size": [8, 16]}}}))
    trial = store.study(name).ask({"batch_size": optuna_choice([8, 16])})
    store.set_live(trial, LiveProgress(fold=0, epoch=2, curves=LIVE_CURVES))
    store.set_status(name, "stopped")


def optuna_choice(values: list) -> object:
    from optuna.distributions import CategoricalDistribution
    return CategoricalDistribution(values)


def fill_tiny_sweep(at: AppTest, name: str) -> None:
    """The Sweep page's form filled with a sweep that trains in seconds: 2 learning rates x 2 folds."""
    at.selectbox(key="spec.example").set_value("flowers5-lite0").run()    # a frozen linear head, not the preset
    at.text_input(key="spec.name").input(name)
    at.selectbox(key="spec.params.backbone").set_value("mobilenetv2")
    at.selectbox(key="spec.params.weights").set_value("none")
    at.number_input(key="spec.params.image_size").set_value(32)
    at.number_input(key="spec.params.epochs").set_value(1)
    at.number_input(key="spec.params.batch_size").set_value(8)
    at.number_input(key="spec.folds").set_value(2)
    at.run()
    at.multiselect(key="spec.swept").set_value(["learning_rate"]).run()
    at.text_input(key="space.learning_rate").input("0.01, 0.001").run()
    no_errors(at)
    assert any("2 trials x 2 folds" in i.value for i in at.info)


@contextmanager
def driven(store, name: str, data_root: Path) -> Iterator[None]:
    """A sweep marked running whose driver is a live process with `core` on its command line (a stand-in)."""
    store.create_sweep(tiny_spec(name, data_root / "colours"))
    driver = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "core"])
    try:
        store.set_driver(name, driver.pid)
        store.set_status(name, "running")
        yield
    finally:
        driver.kill()
        driver.wait()


def delete_on_page(at: AppTest) -> None:
    """Press Delete, then confirm it."""
    button(at, "Delete").click().run()
    button(at, "Delete for good").click().run()


def watch(name: str) -> AppTest:
    """The Sweep page opened on ?sweep=NAME."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["sweep"] = name
    at.run()
    return at.switch_page("views/2_Sweep.py").run()
