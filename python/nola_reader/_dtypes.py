"""float64 -> safetensors dtype bytes as nola writes them: round to nearest, ties to even, directly from
the double (F16/BF16 never through float32: that would round twice). src/core/half.ts, src/io/safetensors/dtypes.ts."""
import numpy as np

_HALF = {'F16': (10, 5, 15), 'BF16': (7, 8, 127)}
SIZES = {'F64': 8, 'F32': 4, 'F16': 2, 'BF16': 2, 'I64': 8, 'I32': 4, 'I16': 2, 'I8': 1,
         'U8': 1, 'U16': 2, 'U32': 4, 'U64': 8, 'BOOL': 1, 'F8_E4M3': 1, 'F8_E5M2': 1}
# The reference writer's Dtype enum order (safetensors/src/tensor.rs): files list tensors by descending rank, then name.
REFERENCE_RANK = {'BOOL': 0, 'U8': 1, 'I8': 2, 'F8_E5M2': 3, 'F8_E4M3': 4, 'I16': 5, 'U16': 6, 'F16': 7, 'BF16': 8,
                  'I32': 9, 'U32': 10, 'F32': 11, 'F64': 12, 'I64': 13, 'U64': 14}
_INT = {'I64': '<i8', 'I32': '<i4', 'I16': '<i2', 'I8': '<i1', 'U8': '<u1', 'U16': '<u2', 'U32': '<u4', 'U64': '<u8'}


def half_bits(x, dtype):
    """IEEE binary16 or bfloat16 bits of float64 values (uint16), as src/core/half.ts encode()."""
    mant, expw, bias = _HALF[dtype]
    x = np.asarray(x, np.float64)
    exp_max = (1 << expw) - 1
    sign = np.where(np.signbit(x), 1 << 15, 0).astype(np.int64)
    a = np.abs(x)
    emin = 1 - bias
    _, E = np.frexp(a)
    e = np.where(a < 2.0 ** emin, emin, E.astype(np.int64) - 1)
    with np.errstate(over='ignore', invalid='ignore'):
        m = np.rint(np.ldexp(a, (mant - e).astype(np.int32)))
    m = np.where(np.isfinite(m), m, 0).astype(np.int64)
    hidden = 1 << mant
    carry = m == 2 * hidden
    e = np.where(carry, e + 1, e)
    m = np.where(carry, hidden, m)
    field = e + bias
    bits = np.where(m < hidden, sign | m, np.where(field >= exp_max, sign | (exp_max << mant), sign | (field << mant) | (m - hidden)))
    bits = np.where(np.isinf(a), sign | (exp_max << mant), bits)
    bits = np.where(np.isnan(x), (exp_max << mant) | (1 << (mant - 1)), bits)
    return bits.astype(np.uint16)


def encode(values, dtype):
    """Little-endian bytes of float64 values in a float dtype."""
    v = np.asarray(values, np.float64).ravel()
    if dtype == 'F64':
        return v.astype('<f8').tobytes()
    if dtype == 'F32':
        return v.astype('<f4').tobytes()
    if dtype in _HALF:
        return half_bits(v, dtype).astype('<u2').tobytes()
    raise ValueError(f'cannot encode floats as {dtype}')


def decode(raw, dtype, shape=None):
    """float64 values of little-endian bytes (floats and integers)."""
    if dtype == 'F64':
        a = np.frombuffer(raw, '<f8').astype(np.float64)
    elif dtype == 'F32':
        a = np.frombuffer(raw, '<f4').astype(np.float64)
    elif dtype == 'F16':
        a = np.frombuffer(raw, '<f2').astype(np.float64)
    elif dtype == 'BF16':
        a = (np.frombuffer(raw, '<u2').astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    elif dtype in _INT:
        a = np.frombuffer(raw, _INT[dtype]).astype(np.float64)
    else:
        raise ValueError(f'cannot decode {dtype}')
    return a if shape is None else a.reshape(shape)


def scalar_bytes(value, dtype):
    if dtype in ('F64', 'F32', 'F16', 'BF16'):
        return encode([value], dtype)
    if dtype in _INT:
        return np.array([int(value)], _INT[dtype]).tobytes()
    raise ValueError(f'cannot write an alpha of dtype {dtype}')


def representable(x, dtype):
    """The value nearest x that a tensor of dtype holds exactly (integers: JavaScript's Math.round)."""
    if dtype in ('F64', 'F32', 'F16', 'BF16'):
        return float(decode(encode([x], dtype), dtype)[0])
    if dtype in _INT:
        f = np.floor(x)
        return float(f + 1 if x - f >= 0.5 else f)
    raise ValueError(f'cannot write an alpha of dtype {dtype}')
