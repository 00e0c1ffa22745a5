"""Backbone registry and offline weights: every backbone builds flat with its preprocessing inside,
weights are found in the documented order, and missing ImageNet weights are a clear error, never a
download or a silent random start."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.models.weights import WEIGHTS_SOURCES, WeightsNotFoundError, keras_cache_dir, resolve_weights


@pytest.fixture
def empty_keras_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return keras_cache_dir()


def _save_legacy_h5(model, path: Path) -> None:
    """Write weights the way keras.applications' downloadable files are written (legacy HDF5)."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


# ---------------------------------------------------------------- resolution order (no TensorFlow)

def test_explicit_file_wins(tmp_path: Path, empty_keras_home: Path) -> None:
    given = tmp_path / "mine.h5"
    given.write_bytes(b"x")
    assert resolve_weights("resnet50", given) == given


def test_explicit_file_that_does_not_exist_names_it(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match="nope.h5"):
        resolve_weights("resnet50", tmp_path / "nope.h5")


def test_keras_cache_folder_comes_before_the_package(empty_keras_home: Path) -> None:
    cached = empty_keras_home / WEIGHTS_SOURCES["efficientnet_lite0"].file_names[0]
    assert resolve_weights("efficientnet_lite0").parent != empty_keras_home  # the package's copy
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"x")
    assert resolve_weights("efficientnet_lite0") == cached


def test_mobilenetv2_prefers_the_file_for_the_nearest_size(empty_keras_home: Path) -> None:
    empty_keras_home.mkdir(parents=True)
    for rows in (96, 224):
        (empty_keras_home / f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5").write_bytes(b"x")
    assert "_96_" in resolve_weights("mobilenetv2", image_size=100).name
    assert "_224_" in resolve_weights("mobilenetv2", image_size=200).name


def test_missing_weights_say_which_file_goes_where(empty_keras_home: Path) -> None:
    with pytest.raises(WeightsNotFoundError) as error:
        resolve_weights("resnet101")
    message = str(error.value)
    assert "resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert str(empty_keras_home) in message
    assert "https://" in message


# ---------------------------------------------------------------- building

def test_registry() -> None:
    from core.models.backbones import BACKBONES, DEFAULT_BACKBONE, list_backbones
    assert list_backbones()[0] == DEFAULT_BACKBONE == "efficientnet_lite0"
    assert set(BACKBONES) == {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "resnet50v2",
                              "resnet50", "resnet101", "mobilenetv2", "vgg16",
                              "efficientnetb0"} == set(WEIGHTS_SOURCES)
    assert [BACKBONES[f"efficientnet_lite{i}"].default_size for i in range(3)] == [224, 240, 260]


def _expected_preprocessing(kind: str, pixels: np.ndarray) -> np.ndarray:
    from keras.applications import mobilenet_v2, resnet50
    if kind == "lite":
        return (pixels - 127.0) / 128.0
    if kind == "tf":
        return mobilenet_v2.preprocess_input(pixels.copy())
    return resnet50.preprocess_input(pixels.copy())  # caffe


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2",
                                  "resnet50v2", "resnet50", "resnet101", "mobilenetv2", "vgg16",
                                  "efficientnetb0"])
def test_every_backbone_builds_flat_with_preprocessing_inside(name: str) -> None:
    import keras

    from core.models.backbones import BACKBONES, POOL_LAYER, backbone_layers, build_feature_extractor
    info = BACKBONES[name]
    model = build_feature_extractor(name, 64, weights=None)
    assert model.output_shape == (None, info.feature_dim)
    assert not [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    assert model.layers[-1].name == POOL_LAYER
    preprocess = [layer for layer in model.layers if layer.name.startswith("preprocess")]
    assert preprocess
    pixels = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype(np.float32)
    if info.preprocessing != "builtin":
        preprocessed = keras.Model(model.input, preprocess[-1].output)(pixels)
        np.testing.assert_allclose(preprocessed, _expected_preprocessing(info.preprocessing, pixels), atol=1e-4)
    assert np.isfinite(np.asarray(model(pixels))).all()
    cut_layers = [layer.name for layer in backbone_layers(model)]
    assert cut_layers and POOL_LAYER not in cut_layers and not cut_layers[0].startswith("preprocess")


def test_imagenet_weights_missing_is_an_error_not_a_download(empty_keras_home: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from keras.src.utils import file_utils

    from core.models.backbones import build_feature_extractor

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download weights")
    monkeypatch.setattr(file_utils, "get_file", no_network)
    with pytest.raises(WeightsNotFoundError, match="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        build_feature_extractor("vgg16", 64)


def test_weights_in_the_keras_cache_folder_are_loaded(empty_keras_home: Path) -> None:
    import keras

    from core.models.backbones import build_feature_extractor
    source = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(96, 96, 3))
    _save_legacy_h5(source, empty_keras_home / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5")
    model = build_feature_extractor("mobilenetv2", 96)
    for layer in (layer for layer in source.layers if layer.weights):
        for expected, loaded in zip(layer.get_weights(), model.get_layer(layer.name).get_weights(), strict=True):
            np.testing.assert_array_equal(expected, loaded)


def test_efficientnetb0_file_std_becomes_variance(empty_keras_home: Path) -> None:
    """Keras's EfficientNet ImageNet files store the std in the Normalization variance slot."""
    import keras

    from core.models.backbones import IMAGENET_STDDEV_RGB, build_feature_extractor
    source = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(64, 64, 3))
    norm = next(layer for layer in source.layers if isinstance(layer, keras.layers.Normalization))
    norm.adapt_variance.assign(np.array(IMAGENET_STDDEV_RGB, np.float32))
    _save_legacy_h5(source, empty_keras_home / "efficientnetb0_notop.h5")
    model = build_feature_extractor("efficientnetb0", 64)
    loaded = model.get_layer("preprocess_normalization")
    np.testing.assert_allclose(np.asarray(loaded.variance).ravel(), np.square(IMAGENET_STDDEV_RGB), rtol=1e-6)


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2"])
def test_bigger_lites_load_their_own_shipped_weights(name: str, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry's feature extractor gives the pooled features of the variant's ImageNet classifier."""
    import keras

    from core.models.backbones import POOL_LAYER, build_feature_extractor
    from core.models.lite import build_imagenet_classifier
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path))
    size = 96
    features = build_feature_extractor(name, size)
    classifier = build_imagenet_classifier(name, size)
    reference = keras.Model(classifier.input, classifier.get_layer(POOL_LAYER).output)
    pixels = np.random.default_rng(1).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
    pooled = np.asarray(features(pixels))
    np.testing.assert_allclose(pooled, np.asarray(reference(pixels)), rtol=1e-4, atol=1e-5)
    assert float(np.abs(pooled).max()) > 0
