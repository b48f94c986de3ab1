"""sin and cos exactly as nola computes them (JavaScript's Math.sin / Math.cos in V8, which is fdlibm 5.3:
v8/src/base/ieee754.cc), vectorized over numpy float64 arrays.

Why: nola's FFT twiddles come from Math.cos / Math.sin; numpy's and the C library's sin/cos differ from
fdlibm in the last bit for a few percent of arguments, and a twiddle one ulp off can flip the rounding
of an expanded F32/F16/BF16 value. Every step below is one IEEE-754 double operation in fdlibm's order,
so the results are the same bits. Arguments up to 2^19·π/2 in magnitude (nola's angles are below 2π).
"""
import numpy as np

_S1, _S2, _S3 = -1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04
_S4, _S5, _S6 = 2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10
_C1, _C2, _C3 = 4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05
_C4, _C5, _C6 = -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11
_INVPIO2 = 6.36619772367581382433e-01
_PIO2_1, _PIO2_1T = 1.57079632673412561417e+00, 6.07710050650619224932e-11
_PIO2_2, _PIO2_2T = 6.07710050630396597660e-11, 2.02226624879595063154e-21
_PIO2_3, _PIO2_3T = 2.02226624871116645580e-21, 8.47842766036889956997e-32
_NPIO2_HW = np.array([
    0x3FF921FB, 0x400921FB, 0x4012D97C, 0x401921FB, 0x401F6A7A, 0x4022D97C, 0x4025FDBB, 0x402921FB,
    0x402C463A, 0x402F6A7A, 0x4031475C, 0x4032D97C, 0x40346B9C, 0x4035FDBB, 0x40378FDB, 0x403921FB,
    0x403AB41B, 0x403C463A, 0x403DD85A, 0x403F6A7A, 0x40407E4C, 0x4041475C, 0x4042106C, 0x4042D97C,
    0x4043A28C, 0x40446B9C, 0x404534AC, 0x4045FDBB, 0x4046C6CB, 0x40478FDB, 0x404858EB, 0x404921FB,
], dtype=np.int64)


def _high(x):
    """The high 32-bit word of each double, as fdlibm's GET_HIGH_WORD (signed)."""
    return (np.ascontiguousarray(x, np.float64).view(np.uint64) >> np.uint64(32)).astype(np.int64).astype(np.uint32).view(np.int32).astype(np.int64)


def _kernel_sin(x, y, iy):
    z = x * x
    v = z * x
    r = _S2 + z * (_S3 + z * (_S4 + z * (_S5 + z * _S6)))
    if iy == 0:
        out = x + v * (_S1 + z * r)
    else:
        out = x - ((z * (0.5 * y - v * r) - y) - v * _S1)
    tiny = (_high(x) & 0x7FFFFFFF) < 0x3E400000
    return np.where(tiny, x, out)


def _kernel_cos(x, y):
    ix = _high(x) & 0x7FFFFFFF
    z = x * x
    r = z * (_C1 + z * (_C2 + z * (_C3 + z * (_C4 + z * (_C5 + z * _C6)))))
    small = 1.0 - (0.5 * z - (z * r - x * y))
    # qx = x/4 by clearing the low word and taking 2 from the exponent; 0.28125 above 0.78125.
    qx_bits = ((ix - 0x00200000) & 0xFFFFFFFF).astype(np.uint64) << np.uint64(32)
    qx = np.where(ix > 0x3FE90000, 0.28125, qx_bits.view(np.float64))
    hz = 0.5 * z - qx
    a = 1.0 - qx
    large = a - (hz - (z * r - x * y))
    out = np.where(ix < 0x3FD33333, small, large)
    return np.where(ix < 0x3E400000, 1.0, out)


def _rem_pio2(x):
    """n, y0, y1 with x = n·π/2 + (y0 + y1), |y0 + y1| ≤ π/4 (fdlibm __ieee754_rem_pio2, |x| ≤ 2^19·π/2)."""
    hx = _high(x)
    ix = hx & 0x7FFFFFFF
    if np.any(ix > 0x413921FB):
        raise ValueError('angle beyond the medium range of __ieee754_rem_pio2')
    n = np.zeros(x.shape, np.int64)
    y0 = x.copy()
    y1 = np.zeros(x.shape)
    # |x| < 3π/4: n = ±1.
    near = (ix > 0x3FE921FB) & (ix < 0x4002D97C)
    pos = hx > 0
    exact_pio2 = ix == 0x3FF921FB
    z = np.where(pos, x - _PIO2_1, x + _PIO2_1)
    z2 = np.where(pos, z - _PIO2_2, z + _PIO2_2)
    a0 = np.where(pos, z - _PIO2_1T, z + _PIO2_1T)
    a1 = np.where(pos, (z - a0) - _PIO2_1T, (z - a0) + _PIO2_1T)
    b0 = np.where(pos, z2 - _PIO2_2T, z2 + _PIO2_2T)
    b1 = np.where(pos, (z2 - b0) - _PIO2_2T, (z2 - b0) + _PIO2_2T)
    s0 = np.where(exact_pio2, b0, a0)
    s1 = np.where(exact_pio2, b1, a1)
    n = np.where(near, np.where(pos, 1, -1), n)
    y0 = np.where(near, s0, y0)
    y1 = np.where(near, s1, y1)
    # Medium: |x| < 2^19·π/2.
    med = ix >= 0x4002D97C
    t = np.abs(x)
    nm = (t * _INVPIO2 + 0.5).astype(np.int64)  # C's (int32_t) truncation; t ≥ 0
    fn = nm.astype(np.float64)
    r = t - fn * _PIO2_1
    w = fn * _PIO2_1T
    m0 = r - w
    hw = _NPIO2_HW[np.clip(nm - 1, 0, 31)]
    quick = (nm < 32) & (ix != hw)
    j = ix >> 20
    i = j - ((_high(m0) >> 20) & 0x7FF)
    second = ~quick & (i > 16)
    t2 = r
    w2 = fn * _PIO2_2
    r2 = t2 - w2
    w2 = fn * _PIO2_2T - ((t2 - r2) - w2)
    m2 = r2 - w2
    i2 = j - ((_high(m2) >> 20) & 0x7FF)
    third = second & (i2 > 49)
    w3 = fn * _PIO2_3
    r3 = r2 - w3
    w3 = fn * _PIO2_3T - ((r2 - r3) - w3)
    m3 = r3 - w3
    R = np.where(third, r3, np.where(second, r2, r))
    W = np.where(third, w3, np.where(second, w2, w))
    Y0 = np.where(third, m3, np.where(second, m2, m0))
    Y1 = (R - Y0) - W
    neg = hx < 0
    n = np.where(med, np.where(neg, -nm, nm), n)
    y0 = np.where(med, np.where(neg, -Y0, Y0), y0)
    y1 = np.where(med, np.where(neg, -Y1, Y1), y1)
    return n, y0, y1


def _both(x):
    x = np.ascontiguousarray(x, np.float64)
    ix = _high(x) & 0x7FFFFFFF
    n, y0, y1 = _rem_pio2(x)
    small = ix <= 0x3FE921FB
    y0 = np.where(small, x, y0)
    y1 = np.where(small, 0.0, y1)
    n = np.where(small, 0, n) & 3
    ks = _kernel_sin(y0, y1, 1)
    ks_small = _kernel_sin(y0, y1, 0)
    kc = _kernel_cos(y0, y1)
    ks = np.where(small, ks_small, ks)
    sin = np.select([n == 0, n == 1, n == 2], [ks, kc, -ks], -kc)
    cos = np.select([n == 0, n == 1, n == 2], [kc, -ks, -kc], ks)
    return sin, cos


def sin(x):
    return _both(x)[0]


def cos(x):
    return _both(x)[1]
