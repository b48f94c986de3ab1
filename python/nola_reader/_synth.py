"""Generator lowbias32-v1 and the basis families (docs/FORMAT.md), with nola's float64 arithmetic:
the orthogonal synthesis is D · DCT-III(scatter_π(c)) through _fft (nola's DCT, operation for
operation), the orthogonal-components one that per rank-1 component; the uniform synthesis adds c_i · k^-1/2 · 2^-23 · v_i row by row, i ascending, as
src/core/uniform-basis.ts does."""
import numpy as np

from . import _fft

M32 = np.uint64(0xFFFFFFFF)


def mix32(x):
    x = np.asarray(x, dtype=np.uint64) & M32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x21F0AAAD)) & M32
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x735A2D97)) & M32
    x ^= x >> np.uint64(15)
    return x


def row_key(seed, i):
    return mix32(np.uint64(seed) ^ mix32(np.asarray(i, np.uint64) ^ np.uint64(0x9E3779B9)))


def col_keys(n):
    return mix32(np.arange(n, dtype=np.uint64) ^ np.uint64(0x85EBCA6B))


def orthogonal_signs(seed, n):
    u = mix32(row_key(seed, 0) ^ col_keys(n))
    return np.where(u >= 0x80000000, -1.0, 1.0)


def orthogonal_selection(seed, k, n):
    draws = mix32(row_key(seed, 1) ^ col_keys(k)).astype(np.int64).tolist()
    p = list(range(n))
    for t in range(k):
        r = t + draws[t] % (n - t)
        p[t], p[r] = p[r], p[t]
    return np.array(p[:k], dtype=np.int64)


# Below this many seeds of one length, full_selections runs the plain loop per seed (a numpy step over
# few lanes costs more than the loop).
LOCKSTEP_MIN_SEEDS = 32


def full_selections(seeds, n):
    """orthogonal_selection(s, n, n) for every seed s (rows of an int32 array): the same draws and swaps,
    run in lockstep over the seeds (Fisher–Yates is sequential within a shuffle, not across shuffles)."""
    seeds = list(seeds)
    if len(seeds) < LOCKSTEP_MIN_SEEDS:
        return np.array([orthogonal_selection(s, n, n) for s in seeds], np.int32).reshape(len(seeds), n)
    m = len(seeds)
    keys = row_key(np.asarray(seeds, np.uint64), 1)
    draws = mix32(col_keys(n)[:, None] ^ keys[None, :]).astype(np.int64)  # draws[t, j]: seed j's t-th
    # r_t = t + draw_t mod (n - t) does not depend on the swaps: every swap's positions, ahead, as indices
    # into p[t, j] (seed j's permutation in column j, flattened).
    at = (draws % np.arange(n, 0, -1, dtype=np.int64)[:, None] + np.arange(n, dtype=np.int64)[:, None]) * m + np.arange(m)
    p = np.repeat(np.arange(n, dtype=np.int32), m)
    for t in range(n):
        r = at[t]
        at_r = p[r]
        p[r] = p[t * m:(t + 1) * m]
        p[t * m:(t + 1) * m] = at_r
    return np.ascontiguousarray(p.reshape(n, m).T)


def component_seeds(seed, rank):
    """seed_i = u32(seed, 2, i) of each rank-1 component of an orthogonal-components factor."""
    return mix32(row_key(seed, 2) ^ col_keys(rank)).astype(np.int64).tolist()


def orthogonal(seed, k, n, c):
    spectrum = np.zeros(n)
    spectrum[orthogonal_selection(seed, k, n)] = c
    return _fft.dct3(spectrum[None, :])[0] * orthogonal_signs(seed, n)


def uniform(seed, k, n, c):
    norm = 1 / np.sqrt(np.float64(k))
    keys = col_keys(n)
    out = np.zeros(n)
    for i in range(k):
        ci = c[i] * norm
        if ci == 0:
            continue
        v = (mix32(row_key(seed, i) ^ keys).astype(np.uint32).view(np.int32) >> 8).astype(np.float64)
        out += (ci * 2.0 ** -23) * v
    return out


def components(seed, rank, d, factor, c, selections=None):
    """orthogonal-components: component i (seed u32(seed, 2, i)) is an orthogonal basis of R^d at full span,
    synthesized from c[i·d:(i+1)·d]; A's rows, B's columns. All components go through one batched DCT.
    `selections`: the components' π (rank × d, full_selections of component_seeds) if made ahead."""
    seeds = component_seeds(seed, rank)
    spectrum = np.zeros((rank, d))
    signs = np.empty((rank, d))
    for i, s in enumerate(seeds):
        spectrum[i, orthogonal_selection(s, d, d) if selections is None else selections[i]] = c[i * d:(i + 1) * d]
        signs[i] = orthogonal_signs(s, d)
    rows = _fft.dct3(spectrum) * signs
    return (rows if factor == 'A' else rows.T).ravel()


def synthesize(basis, seed, k, rank, d, factor, c, selections=None):
    """The flattened factor (A: rank × d, B: d × rank, row-major) from its k coefficients (`selections`:
    see components)."""
    n = rank * d
    if k == 0:  # a layer that stores nothing (both factors zero)
        return np.zeros(n)
    if basis == 'orthogonal':
        return orthogonal(seed, k, n, c)
    if basis == 'uniform':
        return uniform(seed, k, n, c)
    if basis == 'orthogonal-components':
        return components(seed, rank, d, factor, c, selections)
    raise ValueError(f'unknown basis {basis!r}')
