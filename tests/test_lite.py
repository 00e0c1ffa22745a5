"""EfficientNet-Lite0/1/2: the torch-free checkpoint reader refuses anything but tensors, every shipped
checkpoint maps tensor for tensor onto the Keras builder scaled to its variant, and the converted weights
classify known photos correctly (the test that conversion is right)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from core.models.lite import (
    TORCH_LEGACY_MAGIC,
    VARIANTS,
    UnsafeCheckpointError,
    build_imagenet_classifier,
    convert_state_dict,
    converted_weights,
    read_torch_state_dict,
)
from core.models.weights import resolve_weights

ESPRESSO, TRIPOD = 967, 872  # a cup of espresso; the cameraman's camera stands on a tripod
CATS = {281, 282, 285}  # tabby, tiger cat, Egyptian cat: ImageNet's labels for a striped house cat
MOTORBIKES = {665, 670}  # moped, motor scooter: ImageNet has no plain "motorcycle"
LITES = sorted(VARIANTS)


@pytest.fixture(scope="module", params=LITES)
def lite(request: pytest.FixtureRequest) -> tuple[str, dict[str, np.ndarray]]:
    return request.param, read_torch_state_dict(resolve_weights(request.param))


def test_every_variant_has_its_own_shipped_checkpoint() -> None:
    assert LITES == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
    checkpoints = {resolve_weights(name) for name in LITES}
    assert len(checkpoints) == len(LITES)


def test_every_tensor_lands_in_a_keras_weight_of_the_same_shape(
        lite: tuple[str, dict[str, np.ndarray]]) -> None:
    import keras

    from core.models.lite import lite_body
    name, state = lite
    converted = convert_state_dict(state, name)  # raises if any tensor is left over or missing
    size = VARIANTS[name].image_size
    inputs = keras.Input((size, size, 3))
    features = keras.layers.GlobalAveragePooling2D()(lite_body(inputs, name))
    model = keras.Model(inputs, keras.layers.Dense(1000, name="predictions")(features))
    with_weights = {layer.name: layer for layer in model.layers if layer.weights}
    assert set(converted) == set(with_weights)
    for layer_name, weights in converted.items():
        wanted = [tuple(w.shape) for w in with_weights[layer_name].weights]
        assert [w.shape for w in weights] == wanted, layer_name
    used = sum(len(weights) for weights in converted.values())
    assert used == len([t for t in state if not t.endswith(".num_batches_tracked")])


def test_lite2_is_wider_and_lite1_and_2_deeper_than_lite0() -> None:
    """The family's multipliers, checked against the checkpoints' facts: stem and head stay 32 and 1280."""
    from core.models.lite import _blocks
    blocks = {name: list(_blocks(VARIANTS[name])) for name in LITES}
    assert [len(blocks[name]) for name in LITES] == [16, 21, 21]
    assert [blocks[name][-1][2]["filters_out"] for name in LITES] == [320, 320, 352]
    for name in LITES:
        state = read_torch_state_dict(resolve_weights(name))
        assert state["_conv_stem.weight"].shape[0] == 32
        assert state["_conv_head.weight"].shape[:2] == (1280, blocks[name][-1][2]["filters_out"])


def test_leftover_tensor_is_an_error(lite: tuple[str, dict[str, np.ndarray]]) -> None:
    name, state = lite
    blocks = len({key.split(".")[1] for key in state if key.startswith("_blocks.")})
    with pytest.raises(ValueError, match="no place for"):
        convert_state_dict({**state, f"_blocks.{blocks}._bn0.weight": np.zeros(3, np.float32)}, name)


def test_a_checkpoint_of_another_variant_is_refused() -> None:
    lite1 = read_torch_state_dict(resolve_weights("efficientnet_lite1"))
    with pytest.raises(ValueError, match="efficientnet_lite0 has no place for"):
        convert_state_dict(lite1, "efficientnet_lite0")
    with pytest.raises(ValueError, match="lacks _blocks.16"):
        convert_state_dict(read_torch_state_dict(resolve_weights("efficientnet_lite0")), "efficientnet_lite1")


def test_same_names_but_other_shapes_are_refused_with_one_line(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Lite1 and Lite2 have the same tensor names: only the shapes tell them apart."""
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path))
    with pytest.raises(ValueError, match=r"efficientnet-lite1-\w+\.pth does not fit efficientnet_lite2: "
                                         r"layer \w+ wants weights of shapes"):
        build_imagenet_classifier("efficientnet_lite2", 64, weights=resolve_weights("efficientnet_lite1"))


def test_conversion_is_cached_per_variant_and_reused(tmp_path: Path) -> None:
    for name in ("efficientnet_lite0", "efficientnet_lite1"):
        first = converted_weights(resolve_weights(name), name, tmp_path)
        assert len(list(tmp_path.glob(f"{name}_*.npz"))) == 1
        again = converted_weights(resolve_weights(name), name, tmp_path)
        assert again.keys() == first.keys()
        for layer in first:
            for a, b in zip(first[layer], again[layer], strict=True):
                np.testing.assert_array_equal(a, b)


class _RunsACommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        import os
        return os.system, (f"touch {self.marker}",)


def test_checkpoint_that_calls_a_function_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "it-ran"
    evil = tmp_path / "evil.pth"
    with evil.open("wb") as f:
        for header in (TORCH_LEGACY_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        pickle.dump({"w": _RunsACommand(marker)}, f, protocol=2)
    with pytest.raises(UnsafeCheckpointError, match="system"):
        read_torch_state_dict(evil)
    assert not marker.exists()


def test_zip_format_checkpoint_gets_a_clear_message(tmp_path: Path) -> None:
    zipped = tmp_path / "new.pth"
    zipped.write_bytes(b"PK\x03\x04rest")
    with pytest.raises(ValueError, match="zip-format"):
        read_torch_state_dict(zipped)


def _pictures() -> dict[str, np.ndarray]:
    """RGB photos shipped by scikit-image whose ImageNet class is not in doubt."""
    skimage_data = pytest.importorskip("skimage.data")
    camera = skimage_data.camera()
    return {"coffee": skimage_data.coffee(), "chelsea": skimage_data.chelsea(),
            "camera": np.stack([camera] * 3, axis=-1), "motorcycle": skimage_data.stereo_motorcycle()[0]}


def _squashed(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image
    resized = Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32)[None]


@pytest.mark.parametrize("name", LITES)
def test_converted_weights_recognise_known_photos(name: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path))
    model = build_imagenet_classifier(name)
    size = VARIANTS[name].image_size
    assert model.input_shape == (None, size, size, 3)
    scores = {picture: np.asarray(model(_squashed(image, size), training=False))[0]
              for picture, image in _pictures().items()}
    top1 = {picture: int(s.argmax()) for picture, s in scores.items()}
    assert top1["coffee"] == ESPRESSO and top1["camera"] == TRIPOD, top1
    assert top1["chelsea"] in CATS and top1["motorcycle"] in MOTORBIKES, top1
    assert scores["coffee"][ESPRESSO] > 0.5 and scores["camera"][TRIPOD] > 0.5
