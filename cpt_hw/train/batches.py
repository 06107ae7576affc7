"""Deterministic, resumable mini-batches with CIFAR augmentation, identical under DDP.

The batch of global step ``s`` is a pure function of (seed, s): the epoch's permutation is drawn from a
generator seeded with (seed, epoch), the random crops and flips from one seeded with (seed, s).  Nothing
carries state from one step to the next, so a run resumed at step s sees exactly the batches an
uninterrupted run sees, and under DDP each of the W ranks takes its contiguous slice of the same global
batch: W processes at batch B/W see the same samples, crops and flips as one process at batch B.

Augmentation (CIFAR, as the reference's ``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip``): zero-pad
the uint8 image by ``crop_padding`` pixels, crop a random window of the original size, flip left-right
with probability 1/2; then normalise with the training split's per-channel mean and std.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from ..errors import CptHwError
from .data import Dataset, ImageSet

_TAG_PERM, _TAG_AUG = 0x5045524D, 0x41554721  # "PERM", "AUG!": keep the two streams independent


def derived_generator(seed: int, tag: int, index: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch.Generator on ``device`` seeded from (seed, tag, index) through numpy's SeedSequence (well mixed).

    Seeding is host-side bookkeeping, so a CUDA generator costs no synchronisation."""
    state = np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, tag, index]).generate_state(2, dtype=np.uint32)
    g = torch.Generator(device=device)
    g.manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)
    return g


class Batches:
    """Training batches of a :class:`~cpt_hw.train.data.Dataset` for one rank.

    global_batch: samples per step over all ranks (must divide by ``world``); an epoch is
    ``len(train) // global_batch`` steps (the last partial batch is dropped, every step is full).
    :meth:`get` returns (x float32 (B/W, C, H, W) normalised, y int64 (B/W,)) on ``device``.

    ``resident=True`` keeps the training set on ``device`` (uint8) and draws permutations, crops and flips
    there too (the GPU pipeline of the CUDA fast path: no host work or transfer per step).  The draws then
    come from ``device``'s generator, so a resident CUDA run sees other (equally distributed) batches than
    a host-fed one; on the CPU both modes are identical.
    """

    def __init__(self, data: Dataset, global_batch: int, seed: int, *, rank: int = 0, world: int = 1,
                 device: str | torch.device = "cpu", resident: bool = False) -> None:
        if global_batch < 1 or global_batch % world:
            raise CptHwError(f"--batch-size {global_batch}: must be a positive multiple of the number of "
                             f"processes ({world})")
        if global_batch > len(data.train):
            raise CptHwError(f"--batch-size {global_batch}: larger than the training set ({len(data.train)} "
                             f"images of {data.name})")
        self.data, self.global_batch, self.seed = data, global_batch, seed
        self.rank, self.world, self.device = rank, world, torch.device(device)
        self.local_batch = global_batch // world
        self.steps_per_epoch = len(data.train) // global_batch
        # Where the pixels live and the draws happen: the host, or (resident) the training device.
        self._home = self.device if resident else torch.device("cpu")
        self._pixels = torch.from_numpy(data.train.pixels).to(self._home)
        self._labels = torch.from_numpy(data.train.labels).to(self._home)
        self._perm: tuple[int, torch.Tensor] | None = None
        self._mean = torch.tensor(data.mean, dtype=torch.float32, device=self._home).view(1, -1, 1, 1)
        self._std = torch.tensor(data.std, dtype=torch.float32, device=self._home).view(1, -1, 1, 1)

    def _permutation(self, epoch: int) -> torch.Tensor:
        if self._perm is None or self._perm[0] != epoch:
            g = derived_generator(self.seed, _TAG_PERM, epoch, self._home)
            self._perm = (epoch, torch.randperm(len(self.data.train), generator=g, device=self._home))
        return self._perm[1]

    def indices(self, step: int) -> torch.Tensor:
        """Training-set indices of this rank's share of global step ``step``."""
        epoch, pos = divmod(step, self.steps_per_epoch)
        start = pos * self.global_batch + self.rank * self.local_batch
        return self._permutation(epoch)[start:start + self.local_batch]

    def get(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.indices(step)
        x = self._pixels[idx]
        if self.data.augment:
            x = self._augment(x, step)
        return normalise(x, self.data, self._mean, self._std).to(self.device), self._labels[idx].to(self.device)

    def _augment(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """Random crop (zero padding) + horizontal flip; draws for the whole global batch, sliced per rank."""
        home = self._home
        g = derived_generator(self.seed, _TAG_AUG, step, home)
        pad = self.data.crop_padding
        n, _, h, w = x.shape
        offsets = torch.randint(0, 2 * pad + 1, (self.global_batch, 2), generator=g, device=home)
        flips = torch.rand(self.global_batch, generator=g, device=home) < 0.5
        mine = slice(self.rank * self.local_batch, (self.rank + 1) * self.local_batch)
        offsets, flips = offsets[mine], flips[mine]
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
        ar_h, ar_w = torch.arange(h, device=home), torch.arange(w, device=home)
        rows = (offsets[:, 0:1] + ar_h).view(n, 1, h, 1)
        cols = (offsets[:, 1:2] + ar_w).view(n, 1, 1, w)
        cols = torch.where(flips.view(n, 1, 1, 1), (offsets[:, 1:2] + w - 1 - ar_w).view(n, 1, 1, w), cols)
        batch = torch.arange(n, device=home).view(n, 1, 1, 1)
        chan = torch.arange(x.shape[1], device=home).view(1, -1, 1, 1)
        return padded[batch, chan, rows, cols]


def normalise(pixels: torch.Tensor, data: Dataset, mean: torch.Tensor | None = None,
              std: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 pixels (N, C, H, W) -> float32 (pixels / pixel_max - mean) / std."""
    if mean is None:
        mean = torch.tensor(data.mean, dtype=torch.float32).view(1, -1, 1, 1)
    if std is None:
        std = torch.tensor(data.std, dtype=torch.float32).view(1, -1, 1, 1)
    return (pixels.to(torch.float32) / data.pixel_max - mean) / std


def eval_batches(data: Dataset, split: ImageSet, batch: int, *, rank: int = 0, world: int = 1,
                 device: str | torch.device = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """This rank's shard (every world-th image from ``rank``) of ``split``, in order, unaugmented."""
    idx = torch.arange(rank, len(split), world)
    pixels, labels = torch.from_numpy(split.pixels), torch.from_numpy(split.labels)
    for start in range(0, len(idx), batch):
        sel = idx[start:start + batch]
        yield normalise(pixels[sel], data).to(device), labels[sel].to(device)
