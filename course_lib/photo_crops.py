"""Training photos for the feed-forward networks of chapter 05: random square crops of the photos that ship
inside installed packages (offline), always without the two evaluation photos.

Johnson et al. (2016) train on the 80,000 photos of MS-COCO; the course trains on the handful that scikit-image,
matplotlib and (when installed) scikit-learn ship, and makes them many by random crops, scales and flips.
`astronaut` and `coffee` are held out of every training set (DESIGN.md): they are the photos we judge on.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F

from .images import EXAMPLE_IMAGES, example_image, load_image

__all__ = ["HELD_OUT", "TRAINING_PHOTOS", "SKLEARN_PHOTOS", "PhotoCrops", "available_photos", "load_photo"]

HELD_OUT = ("astronaut", "coffee")  # the evaluation photos: never cropped for training
# colour photos of images.EXAMPLE_IMAGES (colorwheel is a diagram; camera, coins, ... are grayscale)
TRAINING_PHOTOS = ("cat", "rocket", "motorcycle", "grace_hopper", "hubble", "retina", "immunohistochemistry")
SKLEARN_PHOTOS = ("china", "flower")  # sklearn/datasets/images/<name>.jpg, used when scikit-learn is installed


def _sklearn_photo_path(name: str) -> Path | None:
    """The photo's file inside the installed scikit-learn, found without importing it (None when absent)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "images" / f"{name}.jpg"
    return path if path.is_file() else None


def available_photos() -> tuple[str, ...]:
    """The training photos present here: TRAINING_PHOTOS, plus SKLEARN_PHOTOS where scikit-learn is installed."""
    return TRAINING_PHOTOS + tuple(n for n in SKLEARN_PHOTOS if _sklearn_photo_path(n) is not None)


def load_photo(name: str, size: int | None = None) -> torch.Tensor:
    """A training photo by name as (1, 3, H, W) in [0, 1], its shorter side scaled to `size` if given."""
    if name in HELD_OUT:
        raise ValueError(f"{name!r} is an evaluation photo, held out of every training set: use one of "
                         f"{', '.join(available_photos())}")
    if name in EXAMPLE_IMAGES:
        return example_image(name, size)
    path = _sklearn_photo_path(name) if name in SKLEARN_PHOTOS else None
    if path is None:
        raise ValueError(f"unknown or unavailable training photo {name!r}: use one of {', '.join(available_photos())}")
    return load_image(path, size)


class PhotoCrops:
    """Random square crops of the training photos, as batches (B, 3, S, S) in [0, 1].

    Each crop: a photo drawn uniformly; a square of side s = u * (its shorter side), u ~ U(min_scale, 1), at a
    uniform position; resized to S x S (antialiased bilinear); mirrored left-right with probability 1/2. Every
    draw comes from the `generator` passed to `sample`, so a seed fixes the batches.
    Photos are kept in memory with their shorter side at most `2 * size` (a crop is then shrunk at most 2x).
    """

    def __init__(self, size: int, *, photos: tuple[str, ...] | None = None, min_scale: float = 0.5):
        photos = available_photos() if photos is None else tuple(photos)
        held = [name for name in photos if name in HELD_OUT]
        if held:
            raise ValueError(f"{held} are evaluation photos, held out of every training set")
        if not photos or size < 1 or not 0.0 < min_scale <= 1.0:
            raise ValueError(f"need at least one photo, size >= 1 and min_scale in (0, 1], got {len(photos)} photos, "
                             f"size={size}, min_scale={min_scale}")
        self.size, self.min_scale, self.sources = size, min_scale, photos
        self.photos = [_at_most(load_photo(name), 2 * size) for name in photos]  # each (1, 3, H, W)

    def __len__(self) -> int:
        return len(self.photos)

    def crop(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One random crop (1, 3, S, S) in [0, 1]."""
        photo = self.photos[torch.randint(len(self.photos), (1,), generator=generator).item()]
        height, width = photo.shape[-2:]
        u = self.min_scale + (1.0 - self.min_scale) * torch.rand(1, generator=generator).item()
        side = max(1, round(u * min(height, width)))  # s, pixels of the photo
        top = torch.randint(height - side + 1, (1,), generator=generator).item()
        left = torch.randint(width - side + 1, (1,), generator=generator).item()
        patch = photo[..., top:top + side, left:left + side]  # (1, 3, s, s)
        patch = F.interpolate(patch, size=(self.size, self.size), mode="bilinear", align_corners=False,
                              antialias=True).clamp(0, 1)  # (1, 3, S, S)
        flip = torch.rand(1, generator=generator).item() < 0.5
        return patch.flip(-1) if flip else patch

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A batch of `batch_size` random crops (B, 3, S, S) in [0, 1], on the CPU."""
        return torch.cat([self.crop(generator) for _ in range(batch_size)])


def _at_most(image: torch.Tensor, side: int) -> torch.Tensor:
    """(1, 3, H, W) with its shorter side shrunk to `side` when longer (antialiased), else as it is."""
    height, width = image.shape[-2:]
    scale = side / min(height, width)
    if scale >= 1.0:
        return image
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
