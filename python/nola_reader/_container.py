"""Reading a NOLA file (docs/FORMAT.md): the safetensors container, the envelope and the document
(versions 1 and 2), and every layer's coefficient blocks decoded to float64.

Block decoding is table-driven: CODECS maps a storage mode to (bytes of codes, bytes of scales, decode);
a new mode is one entry there.
"""
import hashlib
import json
import struct
import zlib

import numpy as np

from ._errors import FormatError

GENERATOR = 'lowbias32-v1'
GROUP = 64
MAX_DOCUMENT_BYTES = 100_000_000
MAX_HEADER_BYTES = 100_000_000
MAX_RICE_K = 24
MAX_LEVEL = 2 ** 30
MAX_SEGMENTS = 1024
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


def _int_sizes(bits):
    return lambda n, seg: ((n * bits + 7) // 8, 2 * ((n + GROUP - 1) // GROUP))


# mode -> (sizes(count, segment) -> (code bytes, scale bytes), decode(codes, scales, count) -> float64[count])
CODECS = {
    'f32': (lambda n, seg: (4 * n, 0), _decode_float('f32')),
    'f16': (lambda n, seg: (2 * n, 0), _decode_float('f16')),
    'bf16': (lambda n, seg: (2 * n, 0), _decode_float('bf16')),
    **{f'int{b}': (_int_sizes(b), _decode_int(b)) for b in (8, 6, 5, 4, 3, 2)},
    'rice': (lambda n, seg: (seg[2], 0), _decode_rice),
}
SINGLE_MODES = [m for m in CODECS if m != 'rice']


def segments(spec, count, where):
    """A factor's storage: one mode, or 1..MAX_SEGMENTS segments [mode, count] / ["rice", count, bytes] summing to count."""
    if isinstance(spec, str):
        if spec not in SINGLE_MODES:
            raise FormatError(f'{where}: unknown storage mode {spec!r}')
        return [(spec, count)]
    ok = isinstance(spec, list) and 1 <= len(spec) <= MAX_SEGMENTS and all(
        isinstance(s, list) and len(s) >= 2 and s[0] in CODECS and isinstance(s[1], int) and s[1] >= 1
        and (len(s) == 3 and isinstance(s[2], int) and s[2] >= 5 if s[0] == 'rice' else len(s) == 2) for s in spec)
    if not ok or sum(s[1] for s in spec) != count:
        raise FormatError(f'{where}: bad storage segments {json.dumps(spec)} for {count} coefficients')
    return [tuple(s) for s in spec]


def block_sizes(spec, count, where):
    codes = scales = 0
    for seg in segments(spec, count, where):
        c, s = CODECS[seg[0]][0](seg[1], seg)
        codes, scales = codes + c, scales + s
    return codes, scales


def decode_block(spec, count, codes, scales, where):
    out, c, s = [], 0, 0
    for seg in segments(spec, count, where):
        nc, ns = CODECS[seg[0]][0](seg[1], seg)
        try:
            out.append(CODECS[seg[0]][1](codes[c:c + nc], scales[s:s + ns], seg[1]))
        except FormatError as e:
            raise FormatError(f'{where}: {e}') from None
        c, s = c + nc, s + ns
    if c != len(codes) or s != len(scales):
        raise FormatError(f'{where}: block sizes do not match its storage')
    return np.concatenate(out)


# ----------------------------------------------------------------------------------------------
# The document

def _key(pattern, name):
    return pattern if isinstance(pattern, str) else pattern[0] + name + pattern[1]


def _check_layer(e, where):
    # A layer that keeps nothing stores nothing: k = l = 0 on the orthogonal basis, both factors zero.
    empty = e.get('num_basis_A') == 0 and e.get('num_basis_B') == 0 and e.get('basis') == 'orthogonal'
    for f in ('rank', 'source_rank', 'd_in', 'd_out', 'num_basis_A', 'num_basis_B'):
        if not isinstance(e.get(f), int) or isinstance(e.get(f), bool) or e[f] < (0 if empty and f.startswith('num_basis') else 1):
            raise FormatError(f'{where}: {f} must be a positive integer')
    for f in ('seed_A', 'seed_B'):
        if not isinstance(e.get(f), int) or not 0 <= e[f] <= 0xFFFFFFFF:
            raise FormatError(f'{where}: {f} must be an unsigned 32-bit integer')
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


def read_nola(path):
    """The NOLA file as {'family', 'file', 'metadata', 'config', 'layers': [...], 'passthrough': [(name, dtype, shape, bytes)]}.
    Each layer is a dict with version-1 field names plus 'coeffs_A' / 'coeffs_B' (float64)."""
    meta, tens = read_safetensors(path)
    if not isinstance(meta, dict) or not isinstance(meta.get('nola'), str):
        raise FormatError(f'{path}: not a NOLA file (no "nola" metadata entry)')
    env = parse_json(meta['nola'], f'{path}: "nola" metadata')
    if not isinstance(env, dict):
        raise FormatError(f'{path}: "nola" metadata is not a JSON object')
    version = env.get('format_version')
    if env.get('generator') != GENERATOR or version not in (1, 2):
        raise FormatError(f'{path}: format_version {version!r} / generator {env.get("generator")!r} not supported (this reader knows 1 and 2, {GENERATOR})')

    def raw(name, what):
        t = tens.get(name)
        if t is None:
            raise FormatError(f'{path}: {what} tensor {name!r} missing')
        return t

    if version == 2:
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
        layers, at = [], 0
        for i, row in enumerate(doc['layers']):
            if not isinstance(row, list) or len(row) != len(LAYER_FIELDS):
                raise FormatError(f'{path}: layer {i} is not a row of {len(LAYER_FIELDS)} values')
            r = dict(zip(LAYER_FIELDS, row))
            if not isinstance(r['style'], int) or not 0 <= r['style'] < len(styles):
                raise FormatError(f'{path}: layer {i}: bad style')
            st, name, a = styles[r['style']], r['name'], r['shape_A']
            e = {'name': name, 'kind': r['kind'], 'key_A': _key(st['A'], name), 'key_B': _key(st['B'], name),
                 'dtype_A': st.get('dtype_A'), 'dtype_B': st.get('dtype_B'), 'shape_A': a,
                 'shape_B': [r['d_out'], a[0]] + [1] * (len(a) - 2), 'source_rank': a[0], 'rank': r['rank'],
                 'd_in': int(np.prod(a[1:])), 'd_out': r['d_out'], 'source_scale': r['scale'], 'scale': r['scale'],
                 'basis': r['basis'], 'seed_A': r['seed_A'], 'seed_B': r['seed_B'],
                 'num_basis_A': r['num_basis_A'], 'num_basis_B': r['num_basis_B'],
                 'quant_A': r['quant_A'], 'quant_B': r['quant_B'], 'error': r['error']}
            if 'alpha' in st:
                e['key_alpha'], e['dtype_alpha'] = _key(st['alpha'], name), st['dtype_alpha']
            if r['alpha'] is not None:
                e['alpha'] = r['alpha']
            where = f'{path}: layer {name!r}'
            _check_layer(e, where)
            for f in 'AB':
                nc, ns = block_sizes(e['quant_' + f], e['num_basis_' + f], where)
                codes, scales = stream[at:at + nc], stream[at + nc:at + nc + ns]
                at += nc + ns
                if at > len(stream):
                    raise FormatError(f'{path}: the coefficient stream is shorter than its layers')
                e['coeffs_' + f] = decode_block(e['quant_' + f], e['num_basis_' + f], codes, scales, f'{where} factor {f}')
            layers.append(e)
        if at != len(stream):
            raise FormatError(f'{path}: the coefficient stream has {len(stream) - at} bytes no layer describes')
    else:
        doc = env
        layers = doc['layers']
        for e in layers:
            where = f'{path}: layer {e.get("name")!r}'
            _check_layer(e, where)
            for f in 'AB':
                codes = raw(e['coeffs_' + f], 'coefficient')[2]
                scales = raw(e['scales_' + f], 'scale')[2] if ('scales_' + f) in e else b''
                e['coeffs_' + f] = decode_block(e['quant_' + f], e['num_basis_' + f], codes, scales, f'{where} factor {f}')
    src = doc['source']
    passthrough = []
    for p in doc.get('passthrough', []):
        dtype, shape, data = raw(p['tensor'], 'passthrough')
        passthrough.append((p['name'], dtype, shape, data))
    return {'family': src['family'], 'file': src['file'], 'metadata': src.get('metadata'), 'config': src.get('config'),
            'layers': layers, 'passthrough': passthrough}
