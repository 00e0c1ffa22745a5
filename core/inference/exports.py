"""A trained model leaves the app as `.keras`, TensorFlow SavedModel, ONNX or TFLite (LiteRT), with its card.

Every export is reloaded in its own runtime (Keras, `tf.saved_model.load`, onnxruntime, the LiteRT
interpreter) and must give the original model's probabilities on a handful of images within the format's
tolerance, with the same top class on each; else `ExportCheckError` and nothing is left in the folder.
Conversions are Keras 3's own `Model.export` (SavedModel, ONNX through tf2onnx, LiteRT through the TFLite
converter). Importing this module is light (the CLI's `--help` reads FORMATS); TensorFlow loads on use.

A sweep's final model carries a temperature and an open-set detector (`core.quality.unknowns`); its export
carries both: the card keeps the temperature and the detector's numbers, `open_set.npz` its arrays, and a
second model in the same format, `features` (the frozen backbone up to its pooled features, which the
detector scores), checked like the model: the same refusals on the check images and a few seeded noise
images, scores within DETECTOR_TOLERANCE. The README's snippet applies both in a few lines of numpy.

An export replaces nothing without being asked: the model, model_card.json and README.md it writes must
not exist in the folder yet (ExportTargetError), unless `force`; even then a folder in the way is replaced
only when it is a SavedModel export, and nothing else in the folder is touched. A folder the export had to
create is removed again when it fails.
"""
from __future__ import annotations

import dataclasses
import io
import json
import shutil
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.inference.export_files import (
    ARRAYS_NAME,
    CARD_NAME,
    FEATURES_NAME,
    FORMATS,
    LABELS,
    README_NAME,
    RUNTIMES,
    SUFFIXES,
    readme,
)

if TYPE_CHECKING:
    from core.quality.unknowns import CarriedDetector
    from core.runs.records import FinalModel
    from core.spec.sweep import SweepSpec

# Largest |probability difference| an export may show against the model it came from. The .keras copy
# runs the same kernels: any difference is a broken file. The SavedModel runs the same ops as a graph
# (Grappler may fuse them): float32 rounding, ~1e-7. ONNX Runtime and LiteRT (XNNPACK) bring kernels of
# their own; float32 through a few dozen conv layers differs by ~1e-7..1e-6 per probability (measured on
# EfficientNet-Lite0 at 224 px, bench/export_speed.py), so 1e-4 leaves room and still catches a wrong op.
TOLERANCES = {"keras": 1e-6, "savedmodel": 1e-5, "onnx": 1e-4, "tflite": 1e-4}
DETECTOR_TOLERANCE = 1e-3   # a k-NN distance between unit vectors is 0..2; float32 runtimes move it ~1e-6
NOISE_IMAGES = 2
PARITY_IMAGES = 8
SAVEDMODEL_ENTRIES = frozenset({"saved_model.pb", "fingerprint.pb", "variables", "assets",
                                "keras_metadata.pb"})


class ExportCheckError(ValueError):
    """An export that could not be made, reloaded, or that predicts differently from its model."""


class ExportTargetError(ValueError):
    """The export would replace files already in its folder: refused without `force`, a folder that is not a
    SavedModel export even with it."""


@dataclass
class Parity:
    """How the reloaded export compares with the original model on the check images."""

    max_abs_diff: float
    worst_image: str
    images: int
    tolerance: float
    runtime: str


@dataclass
class ExportResult:
    format: str
    folder: Path
    path: Path                       # the model file (or the SavedModel folder)
    files: list[Path]                # everything the export consists of, card and README included
    parity: Parity
    export_seconds: float
    check_seconds: float

    def archive(self) -> bytes:
        """The export as one zip: the model, model_card.json and README.md, under the folder's name."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for item in self.files:
                for file in sorted(item.rglob("*")) if item.is_dir() else [item]:
                    if file.is_file():
                        archive.write(file, Path(self.folder.name) / file.relative_to(self.folder))
        return buffer.getvalue()

    def summary(self) -> str:
        p = self.parity
        return (f"{LABELS[self.format]}: max |difference| {p.max_abs_diff:.2e} over {p.images} image(s) "
                f"(tolerance {p.tolerance:.0e}, {p.runtime}), same top class on each; exported in "
                f"{self.export_seconds:.1f} s, checked in {self.check_seconds:.1f} s")


def final_card(final: FinalModel, spec: SweepSpec) -> dict[str, Any]:
    """What a sweep adds to a model's own card: its data and split, CV and test figures."""
    return {"sweep": spec.name, "trial": final.trial, "params": final.params, "refit_epochs": final.epochs,
            "data": dataclasses.asdict(spec.data), "folds": spec.folds, "cv_error": final.cv_error,
            "test_accuracy": final.test_accuracy, "test_images": len(final.test.get("y_true") or []),
            "created": final.created}


def destination(out: str | Path, fmt: str) -> tuple[Path, str]:
    """(folder, name) for `export`: `out` is a folder, or a file named with the format's suffix."""
    out = Path(out)
    if SUFFIXES[fmt] and out.suffix == SUFFIXES[fmt]:
        return out.parent, out.stem
    return out, "model"


def _taken(targets: Sequence[Path]) -> list[Path]:
    return [p for p in targets if p.exists() or p.is_symlink()]


def _is_savedmodel(folder: Path) -> bool:
    """A folder holding a SavedModel export and nothing else: the only folder an export may replace."""
    return ((folder / "saved_model.pb").is_file()
            and all(c.name in SAVEDMODEL_ENTRIES for c in folder.iterdir()))


def _check_targets(targets: Sequence[Path], force: bool) -> None:
    """Refuse (ExportTargetError) if writing `targets` would replace anything not allowed by `force`."""
    taken = _taken(targets)
    if taken and not force:
        names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in taken)
        raise ExportTargetError(f"{taken[0].parent} already holds {names}: export into a new folder, "
                                "or pass --force to replace them")
    for path in taken:
        if path.is_dir() and not path.is_symlink() and not _is_savedmodel(path):
            raise ExportTargetError(f"{path} is a folder that is not a SavedModel export: not replaced, even "
                                    "with --force; export into a new folder")


def _place(staged: Path, target: Path) -> None:
    """Move a checked file (or SavedModel folder) into place; what it replaces passed `check_targets`."""
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif staged.is_dir() and (target.exists() or target.is_symlink()):
        target.unlink()
    staged.replace(target)


def _new_folders(folder: Path) -> list[Path]:
    """The folders `folder.mkdir(parents=True)` would create, deepest first."""
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    return missing


def split_images(final: FinalModel) -> list[str]:
    """The test split's image files that still exist: the natural parity check images."""
    return [p for p in final.test.get("paths") or [] if Path(p).is_file()]


def check_images(paths: Sequence[str | Path], image_size: int, count: int = PARITY_IMAGES
                 ) -> tuple[list[str], np.ndarray]:
    """Up to `count` readable images as float32 pixels 0..255; seeded noise when none can be read, so
    an export is always checked against something."""
    from core.data.images import BadImageError, load_image
    names, pixels = [], []
    for path in paths:
        if len(names) == count:
            break
        try:
            pixels.append(load_image(path, image_size))
        except (BadImageError, OSError):
            continue
        names.append(Path(path).name)
    if not names:
        noise = np.random.default_rng(0).uniform(0, 255, (min(count, 4), image_size, image_size, 3))
        return [f"noise {i + 1}" for i in range(len(noise))], noise.astype(np.float32)
    return names, np.stack(pixels).astype(np.float32)


def _write(fmt: str, model, model_path: Path, target: Path) -> None:
    if fmt == "keras":
        shutil.copy(model_path, target)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")        # tf2onnx's numpy-2 FutureWarning, converter chatter
        model.export(str(target), format={"savedmodel": "tf_saved_model", "onnx": "onnx",
                                          "tflite": "litert"}[fmt], verbose=False)


def _run_keras(path: Path, x: np.ndarray) -> np.ndarray:
    from core.inference.model_card import load_model
    return np.asarray(load_model(path).model.predict_on_batch(x))


def _run_savedmodel(path: Path, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    return next(iter(serve(tf.constant(x)).values())).numpy()


def _run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def _run_tflite(path: Path, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=str(path))
    source = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(source["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(source["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _reason(error: Exception) -> str:
    """An exception as a short one-line reason."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__


RUN: dict[str, Callable[[Path, np.ndarray], np.ndarray]] = {
    "keras": _run_keras, "savedmodel": _run_savedmodel, "onnx": _run_onnx, "tflite": _run_tflite}


def check(fmt: str, path: Path, expected: np.ndarray, x: np.ndarray, names: Sequence[str],
          tolerance: float | None = None) -> Parity:
    """Reload the export at `path` in its runtime and compare its probabilities on `x` with `expected`."""
    tolerance = TOLERANCES[fmt] if tolerance is None else tolerance
    label = LABELS[fmt]
    try:
        got = np.asarray(RUN[fmt](Path(path), x), dtype=np.float64)
    except Exception as error:
        raise ExportCheckError(f"the {label} export cannot be run by {RUNTIMES[fmt]} ({_reason(error)}); "
                               "not offered") from None
    if got.shape != expected.shape:
        raise ExportCheckError(f"the {label} export gives probabilities of shape {got.shape}, the model "
                               f"{expected.shape}; not offered")
    diffs = np.abs(got - expected).max(axis=1)
    worst = int(np.argmax(diffs))
    if diffs[worst] > tolerance:
        raise ExportCheckError(f"the {label} export differs from the model by {diffs[worst]:.2g} on image "
                               f"{names[worst]} (tolerance {tolerance:.0e}); not offered")
    swapped = np.flatnonzero(got.argmax(axis=1) != expected.argmax(axis=1))
    if swapped.size:
        raise ExportCheckError(f"the {label} export picks another top class than the model on image "
                               f"{names[swapped[0]]}; not offered")
    return Parity(max_abs_diff=float(diffs[worst]), worst_image=names[worst], images=len(names),
                  tolerance=tolerance, runtime=RUNTIMES[fmt])


def export(model_path: str | Path, fmt: str, out_dir: str | Path, *, name: str = "model",
           card: dict[str, Any] | None = None, images: Sequence[str | Path] = (),
           tolerance: float | None = None, force: bool = False) -> ExportResult:
    """Export the .keras model at `model_path` as `fmt` into `out_dir`, reload it, check it, keep it.

    `out_dir` receives `name` + the format's suffix (a folder for SavedModel), model_card.json (the
    model's card, `card` merged in, the parity figures) and README.md (how to load it). The export is
    written and checked in a staging folder inside `out_dir` and moved into place only once it passed:
    a failed check raises ExportCheckError and leaves nothing. `images`: files to check on (the test
    split's, ideally); unreadable ones are skipped. Those three must not exist yet (ExportTargetError),
    unless `force` (see the module's docstring).
    """
    from core.inference.model_card import load_model
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    model_path, out_dir = Path(model_path), Path(out_dir)
    loaded = load_model(model_path)
    features_file = f"{FEATURES_NAME}{SUFFIXES[fmt]}"
    extra = [ARRAYS_NAME, features_file] if loaded.unknowns else []
    files = [out_dir / f"{name}{SUFFIXES[fmt]}", out_dir / CARD_NAME, out_dir / README_NAME,
             *(out_dir / file for file in extra)]
    _check_targets(files, force)
    names, x = check_images(images, loaded.image_size)
    expected = np.asarray(loaded.model.predict_on_batch(x), dtype=np.float64)
    made, staging, placed = _new_folders(out_dir), None, False
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir))
        target = staging / f"{name}{SUFFIXES[fmt]}"
        started = time.monotonic()
        try:
            _write(fmt, loaded.model, model_path, target)
        except Exception as error:
            if isinstance(error, OSError):          # the folder's fault, not the converter's: the caller says so
                raise
            raise ExportCheckError(f"the {LABELS[fmt]} conversion failed ({_reason(error)}); "
                                   "not offered") from None
        if loaded.unknowns:
            _write_detector(fmt, loaded.unknowns, staging, features_file)
        written = time.monotonic()
        parity = check(fmt, target, expected, x, names, tolerance)
        if loaded.unknowns:
            check_detector(fmt, loaded.unknowns, staging / features_file, x, names)
        checked = time.monotonic()
        carried = {"open_set": {**loaded.card["open_set"], "arrays": ARRAYS_NAME, "feature_model": features_file}} \
            if loaded.unknowns else {}
        full_card = {**loaded.card, **(card or {}), **carried, "format": fmt, "file": target.name,
                     "input": {"shape": [None, loaded.image_size, loaded.image_size, 3], "dtype": "float32",
                               "pixels": "RGB 0..255, resized (bilinear) to image_size x image_size; "
                                         "the model does its own preprocessing"},
                     "parity": dataclasses.asdict(parity)}
        (staging / CARD_NAME).write_text(json.dumps(full_card, indent=2))
        (staging / README_NAME).write_text(readme(fmt, target.name, loaded.classes, full_card))
        _check_targets(files, force)       # again: the conversion took a while
        for moved, into in zip((target, staging / CARD_NAME, staging / README_NAME, *(staging / f for f in extra)),
                               files):
            _place(moved, into)
        placed = True
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        for folder in made if not placed else []:        # deepest first; only if still empty
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    return ExportResult(format=fmt, folder=out_dir, path=files[0], files=files, parity=parity,
                        export_seconds=written - started, check_seconds=checked - written)


def _write_detector(fmt: str, unknowns: CarriedDetector, staging: Path, features_file: str) -> None:
    """The detector's arrays and its feature model, exported in `fmt`, into `staging`."""
    from core.quality.unknowns import arrays_bytes, feature_model
    (staging / ARRAYS_NAME).write_bytes(arrays_bytes(unknowns.detector.arrays()))
    model = feature_model(unknowns.features)
    source = staging / f".{FEATURES_NAME}.keras"
    model.save(source)
    try:
        _write(fmt, model, source, staging / features_file)
    except Exception as error:
        if isinstance(error, OSError):
            raise
        raise ExportCheckError(f"the {LABELS[fmt]} conversion of the detector's feature model failed "
                               f"({_reason(error)}); not offered") from None
    finally:
        source.unlink(missing_ok=True)


def check_detector(fmt: str, unknowns: CarriedDetector, features_path: Path, x: np.ndarray,
                   names: Sequence[str]) -> None:
    """The exported feature model, reloaded in its runtime, must give the detector's scores (within
    DETECTOR_TOLERANCE) and decisions on `x` and a few seeded noise images, which it should refuse."""
    noise = np.random.default_rng(1).integers(0, 256, (NOISE_IMAGES, *x.shape[1:])).astype(np.float32)
    x, names = np.concatenate([x, noise]), [*names, *(f"noise {i + 1}" for i in range(NOISE_IMAGES))]
    label = LABELS[fmt]
    try:
        got = unknowns.detector.scores(features=np.asarray(RUN[fmt](features_path, x), dtype=np.float64))
    except Exception as error:
        raise ExportCheckError(f"the {label} export's feature model cannot be run by {RUNTIMES[fmt]} "
                               f"({_reason(error)}); not offered") from None
    expected = unknowns.scores(x.astype(np.uint8))
    diffs, threshold = np.abs(got - expected), unknowns.detector.threshold
    if diffs.max() > DETECTOR_TOLERANCE or ((got > threshold) != (expected > threshold)).any():
        worst = int(np.argmax(diffs))
        raise ExportCheckError(f"the {label} export's feature model moves the open-set score by {diffs[worst]:.2g} "
                               f"on image {names[worst]} (tolerance {DETECTOR_TOLERANCE:.0e}); not offered")
