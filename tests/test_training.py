"""One trial: trainable layers, graph cuts, cached vs full training, augmentation views, refit."""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from core.models.backbones import backbone_layers, list_backbones
from core.models.classifier import build_classifier, cut_points
from core.spec.sweep import TrialParams
from core.training.activations import ActivationCache
from core.training.trial import TrialRunner
from trials import SIZE, small_params


@pytest.mark.parametrize("backbone, trainable", [("mobilenetv2", 0), ("mobilenetv2", 3), ("mobilenetv2", 10),
                                                 ("resnet50v2", 10)])
def test_top_on_cut_computes_what_the_full_model_computes(backbone, trainable):
    clf = build_classifier(small_params(backbone=backbone, trainable_layers=trainable), num_classes=3)
    layers = backbone_layers(clf.model)
    assert [layer.name for layer in layers if layer.trainable] == clf.trainable
    assert len(clf.trainable) == trainable
    order = [layer.name for layer in clf.model.layers]
    if trainable:
        assert order.index(clf.cut) < order.index(clf.trainable[0])
    else:
        assert clf.cut == "feature_pool"
    x = np.random.default_rng(1).uniform(0, 255, (4, SIZE, SIZE, 3)).astype(np.float32)
    full = np.asarray(clf.model(x, training=False))
    split = np.asarray(clf.top_model()(clf.bottom_model()(x, training=False), training=False))
    np.testing.assert_allclose(split, full, rtol=1e-5, atol=1e-6)


def test_cut_points_are_block_outputs_in_a_residual_network():
    clf = build_classifier(small_params(backbone="resnet50v2"), num_classes=2)
    points = cut_points(clf.model)
    assert {"conv5_block2_out", "conv4_block6_out", "feature_pool"} <= set(points)
    assert not {"conv5_block3_1_conv", "conv5_block3_2_relu"} & set(points)   # inside a residual block


def test_cached_and_full_training_agree(trial_data, tmp_path):
    params = small_params(trainable_layers=3)
    full = TrialRunner(trial_data, cache=None).run(params)
    cached = TrialRunner(trial_data, cache=ActivationCache(tmp_path)).run(params)
    assert full.cache == "off" and cached.cache == "miss" and cached.cut
    for a, b in zip(full.folds, cached.folds):
        assert abs(a.val_error - b.val_error) <= 1 / 15 + 1e-9   # at most one image of fifteen
        np.testing.assert_allclose(a.curves["val_loss"], b.curves["val_loss"], rtol=0.05)


def test_cache_hits_after_first_trial_and_misses_when_the_cut_moves(trial_data, tmp_path):
    cache = ActivationCache(tmp_path)
    runner = TrialRunner(trial_data, cache=cache)
    first = runner.run(small_params(epochs=1))
    again = runner.run(small_params(epochs=1, learning_rate=0.01, optimizer="sgd"))
    moved = runner.run(small_params(epochs=1, trainable_layers=5))
    assert (first.cache, again.cache, moved.cache) == ("miss", "hit", "miss")
    assert cache.usage()["entries"] == 2
    assert cache.clear() > 0 and cache.usage()["entries"] == 0


def test_augmented_views_are_cached_and_used(trial_data, tmp_path):
    cache = ActivationCache(tmp_path)
    params = small_params(epochs=1, augmentation="standard", augment_views=2)
    result = TrialRunner(trial_data, cache=cache).run(params)
    assert result.cache == "miss"
    assert cache.usage()["entries"] == 1
    plain = TrialRunner(trial_data, cache=cache).run(small_params(epochs=1))
    assert plain.cache == "miss"   # views are part of the key: no augmentation is another entry


def test_trial_result_has_folds_curves_and_summary(trial_data, tmp_path):
    seen = []
    result = TrialRunner(trial_data, cache=ActivationCache(tmp_path)).run(
        small_params(head="dense_dropout", dense_units=16), reporter=lambda f, e, logs: seen.append((f, e)))
    assert len(result.folds) == 2 and seen == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    fold = result.folds[0]
    assert set(fold.curves) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert 0 <= fold.best_epoch < 3 and 0.0 <= result.value <= 1.0
    assert fold.summary["accuracy"] == pytest.approx(1 - fold.val_error)
    assert result.to_json()["value"] == pytest.approx(result.value)


def test_frozen_lite0_features_learn_colours(trial_data, tmp_path):
    """Real ImageNet features (the shipped Lite0 weights) separate three colours after a short fit."""
    params = TrialParams(image_size=SIZE, epochs=15, batch_size=8, learning_rate=0.01, early_stopping=0)
    runner = TrialRunner(trial_data, cache=ActivationCache(tmp_path))
    result = runner.run(params)
    assert result.value <= 0.2, result.to_json()
    clf, test, train = runner.refit(params, epochs=15)
    assert len(test.y_true) == 6 and len(train.y_true) == 30
    assert train.accuracy() >= 0.8


def test_layers_without_weights_do_not_move_the_cut():
    cuts = {n: build_classifier(small_params(backbone="resnet50v2", trainable_layers=n), 3).cut for n in (1, 3, 4)}
    assert cuts == {1: "feature_pool", 3: "conv5_block3_out", 4: "conv5_block2_out"}   # post_relu, Add: no weights


@pytest.mark.parametrize("trainable", [0, 3, 30])
def test_dropout_below_the_cut_is_off_so_lite0_top_matches_full_model_in_training(trainable):
    """EfficientNet's stochastic-depth dropout must not differ between cached and full training."""
    clf = build_classifier(small_params(backbone="efficientnet_lite0", weights="imagenet",
                                        trainable_layers=trainable), 3)
    x = np.random.default_rng(3).uniform(0, 255, (4, SIZE, SIZE, 3)).astype(np.float32)
    features = clf.bottom_model()(x, training=False)
    np.testing.assert_allclose(np.asarray(clf.top_model()(features, training=False)),
                               np.asarray(clf.model(x, training=False)), rtol=1e-4, atol=1e-5)
    # In training, what lies below the cut must be the fixed function the cache stored: a dropout left on
    # there would make each training-mode pass differ from the cached (inference) features.
    bottom = clf.bottom_model()
    for _ in range(2):
        np.testing.assert_allclose(np.asarray(bottom(x, training=True)), np.asarray(features),
                                   rtol=1e-4, atol=1e-5)
    if trainable == 0:   # everything frozen: the training-mode forward pass is the inference one
        np.testing.assert_allclose(np.asarray(clf.model(x, training=True)),
                                   np.asarray(clf.model(x, training=False)), rtol=1e-4, atol=1e-5)


def test_derived_cache_from_the_sweeps_lowest_cut_equals_a_direct_one(trial_data, tmp_path):
    params = small_params(backbone="resnet50v2", trainable_layers=3, epochs=1)
    direct_cache, shared_cache = ActivationCache(tmp_path / "direct"), ActivationCache(tmp_path / "shared")
    direct = TrialRunner(trial_data, direct_cache).run(params)
    shared = TrialRunner(trial_data, shared_cache).run(params, base_cut="conv5_block2_out")
    assert direct.cut == shared.cut == "conv5_block3_out"
    assert shared_cache.usage()["entries"] == 2          # the base entry and the one derived from it
    for a, b in zip(direct.folds, shared.folds):
        np.testing.assert_allclose(a.curves["val_loss"], b.curves["val_loss"], rtol=1e-4)


def test_every_fold_starts_from_the_same_untrained_state(trial_data, tmp_path):
    """One compiled model serves all folds: weights, optimizer slots and learning rate are reset.

    The same fold twice, in one batch (so the per-fold shuffle cannot matter), must train the same."""
    same = dataclasses.replace(trial_data, folds=[trial_data.folds[0]] * 2)
    result = TrialRunner(same, cache=ActivationCache(tmp_path)).run(
        small_params(optimizer="sgd", momentum=0.9, epochs=3, reduce_lr=1, learning_rate=0.05, batch_size=64))
    first, second = result.folds
    np.testing.assert_allclose(first.curves["loss"], second.curves["loss"], rtol=1e-4)
    np.testing.assert_allclose(first.curves["learning_rate"], second.curves["learning_rate"])
    assert first.val_error == second.val_error


def test_train_per_class_keeps_the_whole_test_part(tiny_dataset):
    """The small-data regime (issue 20): a few training images per class, tested on the full run's test images."""
    from core.spec.sweep import SweepSpec
    from core.training.plan import SweepData

    def data(**limit) -> SweepData:
        return SweepData(SweepSpec.from_dict({"name": "few", "folds": 2, "data": {
            "dataset": str(tiny_dataset), "test_fraction": 0.25, **limit}}))
    full, few = data(), data(train_per_class=4)
    assert np.bincount(few.dataset.labels[few.train_rows]).tolist() == [4, 4, 4]
    assert [few.dataset.paths[r] for r in few.test_rows] == [full.dataset.paths[r] for r in full.test_rows]
    assert set(few.dataset.paths[r] for r in few.train_rows) < set(full.dataset.paths[r] for r in full.train_rows)
    assert len(few.dataset) == 12 + len(full.test_rows)          # nothing else is decoded
    assert sorted(np.concatenate([v for _, v in few.folds]).tolist()) == sorted(few.train_rows.tolist())


@pytest.mark.parametrize("backbone", [pytest.param(name, marks=() if name in ("resnet50v2", "efficientnet_lite0")
                                                    else pytest.mark.slow) for name in list_backbones()])
def test_inside_a_residual_block_the_cache_holds_the_crossing_tensors_and_the_top_gives_the_full_output(backbone):
    """For the first few distinct cuts as the top 1..40 layers train, what the cache holds (one tensor, or the
    packed branch and skip of a residual block) through the trained part equals the full model to float
    tolerance, and the trained part holds no frozen layer with weights: nothing frozen is recomputed."""
    x = np.random.default_rng(1).uniform(0, 255, (2, SIZE, SIZE, 3)).astype(np.float32)
    checked: dict[str, int] = {}
    for trainable in range(1, 41):
        clf = build_classifier(small_params(backbone=backbone, trainable_layers=trainable), num_classes=3)
        multi = "+" in clf.reads
        if clf.reads in checked or sum(("+" in r) == multi for r in checked) >= (3 if multi else 2):
            continue
        checked[clf.reads] = trainable
        full = np.asarray(clf.model(x, training=False))
        np.testing.assert_allclose(np.asarray(clf.top_model()(clf.bottom_model()(x, training=False),
                                                              training=False)), full, rtol=1e-4, atol=1e-5)
        top = {layer.name for layer in backbone_layers(clf.model) if layer.weights} & layer_names(clf.top_model())
        assert top <= set(clf.trainable), (trainable, clf.reads, top - set(clf.trainable))
    if backbone != "vgg16":
        assert any("+" in reads for reads in checked), f"{backbone}: no cut inside a residual block: {checked}"


def layer_names(model) -> set[str]:
    """Every layer's name in `model` and the models nested in it."""
    names = set()
    for layer in model.layers:
        names |= layer_names(layer) if isinstance(layer, keras.Model) else {layer.name}
    return names


def test_out_of_fold_scores_are_what_the_kept_epoch_predicts(trial_data, tmp_path):
    """A fold's out-of-fold scores come from the validation of its best epoch (not a prediction after the
    fit): they must be what the restored model predicts, also where the best epoch is not the last."""
    from core.training.predictions import predict_scores

    predicted = []
    result = TrialRunner(trial_data, cache=ActivationCache(tmp_path)).run(
        small_params(trainable_layers=2, epochs=5, optimizer="sgd", momentum=0.9, learning_rate=0.5),
        on_fold=lambda t: predicted.append(predict_scores(t.model, trial_data.images, trial_data.folds[t.fold][1])))
    assert any(fold.best_epoch < 4 for fold in result.folds), [f.best_epoch for f in result.folds]
    for fold, scores in zip(result.folds, predicted):
        np.testing.assert_allclose(result.oof.scores[result.oof.folds == fold.fold], scores, atol=1e-5)


def test_restore_best_off_keeps_every_folds_last_epoch(trial_data, tmp_path):
    """The same fit as above with `restore_best: false`: each fold keeps its last epoch (the staged trial's
    too), and its out-of-fold scores are that model's predictions, not those of the lowest validation loss."""
    from core.training.predictions import predict_scores

    sgd = dict(trainable_layers=2, optimizer="sgd", momentum=0.9, learning_rate=0.5, restore_best=False)
    for params in (small_params(epochs=5, **sgd),
                   small_params(epochs=3, stage1_epochs=2, stage2_lr_factor=1.0, **sgd)):
        predicted = []
        result = TrialRunner(trial_data, cache=ActivationCache(tmp_path)).run(
            params, on_fold=lambda t: predicted.append(predict_scores(t.model, trial_data.images,
                                                                      trial_data.folds[t.fold][1])))
        last = params.stage1_epochs + params.epochs - 1
        assert [fold.best_epoch for fold in result.folds] == [last, last]
        for fold, scores in zip(result.folds, predicted):
            np.testing.assert_allclose(result.oof.scores[result.oof.folds == fold.fold], scores, atol=1e-5)
            assert fold.val_error == pytest.approx(1 - fold.curves["val_accuracy"][-1])
