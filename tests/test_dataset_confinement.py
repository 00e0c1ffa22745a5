"""A dataset under a data root reads only files under the data roots, and says nothing about any other file.

CSV rows and symlinks may point anywhere; a refused one is named by where it sits in the dataset (CSV row,
link path) with one reason, so neither a thumbnail nor the reason tells whether the target exists.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_image, write_class_folders

from core.data.datasets import LEFT_OUT, REFUSED, DatasetError, load_dataset
from core.data.findings import problems
from core.data.scan import ScanReport


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the data root: two photos and a text file (made_up.jpg is not there)."""
    folder = tmp_path / "outside"
    folder.mkdir()
    make_image((1, 2, 3), seed=1).save(folder / "photo.jpg")
    make_image((3, 2, 1), seed=2).save(folder / "other.jpg")
    (folder / "notes.txt").write_text("private")
    return folder


def assert_nothing_of(outside: Path, text: str) -> None:
    """No path or name of a file outside appears in what the app would show."""
    assert str(outside) not in text and "photo.jpg" not in text and "notes.txt" not in text


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(["path,label", *rows]) + "\n")
    return path


@pytest.mark.parametrize("validate", [True, False])
def test_csv_rows_outside_the_roots_are_refused_alike(tmp_path: Path, outside: Path, validate: bool) -> None:
    root = write_class_folders(tmp_path / "data" / "colours", per_class=1).parent
    csv_path = write_csv(root / "labels.csv", [
        "colours/red/red_000.jpg,warm", "colours/blue/blue_000.jpg,cold",
        f"{outside / 'photo.jpg'},warm", f"{outside / 'notes.txt'},cold", f"{outside / 'made_up.jpg'},warm",
        "../outside/other.jpg,cold", "colours/../../outside/photo.jpg,cold"])
    ds = load_dataset(csv_path, roots=[root], validate=validate)
    assert ds.paths == [str(root / "colours" / c / f"{c}_000.jpg") for c in ("blue", "red")]
    assert ds.skipped == [(f"{csv_path}:{row}", REFUSED) for row in range(4, 9)]
    assert_nothing_of(outside, repr(ds.skipped) + repr(ds.paths))


def test_links_to_outside_are_refused_by_their_own_name(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "data"
    colours = write_class_folders(root / "colours", per_class=2)
    links = {"photo.jpg": outside / "photo.jpg", "notes.txt": outside / "notes.txt", "etc": outside,
             "gone.jpg": outside / "made_up.jpg"}
    for name, target in links.items():
        (colours / "red" / name).symlink_to(target)
    ds = load_dataset(colours, roots=[root])
    assert len(ds) == 6 and all(Path(p).is_relative_to(colours) for p in ds.paths)
    assert ds.skipped == sorted((str(colours / "red" / name), REFUSED) for name in links)
    assert str(outside) not in repr(ds.skipped)


def test_class_folder_linked_outside_is_refused_whole(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "data"
    colours = write_class_folders(root / "colours", per_class=2)
    (colours / "elsewhere").symlink_to(outside)
    ds = load_dataset(colours, roots=[root])
    assert ds.classes == ["blue", "green", "red"] and len(ds) == 6
    assert ds.skipped == [(str(colours / "elsewhere"), REFUSED)]
    assert_nothing_of(outside, repr(ds.skipped) + repr(ds.paths))


def test_class_of_refused_links_only_is_left_out_without_naming_them(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "data"
    colours = write_class_folders(root / "colours", per_class=2)
    (colours / "stolen").mkdir()
    (colours / "stolen" / "a.jpg").symlink_to(outside / "photo.jpg")
    ds = load_dataset(colours, roots=[root])
    assert ds.classes == ["blue", "green", "red"]
    assert ds.skipped == [(str(colours / "stolen"), LEFT_OUT), (str(colours / "stolen" / "a.jpg"), REFUSED)]
    assert_nothing_of(outside, repr(ds.skipped))


def test_csv_class_of_refused_rows_only_is_left_out(tmp_path: Path, outside: Path) -> None:
    root = write_class_folders(tmp_path / "data" / "colours", per_class=1).parent
    csv_path = write_csv(root / "labels.csv", [
        "colours/red/red_000.jpg,warm", "colours/blue/blue_000.jpg,cold", f"{outside / 'photo.jpg'},stolen"])
    ds = load_dataset(csv_path, roots=[root])
    assert ds.classes == ["cold", "warm"] and ds.skipped == [(f"{csv_path}:4", REFUSED)]


def test_refused_link_is_never_handed_out_as_a_thumbnail(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "data"
    colours = write_class_folders(root / "colours", per_class=2)
    (colours / "red" / "link.jpg").symlink_to(outside / "photo.jpg")
    ds = load_dataset(colours, roots=[root], validate=False)
    report = ScanReport(ds.root, ds.classes, ds.class_counts(), [], ds.skipped, [], [], [])
    (found,) = problems(ds, report)
    assert found.kind == "bad file" and "link.jpg" in found.reason and REFUSED in found.reason
    assert found.paths == [] and str(outside) not in repr(found)


def test_link_to_an_image_elsewhere_inside_the_roots_is_kept(tmp_path: Path) -> None:
    root = tmp_path / "data"
    colours = write_class_folders(root / "colours", per_class=2)
    (root / "shared").mkdir()
    make_image((9, 9, 9), seed=5).save(root / "shared" / "pic.jpg")
    (colours / "red" / "alias.jpg").symlink_to(root / "shared" / "pic.jpg")
    ds = load_dataset(colours, roots=[root])
    assert len(ds) == 7 and str(root / "shared" / "pic.jpg") in ds.paths and not ds.skipped


def test_dataset_outside_every_root_reads_its_own_files(tmp_path: Path, outside: Path) -> None:
    mine = write_class_folders(tmp_path / "mine" / "colours", per_class=1).parent
    csv_path = write_csv(mine / "labels.csv",
                         [f"{outside / 'photo.jpg'},warm", "colours/blue/blue_000.jpg,cold"])
    (mine / "colours" / "red" / "link.jpg").symlink_to(outside / "other.jpg")
    assert load_dataset(csv_path, roots=[tmp_path / "data"]).paths == [
        str(mine / "colours" / "blue" / "blue_000.jpg"), str(outside / "photo.jpg")]
    assert str(outside / "other.jpg") in load_dataset(mine / "colours", roots=[tmp_path / "data"]).paths


def test_data_root_link_to_a_dataset_outside_is_refused_alike(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    (root / "sneaky").symlink_to(write_class_folders(outside / "colours", per_class=1))
    (root / "gone").symlink_to(outside / "made_up")
    messages = []
    for name in ("sneaky", "gone"):
        with pytest.raises(DatasetError, match="outside the data folders") as caught:
            load_dataset(root / name, roots=[root])
        assert_nothing_of(outside, str(caught.value))
        messages.append(str(caught.value).replace(name, "*"))
    assert messages[0] == messages[1]


def test_roots_default_to_the_settings(tmp_path: Path, outside: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_class_folders(tmp_path / "data" / "colours", per_class=1).parent
    csv_path = write_csv(root / "labels.csv", [
        "colours/red/red_000.jpg,warm", "colours/blue/blue_000.jpg,cold", f"{outside / 'photo.jpg'},warm"])
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", str(root))
    ds = load_dataset(csv_path)
    assert len(ds) == 2 and ds.skipped == [(f"{csv_path}:4", REFUSED)]
