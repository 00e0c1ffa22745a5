"""The Dataset page's helpers: copies keep one group id, the split table counts per class, problems list."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from conftest import write_class_folders

from core.data.datasets import LEFT_OUT, load_dataset
from core.data.findings import group_ids, problems, split_table
from core.data.scan import scan_dataset


def dataset_with_problems(root: Path) -> Path:
    write_class_folders(root, per_class=10)
    shutil.copy(root / "red" / "red_000.jpg", root / "red" / "red_copy.jpg")        # exact duplicate
    shutil.copy(root / "green" / "green_000.jpg", root / "blue" / "looks_green.jpg")  # label conflict
    (root / "blue" / "empty.jpg").write_bytes(b"")                                  # bad file
    return root


def test_group_ids_join_copies(tmp_path: Path) -> None:
    dataset = load_dataset(dataset_with_problems(tmp_path / "d"), validate=False)
    report = scan_dataset(dataset)
    ids = group_ids(dataset.paths, report)
    index = {Path(p).name: i for i, p in enumerate(dataset.paths)}
    assert ids[index["red_000.jpg"]] == ids[index["red_copy.jpg"]]
    assert ids[index["green_000.jpg"]] == ids[index["looks_green.jpg"]]
    assert len(np.unique(ids)) == len(dataset) - 2


def test_split_table_counts_every_image_once(tmp_path: Path) -> None:
    dataset = load_dataset(write_class_folders(tmp_path / "d", per_class=10))
    report = scan_dataset(dataset)
    table = split_table(dataset, report, "stratified", test_fraction=0.2, seed=0)
    assert list(table.columns) == ["train", "test"] and list(table.index) == ["blue", "green", "red"]
    assert table.to_numpy().sum() == 30 and (table["test"] >= 1).all()
    ordered = split_table(dataset, report, "ordered", train_count=20, test_count=10)
    assert ordered["train"].sum() == 20 and ordered["test"].sum() == 10


def test_split_table_leaves_bad_files_out(tmp_path: Path) -> None:
    dataset = load_dataset(dataset_with_problems(tmp_path / "d"), validate=False)
    table = split_table(dataset, scan_dataset(dataset), "stratified", test_fraction=0.2, seed=1)
    assert table.loc["blue"].sum() == 11 and table.to_numpy().sum() == len(dataset) - 1


def test_problems_name_the_files_and_the_reason(tmp_path: Path) -> None:
    dataset = load_dataset(dataset_with_problems(tmp_path / "d"), validate=False)
    found = problems(dataset, scan_dataset(dataset))
    kinds = [p.kind for p in found]
    assert kinds[0] == "bad file" and "label conflict" in kinds and "duplicate" in kinds
    conflict = next(p for p in found if p.kind == "label conflict")
    assert "blue" in conflict.reason and "green" in conflict.reason
    assert sorted(conflict.captions) == ["blue/looks_green.jpg", "green/green_000.jpg"]
    assert found[0].paths[0].endswith("empty.jpg")
    assert [p.paths for p in found].count(conflict.paths) == 1     # the conflict is not listed again as a duplicate


def test_a_class_folder_left_out_is_named_without_a_thumbnail(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path / "d", per_class=2)
    (root / "empty").mkdir()
    dataset = load_dataset(root, validate=False)
    found = problems(dataset, scan_dataset(dataset))
    assert [(p.kind, p.reason, p.paths) for p in found] == [("empty class", f"empty: {LEFT_OUT}", [])]
