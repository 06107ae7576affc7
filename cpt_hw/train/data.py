"""Training data: CIFAR-10/100, image-folder trees (or their .tar.gz), and scikit-learn's bundled digits.

Sources, all held in memory as uint8 pixels (N, C, H, W) with int64 labels:

* ``digits`` (the default, no download): scikit-learn's bundled 8 x 8 handwritten digits (1,797 images,
  pixel values 0..16), split 80/20 stratified with a fixed seed.
* ``cifar10`` / ``cifar100`` from a path that is one of
    - the standard python-batches folder (``cifar-10-batches-py``: ``data_batch_1..5``, ``test_batch``;
      ``cifar-100-python``: ``train``, ``test``, fine labels), or its .tar.gz;
    - an image-folder tree ``train/<class>/*.{jpg,png}`` and ``test/<class>/*`` (``val/`` is accepted for
      ``test/``), or its .tar.gz (e.g. ../shared/data/cifar10-jpeg.tar.gz).
* ``imagefolder``: any such tree or archive; the number of classes is what the tree holds.

Archives and trees are decoded once and cached as ``.npz`` files in a cache directory (``--data-cache``,
``$CPT_HW_CACHE`` or ``~/.cache/cpt-hw``), keyed on the archive's SHA-256 or the tree's listing, together
with the training split's channel statistics; cache files are written atomically, so an interrupted decode
never leaves a half-written cache, and an entry damaged otherwise (cut, overwritten) is reported in one line
on stderr and rebuilt.  Archives are read member by member and never unpacked onto disk (no path-traversal
exposure, no 60,000 loose files).

A missing, unreadable or corrupt data file, and a path that is neither a folder nor a non-empty regular file
(a FIFO would block the read), raise :class:`DataError` (one line, exit 2 at the CLI).
Batching and augmentation live in :mod:`cpt_hw.train.batches`.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import pickle
import stat
import sys
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
from tqdm import tqdm

from ..errors import CptHwError
from ..fileio import write_atomic

DATASETS = ("digits", "cifar10", "cifar100", "imagefolder")
_CLASSES = {"cifar10": 10, "cifar100": 100}
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm")
_TEST_DIRS = ("test", "val")


class DataError(CptHwError):
    """A data set is missing, unreadable, corrupt or does not match what was asked for."""


@dataclass(frozen=True)
class ImageSet:
    """One split: pixels uint8 (N, C, H, W) in 0..pixel_max, labels int64 (N,) in 0..num_classes-1.

    Both arrays are made C-contiguous with exactly these dtypes whatever the source (a fresh decode
    stacks transposed HWC images, a cache load does not), so a decoded and a cached data set feed
    identical tensors to the model: torch picks its kernels by memory layout, and float reductions
    depend on it.
    """

    pixels: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        pixels, labels = np.asarray(self.pixels), np.asarray(self.labels)
        if pixels.dtype != np.uint8 or labels.dtype.kind not in "iu":  # a cast would wrap values silently
            raise ValueError(f"images of dtype {pixels.dtype} with labels of dtype {labels.dtype} (need uint8, "
                             "integers)")
        object.__setattr__(self, "pixels", np.ascontiguousarray(pixels))
        object.__setattr__(self, "labels", np.ascontiguousarray(labels, dtype=np.int64))

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class Dataset:
    """A train/test pair with what the model and the batcher need to know about it.

    ``mean``/``std`` are per-channel statistics of the training split in units of pixel/pixel_max;
    ``augment`` says whether random-crop (padding ``crop_padding``) + horizontal flip apply (CIFAR).
    """

    name: str
    train: ImageSet
    test: ImageSet
    classes: tuple[str, ...]
    pixel_max: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool
    crop_padding: int = 4

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.train.pixels.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train.pixels.shape[2])

    def describe(self) -> str:
        return (f"{self.name}: {len(self.train)} train / {len(self.test)} test images, "
                f"{self.in_channels}x{self.image_size}x{self.image_size}, {self.num_classes} classes")


def default_cache_dir() -> Path:
    env = os.environ.get("CPT_HW_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cpt-hw"


def load_dataset(name: str, path: str | Path | None = None, cache_dir: str | Path | None = None,
                 progress: bool = True) -> Dataset:
    """Load ``name`` (one of :data:`DATASETS`); CIFAR and image folders read ``path``.

    ``progress``: a progress bar while a large image-folder tree is decoded (once; then it is cached).
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r} (known: {', '.join(DATASETS)})")
    if name == "digits":
        if path is not None:
            raise DataError("dataset 'digits' is bundled with scikit-learn and takes no --data path")
        return _digits()
    if path is None:
        raise DataError(f"dataset {name!r} needs --data PATH (a CIFAR python-batches folder, an image-folder "
                        "tree train/<class>/, test/<class>/, or a .tar.gz of either)")
    path = Path(path)
    _check_data_path(path)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    train, test, classes, (mean, std) = _cached(path, cache, lambda: _read_source(path, progress))
    if name in _CLASSES and len(classes) != _CLASSES[name]:
        raise DataError(f"data path {path}: holds {len(classes)} classes, {name} has {_CLASSES[name]}")
    if train.pixels.shape[1:] != test.pixels.shape[1:]:
        raise DataError(f"data path {path}: train images are {train.pixels.shape[1:]}, test images "
                        f"{test.pixels.shape[1:]}")
    return Dataset(name, train, test, tuple(classes), 255.0, mean, std, augment=True)


# ----------------------------------------------------------------------------- digits


def _digits() -> Dataset:
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as e:  # pragma: no cover - scikit-learn is pinned in requirements.txt
        raise DataError(f"dataset 'digits' needs scikit-learn ({e})") from None
    bunch = load_digits()
    pixels = bunch.images.astype(np.uint8)[:, None]  # (1797, 1, 8, 8), values 0..16
    labels = bunch.target.astype(np.int64)
    idx_train, idx_test = train_test_split(np.arange(len(labels)), test_size=0.2, random_state=0,
                                           stratify=labels)
    train = ImageSet(pixels[idx_train], labels[idx_train])
    mean, std = _channel_stats(train.pixels, 16.0)
    return Dataset("digits", train, ImageSet(pixels[idx_test], labels[idx_test]),
                   tuple(str(d) for d in range(10)), 16.0, mean, std, augment=False)


def _check_data_path(path: Path) -> None:
    """A folder or a non-empty regular file; anything else is refused before it is opened.

    Opening a FIFO blocks until a writer appears, and device or /proc files (``/proc/self/mem``: size 0,
    reads fail) are never data sets.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DataError(f"data path {path}: not found") from None
    except OSError as e:
        raise DataError(f"data path {path}: cannot be read ({e.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        return
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"data path {path}: not a folder or a regular file (a FIFO, device or socket "
                        "cannot hold a data set)")
    if st.st_size == 0:
        raise DataError(f"data path {path}: empty file (0 bytes)")


def _channel_stats(pixels: np.ndarray, pixel_max: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of pixels / pixel_max over (N, H, W).

    Computed from exact integer sums, so the result does not depend on the array's memory layout or on
    the order of a float reduction: one rounding, at the end.
    """
    sums = pixels.sum(axis=(0, 2, 3), dtype=np.int64)
    squares = np.zeros(pixels.shape[1], dtype=np.int64)
    for start in range(0, pixels.shape[0], 1024):  # bounded memory: 1024 images widened at a time
        chunk = pixels[start:start + 1024].astype(np.int32)  # 255^2 fits; the sum is taken in int64
        squares += (chunk * chunk).sum(axis=(0, 2, 3), dtype=np.int64)
    n = pixels.shape[0] * pixels.shape[2] * pixels.shape[3]
    mean, std = [], []
    for s, q in zip(sums.tolist(), squares.tolist()):  # Python ints: n q - s^2 = n^2 var, exactly
        mean.append(s / (n * pixel_max))
        std.append(max(math.sqrt(n * q - s * s) / (n * pixel_max), 1e-6))
    return tuple(mean), tuple(std)


# ----------------------------------------------------------------------------- cache


def _source_key(path: Path) -> str:
    """SHA-256 of an archive's bytes, or of a tree's listing (relative names, sizes, mtimes)."""
    h = hashlib.sha256()
    try:
        if path.is_file():
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        else:
            for root, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(files):
                    st = os.stat(os.path.join(root, name))
                    h.update(f"{os.path.relpath(os.path.join(root, name), path)}\0{st.st_size}\0"
                             f"{st.st_mtime_ns}\n".encode())
    except OSError as e:
        raise DataError(f"data path {path}: cannot be read ({e.strerror or e})") from None
    return h.hexdigest()[:16]


#: What a damaged cache file raises while it is opened or read (a cut or overwritten .npz).
_CACHE_DAMAGE = (OSError, ValueError, KeyError, EOFError, zlib.error, zipfile.BadZipFile)


Stats = tuple[tuple[float, ...], tuple[float, ...]]


def _load_cache(file: Path) -> tuple[ImageSet, ImageSet, list[str], Stats]:
    """Read a cache entry; raises one of :data:`_CACHE_DAMAGE` if it is damaged or inconsistent."""
    with np.load(file, allow_pickle=False) as z:
        train, test = ImageSet(z["train_x"], z["train_y"]), ImageSet(z["test_x"], z["test_y"])
        classes = [str(c) for c in z["classes"]]
        stats = (tuple(z["mean"].tolist()), tuple(z["std"].tolist())) if "mean" in z else None
    for split in (train, test):
        if split.pixels.ndim != 4 or split.labels.shape != split.pixels.shape[:1]:
            raise ValueError(f"arrays of shapes {split.pixels.shape}, {split.labels.shape}")
    if stats is None or len(stats[0]) != train.pixels.shape[1] or len(stats[1]) != train.pixels.shape[1]:
        stats = _channel_stats(train.pixels, 255.0)  # an entry written before the statistics were cached
    return train, test, classes, stats


def _cached(path: Path, cache: Path, build: Callable[[], tuple[ImageSet, ImageSet, list[str]]]
            ) -> tuple[ImageSet, ImageSet, list[str], Stats]:
    """The decoded source and its training split's channel statistics, from the cache or built and cached.

    The statistics are stored with the pixels (float64, exact round trip), so a cache load skips the pass
    over 150 M pixels that computing them takes, and a fresh decode and a cache load agree bit for bit.
    """
    stem = path.name.split(".")[0] or "data"
    file = cache / f"{stem}-{_source_key(path)}.npz"
    if file.is_file():
        try:
            return _load_cache(file)
        except _CACHE_DAMAGE as e:
            print(f"cpt-hw: data cache {file} is damaged ({type(e).__name__}: {e}); rebuilding it from {path}",
                  file=sys.stderr)
    train, test, classes = build()
    mean, std = _channel_stats(train.pixels, 255.0)
    buf = io.BytesIO()
    # Uncompressed: loading is then one read per array (compression would cost seconds on every run).
    np.savez(buf, train_x=train.pixels, train_y=train.labels, test_x=test.pixels, test_y=test.labels,
             classes=np.array(classes), mean=np.array(mean, dtype=np.float64), std=np.array(std, dtype=np.float64))
    try:
        write_atomic(file, buf.getvalue())  # a temporary file renamed over: never half-written
    except OSError:
        pass  # a read-only cache only costs the decode next time
    return train, test, classes, (mean, std)


# ----------------------------------------------------------------------------- sources


def _read_source(path: Path, progress: bool = True) -> tuple[ImageSet, ImageSet, list[str]]:
    try:
        if path.is_dir():
            return _from_entries(path, _dir_entries(path), progress)
        if not tarfile.is_tarfile(path):
            raise DataError(f"data path {path}: not a folder or a .tar(.gz) archive")
        with tarfile.open(path, "r:*") as tf:
            return _from_entries(path, _tar_entries(tf), progress)
    except DataError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError, pickle.UnpicklingError, ValueError, KeyError,
            TypeError, IndexError) as e:
        raise DataError(f"data path {path}: corrupt or unreadable ({type(e).__name__}: {e})") from None


def _dir_entries(root: Path) -> Iterator[tuple[str, Callable[[], bytes]]]:
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            full = Path(dirpath) / name
            yield full.relative_to(root).as_posix(), full.read_bytes


def _tar_entries(tf: tarfile.TarFile) -> Iterator[tuple[str, Callable[[], bytes]]]:
    for member in tf:
        if member.isfile():
            data = tf.extractfile(member)
            if data is None:
                continue
            name = member.name
            while name.startswith("./"):
                name = name[2:]
            yield name, data.read


def _from_entries(path: Path, entries: Iterable[tuple[str, Callable[[], bytes]]], progress: bool = True
                  ) -> tuple[ImageSet, ImageSet, list[str]]:
    """Sort entries into CIFAR python batches or an image-folder tree, and decode them."""
    batches: dict[str, bytes] = {}
    images: dict[str, list[tuple[str, str, bytes]]] = {"train": [], "test": []}
    for name, read in entries:
        parts = name.split("/")
        base = parts[-1]
        if base.startswith("data_batch_") or base in ("test_batch", "train", "test", "meta", "batches.meta"):
            batches[base] = read()
            continue
        if base.lower().endswith(_IMAGE_SUFFIXES):
            for i, part in enumerate(parts[:-2]):
                split = "train" if part == "train" else "test" if part in _TEST_DIRS else None
                if split and i == len(parts) - 3:
                    images[split].append((parts[-2], name, read()))
                    break
    if any(k.startswith("data_batch_") for k in batches) or ("train" in batches and "test" in batches):
        return _from_python_batches(path, batches)
    if images["train"] and images["test"]:
        return _from_images(path, images, progress)
    raise DataError(f"data path {path}: neither CIFAR python batches (data_batch_1.., test_batch) nor an "
                    "image-folder tree (train/<class>/*.jpg and test/<class>/*.jpg)")


def _unpickle(blob: bytes) -> dict:
    d = pickle.loads(blob, encoding="bytes")
    if not isinstance(d, dict):
        raise ValueError("batch is not a dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}


def _batch(d: dict) -> ImageSet:
    key = "labels" if "labels" in d else "fine_labels"
    x = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    y = np.asarray(d[key], dtype=np.int64)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{x.shape[0]} images but {y.shape[0]} labels")
    return ImageSet(x, y)


def _from_python_batches(path: Path, batches: dict[str, bytes]) -> tuple[ImageSet, ImageSet, list[str]]:
    if "test_batch" in batches:  # CIFAR-10
        names = sorted((k for k in batches if k.startswith("data_batch_")), key=lambda k: int(k.split("_")[-1]))
        train_parts = [_batch(_unpickle(batches[k])) for k in names]
        train = ImageSet(np.concatenate([p.pixels for p in train_parts]),
                         np.concatenate([p.labels for p in train_parts]))
        test = _batch(_unpickle(batches["test_batch"]))
        meta_key, names_key = "batches.meta", "label_names"
    elif "train" in batches and "test" in batches:  # CIFAR-100
        train, test = _batch(_unpickle(batches["train"])), _batch(_unpickle(batches["test"]))
        meta_key, names_key = "meta", "fine_label_names"
    else:
        raise DataError(f"data path {path}: CIFAR python batches without test_batch")
    num = int(max(train.labels.max(), test.labels.max())) + 1
    classes = [str(i) for i in range(num)]
    if meta_key in batches:
        meta = _unpickle(batches[meta_key]).get(names_key)
        if meta is not None and len(meta) == num:
            classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta]
    return train, test, classes


def _decode_image(blob: bytes, name: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(io.BytesIO(blob)) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise DataError(f"image {name}: corrupt or unreadable ({e})") from None


def _from_images(path: Path, images: dict[str, list[tuple[str, str, bytes]]], progress: bool = True
                 ) -> tuple[ImageSet, ImageSet, list[str]]:
    classes = sorted({cls for cls, _, _ in images["train"]})
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted({cls for cls, _, _ in images["test"]} - set(index))
    if unknown:
        raise DataError(f"data path {path}: test class {unknown[0]!r} has no training images")
    splits = []
    for split in ("train", "test"):
        items = sorted(images[split], key=lambda it: it[1])
        bar = tqdm(items, desc=f"decoding {split} images", unit="img", leave=False, disable=not progress or len(items) < 2000)
        pixels = [_decode_image(blob, name) for _, name, blob in bar]
        shapes = {p.shape for p in pixels}
        if len(shapes) != 1:
            raise DataError(f"data path {path}: {split} images differ in size ({sorted(shapes)[:2]} ...)")
        splits.append(ImageSet(np.stack(pixels), np.array([index[c] for c, _, _ in items], dtype=np.int64)))
    return splits[0], splits[1], classes
