"""Data sources (digits, CIFAR python batches, image-folder trees and archives), batching, augmentation."""

from __future__ import annotations

import os
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cpt_hw.train.batches import Batches, eval_batches
from cpt_hw.train.data import DataError, load_dataset

SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"


def _rng_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)


def _write_cifar10_batches(folder: Path, per_batch: int = 12) -> tuple[np.ndarray, np.ndarray]:
    folder.mkdir(parents=True)
    xs, ys = [], []
    for b in range(1, 6):
        x, y = _rng_images(per_batch, b), np.arange(per_batch) % 10
        (folder / f"data_batch_{b}").write_bytes(pickle.dumps({b"data": x.reshape(per_batch, -1),
                                                                b"labels": y.tolist()}))
        xs.append(x)
        ys.append(y)
    tx = _rng_images(10, 99)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": tx.reshape(10, -1), b"labels": list(range(10))}))
    names = [n.encode() for n in ("airplane automobile bird cat deer dog frog horse ship truck".split())]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    return np.concatenate(xs), np.concatenate(ys)


def _write_tree(root: Path, classes: tuple[str, ...] = ("cat", "dog", "frog"), per_class: int = 3) -> dict:
    """PNG (lossless) tree train/<cls>/, test/<cls>/; returns {relative name: pixels CHW}."""
    out = {}
    for split in ("train", "test"):
        for ci, cls in enumerate(classes):
            (root / split / cls).mkdir(parents=True)
            for i in range(per_class):
                px = _rng_images(1, hash((split, ci, i)) & 0xFFFF)[0]
                Image.fromarray(px.transpose(1, 2, 0)).save(root / split / cls / f"{i:04d}.png")
                out[f"{split}/{cls}/{i:04d}.png"] = px
    return out


def _tar(src: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tf:
        for p in sorted(src.rglob("*")):
            tf.add(p, arcname=p.relative_to(src).as_posix(), recursive=False)
    return dest


def test_digits_is_bundled_and_split_stratified():
    ds = load_dataset("digits")
    assert (len(ds.train), len(ds.test)) == (1437, 360)
    assert ds.train.pixels.shape[1:] == (1, 8, 8) and ds.train.pixels.dtype == np.uint8
    assert ds.num_classes == 10 and ds.pixel_max == 16.0 and not ds.augment
    assert np.bincount(ds.test.labels).min() >= 35  # every digit is in the test split
    assert load_dataset("digits").train.labels.tolist() == ds.train.labels.tolist()  # fixed split


def test_cifar10_python_batches_folder_and_archive(tmp_path):
    x, y = _write_cifar10_batches(tmp_path / "cifar-10-batches-py")
    ds = load_dataset("cifar10", tmp_path / "cifar-10-batches-py", cache_dir=tmp_path / "cache")
    assert np.array_equal(ds.train.pixels, x) and np.array_equal(ds.train.labels, y)
    assert ds.classes[0] == "airplane" and ds.num_classes == 10 and ds.augment
    arch = _tar(tmp_path, tmp_path.parent / f"{tmp_path.name}-cifar.tar.gz")
    ds2 = load_dataset("cifar10", arch, cache_dir=tmp_path / "cache2")
    assert np.array_equal(ds2.train.pixels, x) and np.array_equal(ds2.test.labels, ds.test.labels)


def test_cifar100_python_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    x = _rng_images(200, 1)
    for split in ("train", "test"):
        (folder / split).write_bytes(pickle.dumps({b"data": x.reshape(200, -1), b"fine_labels": list(range(100)) * 2,
                                                   b"coarse_labels": [0] * 200}))
    ds = load_dataset("cifar100", folder, cache_dir=tmp_path / "cache")
    assert ds.num_classes == 100 and ds.train.labels[99] == 99
    with pytest.raises(DataError, match="holds 100 classes, cifar10 has 10"):
        load_dataset("cifar10", folder, cache_dir=tmp_path / "cache")


def test_image_folder_tree_and_its_archive_decode_exactly_and_are_cached(tmp_path):
    tree = tmp_path / "tree"
    pixels = _write_tree(tree)
    cache = tmp_path / "cache"
    ds = load_dataset("imagefolder", tree, cache_dir=cache)
    assert ds.classes == ("cat", "dog", "frog") and len(ds.train) == 9
    assert np.array_equal(ds.train.pixels[3], pixels["train/dog/0000.png"]) and ds.train.labels[3] == 1
    arch = _tar(tree, tmp_path / "tree.tar.gz")
    ds2 = load_dataset("imagefolder", arch, cache_dir=cache)
    assert np.array_equal(ds2.test.pixels, ds.test.pixels)
    cached = sorted(p.name for p in cache.iterdir())
    assert len(cached) == 2 and all(n.endswith(".npz") for n in cached)
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]
    # a damaged cache entry is rebuilt from the source
    (cache / cached[0]).write_bytes(b"garbage")
    assert np.array_equal(load_dataset("imagefolder", arch, cache_dir=cache).test.pixels, ds.test.pixels)


@pytest.mark.parametrize("make, match", [
    (lambda p: p / "nope.tar.gz", "not found"),
    (lambda p: (p / "x.bin").write_bytes(b"hello") and p / "x.bin", "not a folder or a .tar"),
    (lambda p: p, "neither CIFAR python batches"),
])
def test_missing_or_wrong_paths_are_one_clear_error(tmp_path, make, match):
    with pytest.raises(DataError, match=match):
        load_dataset("cifar10", make(tmp_path), cache_dir=tmp_path / "cache")


def test_truncated_archive_and_corrupt_members_are_reported(tmp_path):
    _write_cifar10_batches(tmp_path / "src" / "cifar-10-batches-py")
    good = _tar(tmp_path / "src", tmp_path / "good.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="corrupt or unreadable"):
        load_dataset("cifar10", tmp_path / "cut.tar.gz", cache_dir=tmp_path / "cache")
    (tmp_path / "src" / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(DataError, match="corrupt or unreadable"):
        load_dataset("cifar10", tmp_path / "src", cache_dir=tmp_path / "cache")
    tree = tmp_path / "tree"
    _write_tree(tree)
    (tree / "train" / "cat" / "0001.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match=r"image train/cat/0001.png: corrupt"):
        load_dataset("imagefolder", tree, cache_dir=tmp_path / "cache")


def test_unknown_dataset_and_misused_paths():
    with pytest.raises(DataError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")
    with pytest.raises(DataError, match="needs --data PATH"):
        load_dataset("cifar10")
    with pytest.raises(DataError, match="takes no --data path"):
        load_dataset("digits", "x")


def test_batches_are_a_pure_function_of_seed_and_step_and_split_across_ranks(tmp_path):
    _write_cifar10_batches(tmp_path / "c", per_batch=40)
    ds = load_dataset("cifar10", tmp_path / "c", cache_dir=tmp_path / "cache")
    one = Batches(ds, 16, seed=7)
    assert one.steps_per_epoch == 200 // 16
    x5, y5 = one.get(5)
    x5b, _ = Batches(ds, 16, seed=7).get(5)
    assert torch.equal(x5, x5b)
    assert not torch.equal(x5, Batches(ds, 16, seed=8).get(5)[0])
    ranks = [Batches(ds, 16, seed=7, rank=r, world=2).get(5) for r in range(2)]
    assert torch.equal(torch.cat([r[0] for r in ranks]), x5) and torch.equal(torch.cat([r[1] for r in ranks]), y5)
    seen = torch.cat([one.indices(s) for s in range(one.steps_per_epoch)])
    assert len(set(seen.tolist())) == len(seen)  # no sample twice in one epoch


def test_augmentation_is_a_padded_crop_maybe_flipped(tmp_path):
    _write_cifar10_batches(tmp_path / "c", per_batch=8)
    ds = load_dataset("cifar10", tmp_path / "c", cache_dir=tmp_path / "cache")
    b = Batches(ds, 8, seed=3)
    idx = b.indices(2)
    aug = b._augment(torch.from_numpy(ds.train.pixels)[idx], 2)
    padded = torch.nn.functional.pad(torch.from_numpy(ds.train.pixels)[idx], (4, 4, 4, 4))
    flipped_any = False
    for i in range(len(idx)):
        hits = [(oy, ox, f) for oy in range(9) for ox in range(9) for f in (False, True)
                if torch.equal(aug[i], (lambda c: c.flip(-1) if f else c)(padded[i, :, oy:oy + 32, ox:ox + 32]))]
        assert hits, f"image {i} is not a crop of its padded original"
        flipped_any |= any(f for _, _, f in hits)
    assert flipped_any


def test_eval_batches_shard_the_test_split():
    ds = load_dataset("digits")
    full = torch.cat([y for _, y in eval_batches(ds, ds.test, 50)])
    parts = [torch.cat([y for _, y in eval_batches(ds, ds.test, 50, rank=r, world=2)]) for r in range(2)]
    assert len(full) == 360 and sorted((parts[0].tolist() + parts[1].tolist())) == sorted(full.tolist())


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_CIFAR.is_file(), reason=f"{SHARED_CIFAR} is absent (shared CIFAR-10 JPEG copy)")
def test_shared_cifar10_jpeg_archive(tmp_path):
    ds = load_dataset("cifar10", SHARED_CIFAR, cache_dir=tmp_path)
    assert (len(ds.train), len(ds.test)) == (50000, 10000) and ds.classes[0] == "airplane"
    assert np.allclose(ds.mean, (0.4913, 0.4821, 0.4465), atol=2e-4)  # the README's measured means


def test_a_fresh_decode_and_the_cache_give_identical_arrays_and_statistics(tmp_path):
    """Both paths: the same dtype, C-contiguous layout, pixels, mean/std and normalised tensors, exactly."""
    from cpt_hw.train.batches import normalise

    tree = tmp_path / "tree"
    _write_tree(tree)
    fresh = load_dataset("imagefolder", tree, cache_dir=tmp_path / "cache")
    cached = load_dataset("imagefolder", tree, cache_dir=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir())  # the second load came from the cache
    for a, b in ((fresh.train, cached.train), (fresh.test, cached.test)):
        for x, y in ((a.pixels, b.pixels), (a.labels, b.labels)):
            assert x.dtype == y.dtype and x.strides == y.strides and x.flags.c_contiguous
            assert np.array_equal(x, y)
        assert (a.pixels.dtype, a.labels.dtype) == (np.uint8, np.int64)
    assert fresh.mean == cached.mean and fresh.std == cached.std
    # the statistics stored in the cache are what the pixels give, also for an entry written without them
    entry, = (tmp_path / "cache").iterdir()
    with np.load(entry) as z:
        arrays = {k: z[k] for k in z.files if k not in ("mean", "std")}
    np.savez(entry, **arrays)
    old_format = load_dataset("imagefolder", tree, cache_dir=tmp_path / "cache")
    assert old_format.mean == fresh.mean and old_format.std == fresh.std
    assert torch.equal(normalise(torch.from_numpy(fresh.test.pixels), fresh),
                       normalise(torch.from_numpy(cached.test.pixels), cached))


def test_channel_statistics_are_exact_whatever_the_memory_layout():
    from cpt_hw.train.data import _channel_stats

    x = _rng_images(300, 5)
    channels_last = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # same values, HWC order
    assert not channels_last.flags.c_contiguous
    assert _channel_stats(x, 255.0) == _channel_stats(channels_last, 255.0)
    xf = x.astype(np.float64) / 255.0
    assert np.allclose(_channel_stats(x, 255.0)[0], xf.mean(axis=(0, 2, 3)), rtol=1e-14, atol=0)
    assert np.allclose(_channel_stats(x, 255.0)[1], xf.std(axis=(0, 2, 3)), rtol=1e-12, atol=0)


@pytest.mark.parametrize("damage", [lambda b: b[: len(b) // 2],  # cut in half
                                    lambda b: b[:100] + b"\0" * (len(b) - 100),  # zeroed
                                    lambda b: b""])
def test_a_damaged_cache_entry_is_reported_in_one_line_and_rebuilt(tmp_path, capsys, damage):
    x, _ = _write_cifar10_batches(tmp_path / "c")
    load_dataset("cifar10", tmp_path / "c", cache_dir=tmp_path / "cache")
    entry, = (tmp_path / "cache").iterdir()
    good = entry.read_bytes()
    entry.write_bytes(damage(good))
    capsys.readouterr()
    assert np.array_equal(load_dataset("cifar10", tmp_path / "c", cache_dir=tmp_path / "cache").train.pixels, x)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"data cache {entry} is damaged" in err and "rebuilding it" in err
    assert entry.read_bytes() == good  # rewritten whole
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.endswith(".tmp")]
    load_dataset("cifar10", tmp_path / "c", cache_dir=tmp_path / "cache")
    assert capsys.readouterr().err == ""  # and used again from then on


def test_fifos_devices_and_proc_files_are_refused_before_they_are_opened(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it would block until a writer appears
    done = threading.Event()

    def unblock() -> None:  # should the loader ever open the FIFO again, the test fails instead of hanging
        while not done.wait(0.1):
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # succeeds only once a reader waits
            except OSError:
                pass

    threading.Thread(target=unblock, daemon=True).start()
    try:
        with pytest.raises(DataError, match=r"fifo: not a folder or a regular file \(a FIFO"):
            load_dataset("cifar10", fifo, cache_dir=tmp_path / "cache")
    finally:
        done.set()
    with pytest.raises(DataError, match="/dev/null: not a folder or a regular file"):
        load_dataset("cifar10", "/dev/null", cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match=r"/proc/self/mem: empty file \(0 bytes\)"):
        load_dataset("cifar10", "/proc/self/mem", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
