"""Near-duplicates by content: images whose pooled backbone features point the same way.

The scan's perceptual hashes catch resized and re-encoded copies but miss flipped, cropped and recoloured
ones; a backbone's pooled features barely move under those. Two images with cosine similarity >=
`threshold` are linked, and a group is a connected component of the links (so A~B and B~C group A, B, C
even when A and C are further apart); each link's similarity is kept for display. Saved with the
dataset's decisions (`DecisionLog.save_groups`), the groups stay on one side of every split.

The features come from `core.training.plan.content_features` (a frozen backbone, through the
activation cache); this module only groups them.
"""
from __future__ import annotations

import numpy as np

from core.data.datasets import Dataset
from core.data.decisions import ContentGroup, SimilarPair, relative_path

DEFAULT_THRESHOLD = 0.95


def similar_pairs(features: np.ndarray, threshold: float = DEFAULT_THRESHOLD
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(P, 2) row pairs i < j with cosine similarity >= threshold, and their similarities (P,)."""
    from sklearn.neighbors import NearestNeighbors

    if not 0 < threshold <= 1:
        raise ValueError(f"near-duplicate threshold {threshold}: a cosine similarity in (0, 1]")
    x = np.asarray(features, dtype=np.float64)
    search = NearestNeighbors(radius=1.0 - threshold + 1e-9, metric="cosine").fit(x)
    links = search.radius_neighbors_graph(x, mode="connectivity").tocoo()
    keep = links.row < links.col
    pairs = np.stack([links.row[keep], links.col[keep]], axis=1).astype(np.int64)
    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    similarity = np.einsum("ij,ij->i", unit[pairs[:, 0]], unit[pairs[:, 1]])
    return pairs, similarity


def content_groups(dataset: Dataset, features: np.ndarray, threshold: float = DEFAULT_THRESHOLD
                   ) -> list[ContentGroup]:
    """Groups of `dataset`'s images (rows of `features`, in the dataset's order) that are near-duplicates,
    most similar pair first; paths relative to the dataset's root, as the decisions file keeps them."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(features) != len(dataset):
        raise ValueError(f"{len(features)} feature rows for {len(dataset)} images")
    pairs, similarity = similar_pairs(features, threshold)
    n = len(dataset)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    names = [relative_path(dataset, p) for p in dataset.paths]
    groups = []
    for c in np.unique(component[pairs[:, 0]]):
        inside = np.flatnonzero(component[pairs[:, 0]] == c)
        inside = inside[np.argsort(-similarity[inside], kind="stable")]
        members = np.flatnonzero(component == c)
        links = tuple(SimilarPair(names[pairs[k, 0]], names[pairs[k, 1]], float(similarity[k]))
                      for k in inside)
        groups.append(ContentGroup(tuple(names[i] for i in members), links))
    return sorted(groups, key=lambda g: -g.pairs[0].similarity)
