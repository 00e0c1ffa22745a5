"""Every odd or broken file a user may give: odd ones decode to RGB, broken ones say why."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import make_image
from PIL import Image

from core.data.images import BadImageError, load_image, map_in_processes, open_rgb, probe_image


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size in its IHDR chunk but carries no pixels: a bomb without allocating."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunks = b""
    for kind, body in ((b"IHDR", ihdr), (b"IDAT", b""), (b"IEND", b"")):
        chunks += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return b"\x89PNG\r\n\x1a\n" + chunks


def jpeg_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "0 bytes"),
        (b"hello, I am plain text\n", "looks like a text file"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "looks like a PDF"),
        (png_header_only(30000, 30000), "decompression bomb"),
        (png_header_only(10000, 6000), "decompression bomb: 10000x6000"),
        (png_header_only(1, 1), "too small: 1x1 px"),
    ],
)
def test_broken_files_name_file_and_reason(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    for call in (lambda: open_rgb(path), lambda: probe_image(path), lambda: open_rgb(content, "up.jpg")):
        with pytest.raises(BadImageError) as caught:
            call()
        assert reason in caught.value.reason
        assert caught.value.path in (str(path), "up.jpg")
        assert caught.value.path in str(caught.value)


def test_truncated_jpeg_is_caught_by_open_and_probe(tmp_path: Path) -> None:
    data = jpeg_bytes(make_image((200, 40, 40), seed=1, size=(200, 150)))
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    for call in (open_rgb, probe_image):
        with pytest.raises(BadImageError, match="truncated JPEG"):
            call(path)


def test_unusual_modes_become_rgb(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (20, 10), (0, 255, 255, 0))  # pure red in CMYK
    sixteen = Image.fromarray(np.full((10, 20), 65535, dtype=np.uint16))
    rgba = Image.new("RGBA", (20, 10), (255, 0, 0, 0))  # fully transparent -> white
    palette = Image.new("P", (20, 10), 0)
    palette.putpalette([0, 0, 0] * 256)
    grey = Image.new("L", (20, 10), 77)
    files = {"cmyk.jpg": cmyk, "sixteen.png": sixteen, "alpha.png": rgba, "grey.png": grey}
    for name, im in files.items():
        im.save(tmp_path / name)
    palette.save(tmp_path / "palette.png", transparency=0)

    expect = {"cmyk.jpg": (254, 0, 0), "sixteen.png": (255, 255, 255), "alpha.png": (255, 255, 255),
              "palette.png": (255, 255, 255), "grey.png": (77, 77, 77)}
    for name, colour in expect.items():
        im = open_rgb(tmp_path / name)
        assert im.mode == "RGB" and im.size == (20, 10), name
        assert np.allclose(np.asarray(im)[5, 10], colour, atol=2), name


def test_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    pixel = np.asarray(open_rgb(tmp_path / "anim.gif"))[8, 8]
    assert pixel[0] > 200 and pixel[2] < 50


def test_exif_orientation_is_applied() -> None:
    im = make_image((40, 180, 60), seed=2, size=(40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    buf = io.BytesIO()
    im.save(buf, "JPEG", exif=exif)
    assert open_rgb(buf.getvalue()).size == (20, 40)


def test_load_image_same_for_path_bytes_and_file(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    make_image((40, 60, 200), seed=3, size=(50, 30)).save(path)
    from_path = load_image(path, 24)
    assert from_path.shape == (24, 24, 3) and from_path.dtype == np.uint8
    assert np.array_equal(from_path, load_image(path.read_bytes(), 24))
    with open(path, "rb") as f:
        assert np.array_equal(from_path, load_image(f, 24))


def test_bad_image_error_survives_a_worker_process(tmp_path: Path) -> None:
    import pickle

    err = pickle.loads(pickle.dumps(BadImageError("x.jpg", "0 bytes")))
    assert (err.path, err.reason) == ("x.jpg", "0 bytes")


def test_map_in_processes_keeps_order_and_reports_progress() -> None:
    seen: list[tuple[int, int]] = []
    out = map_in_processes(abs, list(range(-300, 0)), lambda done, total: seen.append((done, total)),
                           workers=2)
    assert out == [abs(x) for x in range(-300, 0)]
    assert seen[-1] == (300, 300)


def test_spawned_workers_do_not_rerun_a_streamlit_style_main_script(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Streamlit installs the running page as `__main__`; spawned workers must not execute it."""
    import sys
    import threading
    import types

    marker = tmp_path / "page-ran"
    page = tmp_path / "page.py"
    page.write_text(f"open({str(marker)!r}, 'a').write('x')\n")
    fake_main = types.ModuleType("__main__")
    fake_main.__file__ = str(page)
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    server_busy = threading.Event()
    thread = threading.Thread(target=server_busy.wait)  # a live thread makes the pool spawn, as in a server
    thread.start()
    try:
        out = map_in_processes(abs, list(range(-300, 0)), workers=2)
    finally:
        server_busy.set()
        thread.join()
    assert out == [abs(x) for x in range(-300, 0)]
    assert not marker.exists(), "a worker re-ran the page script"
    assert sys.modules["__main__"] is fake_main
