"""A GPU-resident CIFAR pipeline: the whole training set lives on the device as uint8, and shuffling,
random crop (4-pixel zero padding) and horizontal flip run there too.

Every random draw comes from a generator seeded from (seed, epoch) for the permutation and
(seed, step) for the augmentation, so batch ``t`` is a pure function of (seed, t): a resumed run sees the
same batches with no generator state to save.  Nothing synchronises with the host.
"""

from __future__ import annotations

import numpy as np
import torch

from ..golden import counter_hash

PAD = 4


def _seeded(device: torch.device, seed: int, tag: int, index: int) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(counter_hash(seed ^ (tag << 40), np.int64(index))))
    return g


class GpuBatches:
    """Batches of a uint8 (N, C, H, W) image set on ``device``: ``get(step) -> (x float32, y int64)``.

    Incomplete last batches of an epoch are dropped (as a shuffled DataLoader with drop_last).
    ``mean``/``std`` (per channel, in [0, 1] units) normalise the pixels.
    """

    def __init__(self, pixels: np.ndarray, labels: np.ndarray, batch: int, seed: int, device: torch.device | str,
                 mean: tuple[float, ...], std: tuple[float, ...], pixel_max: float = 255.0,
                 augment: bool = True) -> None:
        self.device = torch.device(device)
        x = torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device)
        self.images = torch.nn.functional.pad(x, (PAD, PAD, PAD, PAD)) if augment else x
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(self.device)
        self.n, self.c, self.h, self.w = x.shape
        self.batch, self.seed, self.augment = int(batch), int(seed), augment
        if not 1 <= self.batch <= self.n:
            raise ValueError(f"batch = {batch}: must be in 1..{self.n} (the number of images)")
        self.steps_per_epoch = self.n // self.batch
        shape = (1, self.c, 1, 1)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device).reshape(shape) * pixel_max
        self.inv_std = 1.0 / (torch.tensor(std, dtype=torch.float32, device=self.device).reshape(shape) * pixel_max)
        self._perm_epoch, self._perm = -1, None
        self._rows = torch.arange(self.h, device=self.device)
        self._cols = torch.arange(self.w, device=self.device)

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._perm_epoch:
            self._perm = torch.randperm(self.n, device=self.device, generator=_seeded(self.device, self.seed, 1, epoch))
            self._perm_epoch = epoch
        return self._perm  # type: ignore[return-value]

    def get(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, i = divmod(int(step), self.steps_per_epoch)
        idx = self._permutation(epoch)[i * self.batch:(i + 1) * self.batch]
        x = self.images[idx]
        if self.augment:
            g = _seeded(self.device, self.seed, 2, step)
            off = torch.randint(0, 2 * PAD + 1, (2, self.batch), device=self.device, generator=g)
            flip = torch.rand(self.batch, device=self.device, generator=g) < 0.5
            rows = (off[0, :, None] + self._rows)[:, None, :, None]
            cols = off[1, :, None] + self._cols
            cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]
            b = torch.arange(self.batch, device=self.device)[:, None, None, None]
            ch = torch.arange(self.c, device=self.device)[None, :, None, None]
            x = x[b, ch, rows, cols]
        return (x.to(torch.float32) - self.mean) * self.inv_std, self.labels[idx]
