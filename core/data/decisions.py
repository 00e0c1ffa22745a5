"""Label decisions for one dataset (relabel as X, exclude, fine) and its near-duplicate groups by content.

They are kept as small versioned JSON files in the project's state folder (HOME/runs/decisions/
<dataset>-<id>/v000001.json, ...), never beside or inside the user's images, which are never moved,
renamed or deleted: a decision changes a loaded dataset in memory only (`apply`). Every save writes a
new version and keeps the old ones, so a sweep can name the version it used (`Dataset.decisions_version`)
and `undo` can go back. Version 0 is "no decisions".

The API (for the CLI and the Dataset page):
- `DecisionLog(root)`: `.latest()`, `.at(version)`, `.record(decisions, dataset, who)`,
  `.save_groups(groups, who)`, `.undo(who)`, `.import_csv(text, dataset, who, source)`;
- `to_csv(decisions)`; `apply(dataset, decisions)`; `decided(dataset, version=None)`; `describe(decisions)`.

A sweep's split with the decisions applied inside each side is `core.data.splits.split_decided`; the
`python -m core relabel` command's text is `core.data.cli_relabel`'s.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from core.data.dataset_record import Dataset, DatasetError
from core.files import written_whole
from core.text import CSV_LINE_END, csv_cell, csv_value

FORMAT = 1
CSV_COLUMNS = ("path", "action", "label")
CSV_OPTIONAL = ("who", "when")
_VERSION_FILE = re.compile(r"^v(\d{6})\.json$")


class DecisionsError(DatasetError):
    """A decision (or a CSV row of them) names an image, class or action the dataset does not have."""


class Action(str, Enum):
    RELABEL = "relabel"
    EXCLUDE = "exclude"
    FINE = "fine"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Decision:
    """One image's decision; `path` is relative to the dataset's root (or its CSV's folder), with '/'."""

    path: str
    action: Action
    label: str = ""                  # the target class of a relabel ("" otherwise)
    who: str = ""
    when: str = ""

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "action": self.action.value, "label": self.label, "who": self.who,
                "when": self.when}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Decision:
        return cls(str(data["path"]), Action(data["action"]), str(data.get("label", "")),
                   str(data.get("who", "")), str(data.get("when", "")))


@dataclass(frozen=True)
class SimilarPair:
    """Two images of a content group (relative paths) and the cosine similarity of their features."""

    a: str
    b: str
    similarity: float


@dataclass(frozen=True)
class ContentGroup:
    """Near-duplicates by content: splits keep them on one side. `pairs` are the links that joined them."""

    paths: tuple[str, ...]
    pairs: tuple[SimilarPair, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"paths": list(self.paths), "pairs": [[p.a, p.b, p.similarity] for p in self.pairs]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContentGroup:
        pairs = tuple(SimilarPair(str(a), str(b), float(s)) for a, b, s in data["pairs"])
        return cls(tuple(data["paths"]), pairs)


@dataclass(frozen=True)
class Decisions:
    """One version of a dataset's decisions. `parent`: the version this one's state came from (None: none)."""

    version: int = 0
    parent: int | None = None
    saved: str = ""
    who: str = ""
    decisions: tuple[Decision, ...] = ()
    groups: tuple[ContentGroup, ...] = ()

    def by_path(self) -> dict[str, Decision]:
        return {d.path: d for d in self.decisions}

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": self.version, "parent": self.parent, "saved": self.saved,
                "who": self.who, "decisions": [d.to_json() for d in self.decisions],
                "groups": [g.to_json() for g in self.groups]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Decisions:
        return cls(int(data["version"]), data.get("parent"), str(data.get("saved", "")),
                   str(data.get("who", "")),
                   tuple(Decision.from_json(d) for d in data.get("decisions", [])),
                   tuple(ContentGroup.from_json(g) for g in data.get("groups", [])))


def relative_path(dataset: Dataset, path: str) -> str:
    """A dataset image's path as decisions name it: relative to the dataset's base folder, with '/'."""
    return PurePosixPath(*Path(os.path.relpath(path, dataset.base_dir)).parts).as_posix()


def decisions_folder(root: str | Path) -> Path:
    """Where one dataset's versions live: the project's state folder, named after the dataset and its path."""
    from core.settings import load_settings

    real = Path(root).expanduser().resolve()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", real.stem)[:60] or "dataset"
    digest = hashlib.sha1(str(real).encode()).hexdigest()[:10]
    return load_settings().home / "runs" / "decisions" / f"{slug}-{digest}"


class DecisionLog:
    """The versions of one dataset's decisions. Versions are never rewritten: a save or an undo adds one."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.folder = decisions_folder(root)

    def versions(self) -> list[int]:
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for m in map(_VERSION_FILE.match, names) if m)

    def latest(self) -> Decisions:
        versions = self.versions()
        return self.at(versions[-1]) if versions else Decisions()

    def at(self, version: int) -> Decisions:
        if version == 0:
            return Decisions()
        path = self.folder / f"v{version:06d}.json"
        try:
            return Decisions.from_json(json.loads(path.read_text()))
        except (ValueError, KeyError, TypeError) as error:
            raise DecisionsError(f"{path}: unreadable decisions file ({error}); "
                                 "repair or remove it") from None
        except FileNotFoundError:
            kept = ", ".join(map(str, self.versions())) or "none"
            raise DecisionsError(f"{self.root}: no decisions version {version} (kept in {self.folder}); "
                                 f"versions there: {kept}") from None

    def record(self, decisions: Iterable[Decision], dataset: Dataset, who: str = "") -> Decisions:
        """A new version: the latest with these decisions added (a later decision on a path replaces the
        earlier one). `dataset`: the dataset as found on disk (`load_dataset(..., decisions=False)`)."""
        new = [replace(d, who=d.who or who, when=d.when or _now()) for d in decisions]
        known = known_paths(dataset)
        for d in new:
            check(d, dataset, known)
        current = self.latest()
        merged = current.by_path() | {d.path: d for d in new}
        state = replace(current, decisions=tuple(merged[p] for p in sorted(merged)))
        return self._write(state, current.version, who)

    def save_groups(self, groups: Sequence[ContentGroup], who: str = "") -> Decisions:
        """A new version holding these content groups (replacing the saved ones): splits keep each whole."""
        current = self.latest()
        return self._write(replace(current, groups=tuple(groups)), current.version, who)

    def undo(self, who: str = "") -> Decisions:
        """A new version with the state before the latest save (repeatable, down to no decisions)."""
        current = self.latest()
        if current.parent is None:
            raise DecisionsError(f"{self.root}: nothing to undo (decisions version {current.version})")
        before = self.at(current.parent)
        return self._write(before, before.parent, who)

    def import_csv(self, text: str, dataset: Dataset, who: str = "", source: str = "decisions.csv"
                   ) -> Decisions:
        """A new version with the CSV's decisions added; a bad row refuses the whole file, naming the row."""
        return self.record(from_csv(text, dataset, source), dataset, who)

    def _write(self, state: Decisions, parent: int | None, who: str) -> Decisions:
        """Write `state` as the next version, derived from `parent` (atomically, and never over an existing
        version: two savers at once both keep theirs)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            version = (self.versions() or [0])[-1] + 1
            new = replace(state, version=version, parent=parent, saved=_now(), who=who)
            try:     # another saver may take the version first: then the next one
                with written_whole(self.folder / f"v{version:06d}.json", keep_existing=True) as temporary:
                    temporary.write_text(json.dumps(new.to_json(), indent=1))
                return new
            except FileExistsError:
                continue


def known_paths(dataset: Dataset) -> set[str]:
    return {relative_path(dataset, p) for p in dataset.paths}


def check(decision: Decision, dataset: Dataset, known: set[str]) -> None:
    """Refuse a decision on an image (`known`: `known_paths(dataset)`) or into a class that `dataset`
    (as found on disk) does not have."""
    if decision.path not in known:
        raise DecisionsError(f"{decision.path}: not an image of {dataset.root}")
    if decision.action == Action.RELABEL and decision.label not in dataset.classes:
        raise DecisionsError(f"{decision.path}: class '{decision.label}' is not a class of {dataset.root} "
                             f"(classes: {', '.join(dataset.classes)})")


def to_csv(decisions: Decisions) -> str:
    """path,action,label,who,when: one row per decision, formulas defused (`core.text.csv_cell`)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=CSV_LINE_END)
    writer.writerow(CSV_COLUMNS + CSV_OPTIONAL)
    writer.writerows([csv_cell(cell) for cell in (d.path, d.action.value, d.label, d.who, d.when)]
                     for d in decisions.decisions)
    return out.getvalue()


def from_csv(text: str, dataset: Dataset, source: str = "decisions.csv") -> list[Decision]:
    """The decisions of a path,action,label CSV (who,when optional), each checked against `dataset`; cells
    as `to_csv` defused them or as typed."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    columns = [c.strip().lower() for c in reader.fieldnames or []]
    missing = [c for c in CSV_COLUMNS if c not in columns]
    if missing or [c for c in columns if c not in CSV_COLUMNS + CSV_OPTIONAL]:
        raise DecisionsError(f"{source}: the first row must name the columns {','.join(CSV_COLUMNS)} "
                             f"(optionally {','.join(CSV_OPTIONAL)}); "
                             f"found: {','.join(columns) or 'nothing'}")
    reader.fieldnames = columns
    found: dict[str, int] = {}
    known = known_paths(dataset)
    decisions = []
    for row_no, read in enumerate(reader, start=2):
        row = {key: csv_value(value) for key, value in read.items() if isinstance(value, str)}
        where = f"{source}:{row_no}"
        path = (row.get("path") or "").strip()
        action, label = (row.get("action") or "").strip().lower(), (row.get("label") or "").strip()
        if action not in {a.value for a in Action}:
            known = ", ".join(a.value for a in Action)
            raise DecisionsError(f"{where}: action '{action}' is not one of {known}")
        if path in found:
            raise DecisionsError(f"{where}: {path} listed again (first on row {found[path]})")
        decision = Decision(path, Action(action), label if action == Action.RELABEL else "",
                            (row.get("who") or "").strip(), (row.get("when") or "").strip())
        try:
            check(decision, dataset, known)
        except DecisionsError as error:
            raise DecisionsError(f"{where}: {error}") from None
        found[path] = row_no
        decisions.append(decision)
    return decisions


def apply(dataset: Dataset, decisions: Decisions) -> Dataset:
    """The dataset with the decisions applied, in memory: excluded images dropped, relabelled ones moved.

    Decisions on images the dataset no longer has, or into a class it no longer has, change nothing;
    a class left without images is dropped. Raises DecisionsError when fewer than two classes are left.
    """
    index = {name: i for i, name in enumerate(dataset.classes)}
    labels = dataset.labels.copy()
    keep = np.ones(len(dataset), dtype=bool)
    applied = 0
    by_path = decisions.by_path()
    for row, path in enumerate(dataset.paths):
        d = by_path.get(relative_path(dataset, path))
        if d is None or d.action == Action.FINE:
            continue
        if d.action == Action.EXCLUDE:
            keep[row] = False
            applied += 1
        elif d.label in index and index[d.label] != labels[row]:
            labels[row] = index[d.label]
            applied += 1
    used = np.unique(labels[keep])
    if used.size < 2:
        raise DecisionsError(f"{dataset.root}: decisions version {decisions.version} leave fewer than 2 "
                             "classes with images; undo some exclusions "
                             "(python -m core relabel DATASET --undo)")
    remap = np.full(len(dataset.classes), -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    rows = np.flatnonzero(keep)
    return replace(dataset, classes=[dataset.classes[c] for c in used],
                   paths=[dataset.paths[r] for r in rows], labels=remap[labels[rows]],
                   decisions_version=decisions.version, decisions_applied=applied)


def group_rows(dataset: Dataset, groups: Iterable[ContentGroup]) -> list[list[int]]:
    """Each content group as the rows of `dataset` it still has (for `core.data.splits.merge_groups`)."""
    row = {relative_path(dataset, p): i for i, p in enumerate(dataset.paths)}
    return [[row[p] for p in g.paths if p in row] for g in groups]


def decided(dataset: Dataset, version: int | None = None) -> Dataset:
    """`dataset` (as found on disk) with its latest decisions applied, or those of `version`."""
    log = DecisionLog(dataset.root)
    return apply(dataset, log.latest() if version is None else log.at(version))


def describe(decisions: Decisions) -> str:
    """One line: the version, its counts by action, its content groups, who saved it and when."""
    counts = {a: sum(d.action == a for d in decisions.decisions) for a in Action}
    what = ", ".join(f"{n} {a.value}" for a, n in counts.items())
    by = f" by {decisions.who}" if decisions.who else ""
    when = f", saved {decisions.saved}{by}" if decisions.saved else ""
    return f"decisions version {decisions.version}: {what}; {len(decisions.groups)} content group(s){when}"
