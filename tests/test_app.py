"""Every page through its main path in Streamlit's AppTest: a dataset explored, a tiny sweep launched
in a real worker process and watched to its end, its results shown, an image classified with Grad-CAM."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from apptest import APP, TF_TIMEOUT, button, fake_running_trial, fill_tiny_sweep, no_errors, page
from conftest import make_image, png_zip, write_class_folders
from streamlit.testing.v1 import AppTest

from core.text import plain

SWEEP = "colours-tiny"
SWEEP_TIMEOUT = 420


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_dataset_page_explores_the_chosen_dataset(data_root: Path) -> None:
    at = page()
    no_errors(at)
    assert at.title[0].value == "Dataset"
    assert at.sidebar.selectbox(key="dataset_choice").value == str(data_root / "colours")
    assert metric(at, "Images") == "36" and metric(at, "Classes") == "3"
    assert len(at.get("plotly_chart")) >= 3     # counts, sizes, split
    at.selectbox(key="preview.split").set_value("ordered").run()
    no_errors(at)


def test_dataset_sweep_and_results_pages_do_not_import_tensorflow(data_root: Path) -> None:
    """TensorFlow takes seconds to import: only Predict (and the worker processes) may pay for it."""
    script = (f"import sys\nfrom streamlit.testing.v1 import AppTest\nat = AppTest.from_file({APP!r}, default_timeout=60).run()\n"
              "for page in ('views/2_Sweep.py', 'views/3_Results.py'):\n    at.switch_page(page).run()\n"
              "assert not at.exception, at.exception\nprint('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=os.environ)
    assert out.stdout.strip().endswith("False"), out.stderr[-2000:]


def test_secrets_toml_gives_the_data_roots(data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = write_class_folders(tmp_path / "from-secrets" / "shapes", per_class=8)
    monkeypatch.delenv("TRANSFERLAB_DATA_ROOTS")
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets["data_roots"] = [str(other.parent)]
    at.run()
    no_errors(at)
    assert at.session_state["dataset"] == str(other)


def test_dataset_zip_upload_is_extracted_and_selected(data_root: Path) -> None:
    pets = png_zip({"cats": (200, 100, 40), "dogs": (40, 100, 200)}, per_class=8, folder="pets/")
    at = page()
    at.file_uploader[0].upload("pets.zip", pets, "application/zip").run()
    at.button[0].click().run()
    no_errors(at)
    assert (data_root / "pets").is_dir()
    # (AppTest drops the sidebar of st.navigation apps after the first run, so read the state)
    assert at.session_state["dataset"].startswith(str(data_root / "pets"))
    assert metric(at, "Images") == "16"


def test_dataset_zip_that_is_not_a_zip_says_so(data_root: Path) -> None:
    at = page()
    at.file_uploader[0].upload("broken.zip", b"not a zip at all", "application/zip").run()
    at.button[0].click().run()
    assert not at.exception
    assert len(at.error) == 1 and "zip" in at.error[0].value.lower() and "upload it again" in at.error[0].value


def test_sweep_form_reports_a_bad_value_list_by_field(data_root: Path) -> None:
    at = page("views/2_Sweep.py")
    no_errors(at)
    at.multiselect(key="spec.swept").set_value(["batch_size"]).run()
    at.text_input(key="space.batch_size").input("8, big").run()
    assert not at.exception
    assert plain("search.space.batch_size[1]") in at.error[0].value      # the field, shown as plain text
    assert next(b for b in at.button if b.label == "Launch").disabled


def test_sweep_form_loads_an_uploaded_yaml_spec(data_root: Path) -> None:
    from core.spec.sweep import SweepSpec
    spec = SweepSpec.from_dict({"name": "from-yaml", "data": {"dataset": "colours"}, "folds": 4,
                                "params": {"backbone": "resnet50", "optimizer": "sgd"},
                                "search": {"method": "random", "budget": 5,
                                           "space": {"learning_rate": {"low": 1e-4, "high": 0.1, "log": True},
                                                     "head": ["linear", "dense_dropout"]}}})
    at = page("views/2_Sweep.py")
    at.file_uploader(key="spec_upload").upload("spec.yaml", spec.to_yaml().encode(), "application/x-yaml").run()
    no_errors(at)
    assert at.text_input(key="spec.name").value == "from-yaml"
    assert at.selectbox(key="spec.params.backbone").value == "resnet50"
    assert at.text_input(key="space.learning_rate").value == "0.0001 .. 0.1 log"
    assert at.multiselect(key="space.head").value == ["linear", "dense_dropout"]
    assert any("5 trials x 4 folds" in i.value for i in at.info)
    bad = page("views/2_Sweep.py")
    bad.file_uploader(key="spec_upload").upload("bad.yaml", b"folds: 1\nname: x\ndata: {dataset: colours}\n").run()
    shown = bad.error[0].value.replace("\\", "")       # plain() escapes the colons
    assert not bad.exception and "bad.yaml: folds: 1 is below the minimum 2" in shown


def test_sweep_page_shows_live_curves_of_a_running_trial(data_root: Path) -> None:
    fake_running_trial("live-view", str(data_root / "colours"))
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["sweep"] = "live-view"
    at.run()
    at.switch_page("views/2_Sweep.py").run()
    no_errors(at)
    assert any("Trial 0" in m.value and "epoch 3" in m.value for m in at.markdown)
    assert metric(at, "Running") == "1"


def launch_tiny_sweep() -> AppTest:
    at = page("views/2_Sweep.py", timeout=TF_TIMEOUT)
    fill_tiny_sweep(at, SWEEP)
    button(at, "Launch").click().run()
    no_errors(at)
    assert at.query_params["sweep"] == [SWEEP] or at.query_params["sweep"] == SWEEP
    return at


def wait_until_done(name: str) -> None:
    from core.runs.store import RunStore
    store = RunStore()
    deadline = time.monotonic() + SWEEP_TIMEOUT
    while store.status(name) != "done":
        if time.monotonic() > deadline:
            log = store.local_folder(name) / "driver.log"
            pytest.fail(f"sweep {name} still {store.status(name)!r} after {SWEEP_TIMEOUT}s; "
                        f"driver log:\n{log.read_text()[-3000:] if log.exists() else '(none)'}")
        time.sleep(2)


@pytest.fixture(scope="module")
def finished_sweep(data_root: Path) -> str:
    at = launch_tiny_sweep()
    assert any(p.label.startswith("Done") for p in at.metric)
    wait_until_done(SWEEP)
    at.run()
    no_errors(at)
    assert any("test accuracy" in s.value for s in at.success)
    return SWEEP


def test_sweep_is_launched_watched_and_finishes(finished_sweep: str) -> None:
    from core.runs.store import RunStore
    final = RunStore().final(finished_sweep, local=True)      # its model file, fetched from the artifact store
    assert final and Path(final.model_path).is_file()


def test_results_page_shows_trials_comparison_and_final_model(finished_sweep: str) -> None:
    from core.runs.store import RunStore
    at = page("views/3_Results.py")
    no_errors(at)
    assert len(at.dataframe) >= 1 and {"trial", "CV error"} <= set(at.dataframe[0].value.columns)
    final = RunStore().final(finished_sweep)
    accuracies = [m.value for m in at.metric if m.label == "Accuracy"]
    assert f"{final.test_accuracy:.1%}" in accuracies, accuracies     # the final model's test accuracy
    threshold = next(s for s in at.slider if s.label == "Decision threshold")
    threshold.set_value(0.8).run()
    no_errors(at)


def test_predict_page_classifies_an_upload_with_gradcam(finished_sweep: str, data_root: Path) -> None:
    at = page("views/4_Predict.py", timeout=TF_TIMEOUT)
    no_errors(at)
    image = io.BytesIO()
    make_image((200, 40, 40), seed=99).save(image, format="PNG")
    at.file_uploader(key="images").set_value([("red.png", image.getvalue(), "image/png"),
                                              ("notes.txt", b"hello, not an image", "text/plain")]).run()
    assert not at.exception, at.exception
    assert len(at.error) == 1 and "notes.txt" in at.error[0].value
    assert len(at.image) == 2     # the input and its Grad-CAM overlay
    assert any("probability" in d.value.columns for d in at.dataframe)
    picker = next(m for m in at.multiselect if m.label.startswith("…or pick"))
    picker.set_value([str(data_root / "colours" / "red" / "red_000.jpg")]).run()
    assert not at.exception, at.exception
    assert len(at.image) == 4     # the upload and the picked dataset image, each with its overlay
    next(r for r in at.radio if r.label == "Heat map").set_value("gradcam++").run()
    next(s for s in at.slider if s.label == "Heat map opacity").set_value(0.8).run()
    assert not at.exception, at.exception


def test_sweep_page_shows_the_caches_and_clears_them(data_root: Path) -> None:
    from core.settings import load_settings
    from core.training.activations import ActivationCache
    entry = ActivationCache(load_settings().cache_dir).root / "0123" / "meta.json"
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text("{}")
    at = page("views/2_Sweep.py")
    no_errors(at)
    assert metric(at, "Backbone activations").endswith("B")
    next(b for b in at.button if b.label == "Clear caches").click().run()
    no_errors(at)
    assert not entry.exists() and any("Freed" in s.value for s in at.success)
