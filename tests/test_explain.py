"""Grad-CAM: a (H, W) map in 0..1 that follows the image, for a tiny model and for real Lite0,
with explainers cached per model and the caller's softmax left alone."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.inference.explain import METHODS, gradcam, jet, overlay, target_layer

SIZE = 32
# tf-keras-vis 0.8.7 imports zoom from a deprecated scipy namespace; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Please import `zoom`:DeprecationWarning")


@pytest.fixture(scope="module")
def tiny_classifier():
    """Conv features proportional to brightness and a head that likes brightness for class 0: the
    class-0 map must light up where the image is bright."""
    import keras
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255, name="preprocess_scale")(inputs)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", kernel_initializer="ones", name="conv")(x)
    x = keras.layers.GlobalAveragePooling2D(name="feature_pool")(x)
    outputs = keras.layers.Dense(2, activation="softmax", kernel_initializer=keras.initializers.Constant(
        [[1.0, -1.0]] * 4), name="predictions")(x)
    return keras.Model(inputs, outputs)


def _bright_square() -> np.ndarray:
    image = np.full((SIZE, SIZE, 3), 20, np.uint8)
    image[4:14, 18:28] = 230
    return image


@pytest.mark.parametrize("method", METHODS)
def test_map_follows_the_bright_region(tiny_classifier, method: str) -> None:
    heat = gradcam(tiny_classifier, _bright_square(), class_index=0, method=method)
    assert heat.shape == (SIZE, SIZE) and heat.dtype == np.float32
    assert heat.min() >= 0.0 and heat.max() <= 1.0 and heat.max() > heat.min()
    assert heat[6:12, 20:26].mean() > heat[20:30, 2:12].mean()


def _two_squares() -> np.ndarray:
    """A red square top right, a green one bottom left, on black."""
    image = np.zeros((SIZE, SIZE, 3), np.uint8)
    image[3:13, 18:28, 0] = 240
    image[19:29, 3:13, 1] = 240
    return image


def _fold(channel: int, seed: int):
    """A fold model whose frozen part (below the cut, `shared`) passes the colours on, and whose trained conv
    above it looks at one colour: class 0 is "much of that colour"."""
    import keras
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255, name="preprocess_scale")(inputs)
    x = keras.layers.Conv2D(3, 1, kernel_initializer=keras.initializers.Constant(np.eye(3)[None, None]),
                            name="shared")(x)
    pick = np.zeros((1, 1, 3, 4), np.float32)
    pick[0, 0, channel] = 1.0 + 0.1 * seed
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="own_conv",
                            kernel_initializer=keras.initializers.Constant(np.tile(pick, (3, 3, 1, 1)) / 9))(x)
    x = keras.layers.GlobalAveragePooling2D(name="feature_pool")(x)
    outputs = keras.layers.Dense(2, activation="softmax", kernel_initializer=keras.initializers.Constant(
        [[8.0, -8.0]] * 4), name="predictions")(x)
    return keras.Model(inputs, outputs)


def test_a_fold_ensembles_map_is_the_mean_of_its_members_maps_each_from_its_own_conv() -> None:
    """Fold 1 looks at red, fold 2 at green: the ensemble's map is their mean (scaled to 0..1 as each map is),
    lighting both squares, not the
    map of the frozen layer below the folds (the old target) through their averaged softmax."""
    from core.training.ensembles import fold_ensemble
    folds = [_fold(0, 0), _fold(1, 1)]
    image = _two_squares()
    members = [gradcam(fold, image, 0) for fold in folds]
    assert members[0][6:10, 20:26].mean() > 0.8 > 0.2 > members[0][22:26, 5:11].mean()   # red only
    ensemble_map = gradcam(fold_ensemble(folds, "shared"), image, 0)
    mean = np.mean(members, axis=0)
    np.testing.assert_allclose(ensemble_map, mean / mean.max(), atol=0.02)


def test_a_flip_tta_map_is_the_mean_of_the_image_and_its_mirror_maps_flipped_back() -> None:
    from core.training.ensembles import flip_tta
    fold = _fold(0, 0)
    image = _two_squares()
    mirrored = gradcam(fold, image[:, ::-1].copy(), 0)[:, ::-1]
    expected = np.mean([gradcam(fold, image, 0), mirrored], axis=0)
    np.testing.assert_allclose(gradcam(flip_tta(fold), image, 0), expected / expected.max(), atol=0.02)


def test_deletion_removing_the_hottest_part_lowers_the_score_more_than_random() -> None:
    import keras

    from core.inference.explain import deletion_test
    unsure = keras.models.clone_model(_fold(0, 0))   # red is class 0, softly: hiding red must lower the score
    unsure.set_weights([w * 0.02 if w.shape == (4, 2) else w for w in _fold(0, 0).get_weights()])
    image = _two_squares()
    heat = gradcam(unsure, image, 0)
    result = deletion_test(unsure, image, 0, heat, fraction=0.15)
    assert result.hot_drop > 0 and result.faithful
    wrong = deletion_test(unsure, image, 0, heat[::-1, ::-1], fraction=0.15)   # hot on the green square
    assert not wrong.faithful


def test_explainers_are_cached_and_the_callers_softmax_is_kept(tiny_classifier) -> None:
    from core.inference.explain import _explainer
    gradcam(tiny_classifier, _bright_square(), 0)
    assert _explainer(tiny_classifier, "gradcam") is _explainer(tiny_classifier, "gradcam")
    assert tiny_classifier.get_layer("predictions").activation.__name__ == "softmax"


def test_target_is_the_last_feature_map(tiny_classifier) -> None:
    assert target_layer(tiny_classifier).name == "conv"


def test_wrong_image_size_is_a_clear_error(tiny_classifier) -> None:
    with pytest.raises(ValueError, match="the model takes"):
        gradcam(tiny_classifier, np.zeros((SIZE + 1, SIZE, 3), np.uint8), 0)
    with pytest.raises(ValueError, match="unknown Grad-CAM method"):
        gradcam(tiny_classifier, _bright_square(), 0, method="scorecam")


def test_overlay_blends_a_resized_map() -> None:
    image = np.zeros((40, 60, 3), np.uint8)
    heat = np.zeros((8, 12), np.float32)
    heat[:, 6:] = 1.0
    blended = overlay(image, heat, alpha=0.5)
    assert blended.shape == (40, 60, 3) and blended.dtype == np.uint8
    assert blended[20, 55, 0] > blended[20, 55, 2]  # hot: red
    assert blended[20, 5, 2] > blended[20, 5, 0]  # cold: blue
    np.testing.assert_allclose(jet(np.array([0.0, 1.0])), [[0, 0, 0.5], [0.5, 0, 0]])


def test_lite0_with_imagenet_weights_looks_at_the_cup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    from PIL import Image

    from core.models.lite import build_imagenet_classifier
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path))
    model = build_imagenet_classifier("efficientnet_lite0")
    image = np.asarray(Image.fromarray(skimage_data.coffee()).resize((224, 224), Image.Resampling.BILINEAR))
    for method in METHODS:
        heat = gradcam(model, image, class_index=967, method=method)
        assert heat.shape == (224, 224)
        assert 0.0 <= heat.min() < heat.max() <= 1.0
        assert heat[60:170, 40:190].mean() > heat[:30].mean()  # the cup, not the top strip


@pytest.mark.slow
def test_deletion_holds_for_a_fine_tuned_model_and_its_fold_ensemble_on_flowers(flowers5, tmp_path: Path,
                                                                                  monkeypatch: pytest.MonkeyPatch
                                                                                  ) -> None:
    """Two folds of Lite0 with its top 20 layers fine-tuned on 40 flowers a class, kept as a sweep keeps them:
    on most held-out photos, hiding the hottest 15% of the map costs the predicted class more than hiding
    15% at random, for one fold model and for the ensemble of both."""
    from functools import partial

    from core.inference.explain import deletion_test
    from core.spec.sweep import SweepSpec
    from core.training.ensembles import fold_ensemble, load_fold_models, save_fold_model
    from core.training.plan import SweepData
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    spec = SweepSpec.from_dict({
        "name": "cam", "folds": 2, "ensemble": True,
        "data": {"dataset": str(flowers5), "max_per_class": 40, "test_fraction": 0.1},
        "params": {"backbone": "efficientnet_lite0", "image_size": 224, "trainable_layers": 20, "epochs": 4,
                   "batch_size": 16, "learning_rate": 0.001, "optimizer": "adam", "early_stopping": 0,
                   "reduce_lr": 0, "head": "dense_dropout", "dense_units": 64}})
    data = SweepData(spec)
    runner = data.runner(spec.params)
    runner.run(spec.params, base_cut=data.base_cut(spec.params), on_fold=partial(save_fold_model, tmp_path / "folds"))
    folds, cut = load_fold_models(tmp_path / "folds", 2)
    images = np.asarray(runner.data.images[data.test_rows[:12]])
    for model in (folds[0], fold_ensemble(folds, cut)):
        faithful = []
        for image in images:
            best = int(np.argmax(model.predict_on_batch(image[None].astype(np.float32))[0]))
            faithful.append(deletion_test(model, image, best, gradcam(model, image, best), fraction=0.15).faithful)
        assert np.mean(faithful) >= 0.7, (model.name, faithful)
