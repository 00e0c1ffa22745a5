"""Pure helpers behind the Dataset page: duplicate groups from a scan, the split preview table,
and the problem list, so the page only draws."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.data.datasets import LEFT_OUT, REFUSED, Dataset, load_dataset
from core.data.scan import ScanReport


def group_ids(paths: list[str], report: ScanReport) -> np.ndarray:
    """int64 id per image, shared by exact and near copies (as `duplicate_groups_for`, but from the scan)."""
    index = {p: i for i, p in enumerate(paths)}
    ids = np.arange(len(paths), dtype=np.int64)
    for group in [*report.duplicate_groups, *report.near_duplicate_groups]:
        members = [index[p] for p in group if p in index]
        if members:
            ids[members] = ids[members].min()
    return ids


def usable(dataset: Dataset, report: ScanReport) -> Dataset:
    """The images a sweep will train on: the dataset without the scan's bad files."""
    bad = {path for path, _ in report.bad_files}
    return dataset.subset([i for i, p in enumerate(dataset.paths) if p not in bad])


def split_table(dataset: Dataset, report: ScanReport, method: str, *, test_fraction: float = 0.15, seed: int = 0,
                train_count: int = 0, test_count: int = 0) -> pd.DataFrame:
    """Images per class (rows) in train and test (columns), split as a sweep splits them
    (`splits.split_decided`): drawn on the images as found without the scan's bad files, copies and
    saved content groups on one side, then `dataset`'s label decisions applied inside each side."""
    from core.data.decisions import DecisionLog
    from core.data.splits import split_decided
    found = usable(load_dataset(dataset.root, validate=False, decisions=False), report)
    cut = split_decided(found, DecisionLog(dataset.root).at(dataset.decisions_version),
                        group_ids(found.paths, report), method, test_fraction=test_fraction, seed=seed,
                        train_count=train_count, test_count=test_count)
    labels = cut.dataset.labels
    counts = {name: np.bincount(labels[rows], minlength=len(cut.dataset.classes))
              for name, rows in (("train", cut.train), ("test", cut.test))}
    return pd.DataFrame(counts, index=pd.Index(cut.dataset.classes, name="class"))


@dataclass(frozen=True)
class Problem:
    """One finding of the scan, for a row of thumbnails: which files and why they matter."""

    kind: str
    reason: str
    paths: list[str]
    captions: list[str]


def _name(path: str, label: str = "") -> str:
    short = path.rsplit("/", 1)[-1]
    return f"{label}/{short}" if label else short


def _bad_file(path: str, reason: str) -> Problem:
    """A refused file or a left-out folder is named, never given as a thumbnail: a refused path may be a
    link to a file outside, a folder is no image."""
    if reason == LEFT_OUT:
        return Problem("empty class", f"{_name(path)}: {reason}", [], [])
    if reason == REFUSED:
        return Problem("bad file", f"{_name(path)}: {reason}", [], [])
    return Problem("bad file", reason, [path], [_name(path)])


def problems(dataset: Dataset, report: ScanReport) -> list[Problem]:
    """Bad files, label conflicts, then exact and near duplicates not already shown as a conflict (most harmful first)."""
    label_of = {p: dataset.classes[c] for p, c in zip(dataset.paths, dataset.labels)}
    found = [_bad_file(path, reason) for path, reason in report.bad_files]
    found += [Problem("label conflict", f"the same picture ({c['kind']} copy) under labels "
                      f"{', '.join(sorted(set(c['labels'])))}", c["paths"],
                      [_name(p, lab) for p, lab in zip(c["paths"], c["labels"])])
              for c in report.label_conflicts]
    conflicting = {frozenset(c["paths"]) for c in report.label_conflicts}   # already shown, with their labels
    for kind, groups, why in (("duplicate", report.duplicate_groups, "identical files or pixels"),
                              ("near duplicate", report.near_duplicate_groups, "resized or re-encoded copies")):
        found += [Problem(kind, f"{len(g)} {why}: keep one, or they leak between train and test", g,
                          [_name(p, label_of.get(p, "")) for p in g])
                  for g in groups if frozenset(g) not in conflicting]
    return found
