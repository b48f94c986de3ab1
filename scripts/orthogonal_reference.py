#!/usr/bin/env python3
"""Independent reference for the orthogonal basis family (docs/FORMAT.md).

Reimplements generator lowbias32-v1 and the construction b_i = D . C^T e_{pi(i)} from the
spec text with Python integers and a dense O(n^2) numpy DCT-II matrix (no FFT, no TypeScript).
Its output is pasted into test/core/orthogonal-basis.test.ts as golden values.

    python3 scripts/orthogonal_reference.py
"""
import numpy as np

M1, M2 = 0x21F0AAAD, 0x735A2D97
ROW_SALT, COL_SALT = 0x9E3779B9, 0x85EBCA6B
MASK = 0xFFFFFFFF


def mix32(x):
    x ^= x >> 16
    x = (x * M1) & MASK
    x ^= x >> 15
    x = (x * M2) & MASK
    x ^= x >> 15
    return x


def u32(seed, i, j):
    return mix32(mix32(seed ^ mix32(i ^ ROW_SALT)) ^ mix32(j ^ COL_SALT))


def signs(seed, n):
    return np.array([-1.0 if u32(seed, 0, j) >> 31 else 1.0 for j in range(n)])


def selection(seed, k, n):
    p = list(range(n))
    for t in range(k):
        r = t + u32(seed, 1, t) % (n - t)
        p[t], p[r] = p[r], p[t]
    return p[:k]


def dct_rows(n, rows):
    """Rows `rows` of the orthonormal DCT-II matrix C[m][j] = s_m cos(pi (2j+1) m / (2n))."""
    m = np.asarray(rows)[:, None]
    j = np.arange(n)[None, :]
    s = np.where(m == 0, np.sqrt(1.0 / n), np.sqrt(2.0 / n))
    return s * np.cos(np.pi * (2 * j + 1) * m / (2 * n))


def basis(seed, k, n):
    """Rows are b_0..b_{k-1}."""
    return dct_rows(n, selection(seed, k, n)) * signs(seed, n)[None, :]


def fmt(v):
    return "[" + ", ".join(repr(float(x)) for x in v) + "]"


def check_against_scipy():
    """Optional: the dense definition agrees with scipy's orthonormal DCT-II, when scipy exists."""
    try:
        from scipy.fft import dct
    except ImportError:
        print("(scipy not installed: skipped the scipy cross-check)")
        return
    for n in (1, 7, 10, 12, 64):
        assert np.allclose(dct_rows(n, range(n)), dct(np.eye(n), axis=0, norm="ortho"), atol=1e-14)
    print("(dense DCT-II matches scipy.fft.dct(norm='ortho'))")


if __name__ == "__main__":
    check_against_scipy()
    for seed, n, k in [(0, 12, 5), (12345, 10, 10)]:
        B = basis(seed, k, n)
        print(f"seed={seed} n={n} k={k}")
        print("  signs     ", [int(x) for x in signs(seed, n)])
        print("  selection ", selection(seed, k, n))
        print("  b0        ", fmt(B[0]))
        print("  b1        ", fmt(B[1]))
    # A length that takes the Bluestein path (6144 = 3 * 2^11) and a prime: synthesize a fixed c.
    for seed, n, k in [(7, 6144, 40), (99, 997, 997)]:
        B = basis(seed, k, n)
        c = np.array([(-1) ** i / (i + 1) for i in range(k)])
        y = c @ B
        print(f"seed={seed} n={n} k={k}  c_i = (-1)^i/(i+1)")
        print("  selection[:8]   ", selection(seed, k, n)[:8])
        print("  y[:6]           ", fmt(y[:6]))
        print("  y[n-3:]         ", fmt(y[-3:]))
        x = np.cos(np.arange(n) * 0.37) + 0.01 * np.arange(n)
        print("  analyze(x)[:4] x_j = cos(0.37 j) + 0.01 j ", fmt((B @ x)[:4]))
