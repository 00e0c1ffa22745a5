"""The dataset report: counts, sizes, bad files, exact and near duplicates, and label conflicts.

Duplicates matter beyond tidiness: a photo in both train and test inflates accuracy, and the same
photo under two labels caps it. `duplicate_groups_for` gives splits the groups to keep together.
Near duplicates use two 64-bit perceptual hashes (DCT pHash, found by banding; dHash to confirm),
so a resized or re-encoded copy is caught without comparing every pair.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from core.data.datasets import Dataset, load_dataset
from core.data.images import BadImageError, map_in_processes, open_rgb

NEAR_THRESHOLD = 4  # bits of 64 that may differ, in both hashes, for two images to count as near copies
_HASH_SIDE = 32
_k = np.arange(_HASH_SIDE)
_DCT = np.cos(np.pi * (2 * _k[None, :] + 1) * _k[:, None] / (2 * _HASH_SIDE))


@dataclass(frozen=True)
class ImageFacts:
    """What the scan learns from one decoded file; `error` set means it could not be decoded."""

    path: str
    width: int = 0
    height: int = 0
    byte_digest: str = ""
    pixel_digest: str = ""
    phash: int = 0
    dhash: int = 0
    error: str | None = None


@dataclass
class ScanReport:
    root: str
    classes: list[str]
    counts: dict[str, int]                 # readable images per class; bad files are counted apart
    sizes: list[tuple[str, int, int]]
    bad_files: list[tuple[str, str]]
    duplicate_groups: list[list[str]]
    near_duplicate_groups: list[list[str]]
    label_conflicts: list[dict[str, Any]]
    single_image_classes: list[str] = field(default_factory=list)
    decisions_version: int = 0             # the label decisions the counts are after (0: none)
    decisions_applied: int = 0             # how many of them excluded or relabelled an image

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return asdict(self)

    def format_text(self, limit: int = 10) -> str:
        """Human summary for the terminal; lists are cut at `limit` entries."""
        bad = len(self.bad_files)
        lines = [f"{self.root}: {len(self.sizes)} readable images in {len(self.classes)} classes, "
                 f"{bad} bad file{'' if bad == 1 else 's'}"]
        lines += [f"  {name:<20} {n:>7}" for name, n in self.counts.items()]
        if self.decisions_version:
            lines.append(f"label decisions version {self.decisions_version}: {self.decisions_applied} applied "
                         "(counts are after them)")
        if self.sizes:
            w = np.array([s[1] for s in self.sizes])
            h = np.array([s[2] for s in self.sizes])
            lines.append(f"sizes: {w.min()}-{w.max()} px wide (median {int(np.median(w))}), "
                         f"{h.min()}-{h.max()} px high (median {int(np.median(h))})")

        def section(title: str, items: list, show: Callable[[Any], str]) -> None:
            lines.append(f"{title}: {len(items)}")
            lines.extend(f"  {show(item)}" for item in items[:limit])
            if len(items) > limit:
                lines.append(f"  ... and {len(items) - limit} more")

        section("bad files", self.bad_files, lambda b: f"{b[0]}: {b[1]}")
        section("exact duplicate groups", self.duplicate_groups, " = ".join)
        section("near-duplicate groups", self.near_duplicate_groups, " ~ ".join)
        section("label conflicts", self.label_conflicts,
                lambda c: f"{c['kind']}: "
                + ", ".join(f"{p} [{lab}]" for p, lab in zip(c["paths"], c["labels"])))
        section("classes with a single image", self.single_image_classes, str)
        return "\n".join(lines)


def _perceptual_hashes(im: Image.Image) -> tuple[int, int]:
    """(pHash, dHash) as 64-bit ints; box-filtered grey so resized copies hash alike."""
    grey = im.convert("L")
    small = np.asarray(grey.resize((_HASH_SIDE, _HASH_SIDE), Image.BOX), dtype=np.float64)
    low = (_DCT @ small @ _DCT.T)[:8, :8].ravel()
    p_bits = low > np.median(low[1:])
    tiny = np.asarray(grey.resize((9, 8), Image.BOX), dtype=np.int16)
    d_bits = (tiny[:, 1:] > tiny[:, :-1]).ravel()
    return tuple(int(np.packbits(bits).view(">u8")[0]) for bits in (p_bits, d_bits))  # type: ignore[return-value]


def inspect_image(path: str) -> ImageFacts:
    """Decode one file and hash it; never raises for a bad image (worker-process friendly)."""
    try:
        data = Path(path).read_bytes()
        im = open_rgb(data, name=path)
    except BadImageError as exc:
        return ImageFacts(path, error=exc.reason)
    except OSError as exc:
        return ImageFacts(path, error=f"cannot read file ({exc.strerror or exc})")
    pixels = hashlib.sha1(f"{im.width}x{im.height}".encode() + im.tobytes()).hexdigest()
    phash, dhash = _perceptual_hashes(im)
    return ImageFacts(path, im.width, im.height, hashlib.sha1(data).hexdigest(), pixels, phash, dhash)


def near_pairs(hashes: np.ndarray, max_distance: int) -> np.ndarray:
    """(P, 2) index pairs i < j whose 64-bit hashes differ in <= max_distance bits.

    Banding: split the bits into max_distance + 1 bands; two hashes that close agree exactly on at
    least one band (pigeonhole), so only hashes sharing a band value are compared.
    """
    hashes = np.asarray(hashes, dtype=np.uint64)
    edges = np.linspace(0, 64, max_distance + 2).astype(int)
    n = len(hashes)
    found = [np.empty(0, dtype=np.int64)]
    for lo, hi in zip(edges[:-1], edges[1:]):
        key = (hashes >> np.uint64(lo)) & np.uint64((1 << int(hi - lo)) - 1)
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
        sizes = np.diff(np.r_[starts, n])
        for start, size in zip(starts[sizes > 1], sizes[sizes > 1]):
            members = order[start:start + size]
            a, b = np.triu_indices(size, 1)
            low, high = np.minimum(members[a], members[b]), np.maximum(members[a], members[b])
            found.append(low * n + high)
    codes = np.unique(np.concatenate(found))
    pairs = np.stack([codes // n, codes % n], axis=1)
    distance = np.bitwise_count(hashes[pairs[:, 0]] ^ hashes[pairs[:, 1]])
    return pairs[distance <= max_distance]


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        self.parent[self.find(i)] = self.find(j)

    def components(self) -> list[list[int]]:
        groups: dict[int, list[int]] = {}
        for i in range(len(self.parent)):
            groups.setdefault(self.find(i), []).append(i)
        return list(groups.values())


def _group(facts: list[ImageFacts], near_threshold: int) -> tuple[_UnionFind, _UnionFind]:
    """(exact, exact-or-near) groupings of the decodable images, as union-finds over indices."""
    ok = [i for i, f in enumerate(facts) if f.error is None]
    exact = _UnionFind(len(facts))
    first: dict[str, int] = {}
    for i in ok:
        for key in (facts[i].byte_digest, facts[i].pixel_digest):
            exact.union(i, first.setdefault(key, i))
    near = _UnionFind(len(facts))
    for i in range(len(facts)):
        near.union(i, exact.find(i))
    phash = np.array([facts[i].phash for i in ok], dtype=np.uint64)
    dhash = np.array([facts[i].dhash for i in ok], dtype=np.uint64)
    for a, b in near_pairs(phash, near_threshold):
        if int(np.bitwise_count(dhash[a] ^ dhash[b])) <= near_threshold:
            near.union(ok[a], ok[b])
    return exact, near


def _inspect_all(dataset: Dataset, progress: Callable[[int, int], None] | None) -> list[ImageFacts]:
    return map_in_processes(inspect_image, dataset.paths, progress)


def scan_dataset(source: str | Path | Dataset, *, near_threshold: int = NEAR_THRESHOLD,
                 progress: Callable[[int, int], None] | None = None) -> ScanReport:
    """Decode every image once (all cores) and report what would hurt training."""
    dataset = source if isinstance(source, Dataset) else load_dataset(source, validate=False)
    facts = _inspect_all(dataset, progress)
    exact, near = _group(facts, near_threshold)
    paths, labels = dataset.paths, [dataset.classes[i] for i in dataset.labels]

    duplicate_groups, near_groups, conflicts = [], [], []
    for members in near.components():
        if len(members) < 2:
            continue
        exact_sets = {exact.find(i) for i in members}
        group_paths = [paths[i] for i in members]
        if len(exact_sets) == 1:
            duplicate_groups.append(group_paths)
        else:
            near_groups.append(group_paths)
            duplicate_groups += [[paths[i] for i in m] for m in exact.components()
                                 if len(m) > 1 and exact.find(m[0]) in exact_sets]
        if len({labels[i] for i in members}) > 1:
            conflicts.append({"kind": "exact" if len(exact_sets) == 1 else "near",
                              "paths": group_paths, "labels": [labels[i] for i in members]})
    counts = dataset.subset([i for i, f in enumerate(facts) if f.error is None]).class_counts()
    return ScanReport(
        root=dataset.root,
        classes=list(dataset.classes),
        counts=counts,
        sizes=[(f.path, f.width, f.height) for f in facts if f.error is None],
        bad_files=sorted(dataset.skipped + [(f.path, f.error) for f in facts if f.error is not None]),
        duplicate_groups=sorted(duplicate_groups),
        near_duplicate_groups=sorted(near_groups),
        label_conflicts=sorted(conflicts, key=lambda c: c["paths"]),
        single_image_classes=[name for name, n in counts.items() if n == 1],
        decisions_version=dataset.decisions_version,
        decisions_applied=dataset.decisions_applied,
    )


def duplicate_groups_for(dataset: Dataset, *, near_threshold: int = NEAR_THRESHOLD,
                         progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """int64 group id per image (same id = exact or near copies) for splits to keep on one side."""
    _, near = _group(_inspect_all(dataset, progress), near_threshold)
    roots = [near.find(i) for i in range(len(dataset))]
    _, ids = np.unique(roots, return_inverse=True)
    return ids.astype(np.int64)
