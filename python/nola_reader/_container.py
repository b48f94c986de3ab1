"""Reading a NOLA file (docs/FORMAT.md): the safetensors container, the envelope and the document
(versions 1, 2 and 3), and every layer's coefficient blocks decoded to float64.

Block decoding is table-driven: CODECS maps a storage mode to (bytes of codes, bytes of scales, decode);
a new mode is one entry there.
"""
import collections
import functools
import hashlib
import json
import math
import struct
import zlib

import numpy as np

from . import _js
from ._errors import FormatError, IoError

GENERATOR = 'lowbias32-v1'
GROUP = 64
MAX_DOCUMENT_BYTES = 100_000_000
MAX_HEADER_BYTES = 100_000_000
MAX_RICE_K = 24
MAX_LEVEL = 2 ** 30
MAX_SEGMENTS = 1024
VERSIONS = (1, 2, 3)
RANS_VERSION = 3  # the first format_version that holds rans blocks
# docs/FORMAT.md "rANS blocks": R_p, the 24-bit fixed-point exp(-1/(2u^2)), u = 2^((p - 24)/8) (normative).
RANS_R = (
    0, 0, 0, 0, 2, 24, 205, 1239,
    5628, 20098, 58611, 144164, 307285, 580675, 991630, 1555205,
    2270549, 3121236, 4078822, 5108034, 6171993, 7236411, 8272320, 9257354,
    10175896, 11018477, 11780768, 12462448, 13066109, 13596300, 14058751, 14459778,
    14805841, 15103247, 15357953, 15575456, 15760736, 15918242, 16051906, 16165172,
    16261035, 16342086, 16410554, 16468351, 16517109, 16558222, 16592872, 16622066,
    16646655, 16667359, 16684790, 16699461, 16711808, 16722197, 16730939, 16738293,
    16744480, 16749684, 16754062, 16757743, 16760840, 16763444, 16765635, 16767477,
    16769026, 16770329, 16771424, 16772346, 16773120, 16773772, 16774320, 16774781,
    16775168, 16775494, 16775768, 16775998, 16776192, 16776355, 16776492, 16776607,
    16776704, 16776785, 16776854, 16776912, 16776960, 16777001, 16777035, 16777064,
    16777088, 16777108, 16777125, 16777140, 16777152, 16777162, 16777171, 16777178,
)
RANS_P_MAX = len(RANS_R) - 1  # 95
RANS_HEADER = 9               # f32 step, u8 p, u32 state
RANS_M_BITS = 16              # frequencies out of M = 2^16
RANS_LOW = 1 << 23            # the state stays in [2^23, 2^31); the writer starts (and a block ends) at 2^23
RANS_HIGH = 1 << 31
RANS_MAX_L = 4095
BASES = ('uniform', 'orthogonal', 'orthogonal-components')
LAYER_FIELDS = ['name', 'style', 'kind', 'shape_A', 'd_out', 'rank', 'alpha', 'scale', 'basis', 'seed_A', 'seed_B',
                'num_basis_A', 'num_basis_B', 'quant_A', 'quant_B', 'error', 'error_expanded']
DTYPE_SIZES = {'F64': 8, 'F32': 4, 'F16': 2, 'BF16': 2, 'I64': 8, 'I32': 4, 'I16': 2, 'I8': 1,
               'U8': 1, 'U16': 2, 'U32': 4, 'U64': 8, 'BOOL': 1, 'F8_E4M3': 1, 'F8_E5M2': 1}


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise FormatError(f'duplicate key {k!r} in JSON')
        out[k] = v
    return out


def parse_json(text, what):
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except FormatError as e:
        raise FormatError(f'{what}: {e}') from None
    except (ValueError, RecursionError) as e:
        raise FormatError(f'{what} is not valid JSON ({e})') from None


def read_safetensors(path):
    """(metadata or None, {name: (dtype, shape, bytes)} in header order)."""
    with open(path, 'rb') as f:  # a missing or unreadable file raises the usual OSError (FileNotFoundError, ...)
        data = f.read()
    if len(data) < 8:
        raise FormatError(f'{path}: shorter than a safetensors header')
    (n,) = struct.unpack('<Q', data[:8])
    if n > MAX_HEADER_BYTES or 8 + n > len(data):
        raise FormatError(f'{path}: header length {n} does not fit the file')
    try:
        header = parse_json(data[8:8 + n].decode('utf-8'), f'{path}: header')
    except UnicodeDecodeError:
        raise FormatError(f'{path}: header is not UTF-8') from None
    if not isinstance(header, dict):
        raise FormatError(f'{path}: header is not a JSON object')
    meta = header.pop('__metadata__', None)
    base = 8 + n
    tensors, end = {}, 0
    for name, info in sorted(header.items(), key=lambda kv: kv[1].get('data_offsets', [0])[0] if isinstance(kv[1], dict) else 0):
        try:
            dtype, shape, (b, e) = info['dtype'], info['shape'], info['data_offsets']
        except (KeyError, TypeError, ValueError):
            raise FormatError(f'{path}: tensor {name!r} has a malformed entry') from None
        if dtype not in DTYPE_SIZES or b != end or e < b or e - b != int(np.prod(shape, dtype=np.int64)) * DTYPE_SIZES[dtype]:
            raise FormatError(f'{path}: tensor {name!r} ({dtype} {shape}, bytes {b}..{e}) does not match the layout')
        end = e
        tensors[name] = (dtype, shape, data[base + b: base + e])
    if base + end != len(data):
        raise FormatError(f'{path}: {len(data) - base - end} bytes after the last tensor')
    ordered = {k: tensors[k] for k in header}
    return meta, ordered


# ----------------------------------------------------------------------------------------------
# Coefficient blocks

def _bits_le(raw):
    return np.unpackbits(np.frombuffer(raw, np.uint8), bitorder='little')


def _f16(raw):
    return np.frombuffer(raw, '<f2').astype(np.float64)


def _bf16(raw):
    return (np.frombuffer(raw, '<u2').astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def _decode_float(mode):
    def decode(codes, scales, count):
        v = {'f32': lambda r: np.frombuffer(r, '<f4').astype(np.float64), 'f16': _f16, 'bf16': _bf16}[mode](codes)
        if not np.all(np.isfinite(v)):
            raise FormatError(f'{mode} block: non-finite coefficient')
        return v
    return decode


def _decode_int(bits):
    def decode(codes, scales, count):
        stream = _bits_le(codes)
        if stream[count * bits:].any():
            raise FormatError(f'int{bits} block: the padding bits after the last code are not zero')
        u = (stream[:count * bits].reshape(count, bits).astype(np.int64) << np.arange(bits)).sum(axis=1)
        if (u == 0).any():
            raise FormatError(f'int{bits} block: code 0 is reserved')
        sbits = np.frombuffer(scales, '<u2')
        if (sbits >= 0x7C00).any():
            raise FormatError(f'int{bits} block: scales must be finite and non-negative f16')
        s = _f16(scales)
        return (u - (1 << (bits - 1))) * np.repeat(s, GROUP)[:count]
    return decode


def _decode_rice(codes, scales, count):
    if len(codes) < 5:
        raise FormatError('rice block shorter than its header')
    step = float(np.frombuffer(codes[:4], '<f4')[0])
    k = codes[4]
    if not (step > 0 and np.isfinite(step)) or k > MAX_RICE_K:
        raise FormatError(f'rice block: step {step} or k {k} out of range')
    nrem = (count * k + 7) // 8
    if 5 + nrem > len(codes):
        raise FormatError('rice block too short for its remainders')
    rem_bits = _bits_le(codes[5:5 + nrem])
    if rem_bits[count * k:].any():
        raise FormatError('rice block: the padding bits after the last remainder are not zero')
    rem = (rem_bits[:count * k].reshape(count, k).astype(np.int64) << np.arange(k)).sum(axis=1) if k else np.zeros(count, np.int64)
    unary = _bits_le(codes[5 + nrem:])
    ones = np.flatnonzero(unary)
    if len(ones) < count:
        raise FormatError(f'rice block: the unary stream ends before value {len(ones)} of {count}')
    if len(ones) > count or (len(unary) - (ones[-1] + 1 if count else 0)) >= 8 or (count == 0 and len(unary)):
        raise FormatError('rice block: bytes or bits after the last value')
    quotient = np.diff(ones, prepend=-1) - 1
    z = (quotient.astype(np.int64) << k) + rem
    if (z >= 2 * MAX_LEVEL).any():
        raise FormatError('rice block: a level exceeds 2^30')
    q = np.where(z % 2 == 0, z // 2, -(z + 1) // 2)
    return q * step


@functools.lru_cache(maxsize=None)
def rans_model(p):
    """The model for p (FORMAT.md, integer arithmetic only): (L, f, C) with f[j], C[j] the frequency and the
    cumulative frequency of level j - L, j = 0 .. 2L (tuples of ints; f sums to 2^16, every f >= 1)."""
    w, c = [1 << 24], RANS_R[p]
    r2 = (c * c) >> 24
    while len(w) <= RANS_MAX_L:  # w_{q+1} for q = len(w) - 1 = 0, 1, ..., 4094 at most
        nxt = (w[-1] * c) >> 24
        if nxt == 0:
            break
        w.append(nxt)
        c = (c * r2) >> 24
    L = len(w) - 1
    n, m = 2 * L + 1, 1 << RANS_M_BITS
    total = w[0] + 2 * sum(w[1:])
    f = [1 + (w[abs(q)] * (m - n)) // total for q in range(-L, L + 1)]
    f[L] += m - sum(f)
    C = [0] * n
    for j in range(1, n):
        C[j] = C[j - 1] + f[j - 1]
    return L, tuple(f), tuple(C)


@functools.lru_cache(maxsize=16)
def _rans_slots(p):
    """slot[s] = j, the level index with C[j] <= s < C[j] + f[j], for every s in [0, 2^16) (a list: indexing
    it is the fastest lookup plain Python has; [j] * f[j] shares one int object per level)."""
    _, f, _ = rans_model(p)
    slot = []
    for j, fj in enumerate(f):
        slot += [j] * fj
    return slot


def _rans_header(codes):
    """(step, p, state) of a rans block; FormatError where the header breaks FORMAT.md's rules."""
    if len(codes) < RANS_HEADER:
        raise FormatError(f'rans block shorter than its {RANS_HEADER}-byte header')
    step = float(np.frombuffer(codes[:4], '<f4')[0])
    p = codes[4]
    x = int.from_bytes(codes[5:9], 'little')
    if not (step > 0 and np.isfinite(step)):
        raise FormatError(f'rans block: step {step} out of range')
    if p > RANS_P_MAX:
        raise FormatError(f'rans block: model p {p} out of range (0..{RANS_P_MAX})')
    if not RANS_LOW <= x < RANS_HIGH:
        raise FormatError(f'rans block: state {x} outside [2^23, 2^31)')
    return step, p, x


def _rans_run(block, p, x, at, start, count, out):
    """Decode values start .. count - 1 of a block from state x at byte `at`, appending the level indices to
    `out`; returns (x, at) after the last value."""
    L, f, C = rans_model(p)
    slot = _rans_slots(p)
    i = start
    try:
        for i in range(start, count):
            s = x & 0xFFFF
            j = slot[s]
            out.append(j)
            x = f[j] * (x >> 16) + s - C[j]
            while x < 8388608:  # RANS_LOW
                x = (x << 8) | block[at]  # IndexError: no byte left
                at += 1
    except IndexError:
        raise FormatError(f'rans block: the renormalization bytes run out at value {i} of {count}') from None
    return x, at


def _rans_end(x, at, size):
    if x != RANS_LOW:
        raise FormatError(f'rans block: ends in state {x}, not the starting state 2^23')
    if at != size:
        raise FormatError(f'rans block: bytes after the last value ({size - at} unread)')


def _decode_rans(codes, scales, count):
    step, p, x = _rans_header(codes)
    block = bytes(codes)
    out = []
    x, at = _rans_run(block, p, x, RANS_HEADER, 0, count, out)
    _rans_end(x, at, len(block))
    return np.asarray(Dequantized([(np.array(out, np.int64), rans_model(p)[0], step)]))


# Below this many blocks still being decoded, decode_rans_many finishes each block on its own (a numpy step
# over few lanes costs more than the plain loop over them).
LOCKSTEP_MIN_LANES = 48


class Dequantized:
    """Coefficients of rans blocks kept as their level indices until used: np.asarray(x) gives the float64
    values _decode_rans returns, (j - L)·step for each block in turn (read_nola(compact=True): 2 bytes a
    value held, not 8). `parts`: (level indices, L, step) per block."""
    __slots__ = ('parts',)

    def __init__(self, parts):
        self.parts = parts

    def __array__(self, dtype=None, copy=None):
        v = np.concatenate([(j.astype(np.int64) - L) * step for j, L, step in self.parts])
        return v if dtype is None else v.astype(dtype, copy=False)


def decode_rans_many(blocks, compact=False):
    """Every (codes, count) rans block at once: a list of float64 arrays (Dequantized with `compact`), or of
    the FormatError each block's _decode_rans would raise. The same arithmetic as _decode_rans, run in lockstep over the blocks (one numpy
    operation a step for all of them: rANS is sequential within a block, not across blocks), longest blocks
    first so that the blocks still running are always a prefix."""
    results = [None] * len(blocks)
    lanes = []  # (count, index, step, p, x, block bytes)
    for b, (codes, count) in enumerate(blocks):
        try:
            step, p, x = _rans_header(codes)
        except FormatError as e:
            results[b] = e
            continue
        lanes.append((count, b, step, p, x, bytes(codes)))
    lanes.sort(key=lambda t: -t[0])
    n = len(lanes)
    if n == 0:
        return results
    models = sorted({t[3] for t in lanes})
    slot_base, f_base, slots, fs, cs = {}, {}, [], [], []
    for p in models:
        _, f, C = rans_model(p)
        slot_base[p], f_base[p] = len(slots) * 65536, sum(len(a) for a in fs)
        slots.append(np.repeat(np.arange(len(f), dtype=np.int32), f))
        fs.append(np.array(f, np.int64))
        cs.append(np.array(C, np.int64))
    slot_all, f_all, c_all = np.concatenate(slots), np.concatenate(fs), np.concatenate(cs)
    counts = np.array([t[0] for t in lanes], np.int64)
    starts = np.zeros(n + 1, np.int64)
    starts[1:] = np.cumsum([len(t[5]) for t in lanes])
    buf = np.frombuffer(b''.join(t[5] for t in lanes) + b'\0', np.uint8)
    ptr = starts[:-1] + RANS_HEADER  # each lane's next byte in buf
    end = starts[1:]
    x = np.array([t[4] for t in lanes], np.int64)
    mbase = np.array([slot_base[t[3]] for t in lanes], np.int64)
    fbase = np.array([f_base[t[3]] for t in lanes], np.int64)
    offs = np.zeros(n + 1, np.int64)
    offs[1:] = np.cumsum(counts)
    levels = np.zeros(int(offs[-1]), np.int16)  # level indices j (< 2^13)
    failed_at = np.full(n, -1, np.int64)  # the value at which a lane's bytes ran out
    active, i = n, 0
    while True:
        while active > 0 and counts[active - 1] <= i:
            active -= 1
        if active < LOCKSTEP_MIN_LANES:
            break
        xa = x[:active]
        s = xa & 0xFFFF
        j = slot_all[mbase[:active] + s]
        levels[offs[:active] + i] = j
        k = fbase[:active] + j
        xa[:] = f_all[k] * (xa >> 16) + s - c_all[k]
        for _ in range(2):  # from x >= 128 (f >= 1, x >= 2^23 before the step) two bytes reach 2^23
            low = np.flatnonzero(xa < RANS_LOW)
            if low.size == 0:
                break
            at = ptr[low]
            out_of_bytes = at >= end[low]
            if out_of_bytes.any():
                lost = low[out_of_bytes]
                failed_at[lost] = np.where(failed_at[lost] < 0, i, failed_at[lost])
                at = np.minimum(at, len(buf) - 1)
            xa[low] = (xa[low] << 8) | buf[at]
            ptr[low] += 1
        i += 1
    for lane, (count, b, step, p, _, block) in enumerate(lanes):
        try:
            if failed_at[lane] >= 0:
                raise FormatError(f'rans block: the renormalization bytes run out at value {failed_at[lane]} of {count}')
            xl, at = int(x[lane]), int(ptr[lane] - starts[lane])
            if lane < active:  # still running: finish it on its own
                rest = []
                xl, at = _rans_run(block, p, xl, at, i, count, rest)
                levels[offs[lane] + i:offs[lane + 1]] = rest
            _rans_end(xl, at, len(block))
            mine = Dequantized([(levels[offs[lane]:offs[lane + 1]], rans_model(p)[0], step)])
            results[b] = mine if compact else np.asarray(mine)
        except FormatError as e:
            results[b] = e
    return results


def _int_sizes(bits):
    return lambda n, seg: ((n * bits + 7) // 8, 2 * ((n + GROUP - 1) // GROUP))


# mode -> (sizes(count, segment) -> (code bytes, scale bytes), decode(codes, scales, count) -> float64[count])
CODECS = {
    'f32': (lambda n, seg: (4 * n, 0), _decode_float('f32')),
    'f16': (lambda n, seg: (2 * n, 0), _decode_float('f16')),
    'bf16': (lambda n, seg: (2 * n, 0), _decode_float('bf16')),
    **{f'int{b}': (_int_sizes(b), _decode_int(b)) for b in (8, 6, 5, 4, 3, 2)},
    'rice': (lambda n, seg: (seg[2], 0), _decode_rice),
    'rans': (lambda n, seg: (seg[2], 0), _decode_rans),
}
# Blocks that state their byte length (["rice" | "rans", count, bytes]) and the least bytes their header takes.
BLOCK_MIN_BYTES = {'rice': 5, 'rans': RANS_HEADER}
SINGLE_MODES = [m for m in CODECS if m not in BLOCK_MIN_BYTES]


def segments(spec, count, where):
    """A factor's storage: one mode, or 1..MAX_SEGMENTS segments [mode, count] / ["rice" | "rans", count, bytes]
    summing to count."""
    if isinstance(spec, str):
        if spec not in SINGLE_MODES:
            raise FormatError(f'{where}: unknown storage mode {spec!r}')
        return [(spec, count)]
    ok = isinstance(spec, list) and 1 <= len(spec) <= MAX_SEGMENTS and all(
        isinstance(s, list) and len(s) >= 2 and s[0] in CODECS and isinstance(s[1], int) and s[1] >= 1
        and (len(s) == 3 and isinstance(s[2], int) and s[2] >= BLOCK_MIN_BYTES[s[0]] if s[0] in BLOCK_MIN_BYTES else len(s) == 2)
        for s in spec)
    if not ok or sum(s[1] for s in spec) != count:
        raise FormatError(f'{where}: bad storage segments {json.dumps(spec)} for {count} coefficients')
    return [tuple(s) for s in spec]


def block_sizes(spec, count, where):
    codes = scales = 0
    for seg in segments(spec, count, where):
        c, s = CODECS[seg[0]][0](seg[1], seg)
        codes, scales = codes + c, scales + s
    return codes, scales


def _segment_bytes(spec, count, codes, scales, where):
    """(segment, its code bytes, its scale bytes) for each segment of a factor's block, in order."""
    c = s = 0
    for seg in segments(spec, count, where):
        nc, ns = CODECS[seg[0]][0](seg[1], seg)
        yield seg, codes[c:c + nc], scales[s:s + ns]
        c, s = c + nc, s + ns


def decode_block(spec, count, codes, scales, where, rans=None):
    """A factor's coefficients (float64). `rans`, if given, decodes its rans segments in place of _decode_rans
    (read_nola passes the blocks decode_rans_many decoded ahead)."""
    out = []
    for seg, seg_codes, seg_scales in _segment_bytes(spec, count, codes, scales, where):
        decode = rans if rans is not None and seg[0] == 'rans' else CODECS[seg[0]][1]
        try:
            out.append(decode(seg_codes, seg_scales, seg[1]))
        except FormatError as e:
            raise FormatError(f'{where}: {e}') from None
    if block_sizes(spec, count, where) != (len(codes), len(scales)):
        raise FormatError(f'{where}: block sizes do not match its storage')
    # rans blocks only (the usual case): kept as they were decoded (Dequantized with compact, or one array).
    if out and all(isinstance(o, Dequantized) for o in out):
        return Dequantized([part for o in out for part in o.parts])
    return out[0] if len(out) == 1 else np.concatenate([np.asarray(o) for o in out])


# ----------------------------------------------------------------------------------------------
# The document

def _key(pattern, name):
    return pattern if isinstance(pattern, str) else pattern[0] + name + pattern[1]


# Most values a factor may have (rank·d_in, d_out·rank): docs/FORMAT.md, "Limits" of the format.
MAX_FACTOR_ENTRIES = 2 ** 31 - 1


def _is_shape(s):
    return (isinstance(s, list) and 2 <= len(s) <= 8
            and all(isinstance(d, int) and not isinstance(d, bool) and 0 < d <= 0xFFFFFFFF for d in s))


def _check_layer(e, where):
    # A layer that keeps nothing stores nothing: k = l = 0 on the orthogonal basis, both factors zero.
    empty = e.get('num_basis_A') == 0 and e.get('num_basis_B') == 0 and e.get('basis') == 'orthogonal'
    for f in ('rank', 'source_rank', 'd_in', 'd_out', 'num_basis_A', 'num_basis_B'):
        if not isinstance(e.get(f), int) or isinstance(e.get(f), bool) or e[f] < (0 if empty and f.startswith('num_basis') else 1):
            raise FormatError(f'{where}: {f} must be a positive integer')
    for f in ('seed_A', 'seed_B'):
        if not isinstance(e.get(f), int) or not 0 <= e[f] <= 0xFFFFFFFF:
            raise FormatError(f'{where}: {f} must be an unsigned 32-bit integer')
    if e['rank'] > e['source_rank']:
        raise FormatError(f'{where}: rank {e["rank"]} exceeds the source rank {e["source_rank"]}')
    if e['source_rank'] > min(e['d_in'], e['d_out']):
        raise FormatError(f'{where}: source rank {e["source_rank"]} exceeds min(d_in, d_out) = {min(e["d_in"], e["d_out"])}')
    if e['rank'] * e['d_in'] > MAX_FACTOR_ENTRIES or e['d_out'] * e['rank'] > MAX_FACTOR_ENTRIES:
        raise FormatError(f'{where}: a factor of more than {MAX_FACTOR_ENTRIES} values')
    a, b = e.get('shape_A'), e.get('shape_B')
    if not (_is_shape(a) and _is_shape(b)):
        raise FormatError(f'{where}: shape_A and shape_B must be lists of 2 to 8 positive integers')
    conv = len(a) > 2 or len(b) > 2
    if (a[0] != e['source_rank'] or b[1] != e['source_rank'] or math.prod(a[1:]) != e['d_in'] or b[0] != e['d_out']
            or any(d != 1 for d in b[2:]) or (conv and len(a) != len(b)) or conv != (e.get('kind') == 'conv')):
        raise FormatError(f'{where}: shape_A {a} and shape_B {b} do not match its source_rank, d_in, d_out and kind')
    if e.get('basis') not in BASES:
        raise FormatError(f'{where}: unknown basis {e.get("basis")!r}')
    if e['basis'] == 'orthogonal-components' and (e['num_basis_A'] != e['rank'] * e['d_in'] or e['num_basis_B'] != e['d_out'] * e['rank']):
        raise FormatError(f'{where}: the orthogonal-components basis is full span')
    if e['num_basis_A'] > e['rank'] * e['d_in'] or e['num_basis_B'] > e['d_out'] * e['rank']:
        raise FormatError(f'{where}: more coefficients than the factor has entries')
    for f in ('scale', 'source_scale'):
        if not isinstance(e.get(f), (int, float)) or not np.isfinite(e[f]):
            raise FormatError(f'{where}: {f} must be a finite number')
    for f in ('dtype_A', 'dtype_B'):
        if e.get(f) not in ('F64', 'F32', 'F16', 'BF16'):
            raise FormatError(f'{where}: {f} must be F64, F32, F16 or BF16')


def _check_block_kinds(e, version, where):
    """rans blocks exist from format_version 3 on: a version-1 or version-2 file that holds one is refused."""
    if version >= RANS_VERSION:
        return
    for f in 'AB':
        spec = e.get('quant_' + f)
        if isinstance(spec, list) and any(isinstance(s, list) and s[:1] == ['rans'] for s in spec):
            raise FormatError(f'{where}: factor {f} holds a rans segment, which needs format_version {RANS_VERSION} (this file states {version})')


# What reading a file may cost, as nola's defaults (src/pipeline/limits.ts, README "Limits"): a NOLA file is a
# few seeds and coefficients that expand into factors of any claimed size, so each cost is checked before
# anything is decoded or allocated. load()'s max_* arguments set them.
DEFAULT_LIMITS = {'max_factor_values': 2 ** 24, 'max_output_bytes': 2 ** 31, 'max_basis_work': 2 ** 36}


def _size(n):
    return f'{n / 2 ** 30:.1f} GiB' if n >= 2 ** 30 else f'{n / 2 ** 20:.1f} MiB'


def check_limits(path, layers, passthrough, limits):
    """IoError (exit 7) where a factor holds more than max_factor_values values, the expanded tensors more than
    max_output_bytes bytes, or the uniform basis more than max_basis_work multiply-adds (Σ k·n); the same sums
    as nola's assertLayersFit (src/pipeline/nola-source.ts)."""
    out_bytes = work = 0
    for e in layers:
        for f, rows, cols in (('A', e['rank'], e['d_in']), ('B', e['d_out'], e['rank'])):
            if rows * cols > limits['max_factor_values']:
                raise IoError(f'{path}: layer {_js.stringify(e["name"])} factor {f} is {rows} x {cols} values ({_size(8 * rows * cols)} as float64), '
                              f'more than the limit of {limits["max_factor_values"]} values per factor (max_factor_values= raises it)')
        out_bytes += e['rank'] * e['d_in'] * DTYPE_SIZES[e['dtype_A']] + e['d_out'] * e['rank'] * DTYPE_SIZES[e['dtype_B']]
        out_bytes += DTYPE_SIZES[e['dtype_alpha']] if e.get('dtype_alpha') else 0
        if e['basis'] == 'uniform':
            work += e['num_basis_A'] * e['rank'] * e['d_in'] + e['num_basis_B'] * e['d_out'] * e['rank']
    out_bytes += sum(len(p[3]) for p in passthrough)
    if out_bytes > limits['max_output_bytes']:
        raise IoError(f'{path}: expanding it would produce {out_bytes} bytes ({_size(out_bytes)}), '
                      f'more than the limit of {limits["max_output_bytes"]} bytes (max_output_bytes= raises it)')
    if work > limits['max_basis_work']:
        mantissa, exponent = f'{work:.3e}'.split('e')  # as JavaScript's toExponential(3): 1.321e+6
        raise IoError(f'{path}: its uniform-basis layers need {mantissa}e{int(exponent):+d} multiply-adds (Σ k·n), '
                      f'more than the limit of {limits["max_basis_work"]} (max_basis_work= raises it)')


def read_nola(path, limits=None, compact=False):
    """The NOLA file as {'family', 'file', 'metadata', 'config', 'layers': [...], 'passthrough': [(name, dtype, shape, bytes)]}.
    Each layer is a dict with version-1 field names plus 'coeffs_A' / 'coeffs_B' (float64; with `compact`, a
    factor stored in rans blocks only is a Dequantized, np.asarray of which is that array). `limits`: see
    check_limits (default DEFAULT_LIMITS), checked before any block is decoded."""
    limits = {**DEFAULT_LIMITS, **(limits or {})}
    meta, tens = read_safetensors(path)
    if not isinstance(meta, dict) or not isinstance(meta.get('nola'), str):
        raise FormatError(f'{path}: not a NOLA file (no "nola" metadata entry)')
    env = parse_json(meta['nola'], f'{path}: "nola" metadata')
    if not isinstance(env, dict):
        raise FormatError(f'{path}: "nola" metadata is not a JSON object')
    version = env.get('format_version')
    if env.get('generator') != GENERATOR or isinstance(version, bool) or version not in VERSIONS:
        raise FormatError(f'{path}: format_version {version!r} / generator {env.get("generator")!r} not supported (this reader knows 1, 2 and 3, {GENERATOR})')

    def raw(name, what):
        t = tens.get(name)
        if t is None:
            raise FormatError(f'{path}: {what} tensor {name!r} missing')
        return t

    if version in (2, 3):
        dname = env.get('document')
        dt = raw(dname, 'document')
        if dt[0] != 'U8':
            raise FormatError(f'{path}: document tensor must be U8')
        z = zlib.decompressobj()
        body = z.decompress(dt[2], MAX_DOCUMENT_BYTES)
        if z.unconsumed_tail:
            raise FormatError(f'{path}: document inflates past {MAX_DOCUMENT_BYTES} bytes')
        if not z.eof or z.unused_data:
            raise FormatError(f'{path}: document tensor is not exactly one zlib stream')
        try:
            doc = parse_json(body.decode('utf-8'), f'{path}: document')
        except UnicodeDecodeError:
            raise FormatError(f'{path}: document is not UTF-8') from None
        if doc.get('layer_fields') != LAYER_FIELDS:
            raise FormatError(f'{path}: "layer_fields" must be {LAYER_FIELDS}')
        stream = raw(doc['coeffs']['tensor'], 'coefficient')[2]
        if hashlib.sha256(stream).hexdigest() != doc['coeffs'].get('sha256'):
            raise FormatError(f'{path}: the coefficient tensor does not match the SHA-256 the file states (damaged or altered)')
        styles = doc['key_styles']
        layers, at, factors = [], 0, []
        for i, row in enumerate(doc['layers']):
            if not isinstance(row, list) or len(row) != len(LAYER_FIELDS):
                raise FormatError(f'{path}: layer {i} is not a row of {len(LAYER_FIELDS)} values')
            r = dict(zip(LAYER_FIELDS, row))
            if not isinstance(r['style'], int) or not 0 <= r['style'] < len(styles):
                raise FormatError(f'{path}: layer {i}: bad style')
            st, name, a = styles[r['style']], r['name'], r['shape_A']
            if not _is_shape(a):
                raise FormatError(f'{path}: layer {i}: shape_A must be a list of 2 to 8 positive integers')
            e = {'name': name, 'kind': r['kind'], 'key_A': _key(st['A'], name), 'key_B': _key(st['B'], name),
                 'dtype_A': st.get('dtype_A'), 'dtype_B': st.get('dtype_B'), 'shape_A': a,
                 'shape_B': [r['d_out'], a[0]] + [1] * (len(a) - 2), 'source_rank': a[0], 'rank': r['rank'],
                 'd_in': math.prod(a[1:]), 'd_out': r['d_out'], 'source_scale': r['scale'], 'scale': r['scale'],
                 'basis': r['basis'], 'seed_A': r['seed_A'], 'seed_B': r['seed_B'],
                 'num_basis_A': r['num_basis_A'], 'num_basis_B': r['num_basis_B'],
                 'quant_A': r['quant_A'], 'quant_B': r['quant_B'], 'error': r['error']}
            if 'alpha' in st:
                e['key_alpha'], e['dtype_alpha'] = _key(st['alpha'], name), st['dtype_alpha']
            if r['alpha'] is not None:
                e['alpha'] = r['alpha']
            where = f'{path}: layer {name!r}'
            _check_layer(e, where)
            _check_block_kinds(e, version, where)
            for f in 'AB':
                nc, ns = block_sizes(e['quant_' + f], e['num_basis_' + f], where)
                codes, scales = stream[at:at + nc], stream[at + nc:at + nc + ns]
                at += nc + ns
                if at > len(stream):
                    raise FormatError(f'{path}: the coefficient stream is shorter than its layers')
                factors.append((e, f, codes, scales, f'{where} factor {f}'))
            layers.append(e)
        if at != len(stream):
            raise FormatError(f'{path}: the coefficient stream has {len(stream) - at} bytes no layer describes')
    else:
        doc = env
        layers, factors = doc['layers'], []
        for e in layers:
            where = f'{path}: layer {e.get("name")!r}'
            _check_layer(e, where)
            _check_block_kinds(e, version, where)
            for f in 'AB':
                codes = raw(e['coeffs_' + f], 'coefficient')[2]
                scales = raw(e['scales_' + f], 'scale')[2] if ('scales_' + f) in e else b''
                factors.append((e, f, codes, scales, f'{where} factor {f}'))
    src = doc['source']
    passthrough = []
    for p in doc.get('passthrough', []):
        dtype, shape, data = raw(p['tensor'], 'passthrough')
        passthrough.append((p['name'], dtype, shape, data))
    check_limits(path, layers, passthrough, limits)
    # The rans blocks of all layers decode together (decode_rans_many), then every factor in file order.
    rans_blocks = [(seg_codes, seg[1]) for e, f, codes, scales, where in factors
                   for seg, seg_codes, _ in _segment_bytes(e['quant_' + f], e['num_basis_' + f], codes, scales, where) if seg[0] == 'rans']
    # Handed out first to last and not held after: each factor's own array is all that stays of its blocks.
    decoded = collections.deque(decode_rans_many(rans_blocks, compact))

    def predecoded(codes, scales, count):
        r = decoded.popleft()
        if isinstance(r, FormatError):
            raise r
        return r

    for e, f, codes, scales, where in factors:
        e['coeffs_' + f] = decode_block(e['quant_' + f], e['num_basis_' + f], codes, scales, where, predecoded)
    return {'family': src['family'], 'file': src['file'], 'metadata': src.get('metadata'), 'config': src.get('config'),
            'layers': layers, 'passthrough': passthrough}
