"""Cache of backbone activations at a cut layer, keyed by everything that determines them.

A grid over trainable layers, heads, optimizers and learning rates re-runs the same frozen
layers on the same images again and again; here they run once and are memory-mapped from
disk afterwards. Augmented training images get a fixed number of cached views each.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from core.progress import Progress
from core.training.predictions import predict_fixed

FORWARD_BATCH = 32      # on a CPU; a GPU's is in `accelerator.batch_sizes`


@dataclass(frozen=True)
class CacheKey:
    """Every input of the cached tensors; change any one and the entry is a different one."""

    dataset: str        # dataset content fingerprint
    backbone: str
    weights: str        # identity of the weights file, or "random:<seed>"
    image_size: int
    cut: str            # layer whose output is stored
    augmentation: str   # "none" or the preset of the cached views
    views: int          # augmented views per image (0 without augmentation)
    seed: int
    precision: str = "float32"   # the Keras dtype policy the backbone ran in (core.models.accelerator)

    def digest(self) -> str:
        """float32 entries keep the digest they had before the precision was part of the key."""
        fields = asdict(self)
        if self.precision == "float32":
            del fields["precision"]
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]


@dataclass
class CachedActivations:
    originals: np.ndarray               # (N, *shape) float32, one row per image
    views: np.ndarray | None            # (V, N, *shape) augmented views, or None
    hit: bool                           # True when read from disk, False when computed now


class ActivationCache:
    """Activation tensors on disk under `root/activations/<digest>/`, complete or absent."""

    def __init__(self, root: Path):
        self.root = Path(root) / "activations"

    def get(self, key: CacheKey, model, inputs: np.ndarray | CachedActivations,
            progress: Progress | None = None) -> CachedActivations:
        """Read the entry for `key`, computing it first if it is missing.

        `inputs` are the images (then `model` runs from the input to the cut, augmenting the
        views) or another entry at a lower cut (then `model` is the short segment between the
        two cuts, run over that entry's originals and views): one pass of the backbone serves
        every cut of a sweep.
        """
        folder = self.root / key.digest()
        if (folder / "meta.json").exists():
            return self._read(folder, hit=True)
        self._compute(folder, key, model, inputs, progress)
        return self._read(folder, hit=False)

    def usage(self) -> dict:
        """Entries and bytes on disk, for the UI and `python -m core cache`."""
        entries = [p for p in self.root.glob("*/meta.json")] if self.root.exists() else []
        size = sum(f.stat().st_size for f in self.root.rglob("*") if f.is_file()) if self.root.exists() else 0
        return {"entries": len(entries), "bytes": size, "path": str(self.root)}

    def clear(self) -> int:
        """Delete every entry; returns the bytes freed."""
        freed = self.usage()["bytes"]
        shutil.rmtree(self.root, ignore_errors=True)
        return freed

    @staticmethod
    def _read(folder: Path, hit: bool) -> CachedActivations:
        meta = json.loads((folder / "meta.json").read_text())
        originals = np.memmap(folder / "originals.f32", dtype=np.float32, mode="r",
                              shape=tuple(meta["originals_shape"]))
        views = None
        if meta.get("views_shape"):
            views = np.memmap(folder / "views.f32", dtype=np.float32, mode="r", shape=tuple(meta["views_shape"]))
        return CachedActivations(originals=originals, views=views, hit=hit)

    def _compute(self, folder: Path, key: CacheKey, model, inputs: np.ndarray | CachedActivations,
                 progress: Progress | None) -> None:
        # Written to a private folder and renamed into place, so a crash or a second
        # worker computing the same entry never leaves a half-written one behind.
        from core.models.accelerator import batch_sizes, gpu_count  # TensorFlow: only when computing
        from core.models.augment import augment_batch, augmenter
        tmp = folder.with_name(f".{folder.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.mkdir(parents=True)
        try:
            shape = tuple(int(d) for d in model.output.shape[1:])
            derived = isinstance(inputs, CachedActivations)
            n = len(inputs.originals) if derived else len(inputs)
            transform = augmenter(key.augmentation, seed=key.seed) if key.views and not derived else None

            def batch(view: int, rows: slice) -> np.ndarray:
                if derived:
                    source = inputs.originals if view == 0 else inputs.views[view - 1]
                    return np.asarray(source[rows], dtype=np.float32)
                return augment_batch(transform if view else None, inputs[rows])

            size = batch_sizes(gpu_count())[0]
            passes = 1 + key.views
            originals = np.memmap(tmp / "originals.f32", dtype=np.float32, mode="w+", shape=(n, *shape))
            views = (np.memmap(tmp / "views.f32", dtype=np.float32, mode="w+", shape=(key.views, n, *shape))
                     if key.views else None)
            done = 0
            for view in range(passes):
                target = originals if view == 0 else views[view - 1]
                for start in range(0, n, size):
                    x = batch(view, slice(start, start + size))
                    target[start:start + len(x)] = predict_fixed(model, x, size)
                    done += len(x)
                    if progress:
                        progress(done, n * passes)
            originals.flush()
            if views is not None:
                views.flush()
            meta = {"key": asdict(key), "originals_shape": [n, *shape],
                    "views_shape": [key.views, n, *shape] if key.views else None}
            (tmp / "meta.json").write_text(json.dumps(meta))
            try:
                os.rename(tmp, folder)
            except OSError:
                if not (folder / "meta.json").exists():  # not another worker's finished copy: a real error
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
