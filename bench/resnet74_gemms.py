"""GEMM shapes of one ResNet-74 (CIFAR-10) training step, as the accelerator sees them (im2col).

ResNet-74 for CIFAR: 6n + 2 layers with n = 12 BasicBlocks per stage, 16/32/64 channels at 32x32,
16x16, 8x8, a 3x3 stem conv, 1x1 stride-2 downsample convs on the two stage transitions and a float FC
(not offloaded).  Per conv layer (C_in -> C_out, k x k kernel, output H x W, batch B):

* forward        Y = X_col . W^T       M = B H W,    N = C_out,      K = C_in k^2
* input gradient dX = dY_col . W_rot   M = B H' W',  N = C_in,       K = C_out k^2 (not for the stem)
  (the transposed convolution: dY zero-padded -- and dilated for stride 2 -- convolved with the
  180-degree rotated kernels; H' x W' is the layer's input size.  The im2col form dX_col = dY . W,
  followed by col2im, would write C_in k^2 int32 per pixel: k^2 times the traffic)
* weight grad.   dW^T = X_col^T . dY   M = C_in k^2, N = C_out,      K = B H W   (split in k_max chunks)

The weight gradient is oriented so that its B operand (dY, N = C_out <= b_block_cols) is loaded once per
call and its A operand streams; the driver splits its reduction over the batch into calls of at most
k_max and sums them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Gemm:
    layer: str          # e.g. "s2.conv" (all 23 identical convs of stage 2 share it)
    kind: str           # "fwd", "dgrad", "wgrad"
    m: int
    n: int
    k: int
    count: int          # how many times the step runs this shape (layers x chunks)


def conv_layers(depth: int = 74) -> list[tuple[str, int, int, int, int, int]]:
    """(name, C_in, C_out, kernel, output H=W, how many) of a CIFAR ResNet of `depth` layers."""
    n = (depth - 2) // 6
    return [
        ("stem", 3, 16, 3, 32, 1),
        ("s1.conv", 16, 16, 3, 32, 2 * n),
        ("s2.first", 16, 32, 3, 16, 1),
        ("s2.down", 16, 32, 1, 16, 1),
        ("s2.conv", 32, 32, 3, 16, 2 * n - 1),
        ("s3.first", 32, 64, 3, 8, 1),
        ("s3.down", 32, 64, 1, 8, 1),
        ("s3.conv", 64, 64, 3, 8, 2 * n - 1),
    ]


def training_gemms(batch: int = 128, k_max: int = 4608, depth: int = 74, split_k: bool = True) -> list[Gemm]:
    """Every GEMM of one step; split_k: weight gradients as k_max chunks (else whole, as the driver
    receives them: cpt_driver.plan decides the calls)."""
    out = []
    for name, cin, cout, ks, hw, count in conv_layers(depth):
        m = batch * hw * hw
        kk = cin * ks * ks
        stride = 2 if name.endswith((".first", ".down")) else 1
        out.append(Gemm(name, "fwd", m, cout, kk, count))
        if name != "stem":
            out.append(Gemm(name, "dgrad", batch * (hw * stride) ** 2, cin, cout * ks * ks, count))
        if not split_k:
            out.append(Gemm(name, "wgrad", kk, cout, m, count))
            continue
        chunks, rest = divmod(m, k_max)
        if chunks:
            out.append(Gemm(name, "wgrad", kk, cout, k_max, count * chunks))
        if rest:
            out.append(Gemm(name, "wgrad", kk, cout, rest, count))
    return out
