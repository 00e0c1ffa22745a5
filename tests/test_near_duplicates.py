"""Near-duplicates by content: cosine links on pooled features, grouped transitively, saved with the
decisions, found through a real (tiny, random-init) backbone's pooled features."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data.datasets import Dataset, load_dataset
from core.data.decisions import DecisionLog
from core.data.near_duplicates import content_groups, similar_pairs
from core.spec.sweep import TrialParams
from core.training.plan import content_features


def dataset_of(n: int) -> Dataset:
    paths = [f"/data/shapes/{'ab'[i % 2]}/img{i:02d}.png" for i in range(n)]
    return Dataset("/data/shapes", ["a", "b"], paths, np.arange(n) % 2)


def test_links_above_the_threshold_group_transitively_with_their_similarity():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(12, 64))
    features[3] = features[0] + 0.05 * rng.normal(size=64)          # a copy of 0
    features[7] = -features[0]                                       # its opposite: no copy
    features[5] = features[3] + 0.05 * rng.normal(size=64)          # a copy of the copy: one group 0, 3, 5
    features[10] = 2.5 * features[9]                                 # a brighter copy: same direction
    groups = content_groups(dataset_of(12), features, threshold=0.95)
    assert [g.paths for g in groups] == [("b/img09.png", "a/img10.png"),
                                         ("a/img00.png", "b/img03.png", "b/img05.png")]
    assert groups[0].pairs[0].similarity == pytest.approx(1.0)
    links = {(p.a, p.b): p.similarity for p in groups[1].pairs}
    assert set(links) >= {("a/img00.png", "b/img03.png"), ("b/img03.png", "b/img05.png")}
    assert all(0.95 <= s < 1 for s in links.values())
    strict = content_groups(dataset_of(12), features, threshold=0.9999)
    assert [g.paths for g in strict] == [("b/img09.png", "a/img10.png")]
    pairs, similarity = similar_pairs(features, 0.95)
    assert (pairs[:, 0] < pairs[:, 1]).all() and len(pairs) == len(similarity)
    with pytest.raises(ValueError, match="threshold"):
        similar_pairs(features, 1.5)


def pattern(seed: int) -> Image.Image:
    """A smooth random picture: blocks of colour, blurred by the resize."""
    blocks = np.random.default_rng(seed).uniform(0, 255, size=(4, 4, 3)).astype(np.uint8)
    return Image.fromarray(blocks).resize((64, 64), Image.BILINEAR)


def test_a_recoloured_copy_is_found_through_the_backbones_pooled_features(tmp_path: Path):
    root = tmp_path / "shapes"
    for c, name in enumerate(("a", "b")):
        (root / name).mkdir(parents=True)
        for i in range(8):
            pattern(100 * c + i).save(root / name / f"{name}{i}.png")
    original = np.asarray(Image.open(root / "a" / "a0.png"), dtype=np.float64)
    Image.fromarray(np.clip(original * 0.8 + 30, 0, 255).astype(np.uint8)).save(root / "b" / "recoloured.png")
    dataset, features = content_features(root, TrialParams(weights="none", image_size=32))
    assert features.shape[0] == len(dataset) == 17
    groups = content_groups(dataset, features, threshold=0.98)
    assert [g.paths for g in groups] == [("a/a0.png", "b/recoloured.png")]
    saved = DecisionLog(root).save_groups(groups)
    assert DecisionLog(root).latest().groups == saved.groups == tuple(groups)
    assert len(load_dataset(root)) == 17                    # grouping changes no row or label
