"""Exports leave the app verified: each format reloaded in its own runtime matches the model, a broken or
differing export is refused and leaves nothing, the README snippet runs, the CLI exports every format."""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import make_image
from export_models import CLASSES, SIZE, final_like_model, finished_sweep, jittery_model

from core.cli import main
from core.inference.export_files import FORMATS, LABELS
from core.inference.exports import (
    ExportCheckError,
    check,
    check_images,
    export,
)
from core.inference.model_card import load_model

PHOTO_COLOURS = [(200, 40, 40), (40, 180, 60), (40, 60, 200), (220, 220, 40)]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for i, colour in enumerate(PHOTO_COLOURS):
        paths.append(folder / f"photo_{i}.jpg")
        make_image(colour, seed=i, size=(48, 40)).save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return final_like_model(tmp_path_factory.mktemp("model") / "best.keras")


@pytest.fixture(scope="module")
def exports(model_file, photos, tmp_path_factory) -> dict:
    """Each format exported once for the module (a conversion takes seconds)."""
    root = tmp_path_factory.mktemp("exports")
    return {fmt: export(model_file, fmt, root / fmt, card={"sweep": "colours", "cv_error": 0.125},
                        images=photos) for fmt in FORMATS}


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_reloads_with_the_models_predictions(exports, photos, fmt):
    result = exports[fmt]
    assert result.path.exists() and result.parity.images == len(photos)
    assert 0 <= result.parity.max_abs_diff <= result.parity.tolerance
    card = json.loads((result.folder / "model_card.json").read_text())
    assert card["classes"] == CLASSES and card["image_size"] == SIZE and card["format"] == fmt
    assert card["sweep"] == "colours" and card["cv_error"] == 0.125
    assert card["parity"]["max_abs_diff"] == result.parity.max_abs_diff
    assert LABELS[fmt] in result.summary() and f"{result.parity.max_abs_diff:.2e}" in result.summary()
    with zipfile.ZipFile(io.BytesIO(result.archive())) as archive:
        names = archive.namelist()
    assert f"{fmt}/model_card.json" in names and f"{fmt}/README.md" in names
    assert any(n.startswith(f"{fmt}/{result.path.name}") for n in names)
    assert not [p for p in result.folder.iterdir() if p.name.startswith(".export-")]


@pytest.mark.parametrize("fmt", [pytest.param(f, marks=pytest.mark.slow) if f == "savedmodel" else f
                                 for f in FORMATS])     # a fresh TensorFlow process each: 8 s for savedmodel
def test_the_readme_snippet_classifies_a_photo_like_the_model(exports, model_file, photos, fmt, tmp_path):
    """The snippet on the page and in README.md, run as a user would: in a fresh process, in the folder."""
    result = exports[fmt]
    photo = photos[2]
    (result.folder / "photo.jpg").write_bytes(photo.read_bytes())
    readme = (result.folder / "README.md").read_text()
    code = readme.split("```python\n")[1].split("```")[0]
    run = subprocess.run([sys.executable, "-c", code], cwd=result.folder, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert run.returncode == 0, run.stderr[-2000:]
    label, probability = run.stdout.split()[-2:]
    names, x = check_images([photo], SIZE)
    expected = np.asarray(load_model(model_file).model.predict_on_batch(x))[0]
    assert label == CLASSES[int(expected.argmax())]
    assert float(probability) == pytest.approx(float(expected.max()), abs=1e-3)


@pytest.mark.parametrize("fmt, damage", [("keras", "model.keras"), ("savedmodel", "model/saved_model.pb"),
                                         ("onnx", "model.onnx"), ("tflite", "model.tflite")])
def test_a_corrupted_export_is_refused(exports, model_file, photos, fmt, damage, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(exports[fmt].folder, copy)
    damaged = copy / damage
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 3])
    names, x = check_images(photos, SIZE)
    expected = load_model(model_file).model.predict_on_batch(x)
    refused = f"the {re.escape(LABELS[fmt])} export cannot be run .*; not offered"
    with pytest.raises(ExportCheckError, match=refused):
        check(fmt, copy / damage.split("/")[0], expected, x, names)


def test_an_export_of_other_weights_is_refused_naming_the_difference_and_image(exports, model_file, photos):
    model = load_model(model_file).model
    dense = model.layers[-1]
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel + np.random.default_rng(1).normal(0, 0.5, kernel.shape), bias])
    names, x = check_images(photos, SIZE)
    differs = r"the ONNX export differs from the model by [0-9.e-]+ on image photo_\d\.jpg \(tolerance 1e-04"
    with pytest.raises(ExportCheckError, match=differs + r"\); not offered"):
        check("onnx", exports["onnx"].path, model.predict_on_batch(x), x, names)


@pytest.mark.parametrize("fmt, why", [("keras", "differs from the model by"),
                                      ("savedmodel", "differs from the model by"),
                                      ("onnx", "cannot be run by onnxruntime .*invalid model"),
                                      ("tflite", "cannot be run .*Select TensorFlow op")])
def test_a_model_its_export_cannot_match_is_not_offered(tmp_path, photos, fmt, why):
    """Fresh noise on every call: no reload gives the same numbers; ONNX and LiteRT cannot even run its op.
    The folders the export made for itself are removed again, and nothing else."""
    with pytest.raises(ExportCheckError, match=f"the {re.escape(LABELS[fmt])} export {why}"):
        export(jittery_model(tmp_path / "jitter.keras"), fmt, tmp_path / "new" / "out", images=photos)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jitter.json", "jitter.keras"]


def test_without_readable_images_the_check_runs_on_seeded_noise(tmp_path, model_file):
    names, x = check_images([tmp_path / "gone.jpg"], SIZE)
    assert names[0] == "noise 1" and x.shape[1:] == (SIZE, SIZE, 3) and x.max() > 100
    assert np.array_equal(x, check_images([], SIZE)[1])


@pytest.fixture
def sweep(tmp_path, model_file, photos):
    return finished_sweep(f"sqlite:///{tmp_path / 'runs.db'}", tmp_path / "artifacts", "done", model_file,
                          [str(p) for p in photos])


@pytest.mark.parametrize("fmt", [fmt if fmt in ("keras", "onnx") else pytest.param(fmt, marks=pytest.mark.slow)
                                 for fmt in FORMATS])     # one CLI path for all; each format is checked above
def test_cli_exports_each_format_with_its_parity_and_time(capsys, sweep, tmp_path, fmt):
    out = tmp_path / "out"
    code = main(["export", "done", "--format", fmt, str(out), "--storage", sweep.url])
    printed, err = capsys.readouterr()
    assert code == 0, err
    assert str(out) in printed and "max |difference|" in printed
    assert f"over {len(PHOTO_COLOURS)} image(s)" in printed
    assert "exported in" in printed
    card = json.loads((out / "model_card.json").read_text())
    assert card["sweep"] == "done" and card["test_accuracy"] == 0.9 and card["data"]["dataset"] == "colours"


def test_cli_exit_1_and_one_line_when_the_check_fails(capsys, tmp_path, photos):
    store = finished_sweep(f"sqlite:///{tmp_path / 'runs.db'}", tmp_path / "artifacts", "jumpy",
                           jittery_model(tmp_path / "jitter.keras"), [str(p) for p in photos])
    code = main(["export", "jumpy", "--format", "savedmodel", str(tmp_path / "out"), "--storage", store.url])
    printed, err = capsys.readouterr()
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith("error: the TensorFlow SavedModel export differs from the model by")
    assert "not offered" in err
    assert not (tmp_path / "out").exists()          # the folder it made for the export is gone again


def test_cli_export_replaces_nothing_beside_it_without_force(capsys, sweep, tmp_path):
    out = tmp_path / "mine"
    (out / "model").mkdir(parents=True)
    mine = {out / "README.md": "my notes", out / "model_card.json": "{}",
            out / "model" / "keep.txt": "my file"}
    for path, text in mine.items():
        path.write_text(text)

    def export_to(target, *options) -> tuple[int, str]:
        code = main(["export", "done", *options, str(target), "--storage", sweep.url])
        return code, capsys.readouterr().err

    for fmt in ("keras", "savedmodel"):
        code, err = export_to(out / "flowers.keras" if fmt == "keras" else out, "--format", fmt)
        assert code == 2 and err.count("\n") == 1 and "--force" in err, err
        assert "README.md" in err and "model_card.json" in err, err
    code, err = export_to(out, "--format", "savedmodel", "--force")  # model/ is not an export: kept even so
    assert code == 2 and "model" in err and "not a SavedModel" in err, err
    assert {p: p.read_text() for p in mine} == mine
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "model", "model_card.json"]

    code, err = export_to(out / "flowers.keras", "--format", "keras", "--force")
    assert code == 0, err
    assert (out / "flowers.keras").is_file() and "flowers.keras" in (out / "README.md").read_text()
    assert (out / "model" / "keep.txt").read_text() == "my file"

