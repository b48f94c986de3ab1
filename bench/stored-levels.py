#!/usr/bin/env python3
"""What a concrete entropy coder would save on the levels a NOLA file already stores (issue #11).

  python3 bench/stored-levels.py FILE.nola…

bench/coder-headroom.ts prices an *ideal* coder on a model of the fit. This measures on the files:
every rice block of each file is decoded by the numpy reference reader (scripts/reference/nola_ref.py,
written from docs/FORMAT.md) to its integer levels, and those same levels (same quantizer, same
error, no re-allocation) are priced four ways:

  rice       the block's bytes as stored, less its 5-byte header (what a version-2 file pays);
  geometric  a static two-sided geometric model on the zigzagged levels, its parameter the block's
             maximum-likelihood one (the source Rice codes are made for);
  gaussian   a static discretized Gaussian p(q) = Φ((q+½)/u) − Φ((q−½)/u), u = σ/Δ the best of a
             1/8-octave grid (one parameter byte), every probability floored at 2^-16 (a coder must
             give each symbol a slot), plus 4 bytes for an rANS coder's final state: what a
             parametric rANS/arithmetic block would cost;
  entropy    the levels' empirical entropy per block (n·H, no model or table cost): not reachable
             by a real coder, it overfits each block (with Gaussian-shaped levels, kurtosis ≈ 3, the
             gap between it and the Gaussian model is that overfit, not a better model);
  rdo        the Rice code kept (readers unchanged) but each level chosen by the encoder to minimize
             error + λ·(its Rice bits), λ = 0.15·Δ², the step then made finer to the same error:
             simulated on 200,000 N(0, 1) values (rate at equal error, with and without, over a
             grid of steps) and applied to each block at its stored bits per value. An estimate
             from a simulation, since the file does not hold the values before rounding.

Prints one line per file. A measurement, not a coder: nothing is encoded, nothing written. It reads
rice blocks only: run it on version-2 files (`nola compress --format-version 2`); the default
(version 3) already stores most blocks as rans blocks, the "gaussian" line of this script built.
"""
import math
import os
import sys

import numpy as np
from scipy.special import ndtr

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'scripts', 'reference'))
import nola_ref  # noqa: E402

GRID = 2.0 ** (np.arange(-64, 96) / 8)  # candidate u = σ/Δ, 1/8 octave
FLOOR = 2.0 ** -16
PARAM_BITS, FLUSH_BITS = 8, 32


def levels_of(path):
    """(stored bytes, levels) of every rice block in the file, in stream order."""
    blocks = []
    decode = nola_ref.decode_rice

    def capture(block, count):
        values = decode(block, count)
        step = float(np.frombuffer(block[:4], '<f4')[0])
        blocks.append((len(block), np.rint(values / step).astype(np.int64)))
        return values

    nola_ref.decode_rice = capture
    try:
        nola_ref.load_nola(path)
    finally:
        nola_ref.decode_rice = decode
    return blocks


def gaussian_bits(q):
    lo = int(q.min())
    counts = np.bincount(q - lo)
    s = np.arange(lo, lo + len(counts))
    sd = math.sqrt(max(float((q.astype(np.float64) ** 2).mean()), 1e-6))
    best = math.inf
    for u in GRID[(GRID > sd / 2) & (GRID < sd * 2)]:
        p = np.maximum(ndtr((s + 0.5) / u) - ndtr((s - 0.5) / u), FLOOR)
        best = min(best, float(-(counts * np.log2(p)).sum()))
    return best + PARAM_BITS + FLUSH_BITS


def geometric_bits(q):
    z = np.where(q >= 0, 2 * q, -2 * q - 1)
    m = float(z.mean())
    if m == 0:
        return PARAM_BITS + FLUSH_BITS  # all zeros: the model puts all its mass there
    t = m / (1 + m)
    return -(len(z) * math.log2(1 - t) + float(z.sum()) * math.log2(t)) + PARAM_BITS + FLUSH_BITS


def entropy_bits(q):
    _, c = np.unique(q, return_counts=True)
    return float(-(c * np.log2(c / len(q))).sum())


def _rice(z):
    """(bits, k) of the best Rice parameter for zigzagged levels z, headers left out."""
    return min(((k + 1) * len(z) + int((z >> k).sum()), k) for k in range(16))


def rdo_gain_curve(lam=0.15, n=200_000, seed=1):
    """(bits per value of plain rounding, relative rate change of RDO level choice at equal error)."""
    x = np.random.default_rng(seed).standard_normal(n)
    zig = lambda q: np.where(q >= 0, 2 * q, -2 * q - 1)  # noqa: E731
    plain, rdo = [], []
    for step in np.exp(np.linspace(np.log(0.05), np.log(3.0), 50)):
        q = np.rint(x / step).astype(np.int64)
        plain.append((_rice(zig(q))[0] / n, float(((x - q * step) ** 2).mean())))
        for _ in range(2):  # levels given k, then k given levels
            k = _rice(zig(q))[1]
            f = np.floor(x / step).astype(np.int64)
            cands = np.stack([f, f + 1, q - np.sign(q)])
            cost = (x - cands * step) ** 2 + lam * step * step * (k + 1 + (zig(cands) >> k))
            q = np.take_along_axis(cands, cost.argmin(0)[None], 0)[0]
        rdo.append((_rice(zig(q))[0] / n, float(((x - q * step) ** 2).mean())))
    pr, pd = np.array(plain).T
    rr, rd = np.array(rdo).T
    rates = pr[::-1]
    at_same_error = np.interp(np.log(pd[::-1]), np.log(rd), rr)
    return rates, at_same_error / rates - 1


def main(paths):
    rates, gains = rdo_gain_curve()
    for path in paths:
        blocks = levels_of(path)
        n = sum(len(q) for _, q in blocks)
        rice = sum(8 * (nb - 5) for nb, _ in blocks)
        row = [f'{path}: {len(blocks)} rice blocks, {n} values, rice {rice / 8192:.1f} KiB ({rice / n:.3f} bit/value)']
        for name, f in (('geometric', geometric_bits), ('gaussian', gaussian_bits), ('entropy', entropy_bits)):
            bits = sum(f(q) for _, q in blocks)
            row.append(f'{name} {bits / 8192:.1f} KiB ({100 * (bits / rice - 1):+.1f}%)')
        change = sum(8 * (nb - 5) * float(np.interp(8 * (nb - 5) / len(q), rates, gains)) for nb, q in blocks)
        row.append(f'rdo (simulated) {(rice + change) / 8192:.1f} KiB ({100 * change / rice:+.1f}%)')
        print('; '.join(row))


if __name__ == '__main__':
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
