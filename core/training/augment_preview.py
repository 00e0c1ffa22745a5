"""A few of a sweep's training images through an augmentation, as a trial's training sees them (fastai's
`show_batch` on augmented data): decoded at the trial's size by the decoder training uses, then transformed
by `core.models.augment` (`augmenter`, `augment_batch`), the transform a trial applies to its batches."""
from __future__ import annotations

import numpy as np

from core.data.images import load_image
from core.spec.sweep import SweepSpec
from core.training.plan import SweepData


def training_examples(spec: SweepSpec, count: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """`count` images of the sweep's train part (classes in turn, seeded), decoded at its image size, uint8
    (N, size, size, 3), and their class names."""
    data = SweepData(spec)
    rng = np.random.default_rng(seed)
    labels = data.dataset.labels[data.train_rows]
    by_class = [rng.permutation(data.train_rows[labels == c]).tolist() for c in np.unique(labels)]
    rows: list[int] = []
    while len(rows) < count and any(by_class):
        rows += [pool.pop() for pool in by_class if pool][: count - len(rows)]
    size = spec.params.image_size
    images = np.stack([load_image(data.dataset.paths[r], size) for r in rows])
    return images, [data.dataset.classes[data.dataset.labels[r]] for r in rows]


def augmented(images: np.ndarray, augmentation: str, views: int, seed: int = 0) -> np.ndarray:
    """`views` random draws of `augmentation` over the batch, uint8 (views, N, size, size, 3)."""
    from core.models.augment import augment_batch, augmenter      # Keras: only when the preview is asked for
    transform = augmenter(augmentation, seed=seed)
    draws = [augment_batch(transform, images) for _ in range(views)]
    return np.clip(np.rint(np.stack(draws)), 0, 255).astype(np.uint8)
