"""nola's FFT and orthonormal DCT-III, operation for operation (src/core/fft.ts, src/core/dct.ts).

The orthogonal basis is defined mathematically (docs/FORMAT.md), so any correct DCT rebuilds a layer
to float64 rounding; but `nola expand` rounds its float64 factors to F32/F16/BF16, and a value a few
float64 ulps away can land on the other side of a rounding boundary. To give the same bytes, this
module repeats nola's arithmetic exactly: the same plans (radix-2, one Cooley–Tukey split, direct DFT
up to 48, Bluestein), the same twiddles (fdlibm sin/cos, angles computed in the same order), and the
same sequence of IEEE-754 double operations, vectorized across independent butterflies and batches
(elementwise numpy operations on float64 round exactly as JavaScript's do; nothing here uses a
reduction, a dot product or an FFT library whose order could differ).

Arrays are (batch, n) float64; every function returns new arrays.
"""
import numpy as np

from . import _trig

DIRECT_MAX = 48
_plans = {}


def _roots(n, count):
    t = np.arange(count, dtype=np.float64)
    a = (2 * np.pi * t) / n
    s, c = _trig._both(a)
    return c, s


def _smallest_prime_factor(n):
    if n % 2 == 0:
        return 2
    p = 3
    while p * p <= n:
        if n % p == 0:
            return p
        p += 2
    return n


def plan(n):
    p = _plans.get(n)
    if p is None:
        if n & (n - 1) == 0:
            p = _Radix2(n)
        elif (n & -n) > 1:
            p = _Split(n, n & -n, n // (n & -n))
        else:
            f = _smallest_prime_factor(n)
            p = _Split(n, f, n // f) if f < n else (_Direct(n) if n <= DIRECT_MAX else _Bluestein(n))
        if len(_plans) >= 64:
            _plans.pop(next(iter(_plans)))
        _plans[n] = p
    return p


class _Plan:
    def inverse(self, re, im):
        # IDFT(x) = conj(DFT(conj(x))) / n
        re, im = self.forward(re, -im)
        s = 1 / self.n
        return re * s, -im * s


class _Radix2(_Plan):
    def __init__(self, n):
        self.n = n
        bits = n.bit_length() - 1
        rev = np.zeros(n, np.int64)
        for i in range(1, n):
            rev[i] = (rev[i >> 1] >> 1) | ((i & 1) << (bits - 1))
        self.rev = rev
        self.cos, self.sin = _roots(n, n >> 1)

    def _run(self, re, im, sign):
        n = self.n
        re = re[:, self.rev]
        im = im[:, self.rev]
        size = 2
        while size <= n:
            half = size >> 1
            step = n // size
            wr = self.cos[0:half * step:step]
            wi = sign * self.sin[0:half * step:step]
            r = re.reshape(re.shape[0], n // size, size)
            i = im.reshape(im.shape[0], n // size, size)
            ar, ai, br, bi = r[:, :, :half], i[:, :, :half], r[:, :, half:], i[:, :, half:]
            xr = br * wr - bi * wi
            xi = br * wi + bi * wr
            re = np.concatenate([ar + xr, ar - xr], axis=2).reshape(re.shape)
            im = np.concatenate([ai + xi, ai - xi], axis=2).reshape(im.shape)
            size <<= 1
        return re, im

    def forward(self, re, im):
        return self._run(re, im, -1.0)

    def inverse(self, re, im):
        re, im = self._run(re, im, 1.0)
        s = 1 / self.n
        return re * s, im * s


class _Direct(_Plan):
    def __init__(self, n):
        self.n = n
        self.cos, self.sin = _roots(n, n)

    def forward(self, re, im):
        n = self.n
        k = np.arange(n)
        sr = np.zeros(re.shape)
        si = np.zeros(re.shape)
        for j in range(n):
            t = (j * k) % n
            c, s = self.cos[t], self.sin[t]
            xr, xi = re[:, j:j + 1], im[:, j:j + 1]
            sr = sr + (xr * c + xi * s)
            si = si + (xi * c - xr * s)
        return sr, si


class _Split(_Plan):
    """n = n1·n2, input index j1·n2 + j2, output index k1 + n1·k2."""

    def __init__(self, n, n1, n2):
        self.n, self.n1, self.n2 = n, n1, n2
        self.inner1, self.inner2 = plan(n1), plan(n2)
        j2 = np.arange(n2)[:, None]
        k1 = np.arange(n1)[None, :]
        a = (2 * np.pi * ((j2 * k1) % n).astype(np.float64)) / n
        s, c = _trig._both(a)
        self.tw_re, self.tw_im = c, -s  # [j2, k1]

    def forward(self, re, im):
        b, n1, n2 = re.shape[0], self.n1, self.n2
        # columns j2: x[j1·n2 + j2] over j1
        cr = re.reshape(b, n1, n2).transpose(0, 2, 1).reshape(b * n2, n1)
        ci = im.reshape(b, n1, n2).transpose(0, 2, 1).reshape(b * n2, n1)
        cr, ci = self.inner1.forward(cr, ci)
        cr, ci = cr.reshape(b, n2, n1), ci.reshape(b, n2, n1)
        wr, wi = self.tw_re, self.tw_im
        work_re = cr * wr - ci * wi
        work_im = cr * wi + ci * wr
        # rows k1: work[j2·n1 + k1] over j2
        rr = work_re.transpose(0, 2, 1).reshape(b * n1, n2)
        ri = work_im.transpose(0, 2, 1).reshape(b * n1, n2)
        rr, ri = self.inner2.forward(rr, ri)
        # out[k1 + n1·k2]
        out_re = rr.reshape(b, n1, n2).transpose(0, 2, 1).reshape(b, self.n)
        out_im = ri.reshape(b, n1, n2).transpose(0, 2, 1).reshape(b, self.n)
        return out_re, out_im


class _Bluestein(_Plan):
    def __init__(self, n):
        self.n = n
        m = 1
        while m < 2 * n - 1:
            m <<= 1
        self.m = m
        self.inner = plan(m)
        sq = np.zeros(n, np.int64)
        acc = 0
        for j in range(n):
            sq[j] = acc
            acc = (acc + 2 * j + 1) % (2 * n)
        a = (np.pi * sq.astype(np.float64)) / n
        self.wi, self.wr = _trig._both(a)
        cr = np.zeros(m)
        ci = np.zeros(m)
        cr[0], ci[0] = self.wr[0], self.wi[0]
        cr[1:n], ci[1:n] = self.wr[1:], self.wi[1:]
        cr[m - n + 1:], ci[m - n + 1:] = self.wr[1:][::-1], self.wi[1:][::-1]
        cr, ci = self.inner.forward(cr[None, :], ci[None, :])
        self.chirp_re, self.chirp_im = cr[0], ci[0]

    def forward(self, re, im):
        n, m = self.n, self.m
        wr, wi = self.wr, self.wi
        br = np.zeros((re.shape[0], m))
        bi = np.zeros((re.shape[0], m))
        br[:, :n] = re * wr + im * wi
        bi[:, :n] = im * wr - re * wi
        br, bi = self.inner.forward(br, bi)
        cr, ci = self.chirp_re, self.chirp_im
        br, bi = br * cr - bi * ci, br * ci + bi * cr
        br, bi = self.inner.inverse(br, bi)
        br, bi = br[:, :n], bi[:, :n]
        return br * wr + bi * wi, bi * wr - br * wi


_dct_plans = {}


def _dct_plan(n):
    p = _dct_plans.get(n)
    if p is None:
        even = n % 2 == 0
        h = n >> 1
        k = np.arange(h + 1 if even else n, dtype=np.float64)
        s, c = _trig._both((1 * np.pi * k) / (2 * n))
        p = {'w_cos': c, 'w_sin': s, 'fft': plan(h if even else n)}
        if even:
            s2, c2 = _trig._both((2 * np.pi * np.arange(h, dtype=np.float64)) / n)
            p['r_cos'], p['r_sin'] = c2, s2
        if len(_dct_plans) >= 64:
            _dct_plans.pop(next(iter(_dct_plans)))
        _dct_plans[n] = p
    return p


def dct3(X):
    """Orthonormal DCT-III (the transpose of the orthonormal DCT-II) of each row of X, as src/core/dct.ts dct3."""
    X = np.atleast_2d(np.asarray(X, np.float64))
    b, n = X.shape
    p = _dct_plan(n)
    wc, ws = p['w_cos'], p['w_sin']
    inv0 = np.sqrt(np.float64(n))
    inv = np.sqrt(np.float64(n) / 2)
    if n % 2 == 1:
        re = np.empty((b, n))
        im = np.empty((b, n))
        re[:, 0] = X[:, 0] * inv0
        im[:, 0] = 0.0
        P = X[:, 1:] * inv
        Q = -X[:, n - 1:0:-1] * inv
        re[:, 1:] = P * wc[1:] - Q * ws[1:]
        im[:, 1:] = P * ws[1:] + Q * wc[1:]
        v, _ = p['fft'].inverse(re, im)
    else:
        h = n >> 1
        P = np.empty((b, h + 1))
        P[:, 0] = X[:, 0] * inv0
        P[:, 1:] = X[:, 1:h + 1] * inv
        Q = np.empty((b, h + 1))
        Q[:, 0] = 0.0
        Q[:, 1:] = -X[:, n - 1:n - h - 1:-1] * inv
        vr = P * wc - Q * ws
        vi = P * ws + Q * wc
        ar, ai = vr[:, :h], vi[:, :h]
        br, bi = vr[:, h:0:-1], -vi[:, h:0:-1]
        er, ei = (ar + br) / 2, (ai + bi) / 2
        dr, di = (ar - br) / 2, (ai - bi) / 2
        tr, ti = p['r_cos'], p['r_sin']
        o_r = dr * tr - di * ti
        o_i = dr * ti + di * tr
        re, im = p['fft'].inverse(er - o_i, ei + o_r)
        v = np.empty((b, n))
        v[:, 0::2] = re
        v[:, 1::2] = im
    out = np.empty((b, n))
    out[:, 0::2] = v[:, :(n + 1) >> 1]
    out[:, 1::2] = v[:, n - 1:(n - 1) - (n >> 1):-1]
    return out
