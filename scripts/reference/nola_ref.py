#!/usr/bin/env python3
"""Independent numpy reference for nola (tests and benchmarks only; never a runtime dependency).

Written from the specification in docs/FORMAT.md, not from the TypeScript code:
  - a minimal safetensors reader,
  - generator lowbias32-v1, the uniform and orthogonal bases,
  - coefficient dequantization (fixed-size modes, rice and rans blocks),
  - layer reconstruction and relative errors,
  - a dense least-squares ALS fit (the "dense-Gram ALS reference").

Usage:
  nola_ref.py validate NOLA                  -> JSON: {"ok": true} or {"ok": false, "refused": why} (FORMAT.md's reader rules)
  nola_ref.py check NOLA SOURCE [EXPANDED]   -> JSON: per layer claimed/recomputed error, expanded-vs-NOLA diff
  nola_ref.py als NOLA SOURCE ROUNDS         -> JSON: per layer, the error of dense ALS with the same bases
  nola_ref.py als-gram NOLA SOURCE ROUNDS    -> JSON: the same fit through the k x k normal equations (fast enough for d = 4096), with timings
  nola_ref.py expand NOLA OUT                -> writes the factors (F32 safetensors, source key names); JSON timings
  nola_ref.py basis uniform|orthogonal SEED K N  -> JSON: the basis matrix (k x n) for small sizes
"""
import json
import struct
import sys

import numpy as np

M32 = np.uint64(0xFFFFFFFF)


def read_safetensors(path):
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop('__metadata__', None)
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        b, e = info['data_offsets']
        raw = data[base + b: base + e]
        tensors[name] = (info['dtype'], info['shape'], raw)
    return meta, tensors


def to_float(dtype, shape, raw):
    if dtype == 'F32':
        a = np.frombuffer(raw, '<f4').astype(np.float64)
    elif dtype == 'F64':
        a = np.frombuffer(raw, '<f8').copy()
    elif dtype == 'F16':
        a = np.frombuffer(raw, '<f2').astype(np.float64)
    elif dtype == 'BF16':
        u = np.frombuffer(raw, '<u2').astype(np.uint32) << 16
        a = u.view(np.float32).astype(np.float64)
    elif dtype in ('I64', 'I32', 'I16', 'I8', 'U8', 'U16', 'U32', 'U64'):
        # integer alphas (kohya writes them in any dtype)
        a = np.frombuffer(raw, '<' + {'I64': 'i8', 'I32': 'i4', 'I16': 'i2', 'I8': 'i1', 'U8': 'u1', 'U16': 'u2', 'U32': 'u4', 'U64': 'u8'}[dtype]).astype(np.float64)
    else:
        raise ValueError('not a float dtype: ' + dtype)
    return a.reshape(shape) if shape else a.reshape(())


def mix32(x):
    x = np.asarray(x, dtype=np.uint64) & M32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x21F0AAAD)) & M32
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x735A2D97)) & M32
    x ^= x >> np.uint64(15)
    return x


def u32(seed, i, j):
    """seed scalar, i and j broadcastable arrays."""
    rk = mix32(np.uint64(seed) ^ mix32(np.asarray(i, np.uint64) ^ np.uint64(0x9E3779B9)))
    ck = mix32(np.asarray(j, np.uint64) ^ np.uint64(0x85EBCA6B))
    return mix32(rk ^ ck)


def values(seed, k, n):
    u = u32(seed, np.arange(k)[:, None], np.arange(n)[None, :])
    return (u.astype(np.uint32).view(np.int32) >> 8).astype(np.float64) * 2.0 ** -23


def uniform_basis(seed, k, n):
    return values(seed, k, n) / np.sqrt(k)


def dct2_ortho(x):
    """Orthonormal DCT-II along the last axis, via an FFT of the even extension (Makhoul-free, plain)."""
    n = x.shape[-1]
    y = np.concatenate([x, x[..., ::-1]], axis=-1)
    Y = np.fft.fft(y, axis=-1)[..., :n]
    m = np.arange(n)
    X = np.real(Y * np.exp(-1j * np.pi * m / (2 * n))) / 2
    s = np.full(n, np.sqrt(2.0 / n))
    s[0] = np.sqrt(1.0 / n)
    return X * s


def orthogonal_parts(seed, k, n):
    signs = np.where(u32(seed, 0, np.arange(n)) >= 0x80000000, -1.0, 1.0)
    p = np.arange(n)
    draws = u32(seed, 1, np.arange(k)).astype(np.int64)
    for t in range(k):
        r = t + int(draws[t]) % (n - t)
        p[t], p[r] = p[r], p[t]
    return signs, p[:k].copy()


def idct2_ortho(z):
    """C^T z for the orthonormal DCT-II C (i.e. the orthonormal DCT-III), in O(n log n):
    x_j = sum_m s_m z_m cos(pi (2j+1) m / (2n)) = Re( sum_m s_m z_m e^{i pi m/(2n)} e^{2 pi i m j/(2n)} )."""
    n = z.shape[-1]
    s = np.full(n, np.sqrt(2.0 / n))
    s[0] = np.sqrt(1.0 / n)
    w = s * z * np.exp(1j * np.pi * np.arange(n) / (2 * n))
    return np.real(np.fft.ifft(w, n=2 * n) * (2 * n))[:n]


def orthogonal_synthesize(seed, k, n, c):
    signs, sel = orthogonal_parts(seed, k, n)
    z = np.zeros(n)
    z[sel] = c
    return signs * idct2_ortho(z)


def synthesize(basis, seed, k, n, c):
    if basis == 'uniform':
        return uniform_basis(seed, k, n).T @ c
    return orthogonal_synthesize(seed, k, n, c)


def synthesize_factor(basis, seed, k, rank, d, factor, c):
    """Factor A (rank x d_in) or B (d_out x rank). The orthogonal-components basis rotates each rank-1
    component on its own: component i (A's row i, B's column i) is the orthogonal basis of length d at full
    span with seed u32(seed, 2, i), from coefficients c[i*d:(i+1)*d]."""
    if k == 0:  # a layer that stores nothing: both factors zero
        return np.zeros((rank, d)) if factor == 'A' else np.zeros((d, rank))
    if basis == 'orthogonal-components':
        comps = np.stack([orthogonal_synthesize(int(u32(seed, 2, i)), d, d, c[i * d:(i + 1) * d]) for i in range(rank)])
        return comps if factor == 'A' else comps.T
    v = synthesize(basis, seed, k, rank * d, c)
    return v.reshape(rank, d) if factor == 'A' else v.reshape(d, rank)


def f16_to_float(raw):
    return np.frombuffer(raw, '<f2').astype(np.float64)


def dequantize(mode, count, codes_raw, scales_raw, group=64):
    if mode == 'f32':
        return np.frombuffer(codes_raw, '<f4').astype(np.float64)
    if mode == 'f16':
        return np.frombuffer(codes_raw, '<f2').astype(np.float64)
    if mode == 'bf16':
        return to_float('BF16', [count], codes_raw)
    bits = int(mode[3:])
    b = np.frombuffer(codes_raw, np.uint8)
    bitstream = np.unpackbits(b, bitorder='little')[: count * bits].reshape(count, bits)
    u = (bitstream.astype(np.int64) << np.arange(bits)).sum(axis=1)
    q = u - (1 << (bits - 1))  # offset binary: stored u = q + 2^(b-1)
    scales = f16_to_float(scales_raw)
    return q * np.repeat(scales, group)[:count]


def lowrank_rel_error(s0, B0, A0, s, B, A):
    X = np.concatenate([s0 * B0, -s * B], axis=1)
    Y = np.concatenate([A0, A], axis=0)
    _, Rx = np.linalg.qr(X)
    _, Ry = np.linalg.qr(Y.T)
    diff = np.linalg.norm(Rx @ Ry.T)
    _, Rb = np.linalg.qr(s0 * B0)
    _, Ra = np.linalg.qr(A0.T)
    tgt = np.linalg.norm(Rb @ Ra.T)
    return float(diff / tgt) if tgt > 0 else 0.0


GROUP = 64


def segments(spec, count):
    """A factor's quantization: one mode, or consecutive segments [mode, count] / ["rice" | "rans", count, bytes] summing to count."""
    if isinstance(spec, str):
        return [(spec, count)]
    if count == 0:  # a layer that stores nothing
        return []
    assert sum(seg[1] for seg in spec) == count and all(seg[1] >= 1 for seg in spec), spec
    return [tuple(seg) for seg in spec]


def decode_rice(block, count):
    """Rice block (docs/FORMAT.md): f32 step, u8 k, k-bit remainders, then the unary quotients.
    Vectorized: the positions of the one bits in the unary stream give every quotient at once."""
    step = float(np.frombuffer(block[:4], '<f4')[0])
    k = block[4]
    assert step > 0 and np.isfinite(step) and k <= 24
    rem_bytes = (count * k + 7) // 8
    rem_bits = np.unpackbits(np.frombuffer(block[5:5 + rem_bytes], np.uint8), bitorder='little')
    rem = (rem_bits[:count * k].reshape(count, k).astype(np.int64) << np.arange(k)).sum(axis=1) if k else np.zeros(count, np.int64)
    assert not rem_bits[count * k:].any()
    unary = np.unpackbits(np.frombuffer(block[5 + rem_bytes:], np.uint8), bitorder='little')
    ones = np.flatnonzero(unary)
    assert len(ones) == count and len(unary) - ones[-1] <= 8, (len(ones), count)
    quotient = np.diff(np.concatenate([[-1], ones])) - 1
    z = (quotient.astype(np.int64) << k) + rem
    q = np.where(z % 2 == 0, z // 2, -(z + 1) // 2)
    return q * step


# docs/FORMAT.md "rANS blocks": R_p = round(2^24 exp(-2^(-1 - (p - 24)/4))); the table is normative.
RANS_R = [
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
]
RANS_MODELS = {}  # p -> (L, f, C): 96 models at most
RANS_SLOTS = {}   # p -> the 2^16-entry slot table of model p, built on first use (at most 96 x 512 KB)


def rans_model(p):
    """The discretized-Gaussian model p: L, and the frequencies f and cumulative frequencies C (lists indexed
    by level + L) out of M = 2^16. Integer arithmetic only, as FORMAT.md states it."""
    if p not in RANS_MODELS:
        w, c = [1 << 24], RANS_R[p]
        r2 = (c * c) >> 24
        while len(w) <= 4095:
            nxt = (w[-1] * c) >> 24
            if nxt == 0:
                break
            w.append(nxt)
            c = (c * r2) >> 24
        L = len(w) - 1
        n, M = 2 * L + 1, 1 << 16
        W = w[0] + 2 * sum(w[1:])
        f = [1 + (w[abs(q)] * (M - n)) // W for q in range(-L, L + 1)]
        f[L] += M - sum(f)
        C = np.concatenate([[0], np.cumsum(f)[:-1]]).tolist()
        RANS_MODELS[p] = (L, f, C)
    return RANS_MODELS[p]


def decode_rans(block, count):
    """rANS block (docs/FORMAT.md): f32 step, u8 p, u32 state, then the renormalization bytes. Sequential
    (rANS does not vectorize): a 2^16-entry slot table per model, plain int arithmetic in the loop."""
    refuse(len(block) >= 9, 'rans block of %d bytes, shorter than its 9-byte header' % len(block))
    step = float(np.frombuffer(block[:4], '<f4')[0])
    p = block[4]
    x = int.from_bytes(block[5:9], 'little')
    refuse(step > 0 and np.isfinite(step), 'rans block: step %r is not finite and > 0' % step)
    refuse(p <= 95, 'rans block: model p = %d above 95' % p)
    refuse((1 << 23) <= x < (1 << 31), 'rans block: state %d outside [2^23, 2^31)' % x)
    L, f, C = rans_model(p)
    if p not in RANS_SLOTS:  # level + L of each s in [0, 2^16); [v] * f[v] shares one int object per level
        slot = []
        for v, fv in enumerate(f):
            slot += [v] * fv
        RANS_SLOTS[p] = slot
    slot = RANS_SLOTS[p]
    block = bytes(block)
    j = [0] * count
    at, n, i = 9, len(block), 0
    try:
        for i in range(count):
            s = x & 0xFFFF
            v = slot[s]
            j[i] = v
            x = f[v] * (x >> 16) + s - C[v]
            while x < 8388608:  # 2^23
                x = (x << 8) | block[at]  # IndexError: no byte left
                at += 1
    except IndexError:
        raise ValueError('rans block: the renormalization runs out of bytes at value %d of %d' % (i, count)) from None
    refuse(x == 1 << 23, 'rans block: ends in state %d, not 2^23' % x)
    refuse(at == n, 'rans block: bytes after the last value (%d unread)' % (n - at))
    return (np.array(j, np.int64) - L) * step


def block_sizes(count, spec):
    """Bytes of the codes and of the f16 scales of `count` coefficients stored as `spec`."""
    codes = scales = 0
    for seg in segments(spec, count):
        mode, n = seg[0], seg[1]
        if mode in ('rice', 'rans'):
            codes += seg[2]
        elif mode in ('f32', 'f16', 'bf16'):
            codes += n * (4 if mode == 'f32' else 2)
        else:
            codes += (n * int(mode[3:]) + 7) // 8
            scales += 2 * ((n + GROUP - 1) // GROUP)
    return codes, scales


def dequantize_spec(spec, count, codes, scales):
    """Segments one after the other: each segment's codes (byte-padded) in `codes`, its scales in `scales`."""
    out, c, s = [], 0, 0
    for seg in segments(spec, count):
        mode, n = seg[0], seg[1]
        nc, ns = block_sizes(n, [list(seg)])
        if mode == 'rice':
            out.append(decode_rice(codes[c:c + nc], n))
        elif mode == 'rans':
            out.append(decode_rans(codes[c:c + nc], n))
        else:
            out.append(dequantize(mode, n, codes[c:c + nc], scales[s:s + ns]))
        c, s = c + nc, s + ns
    assert c == len(codes) and s == len(scales)
    return np.concatenate(out)


# settings_sha256: optional (docs/FORMAT.md): which settings made the file; not needed to decode it.
V2_DOC_KEYS = {'source', 'coeffs', 'key_styles', 'layer_fields', 'layers', 'passthrough', 'settings_sha256'}
V1_DOC_KEYS = {'format_version', 'generator', 'source', 'layers', 'passthrough', 'settings_sha256'}
SOURCE_KEYS = {'family', 'file', 'bytes', 'tensors_sha256', 'metadata', 'config'}
STYLE_KEYS = {'A', 'B', 'alpha', 'dtype_A', 'dtype_B', 'dtype_alpha'}
V1_LAYER_KEYS = {'name', 'kind', 'key_A', 'key_B', 'key_alpha', 'dtype_alpha', 'dtype_A', 'dtype_B', 'shape_A', 'shape_B',
                 'source_rank', 'rank', 'd_in', 'd_out', 'alpha', 'source_scale', 'scale', 'basis', 'seed_A', 'seed_B',
                 'num_basis_A', 'num_basis_B', 'quant_A', 'quant_B', 'coeffs_A', 'coeffs_B', 'scales_A', 'scales_B',
                 'error', 'error_expanded'}
MAX_DOCUMENT_BYTES = 10 ** 8


def refuse(cond, what):
    """docs/FORMAT.md's reader rules (the ones issue 14 made explicit) as checks of this reader."""
    if not cond:
        raise ValueError(what)


def only_keys(obj, known, where):
    extra = sorted(set(obj) - known)
    refuse(not extra, '%s has unknown key %r' % (where, extra[:1]))


def check_ranks(e, version):
    refuse(1 <= e['rank'] <= e['source_rank'], 'layer %s: rank %s above source rank %s' % (e['name'], e['rank'], e['source_rank']))
    refuse(e['source_rank'] <= min(e['d_in'], e['d_out']), 'layer %s: source rank above min(d_in, d_out)' % e['name'])
    for f in 'AB':
        q = e['quant_' + f]
        for seg in ([] if isinstance(q, str) else q):
            if seg[0] == 'rice':
                refuse(seg[2] >= 5 + -(-seg[1] // 8), 'layer %s: rice segment of %d values in %d bytes' % (e['name'], seg[1], seg[2]))
            if seg[0] == 'rans':
                refuse(version >= 3, 'layer %s: a rans segment in a version-%s file (rans blocks need version 3)' % (e['name'], version))
                refuse(seg[2] >= 9, 'layer %s: rans segment of %d values in %d bytes' % (e['name'], seg[1], seg[2]))


def load_nola(path):
    """The layers of a NOLA file (version 1, 2 or 3) as dicts with version-1 field names, each with
    'coeffs_A' / 'coeffs_B' holding the dequantized coefficients (float64 arrays)."""
    import hashlib
    import zlib
    meta, tens = read_safetensors(path)
    refuse(meta is not None and set(meta) == {'nola'}, '__metadata__ of a NOLA file holds only "nola"')
    env = json.loads(meta['nola'])
    refuse(env.get('generator') == 'lowbias32-v1', 'unknown generator')
    if env.get('format_version') == 1 and not isinstance(env['format_version'], bool):
        only_keys(env, V1_DOC_KEYS, 'the document')
        only_keys(env['source'], SOURCE_KEYS, '"source"')
        layers = env['layers']
        for e in layers:
            only_keys(e, V1_LAYER_KEYS, 'layer')
            check_ranks(e, 1)
            for f in 'AB':
                scales = tens[e['scales_' + f]][2] if ('scales_' + f) in e else b''
                e['coeffs_' + f] = dequantize(e['quant_' + f], e['num_basis_' + f], tens[e['coeffs_' + f]][2], scales)
        return layers
    version = env.get('format_version')
    refuse(version in (2, 3) and not isinstance(version, bool)
           and env == {'format_version': version, 'generator': 'lowbias32-v1', 'document': 'nola.document'}, 'bad envelope %r' % env)
    z = zlib.decompressobj()
    text = z.decompress(tens[env['document']][2], MAX_DOCUMENT_BYTES + 1)
    refuse(len(text) <= MAX_DOCUMENT_BYTES and not z.unconsumed_tail, 'document inflates past 10^8 bytes')
    refuse(z.eof and z.unused_data == b'', 'bytes after the zlib stream (or a truncated stream)')
    doc = json.loads(text.decode('utf-8'))
    only_keys(doc, V2_DOC_KEYS, 'the document')
    only_keys(doc['source'], SOURCE_KEYS, '"source"')
    refuse(set(doc['source']) == SOURCE_KEYS, '"source" lacks a key')
    refuse(doc['source']['file'] != 'adapter_config.json', 'source.file may not be adapter_config.json')
    only_keys(doc['coeffs'], {'tensor', 'sha256'}, '"coeffs"')
    for st in doc['key_styles']:
        only_keys(st, STYLE_KEYS, 'key style')
    for p in doc['passthrough']:
        only_keys(p, {'name', 'tensor'}, 'passthrough')
    stream = tens[doc['coeffs']['tensor']][2]
    refuse(hashlib.sha256(stream).hexdigest() == doc['coeffs']['sha256'], 'coeffs.sha256 does not match the coefficient tensor')
    fields = doc['layer_fields']
    layers, at = [], 0
    for row in doc['layers']:
        e = dict(zip(fields, row))
        style = doc['key_styles'][e['style']]
        name = e['name']
        for f in ('A', 'B', 'alpha'):
            if f in style:
                p = style[f]  # [prefix, suffix] around the layer name, or the literal key
                e['key_' + f] = p if isinstance(p, str) else p[0] + name + p[1]
        for f in ('dtype_A', 'dtype_B', 'dtype_alpha'):
            if f in style:
                e[f] = style[f]
        e['source_rank'] = e['shape_A'][0]
        e['d_in'] = int(np.prod(e['shape_A'][1:]))
        e['source_scale'] = e['scale']
        check_ranks(e, version)
        for f in 'AB':
            n_codes, n_scales = block_sizes(e['num_basis_' + f], e['quant_' + f])
            codes = stream[at:at + n_codes]
            scales = stream[at + n_codes:at + n_codes + n_scales]
            at += n_codes + n_scales
            e['coeffs_' + f] = dequantize_spec(e['quant_' + f], e['num_basis_' + f], codes, scales)
        layers.append(e)
    assert at == len(stream), (at, len(stream))
    return layers


def factor_mats(dtype_shape_raw_a, dtype_shape_raw_b):
    A = to_float(*dtype_shape_raw_a)
    B = to_float(*dtype_shape_raw_b)
    r = A.shape[0]
    return A.reshape(r, -1), B.reshape(B.shape[0], r)


def check(nola_path, source_path, expanded_path=None):
    layers = load_nola(nola_path)
    _, src = read_safetensors(source_path)
    exp = read_safetensors(expanded_path)[1] if expanded_path else None
    out = []
    for e in layers:
        r, din, dout = e['rank'], e['d_in'], e['d_out']
        ca, cb = e['coeffs_A'], e['coeffs_B']
        A = synthesize_factor(e['basis'], e['seed_A'], e['num_basis_A'], r, din, 'A', ca)
        B = synthesize_factor(e['basis'], e['seed_B'], e['num_basis_B'], r, dout, 'B', cb)
        A0, B0 = factor_mats(src[e['key_A']], src[e['key_B']])
        err = lowrank_rel_error(e['source_scale'], B0, A0, e['scale'], B, A)
        row = {'name': e['name'], 'claimed': e['error'], 'recomputed': err}
        if exp is not None:
            Ae, Be = factor_mats(exp[e['key_A']], exp[e['key_B']])
            scale_out = e['scale']
            if 'key_alpha' in e and e['key_alpha'] in exp:
                alpha = float(to_float(*exp[e['key_alpha']]))
                scale_out = alpha / Ae.shape[0]
            row['expanded_vs_nola'] = lowrank_rel_error(e['scale'], B, A, scale_out, Be, Ae)
            row['expanded_vs_source'] = lowrank_rel_error(e['source_scale'], B0, A0, scale_out, Be, Ae)
        out.append(row)
    return out


def als_reference(nola_path, source_path, rounds):
    """For each layer of a NOLA file, the error dense ALS reaches with the same bases and counts."""
    layers = load_nola(nola_path)
    _, src = read_safetensors(source_path)
    out = []
    for e in layers:
        if e['basis'] != 'uniform':
            continue
        r, din, dout = e['rank'], e['d_in'], e['d_out']
        A0, B0 = factor_mats(src[e['key_A']], src[e['key_B']])
        SA = uniform_basis(e['seed_A'], e['num_basis_A'], r * din)
        SB = uniform_basis(e['seed_B'], e['num_basis_B'], dout * r)
        hist = als_layer(A0, B0, e['source_scale'], r, SA, SB, rounds)
        out.append({'name': e['name'], 'als': hist[-1], 'nola': e['error']})
    return out


def als_layer(A0, B0, s0, r, SA, SB, rounds):
    """SA: k x (r*din), SB: l x (dout*r), rows are basis vectors (already normalized)."""
    din, dout = A0.shape[1], B0.shape[0]
    T = s0 * B0 @ A0
    U, S, Vt = np.linalg.svd(T, full_matrices=False)
    Bs = U[:, :r] * np.sqrt(S[:r] / s0)
    As = np.sqrt(S[:r] / s0)[:, None] * Vt[:r]
    beta = np.linalg.lstsq(SB.T, Bs.ravel(), rcond=None)[0]
    alpha = np.linalg.lstsq(SA.T, As.ravel(), rcond=None)[0]
    hist = []
    for _ in range(rounds):
        B = (SB.T @ beta).reshape(dout, r)
        # T ~ s0 B A(alpha): design matrix columns = vec(s0 B U_i)
        design = np.stack([(s0 * B @ SA[i].reshape(r, din)).ravel() for i in range(SA.shape[0])], axis=1)
        alpha = np.linalg.lstsq(design, T.ravel(), rcond=None)[0]
        A = (SA.T @ alpha).reshape(r, din)
        design = np.stack([(s0 * SB[j].reshape(dout, r) @ A).ravel() for j in range(SB.shape[0])], axis=1)
        beta = np.linalg.lstsq(design, T.ravel(), rcond=None)[0]
        B = (SB.T @ beta).reshape(dout, r)
        hist.append(float(np.linalg.norm(T - s0 * B @ A) / np.linalg.norm(T)))
    return hist


def balanced_start(A0, B0, s0, r):
    """Best rank-r split of T = s0 B0 A0 through thin QRs of the factors (T is never formed)."""
    Qb, Rb = np.linalg.qr(s0 * B0)
    Qa, Ra = np.linalg.qr(A0.T)
    U, S, Vt = np.linalg.svd(Rb @ Ra.T)
    w = np.sqrt(S[:r] / abs(s0))
    return (Qb @ U[:, :r]) * w, w[:, None] * (Qa @ Vt.T[:, :r]).T


def als_gram_layer(A0, B0, s0, r, SA, SB, rounds):
    """Dense least squares by 5 ALS rounds like als_layer, each solve through its k x k normal
    equations G c = S vec(rhs), G = S (M (x) I) S^T built with one matrix product over the basis.
    Same start, same objective, same bases; SA: k x (r*din), SB: l x (dout*r)."""
    din, dout = A0.shape[1], B0.shape[0]
    k, l = SA.shape[0], SB.shape[0]
    Bs, As = balanced_start(A0, B0, s0, r)
    beta = np.linalg.solve(SB @ SB.T, SB @ Bs.ravel())
    alpha = np.linalg.solve(SA @ SA.T, SA @ As.ravel())
    UA = SA.reshape(k, r, din)
    UB = SB.reshape(l, dout, r)
    hist = []
    for _ in range(rounds):
        B = (SB.T @ beta).reshape(dout, r)
        M = s0 * s0 * (B.T @ B)
        G = SA @ np.einsum('pq,kqd->kpd', M, UA).reshape(k, -1).T
        alpha = np.linalg.lstsq(G, SA @ (s0 * s0 * (B.T @ B0) @ A0).ravel(), rcond=None)[0]
        A = (SA.T @ alpha).reshape(r, din)
        N = s0 * s0 * (A @ A.T)
        G = SB @ (UB @ N).reshape(l, -1).T
        beta = np.linalg.lstsq(G, SB @ (s0 * s0 * B0 @ (A0 @ A.T)).ravel(), rcond=None)[0]
        B = (SB.T @ beta).reshape(dout, r)
        hist.append(lowrank_rel_error(s0, B0, A0, s0, B, A))
    return hist, alpha, beta


def als_gram_reference(nola_path, source_path, rounds):
    import time
    t0 = time.perf_counter()
    layers = load_nola(nola_path)
    _, src = read_safetensors(source_path)
    out = []
    gen = fit = 0.0
    for e in layers:
        if e['basis'] != 'uniform':
            continue
        r, din, dout = e['rank'], e['d_in'], e['d_out']
        A0, B0 = factor_mats(src[e['key_A']], src[e['key_B']])
        t = time.perf_counter()
        SA = uniform_basis(e['seed_A'], e['num_basis_A'], r * din)
        SB = uniform_basis(e['seed_B'], e['num_basis_B'], dout * r)
        t1 = time.perf_counter()
        hist, _, _ = als_gram_layer(A0, B0, e['source_scale'], r, SA, SB, rounds)
        t2 = time.perf_counter()
        gen += t1 - t
        fit += t2 - t1
        out.append({'name': e['name'], 'als': hist[-1], 'nola': e['error'],
                    'energy': float(np.sum(np.linalg.svd(np.linalg.qr(e['source_scale'] * B0)[1] @ np.linalg.qr(A0.T)[1].T, compute_uv=False) ** 2))})
    return {'layers': out, 'seconds': time.perf_counter() - t0, 'basis_seconds': gen, 'fit_seconds': fit}


def write_safetensors(path, tensors):
    """tensors: list of (name, float32 array); no metadata; sorted by name like the reference writer."""
    header, offset, blobs = {}, 0, []
    for name, arr in sorted(tensors, key=lambda t: t[0].encode()):
        raw = np.ascontiguousarray(arr, '<f4').tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(arr.shape), 'data_offsets': [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def expand_reference(nola_path, out_path):
    """Straightforward expand: dequantize, synthesize each factor from its explicit basis matrix, write F32."""
    import time
    t0 = time.perf_counter()
    layers = load_nola(nola_path)
    out = []
    for e in layers:
        r, din, dout = e['rank'], e['d_in'], e['d_out']
        ca, cb = e['coeffs_A'], e['coeffs_B']
        out.append((e['key_A'], synthesize_factor(e['basis'], e['seed_A'], e['num_basis_A'], r, din, 'A', ca)))
        out.append((e['key_B'], synthesize_factor(e['basis'], e['seed_B'], e['num_basis_B'], r, dout, 'B', cb)))
    write_safetensors(out_path, out)
    return {'seconds': time.perf_counter() - t0, 'layers': len(layers)}


def main(argv):
    if argv[1] == 'check':
        print(json.dumps(check(argv[2], argv[3], argv[4] if len(argv) > 4 else None)))
    elif argv[1] == 'validate':
        try:
            n = len(load_nola(argv[2]))
            print(json.dumps({'ok': True, 'layers': n}))
        except ValueError as e:
            print(json.dumps({'ok': False, 'refused': str(e)}))
    elif argv[1] == 'als':
        print(json.dumps(als_reference(argv[2], argv[3], int(argv[4]))))
    elif argv[1] == 'als-gram':
        print(json.dumps(als_gram_reference(argv[2], argv[3], int(argv[4]))))
    elif argv[1] == 'expand':
        print(json.dumps(expand_reference(argv[2], argv[3])))
    elif argv[1] == 'basis':
        kind, seed, k, n = argv[2], int(argv[3]), int(argv[4]), int(argv[5])
        if kind == 'uniform':
            M = uniform_basis(seed, k, n)
        else:
            M = np.stack([orthogonal_synthesize(seed, k, n, np.eye(k)[i]) for i in range(k)])
        print(json.dumps(M.tolist()))
    else:
        raise SystemExit(__doc__)


if __name__ == '__main__':
    main(sys.argv)
