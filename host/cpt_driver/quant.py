"""Scale/zero-point corrections around an integer GEMM (docs/numerics.md, "The three GEMMs and the hardware numerics").

With A = s_a q_a + z_a (scale and zero point per tensor or per row m) and B = s_b q_b + z_b (per tensor or
per column n), summing over k:

    Y[m, n] = s_a[m] s_b[n] sum_k q_a q_b + s_a[m] z_b[n] sum_k q_a[m, k]
              + z_a[m] s_b[n] sum_k q_b[k, n] + K z_a[m] z_b[n]

The first sum is the accelerator's exact integer GEMM.  The code sums are O(MK + KN) integer reductions
done on the host: asking the array for them (a column of ones appended to B) would cost a whole extra
column tile whenever N is a multiple of the array width, which every ResNet layer is.  The corrections
are evaluated in float64 from the exact int64 sums and rounded once to ``dtype``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .checks import check_gemm_args, check_scale


def qgemm_corrections(gemm: Callable[..., np.ndarray], qa: Any, qb: Any, a_bits: int, b_bits: int,
                      a_scale: Any, a_zero: Any, b_scale: Any, b_zero: Any, *, a_signed: bool = False,
                      b_signed: bool = False, dtype: Any = np.float32) -> np.ndarray:
    """Y (M, N) in ``dtype`` from codes qa (M, K), qb (K, N) and their (scale, zero point)s; see module doc.

    ``gemm`` is the integer GEMM with the signature of :meth:`cpt_driver.Accelerator.gemm`.
    Scales/zero points: scalars (per tensor), shape (M,) for A (per row) and (N,) for B (per column).
    """
    # Checked here too, so that a bad scale is refused before the device is touched.
    qa, qb, a_bits, b_bits, a_signed, b_signed = check_gemm_args(qa, qb, a_bits, b_bits, a_signed, b_signed, 64)
    m, k = qa.shape
    n = qb.shape[1]
    sa = check_scale("a_scale", a_scale, m, "row of A")
    za = check_scale("a_zero", a_zero, m, "row of A")
    sb = check_scale("b_scale", b_scale, n, "column of B")
    zb = check_scale("b_zero", b_zero, n, "column of B")
    acc = gemm(qa, qb, a_bits, b_bits, a_signed, b_signed)  # exact int64 sum_k qa qb
    row_a = qa.sum(axis=1, dtype=np.int64).astype(np.float64)  # (M,)  sum_k qa[m, k]
    col_b = qb.sum(axis=0, dtype=np.int64).astype(np.float64)  # (N,)  sum_k qb[k, n]
    sa2 = sa[:, None] if sa.ndim else sa  # per row of A: a column vector against (M, N)
    za2 = za[:, None] if za.ndim else za
    y = acc.astype(np.float64)
    y *= sa2 * sb
    y += (sa2 * row_a[:, None]) * zb
    y += za2 * (sb * col_b)
    y += k * (za2 * zb)
    return y.astype(dtype)
