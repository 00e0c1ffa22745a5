"""The Sweep page's augmentation preview: a few training images of the chosen dataset through each
augmentation choice, by the transform training applies (issue 23, item 12)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from apptest import no_errors, page
from conftest import COLOURS

from core.spec.sweep import AUGMENTATIONS, SweepSpec
from core.training.augment_preview import augmented, training_examples
from ui.augment_preview import IMAGES, VIEWS


@pytest.mark.slow          # loads TensorFlow into the page: ~10 s when nothing else did
def test_the_preview_shows_training_images_through_each_augmentation_choice(data_root: Path) -> None:
    at = page("views/2_Sweep.py")
    assert not at.image                                   # nothing decoded (nor TensorFlow loaded) until asked
    at.multiselect(key="spec.swept").set_value(["augmentation"]).run()
    at.multiselect(key="space.augmentation").set_value(list(AUGMENTATIONS)).run()
    at.toggle(key="augment.show").set_value(True).run()
    no_errors(at)
    blocks = [m.value for m in at.markdown if m.value.endswith("at 224 px")]
    assert blocks == [f"**{kind}** at 224 px" for kind in AUGMENTATIONS]
    originals = [i for i in at.image if set(i.captions) <= set(COLOURS)]
    assert len(originals) == len(AUGMENTATIONS) and all(len(i.captions) == IMAGES for i in originals)
    draws = [i.captions for i in at.image if i not in originals]
    assert draws == [[f"{kind}, draw {v}"] * IMAGES for kind in AUGMENTATIONS if kind != "none"
                     for v in range(1, VIEWS + 1)]


def test_each_augmentation_changes_the_images_and_none_leaves_them(data_root: Path) -> None:
    spec = SweepSpec.from_dict({"name": "aug", "data": {"dataset": str(data_root / "colours")},
                                "params": {"image_size": 48}})
    images, classes = training_examples(spec, 4)
    assert images.shape == (4, 48, 48, 3) and images.dtype == np.uint8 and len(set(classes)) == 3
    assert np.array_equal(augmented(images, "none", 2)[1], images)
    for kind in ("flip", "standard", "full"):
        draws = augmented(images, kind, 2)
        assert draws.shape == (2, *images.shape) and not np.array_equal(draws[0], images), kind
