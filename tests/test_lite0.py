"""EfficientNet-Lite0: the torch-free checkpoint reader refuses anything but tensors, and the
converted shipped weights classify known photos correctly (the test that conversion is right)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from core.models.lite0 import (
    TORCH_LEGACY_MAGIC,
    UnsafeCheckpointError,
    convert_state_dict,
    converted_weights,
    read_torch_state_dict,
)
from core.models.weights import resolve_weights

DAISY, ESPRESSO = 985, 967


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    return resolve_weights("efficientnet_lite0")


def test_reads_every_tensor_and_converts_each_to_a_keras_layer(checkpoint: Path) -> None:
    state = read_torch_state_dict(checkpoint)
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    converted = convert_state_dict(state)  # raises if any tensor is left over or missing
    assert converted["stem_conv"][0].shape == (3, 3, 3, 32)
    assert converted["block2a_dwconv"][0].shape == (3, 3, 96, 1)
    assert converted["predictions"][0].shape == (1280, 1000)
    assert len(converted["top_bn"]) == 4


def test_leftover_tensor_is_an_error(checkpoint: Path) -> None:
    state = read_torch_state_dict(checkpoint)
    state["_blocks.16._bn0.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="no place for"):
        convert_state_dict(state)


def test_conversion_is_cached_and_reused(checkpoint: Path, tmp_path: Path) -> None:
    first = converted_weights(checkpoint, tmp_path)
    assert len(list(tmp_path.glob("efficientnet_lite0_*.npz"))) == 1
    again = converted_weights(checkpoint, tmp_path)
    assert again.keys() == first.keys()
    for name in first:
        for a, b in zip(first[name], again[name], strict=True):
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


def _squashed(image: np.ndarray) -> np.ndarray:
    from PIL import Image
    resized = Image.fromarray(image).resize((224, 224), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32)[None]


def test_converted_weights_recognise_a_daisy_and_an_espresso(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    from sklearn.datasets import load_sample_image

    from core.models.lite0 import build_imagenet_classifier_lite0
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path))
    model = build_imagenet_classifier_lite0()
    flower = np.asarray(model(_squashed(load_sample_image("flower.jpg")), training=False))[0]
    coffee = np.asarray(model(_squashed(skimage_data.coffee()), training=False))[0]
    assert int(flower.argmax()) == DAISY
    assert int(coffee.argmax()) == ESPRESSO
    assert coffee[ESPRESSO] > 0.8
