"""Photos and paintings as float tensors (1, 3, H, W) in [0, 1].

- `load_image(src, size=None)`: a path, URL (cached), PIL image, numpy array or tensor. Grayscale, palette,
  RGBA (composited on white), 16-bit and EXIF-rotated images all come out the same way.
- `example_image(name)`: photos that ship inside scikit-image and matplotlib (always offline).
- `style_image(name)`: public-domain paintings downloaded from Wikimedia Commons into data/styles/;
  offline, a packaged texture in the painting's colours stands in for it, with a notice.

`course_lib.data` holds MNIST and the cache of all assets (`fetch_all`).
"""
from __future__ import annotations

import hashlib
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from .downloads import ChecksumError, DownloadError, download, first_line
from .runtime import check_choice, data_dir

__all__ = ["load_image", "example_image", "style_image", "EXAMPLE_IMAGES", "STYLE_IMAGES", "Painting",
           "style_path", "fetch_painting"]

_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_INT_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")  # 16/32-bit grayscale: read as 16-bit (0..65535)
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp")


# ---------------------------------------------------------------- load_image
def load_image(src, size: int | None = None) -> torch.Tensor:
    """Any image as a float tensor (1, 3, H, W) in [0, 1].

    `src`: a path; an http(s) URL (downloaded once into data_dir()/cache/); a PIL image; a numpy array
    (H, W), (H, W, 3) or (H, W, 4) of uint8, uint16, bool or float in [0, 1]; or a tensor (H, W), (C, H, W) or
    (1, C, H, W) with C in {1, 3, 4}, uint8 or float in [0, 1] (the result stays on the tensor's device).
    Alpha is composited on white; EXIF orientation is applied.
    `size`: scale so that the SHORTER side is `size` pixels, keeping the aspect ratio (antialiased).
    """
    if isinstance(src, torch.Tensor):
        image = _from_tensor(src)
    elif isinstance(src, np.ndarray):
        image = _from_array(src)
    elif isinstance(src, Image.Image):
        image = _from_pil(src)
    elif isinstance(src, (str, os.PathLike)):
        image = _from_pil(_open(src))
    else:
        raise TypeError(f"load_image takes a path, URL, PIL image, numpy array or tensor, got {type(src).__name__}")
    return image if size is None else _resize_shorter(image, size)


def _open(src: str | os.PathLike) -> Image.Image:
    """Open a file or URL with Pillow; clear errors for a missing file or one that is not an image."""
    is_url = isinstance(src, str) and src.startswith(("http://", "https://"))
    path = _cached_url(src) if is_url else Path(src).expanduser()
    if not path.is_file():
        hint = f" (for a packaged photo use example_image({str(src)!r}))" if str(src) in EXAMPLE_IMAGES else ""
        raise FileNotFoundError(f"image not found: {path}{hint}")
    try:
        with Image.open(path) as image:
            image.load()
            return ImageOps.exif_transpose(image)  # a loaded copy, turned upright
    except (OSError, SyntaxError) as e:  # UnidentifiedImageError and truncated files are OSErrors
        if is_url:  # e.g. a Wi-Fi login page instead of the picture: do not keep it in the cache
            path.unlink(missing_ok=True)
            raise ValueError(f"{src} did not return an image Pillow can read ({e}); nothing was cached") from e
        raise ValueError(f"{path} is not an image Pillow can read ({e})") from e


def _cached_url(url: str) -> Path:
    """Download `url` once into data_dir()/cache/, named by the hash of the URL."""
    suffix = Path(urllib.parse.urlparse(url).path).suffix.lower()
    name = hashlib.sha256(url.encode()).hexdigest()[:24] + (suffix if suffix in _IMAGE_SUFFIXES else "")
    return download(url, data_dir() / "cache" / name, name=url.rsplit("/", 1)[-1] or url)


def _from_pil(image: Image.Image) -> torch.Tensor:
    image = ImageOps.exif_transpose(image)  # a phone photo stored sideways is shown upright
    if image.mode in _INT_MODES:
        array = np.asarray(image)
        if array.min() < 0 or array.max() > 65535:
            raise ValueError(f"a {image.mode} image with values in [{array.min()}, {array.max()}] is not 16-bit")
        return _from_array(array.astype(np.uint16))
    if image.mode == "F":
        return _from_array(np.asarray(image))
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        return _from_array(np.asarray(image.convert("RGBA")))  # palette/gray with transparency too
    return _from_array(np.asarray(image.convert("RGB")))  # L, 1, P, CMYK, YCbCr, ...


def _from_array(array: np.ndarray) -> torch.Tensor:
    """(H, W) or (H, W, C) array -> (1, 3, H, W) float in [0, 1]."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(f"an image array must be (H, W), (H, W, 3) or (H, W, 4), got shape {array.shape}")
    if array.dtype == np.uint16:
        array = array.astype(np.float32) / 65535.0
    elif array.dtype == bool:
        array = array.astype(np.float32)
    elif array.dtype != np.uint8 and not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"image arrays must be uint8, uint16, bool or float in [0, 1], got {array.dtype}: "
                         f"use array.astype(np.uint8) for 0-255 values")
    image = torch.from_numpy(np.array(array)).permute(2, 0, 1)[None]  # (1, C, H, W), a writable copy
    return _to_rgb(_to_unit(image))


def _from_tensor(x: torch.Tensor) -> torch.Tensor:
    """(H, W), (C, H, W) or (1, C, H, W) tensor -> (1, 3, H, W) float in [0, 1] on the same device."""
    x = x.detach()
    if x.ndim == 4:
        if x.shape[0] != 1:
            raise ValueError(f"load_image takes one image, got a batch of {x.shape[0]}: pass x[i]")
        x = x[0]
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[0] not in (1, 3, 4):
        raise ValueError(f"an image tensor must be (H, W), (C, H, W) or (1, C, H, W) with C in 1, 3, 4, got "
                         f"shape {tuple(x.shape)} (for (H, W, C) data use x.permute(2, 0, 1))")
    return _to_rgb(_to_unit(x[None]))


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 -> /255; float must already lie in [0, 1] (a concise error beats a silent rescale)."""
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if not x.is_floating_point():
        raise ValueError(f"image tensors must be uint8 or float in [0, 1], got {x.dtype}")
    x = x.float()
    if not torch.isfinite(x).all():
        raise ValueError("the image contains NaN or inf values")
    low, high = x.min().item(), x.max().item()
    if low < -1e-3 or high > 1 + 1e-3:
        raise ValueError(f"float image values must lie in [0, 1], got [{low:.3g}, {high:.3g}]: "
                         f"use (x + 1) / 2 for [-1, 1] samples, x / 255 for 0-255 values")
    return x.clamp(0.0, 1.0)  # a new tensor: the caller's input is never modified


def _to_rgb(x: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) with C in {1, 3, 4} -> (1, 3, H, W); alpha composited over white: rgb * a + 1 * (1 - a)."""
    if x.shape[1] == 1:
        return x.repeat(1, 3, 1, 1)
    if x.shape[1] == 4:
        rgb, alpha = x[:, :3], x[:, 3:]
        return rgb * alpha + (1.0 - alpha)
    return x


def _check_size(size: int | None) -> None:
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise ValueError(f"size must be a positive int (pixels of the shorter side) or None, got {size!r}")


def _resize_shorter(image: torch.Tensor, size: int) -> torch.Tensor:
    """Scale (1, 3, H, W) so that min(H, W) == size, keeping the aspect ratio (antialiased bilinear)."""
    _check_size(size)
    height, width = image.shape[-2:]
    scale = size / min(height, width)
    new_size = (max(1, round(height * scale)), max(1, round(width * scale)))
    if new_size == (height, width):
        return image
    resized = F.interpolate(image, size=new_size, mode="bilinear", align_corners=False, antialias=True)
    return resized.clamp(0.0, 1.0)


# ---------------------------------------------------------------- example_image
# name -> (package, item). All of them ship inside installed packages, so they work offline.
EXAMPLE_IMAGES: dict[str, tuple[str, str]] = {
    "astronaut": ("skimage", "astronaut"),  # Eileen Collins, NASA (public domain)
    "cat": ("skimage", "chelsea"),  # Chelsea the cat
    "coffee": ("skimage", "coffee"),
    "rocket": ("skimage", "rocket"),  # SpaceX Falcon 9 at night
    "motorcycle": ("skimage", "stereo_motorcycle"),  # the left image of the stereo pair
    "hubble": ("skimage", "hubble_deep_field"),
    "retina": ("skimage", "retina"),
    "immunohistochemistry": ("skimage", "immunohistochemistry"),  # stained tissue, a painterly texture
    "colorwheel": ("skimage", "colorwheel"),
    "camera": ("skimage", "camera"),  # grayscale
    "coins": ("skimage", "coins"),  # grayscale
    "moon": ("skimage", "moon"),  # grayscale
    "brick": ("skimage", "brick"),  # grayscale texture
    "grass": ("skimage", "grass"),  # grayscale texture
    "gravel": ("skimage", "gravel"),  # grayscale texture
    "grace_hopper": ("matplotlib", "grace_hopper.jpg"),  # Rear Admiral Grace Hopper (public domain)
}


def example_image(name: str, size: int | None = None) -> torch.Tensor:
    """A packaged photo as (1, 3, H, W) in [0, 1] (works offline). `size` scales the shorter side."""
    check_choice("example image", name, EXAMPLE_IMAGES)
    package, item = EXAMPLE_IMAGES[name]
    if package == "matplotlib":
        from matplotlib import cbook
        return load_image(cbook.get_sample_data(item, asfileobj=False), size)
    import skimage.data
    array = getattr(skimage.data, item)()
    return load_image(array[0] if isinstance(array, tuple) else array, size)  # stereo pairs are (left, right, disp)


# ---------------------------------------------------------------- style_image
@dataclass(frozen=True)
class Painting:
    """A public-domain painting on Wikimedia Commons and what stands in for it offline."""

    title: str
    url: str  # a 1280 px wide rendering on upload.wikimedia.org
    sha256: str | None  # None: not pinned yet (see below)
    fallback: str  # an EXAMPLE_IMAGES texture used offline ...
    tint: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None  # ... recoloured: RGB of its
    # darkest and of its lightest values (a gradient map)


# The sha256 fields are None because these files could not be downloaded where this table was written (no
# network): `make fetch` on a networked machine prints each painting's sha256; paste it here to pin the file.
# Until then a download is accepted without a checksum (and is still atomic).
_COMMONS = "https://upload.wikimedia.org/wikipedia/commons/thumb/"
STYLE_IMAGES: dict[str, Painting] = {
    "starry_night": Painting(
        "Vincent van Gogh, The Starry Night (1889)",
        _COMMONS + "e/ea/Van_Gogh_-_Starry_Night_-_Google_Art_Project.jpg/"
                   "1280px-Van_Gogh_-_Starry_Night_-_Google_Art_Project.jpg",
        None, "grass", ((0.95, 0.82, 0.30), (0.10, 0.20, 0.55))),  # mostly blue, yellow in the gaps
    "the_scream": Painting(
        "Edvard Munch, The Scream (1893)",
        _COMMONS + "c/c5/Edvard_Munch%2C_1893%2C_The_Scream%2C_oil%2C_tempera_and_pastel_on_cardboard%2C_91_x_73_cm"
                   "%2C_National_Gallery_of_Norway.jpg/1280px-Edvard_Munch%2C_1893%2C_The_Scream%2C_oil%2C_tempera_"
                   "and_pastel_on_cardboard%2C_91_x_73_cm%2C_National_Gallery_of_Norway.jpg",
        None, "brick", ((0.30, 0.06, 0.05), (1.00, 0.62, 0.16))),
    "great_wave": Painting(
        "Katsushika Hokusai, The Great Wave off Kanagawa (c. 1831)",
        _COMMONS + "a/a5/Tsunami_by_hokusai_19th_century.jpg/1280px-Tsunami_by_hokusai_19th_century.jpg",
        None, "gravel", ((0.04, 0.14, 0.34), (0.93, 0.90, 0.80))),
    "composition_vii": Painting(
        "Wassily Kandinsky, Composition VII (1913)",
        _COMMONS + "b/b4/Vassily_Kandinsky%2C_1913_-_Composition_7.jpg/"
                   "1280px-Vassily_Kandinsky%2C_1913_-_Composition_7.jpg",
        None, "immunohistochemistry"),
    "shipwreck": Painting(
        "J. M. W. Turner, The Shipwreck (1805)",
        _COMMONS + "a/a0/Joseph_Mallord_William_Turner_-_The_Shipwreck_-_Google_Art_Project.jpg/"
                   "1280px-Joseph_Mallord_William_Turner_-_The_Shipwreck_-_Google_Art_Project.jpg",
        None, "gravel", ((0.16, 0.13, 0.10), (0.90, 0.84, 0.62))),
}


def style_path(name: str, root: str | os.PathLike | None = None) -> Path:
    """Where painting `name` is cached: root/styles/<name>.jpg (root defaults to data_dir())."""
    return (data_dir() if root is None else Path(root)) / "styles" / f"{name}.jpg"


def style_image(name: str, size: int | None = None, *, root: str | os.PathLike | None = None,
                download: bool = True) -> torch.Tensor:
    """A public-domain painting as (1, 3, H, W) in [0, 1]: the cached file, else a download (sha256-checked
    when pinned) into root/styles/, else (offline) a packaged texture in the painting's colours, with a notice.
    `size` scales the shorter side; `download=False` only looks in the cache."""
    check_choice("style image", name, STYLE_IMAGES, " (or load any painting with load_image(path_or_url))")
    _check_size(size)
    painting, path = STYLE_IMAGES[name], style_path(name, root)
    try:
        if download:
            fetch_painting(name, root)
        if path.is_file():
            return load_image(path, size)
        reason = f"not cached in {path.parent} and download=False"
    except DownloadError as e:
        reason = e.reason
    except ChecksumError as e:
        reason = first_line(e)
    except ValueError as e:  # not an image (a Wi-Fi login page saved as .jpg?): drop it, try again next time
        path.unlink(missing_ok=True)
        reason = f"the cached file was not an image and was removed ({first_line(e)})"
    return _stand_in(name, painting, reason, size)


def fetch_painting(name: str, root: str | os.PathLike | None = None, *, timeout: float = 30.0) -> Path:
    """Download painting `name` into root/styles/ (kept if already there); raises DownloadError/ChecksumError."""
    painting = STYLE_IMAGES[name]
    return download(painting.url, style_path(name, root), sha256=painting.sha256, name=f"style image {name!r}",
                    timeout=timeout)


def _stand_in(name: str, painting: Painting, reason: str, size: int | None) -> torch.Tensor:
    """The offline stand-in: the fallback texture, tinted by a gradient map: dark + gray * (light - dark)."""
    texture = example_image(painting.fallback, size)  # (1, 3, H, W) in [0, 1]
    tinted = ""
    if painting.tint is not None:
        dark, light = (torch.tensor(c).view(1, 3, 1, 1) for c in painting.tint)
        gray = texture.mean(dim=1, keepdim=True)  # (1, 1, H, W), then stretched to the full [0, 1]
        gray = (gray - gray.min()) / (gray.max() - gray.min()).clamp_min(1e-6)
        texture = dark + gray * (light - dark)
        tinted = " tinted in its colours"
    print(f"style image {name!r} ({painting.title}) is unavailable ({reason}); using the packaged texture "
          f"{painting.fallback!r}{tinted} instead. Run `make fetch` with a network to cache the painting.")
    return texture
