"""Decoded-image cache: decoded once, read back identical, invalidated by content."""
import numpy as np

from core.data.datasets import load_dataset
from core.data.image_cache import cache_info, clear_cache, decoded_images
from core.data.images import load_image


def test_decode_once_then_hit(tiny_dataset, tmp_path):
    ds = load_dataset(tiny_dataset)
    calls = []
    first = decoded_images(ds, 24, tmp_path, progress=lambda d, t: calls.append(d))
    assert first.shape == (36, 24, 24, 3) and first.dtype == np.uint8 and calls
    np.testing.assert_array_equal(first[5], load_image(ds.paths[5], 24))
    calls.clear()
    again = decoded_images(ds, 24, tmp_path, progress=lambda d, t: calls.append(d))
    assert calls == [] and np.array_equal(first, again)
    assert cache_info(tmp_path)["entries"] == 1
    decoded_images(ds, 16, tmp_path)
    assert cache_info(tmp_path)["entries"] == 2
    assert clear_cache(tmp_path) > 0 and cache_info(tmp_path)["entries"] == 0


def test_changed_file_is_a_new_entry(tiny_dataset, tmp_path):
    ds = load_dataset(tiny_dataset)
    decoded_images(ds, 16, tmp_path)
    victim = tiny_dataset / "red" / "red_000.jpg"
    from PIL import Image
    Image.new("RGB", (40, 32), (0, 0, 0)).save(victim)
    changed = decoded_images(load_dataset(tiny_dataset), 16, tmp_path)
    assert cache_info(tmp_path)["entries"] == 2
    assert changed[load_dataset(tiny_dataset).paths.index(str(victim))].max() < 10


def test_crash_leaves_no_entry_and_names_the_bad_file(tiny_dataset, tmp_path):
    import pytest

    from core.data.images import BadImageError

    ds = load_dataset(tiny_dataset)
    (tiny_dataset / "blue" / "blue_003.jpg").write_bytes(b"")  # broke after validation
    with pytest.raises(BadImageError, match="blue_003.jpg: 0 bytes"):
        decoded_images(ds, 16, tmp_path / "c")
    assert cache_info(tmp_path / "c")["files"] == 0


def test_half_written_entry_is_not_a_hit(tiny_dataset, tmp_path):
    ds = load_dataset(tiny_dataset)
    first = np.array(decoded_images(ds, 16, tmp_path))
    data = next((tmp_path / "images").glob("*.u8"))
    data.write_bytes(data.read_bytes()[:100])  # as if a crash cut it short
    assert np.array_equal(decoded_images(ds, 16, tmp_path), first)


def test_many_images_go_through_worker_processes(tmp_path):
    from conftest import write_class_folders

    ds = load_dataset(write_class_folders(tmp_path / "many", per_class=70))
    images = decoded_images(ds, 8, tmp_path / "cache")
    assert images.shape == (210, 8, 8, 3) and not images.flags.writeable
    np.testing.assert_array_equal(images[200], load_image(ds.paths[200], 8))
