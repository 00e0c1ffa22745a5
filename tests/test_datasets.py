"""Finding, checking and hashing datasets: class folders, CSVs, bad files, data-root confinement."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_image, write_class_folders

from core.data.datasets import (
    LEFT_OUT,
    Dataset,
    DatasetError,
    dataset_path_anywhere,
    dataset_path_in_roots,
    list_datasets,
    load_dataset,
)


def test_class_folders_load_sorted_with_labels(tiny_dataset: Path) -> None:
    ds = load_dataset(tiny_dataset)
    assert ds.classes == ["blue", "green", "red"]
    assert len(ds) == 36 and ds.labels.dtype == np.int64
    assert ds.paths == sorted(ds.paths) and all(os.path.isabs(p) for p in ds.paths)
    assert ds.class_counts() == {"blue": 12, "green": 12, "red": 12}
    assert [Path(p).parent.name for p in ds.paths] == [ds.classes[i] for i in ds.labels]


def test_bad_files_are_skipped_with_reasons(tiny_dataset: Path) -> None:
    (tiny_dataset / "red" / "empty.jpg").write_bytes(b"")
    (tiny_dataset / "red" / "notes.jpg").write_text("not a photo")
    (tiny_dataset / "red" / "readme.txt").write_text("hi")
    (tiny_dataset / "red" / ".DS_Store").write_bytes(b"junk")
    (tiny_dataset / "__MACOSX").mkdir()
    good = tiny_dataset / "red" / "red_000.jpg"
    (tiny_dataset / "red" / "cut.jpg").write_bytes(good.read_bytes()[:300])
    ds = load_dataset(tiny_dataset)
    reasons = {Path(p).name: r for p, r in ds.skipped}
    assert reasons == {"empty.jpg": "0 bytes", "notes.jpg": "not an image (looks like a text file)",
                       "readme.txt": "not an image file (.txt)", "cut.jpg": "truncated JPEG"}
    assert len(ds) == 36 and ds.classes == ["blue", "green", "red"]
    assert len(load_dataset(tiny_dataset, validate=False)) == 39  # unchecked: the three broken .jpg stay


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: None, "no such folder"),
        (lambda root: root.mkdir(), "no class folders"),
        (lambda root: write_class_folders(root, 2, {"only": (1, 2, 3)}),
         r"has one class \(only\); a classifier needs at least 2"),
        (lambda root: (write_class_folders(root, 2, {"only": (1, 2, 3)}), (root / "empty").mkdir()),
         r"has one class \(only\).*left out.*empty"),
        (lambda root: (write_class_folders(root, 2), [p.write_bytes(b"") for p in (root / "red").iterdir()]),
         "class 'red' has no readable image .*0 bytes"),
    ],
)
def test_unusable_datasets_say_why(tmp_path: Path, setup, message: str) -> None:
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(DatasetError, match=message):
        load_dataset(root)


def test_class_folders_without_images_are_reported_and_left_out(tiny_dataset: Path) -> None:
    (tiny_dataset / "empty").mkdir()
    (tiny_dataset / "notes").mkdir()
    (tiny_dataset / "notes" / "readme.txt").write_text("no photos here")
    for validate in (True, False):
        ds = load_dataset(tiny_dataset, validate=validate)
        assert ds.classes == ["blue", "green", "red"] and len(ds) == 36
        assert ds.skipped == sorted([(str(tiny_dataset / "empty"), LEFT_OUT),
                                     (str(tiny_dataset / "notes"), LEFT_OUT),
                                     (str(tiny_dataset / "notes" / "readme.txt"), "not an image file (.txt)")])


def test_dataset_inside_a_hidden_folder_still_loads(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path / ".cache" / "colours", per_class=2)
    (root / "red" / ".thumbs").mkdir()
    make_image((1, 2, 3), 0).save(root / "red" / ".thumbs" / "t.jpg")
    assert len(load_dataset(root)) == 6


def test_csv_dataset_resolves_relative_paths(tiny_dataset: Path) -> None:
    csv_path = tiny_dataset / "labels.csv"
    rows = ["Path,Label", "red/red_000.jpg,warm", "blue/blue_000.jpg,cold", "green/green_001.jpg,cold",
            "missing.jpg,cold", "red/red_000.jpg,cold", ",warm"]
    csv_path.write_text("\n".join(rows) + "\n")
    ds = load_dataset(csv_path)
    assert ds.classes == ["cold", "warm"] and len(ds) == 3
    assert ds.paths[2] == str(tiny_dataset / "red" / "red_000.jpg") and ds.labels.tolist() == [0, 0, 1]
    reasons = " | ".join(r for _, r in ds.skipped)
    assert "file not found (row 5)" in reasons and "listed again (first on row 2)" in reasons
    assert "empty path or label" in reasons


def test_csv_without_columns_names_them(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("file,class\na.jpg,b\n")
    with pytest.raises(DatasetError, match="missing column.*path, label.*found: file, class"):
        load_dataset(tmp_path / "x.csv")


def test_fingerprint_is_stable_and_tracks_content_and_labels(tiny_dataset: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    ds = load_dataset(tiny_dataset)
    first = ds.fingerprint(cache)
    assert first == ds.fingerprint(cache) == load_dataset(tiny_dataset).fingerprint(cache)
    assert (cache / "file_digests.json").is_file()

    # An unchanged (size, mtime) is trusted without reading the file: that is what keeps a second
    # fingerprint of thousands of photos to a stat each.
    target = Path(ds.paths[0])
    stamp, data = target.stat(), bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    os.utime(target, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    assert ds.fingerprint(cache) == first

    relabelled = Dataset(ds.root, ds.classes, ds.paths, np.roll(ds.labels, 1))
    assert relabelled.fingerprint(cache) != first

    make_image((1, 2, 3), seed=99).save(target)
    os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert ds.fingerprint(cache) != first


def test_subset_and_dict_round_trip(tiny_dataset: Path) -> None:
    ds = load_dataset(tiny_dataset, validate=False)
    part = ds.subset(np.array([0, 13, 35]))
    assert part.paths == [ds.paths[i] for i in (0, 13, 35)] and part.labels.tolist() == [0, 1, 2]
    back = Dataset.from_dict(part.to_dict())
    assert back.paths == part.paths and np.array_equal(back.labels, part.labels)


def test_dataset_path_in_roots_stays_inside_roots(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_class_folders(root / "colours", 1)
    (tmp_path / "secret").mkdir()
    (root / "sneaky").symlink_to(tmp_path / "secret")
    assert dataset_path_in_roots("colours", [root]) == (root / "colours").resolve()
    assert dataset_path_in_roots(str(root / "colours"), [root]) == (root / "colours").resolve()
    for bad in ("../secret", str(tmp_path / "secret"), "/etc", "sneaky"):
        with pytest.raises(DatasetError, match="outside the data folders"):
            dataset_path_in_roots(bad, [root])
    with pytest.raises(DatasetError, match="no dataset 'nope'"):
        dataset_path_in_roots("nope", [root])


def test_dataset_path_anywhere_takes_an_absolute_path_as_given_and_a_name_in_the_roots(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_class_folders(root / "colours", 1)
    assert dataset_path_anywhere(str(tmp_path / "mine"), [root]) == tmp_path / "mine"    # the CLI user's own
    assert dataset_path_anywhere("colours", [root]) == (root / "colours").resolve()
    with pytest.raises(DatasetError, match="outside the data folders"):
        dataset_path_anywhere("../mine", [root])


def test_list_datasets_finds_folders_and_csvs(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_class_folders(root / "colours", 1)
    write_class_folders(root / "upload" / "flower_photos", 1)
    (root / "one_class" / "a").mkdir(parents=True)
    make_image((1, 2, 3), 0).save(root / "one_class" / "a" / "x.png")
    (root / "labels.csv").write_text("path,label\n")
    (root / "other.csv").write_text("x,y\n")
    assert list_datasets([root, tmp_path / "missing"]) == [
        root / "colours", root / "labels.csv", root / "upload" / "flower_photos"]


@pytest.mark.slow
def test_flowers5_loads_and_fingerprints(flowers5: Path, tmp_path: Path) -> None:
    ds = load_dataset(flowers5)
    assert ds.classes == ["daisy", "dandelion", "rose", "sunflower", "tulip"] and len(ds) == 4317
    assert ds.fingerprint(tmp_path) == ds.fingerprint(tmp_path) == load_dataset(flowers5).fingerprint()
