"""examples/: one spec per report of the design notes (and the preset), each valid, each loadable on the Sweep
page, each running end to end (with random weights on a few generated images: its real-weights run is a
benchmark, where the weights can be had). Issue 23, item 13."""
from __future__ import annotations

from pathlib import Path

import pytest
from apptest import no_errors, page
from conftest import write_class_folders

from core.spec.sweep import SweepSpec

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))
REPORTS = {"resnet50-natural-50px", "mobilenetv2-embeddings-sgd", "vgg16-512-128-head", "resnet101-staged-rmsprop",
           "resnet50v2-report-grid"}


def test_every_example_is_valid_and_the_reports_are_all_there() -> None:
    specs = {path.stem: SweepSpec.from_yaml(path.read_bytes()) for path in EXAMPLES}
    assert REPORTS <= set(specs) and all(spec.name == stem for stem, spec in specs.items())
    assert {specs[r].params.backbone for r in REPORTS} == {"resnet50", "mobilenetv2", "vgg16", "resnet101",
                                                           "resnet50v2"}


def test_the_sweep_page_loads_each_example_into_its_form(data_root: Path) -> None:
    at = page("views/2_Sweep.py")
    for path in EXAMPLES:
        spec = SweepSpec.from_yaml(path.read_bytes())
        at.selectbox(key="spec.example").set_value(path.stem).run()
        no_errors(at)
        assert at.text_input(key="spec.name").value.startswith(spec.name)
        assert at.selectbox(key="spec.params.backbone").value == spec.params.backbone
        assert at.multiselect(key="spec.swept").value == list(spec.search.space)
        assert at.selectbox(key="spec.data.dataset").value == str(data_root / "colours")     # the user's


def tiny(spec: SweepSpec, dataset: Path) -> SweepSpec:
    """The example at its smallest: random weights, 32 px, one epoch a stage, one view, 2 folds, one trial, its
    fold models as the final model (no refit to train)."""
    data = spec.to_dict()
    data["data"] |= {"dataset": str(dataset), "test_fraction": 0.25}
    data["params"] |= {"weights": "none", "image_size": 32, "epochs": 1, "augment_views": 1, "batch_size": 8,
                       "stage1_epochs": min(spec.params.stage1_epochs, 1), "early_stopping": 0}
    data["search"] |= {"budget": 1}
    return SweepSpec.from_dict(data | {"folds": 2, "ensemble": True, "refit": False})


@pytest.mark.slow          # builds each backbone (ResNet101, VGG16, ...) at 32 px: about 5 s each on 2 cores
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_each_example_runs_end_to_end(path: Path, tmp_path: Path) -> None:
    from core.runs.store import RunStore
    from core.search.executors import run_sweep
    spec = tiny(SweepSpec.from_yaml(path.read_bytes()), write_class_folders(tmp_path / "colours", per_class=6))
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}", artifacts_dir=tmp_path / "artifacts")
    store.create_sweep(spec)
    final = run_sweep(store, spec.name, say=lambda _: None)
    assert final is not None and final.params["backbone"] == spec.params.backbone
