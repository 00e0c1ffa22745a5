"""Untrusted archives: traversal, absolute paths, links and bombs are refused; nothing escapes."""
from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import write_class_folders

from core.data.archives import ArchiveError, extract_tar, extract_zip
from core.data.datasets import DatasetError, load_dataset, unpack_dataset


def zip_of(entries: dict[str, bytes], path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def tar_of(folder: Path, path: Path, arcname: str) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        tf.add(folder, arcname=arcname)
    return path


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_zip_with_wrapper_folder_returns_class_root_and_skips_junk(tmp_path: Path) -> None:
    src = write_class_folders(tmp_path / "src", per_class=2)
    entries = {f"photos/{p.relative_to(src)}": p.read_bytes() for p in src.rglob("*.jpg")}
    junk = ("__MACOSX/photos/._red_000.jpg", "photos/.DS_Store", "photos/red/._x.jpg")
    entries.update(dict.fromkeys(junk, b"x"))
    root = extract_zip(zip_of(entries, tmp_path / "up.zip"), tmp_path / "out")
    assert root == tmp_path / "out" / "photos"
    kept = sorted(name for name in entries if "._" not in name and "DS_Store" not in name)
    assert len(kept) == 6 and files_under(tmp_path / "out") == kept


@pytest.mark.parametrize(
    ("name", "message"),
    [("../evil.txt", r"outside the folder \('..'\)"), ("a/../../evil.txt", "outside the folder"),
     ("/etc/evil.txt", "absolute path"), ("C:/evil.txt", "absolute path"), ("..\\evil.txt", "outside")],
)
def test_zip_escapes_are_refused_and_nothing_written(tmp_path: Path, name: str, message: str) -> None:
    archive = zip_of({"ok/a.txt": b"fine", name: b"pwned"}, tmp_path / "bad.zip")
    with pytest.raises(ArchiveError, match=message):
        extract_zip(archive, tmp_path / "work" / "out")
    assert not (tmp_path / "work" / "out").exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "work" / "evil.txt").exists()


def test_zip_symlink_entry_is_refused(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("photos/link.jpg")
    info.external_attr = (0o120777 << 16)
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as zf:
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ArchiveError, match="symbolic link"):
        extract_zip(tmp_path / "link.zip", tmp_path / "out")


def test_zip_bomb_refused_by_declared_size(tmp_path: Path) -> None:
    archive = zip_of({"zeros.bin": bytes(50 * 1024**2)}, tmp_path / "bomb.zip")
    assert archive.stat().st_size < 200_000
    with pytest.raises(ArchiveError, match="more than the limit of 10,485,760"):
        extract_zip(archive, tmp_path / "out", max_bytes=10 * 1024**2)
    assert not (tmp_path / "out").exists()


def test_zip_lying_about_sizes_is_caught_while_writing(tmp_path: Path) -> None:
    """Declared sizes under the limit, real bytes over it: counting real bytes stops it."""
    archive = zip_of({"a.bin": bytes(3000), "b.bin": bytes(3000)}, tmp_path / "liar.zip")
    target = tmp_path / "out"
    import core.data.archives as archives

    original = archives.Limits.check_declared
    archives.Limits.check_declared = lambda self, sizes: None  # as if the central directory lied
    try:
        with pytest.raises(ArchiveError, match="more than the limit of 5,000 bytes"):
            extract_zip(archive, target, max_bytes=5000)
    finally:
        archives.Limits.check_declared = original
    assert not target.exists()


def test_too_many_files_and_non_empty_target(tmp_path: Path) -> None:
    archive = zip_of({f"f{i}.txt": b"x" for i in range(5)}, tmp_path / "many.zip")
    with pytest.raises(ArchiveError, match="5 files, more than the limit of 4"):
        extract_zip(archive, tmp_path / "out", max_files=4)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ArchiveError, match="not empty"):
        extract_zip(archive, tmp_path / "full")
    assert files_under(tmp_path / "full") == ["keep.txt"]


def test_a_refused_archive_leaves_a_given_empty_folder_in_place_and_empty(tmp_path: Path) -> None:
    """The folder was the user's before the upload: it stays, without the files written before refusal."""
    archive = tmp_path / "twice.zip"
    with zipfile.ZipFile(archive, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("a/ok.txt", b"first")
        zf.writestr("a/ok.txt", b"second")    # refused only when it is written: after the first
    target = tmp_path / "mine"
    target.mkdir()
    with pytest.raises(ArchiveError, match="appears twice"):
        extract_zip(archive, target)
    assert target.is_dir() and not any(target.iterdir())


def test_not_a_zip_says_so(tmp_path: Path) -> None:
    (tmp_path / "x.zip").write_text("hello")
    with pytest.raises(ArchiveError, match="not a readable zip"):
        extract_zip(tmp_path / "x.zip", tmp_path / "out")
    with pytest.raises(ArchiveError, match="not a readable tar"):
        extract_tar(tmp_path / "x.zip", tmp_path / "out2")


def test_tgz_extracts_to_its_wrapper_folder(tmp_path: Path) -> None:
    src = write_class_folders(tmp_path / "src", per_class=2)
    (src / "LICENSE.txt").write_text("CC-BY")
    root = extract_tar(tar_of(src, tmp_path / "f.tgz", "flower_photos"), tmp_path / "out")
    assert root.name == "flower_photos" and sorted(p.name for p in root.iterdir() if p.is_dir()) == [
        "blue", "green", "red"]


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE])
def test_tar_links_and_devices_are_refused(tmp_path: Path, kind: bytes) -> None:
    with tarfile.open(tmp_path / "t.tar", "w") as tf:
        ok = tarfile.TarInfo("data/a.txt")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"hi"))
        bad = tarfile.TarInfo("data/b.jpg")
        bad.type, bad.linkname = kind, "/etc/passwd"
        tf.addfile(bad)
    with pytest.raises(ArchiveError, match="only files and folders"):
        extract_tar(tmp_path / "t.tar", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_tar_traversal_and_size_limit(tmp_path: Path) -> None:
    with tarfile.open(tmp_path / "t.tar", "w") as tf:
        evil = tarfile.TarInfo("../../evil.txt")
        evil.size = 1
        tf.addfile(evil, io.BytesIO(b"x"))
    with pytest.raises(ArchiveError, match="outside the folder"):
        extract_tar(tmp_path / "t.tar", tmp_path / "out")
    with tarfile.open(tmp_path / "big.tgz", "w:gz") as tf:
        big = tarfile.TarInfo("zeros.bin")
        big.size = 20 * 1024**2
        tf.addfile(big, io.BytesIO(bytes(big.size)))
    with pytest.raises(ArchiveError, match="more than the limit of 10,485,760 bytes"):
        extract_tar(tmp_path / "big.tgz", tmp_path / "out", max_bytes=10 * 1024**2)
    assert not (tmp_path / "out").exists()


def lie_about_size(archive: Path, declared: int) -> Path:
    """Rewrite every entry's uncompressed size, in the local headers and the central directory."""
    data = bytearray(archive.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = data.find(signature)
        while start != -1:
            data[start + offset:start + offset + 4] = declared.to_bytes(4, "little")
            start = data.find(signature, start + 4)
    archive.write_bytes(bytes(data))
    return archive


def test_a_member_whose_declared_size_lies_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    """The headers say 100 bytes, the member inflates to 64 KiB: nothing is trusted past what they say."""
    archive = lie_about_size(zip_of({"cats/a.bin": bytes(64 * 1024)}, tmp_path / "liar.zip"), 100)
    assert zipfile.ZipFile(archive).getinfo("cats/a.bin").file_size == 100
    with pytest.raises(ArchiveError, match="liar.zip is not a readable zip"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_member_past_the_compression_ratio_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """Zeros deflate 1000 to 1: 4 MiB from a 4 KiB member is a bomb, even among incompressible photos."""
    photos = {f"cats/{i}.jpg": np.random.default_rng(i).bytes(16 * 1024) for i in range(4)}
    archive = zip_of({**photos, "cats/zeros.bin": bytes(4 * 1024**2)}, tmp_path / "bomb.zip")
    assert archive.stat().st_size * 100 > 4 * 1024**2     # the archive as a whole passes the ratio
    with pytest.raises(ArchiveError, match="entry 'cats/zeros.bin' inflates more than 100 times its size"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_many_small_compressible_members_are_refused_as_a_whole(tmp_path: Path) -> None:
    """Each member stays under the floor the per-member ratio starts at, together they are a bomb."""
    archive = zip_of({f"cats/{i}.bin": bytes(512 * 1024) for i in range(16)}, tmp_path / "many.zip")
    with pytest.raises(ArchiveError, match="many.zip inflates more than 100 times its size"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_tar_bomb_is_weighed_against_the_archive_size(tmp_path: Path) -> None:
    """A tar has no compressed size per member: its content is weighed against the whole archive's size."""
    with tarfile.open(tmp_path / "bomb.tgz", "w:gz") as tf:
        zeros = tarfile.TarInfo("cats/zeros.bin")
        zeros.size = 4 * 1024**2
        tf.addfile(zeros, io.BytesIO(bytes(zeros.size)))
    assert (tmp_path / "bomb.tgz").stat().st_size < 20_000
    with pytest.raises(ArchiveError, match="bomb.tgz inflates more than 100 times its size"):
        extract_tar(tmp_path / "bomb.tgz", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_nested_archive_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    inner = zip_of({"cats/a.png": b"x", "dogs/b.png": b"y"}, tmp_path / "inner.zip")
    src = write_class_folders(tmp_path / "src", per_class=1)
    entries = {f"pets/{p.relative_to(src)}": p.read_bytes() for p in src.rglob("*.jpg")}
    archive = zip_of({**entries, "pets/more.zip": inner.read_bytes()}, tmp_path / "outer.zip")
    with pytest.raises(ArchiveError, match="'pets/more.zip' is an archive inside the archive"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_empty_zip_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    archive = zip_of({"__MACOSX/._x": b"junk"}, tmp_path / "empty.zip")
    with pytest.raises(ArchiveError, match="empty.zip holds no files"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_one_class_zip_says_it_has_one_class_and_leaves_nothing(tmp_path: Path) -> None:
    src = write_class_folders(tmp_path / "src", per_class=3, classes={"cats": (200, 100, 40)})
    archive = zip_of({f"pets/{p.relative_to(src)}": p.read_bytes() for p in src.rglob("*.jpg")},
                     tmp_path / "cats.zip")
    with pytest.raises(DatasetError, match=r"has one class \(cats\)"):
        unpack_dataset(archive, tmp_path / "data" / "cats", roots=[tmp_path / "data"])
    assert not (tmp_path / "data" / "cats").exists()


def test_an_uploaded_dataset_is_checked_and_its_root_returned(tmp_path: Path) -> None:
    src = write_class_folders(tmp_path / "src", per_class=2)
    entries = {f"photos/{p.relative_to(src)}": p.read_bytes() for p in src.rglob("*.jpg")}
    archive = zip_of({**entries, "photos/labels.csv": b"path,label\n" * 2000}, tmp_path / "photos.zip")
    root = unpack_dataset(archive, tmp_path / "data" / "photos", roots=[tmp_path / "data"])
    assert root == tmp_path / "data" / "photos" / "photos" and len(load_dataset(root, roots=[tmp_path])) == 6
