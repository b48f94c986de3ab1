#!/usr/bin/env python3
"""Writes the bad inputs of issue 5 (and two good controls) into a folder, independently of nola.

    python3 scripts/make-bad-inputs.py OUT_DIR

Standard library only. Every file is built byte by byte here from a small description (safetensors is
an 8-byte little-endian header length, a JSON header, then the data section); nothing calls nola, so a
bug in nola's own writer cannot hide a bug in its reader.

OUT_DIR/issue14/manifest.json lists the hostile inputs of issue 14 (amplification, hostile configs, files
that are not regular, names with control characters, what compress must refuse), each in its own folder:
    {"input": path relative to OUT_DIR/issue14, "kind": ..., "class": ..., "commands": the nola commands
     that must refuse it with that class's exit code}

OUT_DIR/manifest.json lists every case (adapter_config.json beside them is not a case, just the config of
the PEFT adapters):
    {"file": name relative to OUT_DIR, "kind": what is wrong, "class": the error class nola must report
     ("format", "pairing", "numeric", ...; "ok" for the controls), "nola": true for NOLA containers}
The controls (class "ok") are a valid PEFT LoRA and valid NOLA files (versions 1 and 2) built the same way as the bad
ones: they must compress / expand cleanly, which shows the bad cases fail for the defect they carry and
not because this script writes broken files in general.
"""
import json
import os
import struct
import sys

F32 = 'F32'
DTYPE_SIZE = {'F64': 8, 'F32': 4, 'F16': 2, 'BF16': 2, 'I64': 8, 'I32': 4, 'I16': 2, 'I8': 1, 'U8': 1, 'BOOL': 1, 'F8_E4M3': 1}

# PEFT key style (transformers model wrapped by peft): base_model.model.<module>.lora_A.weight
PEFT = 'base_model.model.'
MODULES = ['encoder.layer.0.attn.q', 'encoder.layer.0.attn.v']
D_IN, D_OUT, RANK = 8, 8, 2

# The NOLA container constants (docs/FORMAT.md): version 1, generator lowbias32-v1, metadata key "nola".
NOLA_VERSION = 1
NOLA_GENERATOR = 'lowbias32-v1'


def values(seed, n):
    """n deterministic floats in [-0.5, 0.5): a 32-bit LCG (Numerical Recipes constants)."""
    out = []
    s = seed & 0xFFFFFFFF
    for _ in range(n):
        s = (1664525 * s + 1013904223) & 0xFFFFFFFF
        out.append(s / 2.0 ** 32 - 0.5)
    return out


def f32(xs):
    return struct.pack('<%df' % len(xs), *xs)


def frame(header_text, data=b'', pad=True):
    """u64 LE length + header (space-padded to 8 like the reference writer) + data."""
    h = header_text.encode('utf-8')
    if pad:
        h += b' ' * (-len(h) % 8)
    return struct.pack('<Q', len(h)) + h + data


def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, raw bytes), laid out contiguously in list order."""
    header = {}
    if metadata is not None:
        header['__metadata__'] = metadata
    data = b''
    for name, dtype, shape, raw in tensors:
        header[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [len(data), len(data) + len(raw)]}
        data += raw
    return frame(json.dumps(header, separators=(',', ':')), data)


def lora_tensors(rank_b=RANK, drop_b=None, poison=None):
    """A valid two-layer PEFT LoRA as tensor tuples; the options break it in one place."""
    out = []
    for i, m in enumerate(MODULES):
        a = values(100 + i, RANK * D_IN)
        b = values(200 + i, D_OUT * rank_b)
        if poison is not None and i == 1:
            a[3] = poison
        out.append((PEFT + m + '.lora_A.weight', F32, [RANK, D_IN], f32(a)))
        if drop_b != i:
            out.append((PEFT + m + '.lora_B.weight', F32, [D_OUT, rank_b], f32(b)))
    return out


def nola_file(version=NOLA_VERSION, generator=NOLA_GENERATOR, coeff_dtype=F32, coeff_count=None, drop_tensor=None):
    """A NOLA container for a one-layer PEFT LoRA (d_in = d_out = 8, rank 2, 16 f32 coefficients per factor)."""
    k = RANK * D_IN  # 16: the whole factor spanned, always a legal count
    layer = {
        'name': MODULES[0], 'kind': 'linear',
        'key_A': PEFT + MODULES[0] + '.lora_A.weight', 'key_B': PEFT + MODULES[0] + '.lora_B.weight',
        'dtype_A': F32, 'dtype_B': F32, 'shape_A': [RANK, D_IN], 'shape_B': [D_OUT, RANK],
        'source_rank': RANK, 'rank': RANK, 'd_in': D_IN, 'd_out': D_OUT,
        'source_scale': 1, 'scale': 1, 'basis': 'uniform', 'seed_A': 1, 'seed_B': 2,
        'num_basis_A': k, 'num_basis_B': k, 'quant_A': 'f32', 'quant_B': 'f32',
        'coeffs_A': 'nola.coeffs.0.A', 'coeffs_B': 'nola.coeffs.0.B', 'error': 0.0,
    }
    doc = {
        'format_version': version, 'generator': generator,
        'source': {'family': 'peft', 'file': 'adapter_model.safetensors', 'bytes': 0,
                   'tensors_sha256': '0' * 64, 'metadata': None, 'config': None},
        'layers': [layer], 'passthrough': [],
    }
    n = k if coeff_count is None else coeff_count
    tensors = []
    for f, seed in (('A', 300), ('B', 301)):
        name = 'nola.coeffs.0.' + f
        if name == drop_tensor:
            continue
        if coeff_dtype == F32:
            raw = f32(values(seed, n))
        else:
            raw = bytes(n * DTYPE_SIZE[coeff_dtype])
        tensors.append((name, coeff_dtype, [n], raw))
    return safetensors(tensors, {'nola': json.dumps(doc, separators=(',', ':'))})


def nola_file_v2(document=None, coeff_bytes=None, envelope_extra=None):
    """The same one-layer NOLA file in format version 2: a short envelope in __metadata__, the
    zlib-compressed document in U8 tensor nola.document, both factors' f32 coefficients back to back
    in U8 tensor nola.coeffs. `document` replaces the compressed bytes, `coeff_bytes` the stream."""
    import hashlib
    import zlib
    k = RANK * D_IN
    stream = f32(values(300, k)) + f32(values(301, k)) if coeff_bytes is None else coeff_bytes
    fields = ['name', 'style', 'kind', 'shape_A', 'd_out', 'rank', 'alpha', 'scale', 'basis',
              'seed_A', 'seed_B', 'num_basis_A', 'num_basis_B', 'quant_A', 'quant_B', 'error', 'error_expanded']
    row = [MODULES[0], 0, 'linear', [RANK, D_IN], D_OUT, RANK, None, 1, 'uniform', 1, 2, k, k, 'f32', 'f32', 0.0, None]
    doc = {
        'source': {'family': 'peft', 'file': 'adapter_model.safetensors', 'bytes': 0,
                   'tensors_sha256': '0' * 64, 'metadata': None, 'config': None},
        'coeffs': {'tensor': 'nola.coeffs', 'sha256': hashlib.sha256(stream).hexdigest()},
        'key_styles': [{'A': [PEFT, '.lora_A.weight'], 'B': [PEFT, '.lora_B.weight'], 'dtype_A': F32, 'dtype_B': F32}],
        'layer_fields': fields, 'layers': [row], 'passthrough': [],
    }
    packed = zlib.compress(json.dumps(doc, separators=(',', ':')).encode()) if document is None else document
    envelope = {'format_version': 2, 'generator': NOLA_GENERATOR, 'document': 'nola.document'}
    envelope.update(envelope_extra or {})
    tensors = [('nola.coeffs', 'U8', [len(stream)], stream), ('nola.document', 'U8', [len(packed)], packed)]
    return safetensors(tensors, {'nola': json.dumps(envelope, separators=(',', ':'))})


def bad_safetensors_cases():
    one = f32([1.0, 2.0, 3.0, 4.0])
    good_header = {'w': {'dtype': F32, 'shape': [2, 2], 'data_offsets': [0, 16]}}
    full = safetensors(lora_tensors())
    return [
        ('empty.safetensors', 'empty file', 'format', b''),
        ('seven-bytes.safetensors', '7-byte file', 'format', b'\x10\x00\x00\x00\x00\x00\x00'),
        ('header-past-eof.safetensors', 'header length past the end of the file', 'format',
         struct.pack('<Q', 4096) + b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}' + b'\x00' * 4),
        ('header-2pow63.safetensors', 'header length 2^63', 'format',
         struct.pack('<Q', 2 ** 63) + b'{}      '),
        ('invalid-json.safetensors', 'header is not valid JSON', 'format',
         frame('{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},}', one)),
        ('duplicate-key.safetensors', 'duplicate keys in the header', 'format',
         frame('{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},'
               '"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}', one)),
        ('overlapping-offsets.safetensors', 'overlapping data offsets', 'format',
         frame(json.dumps({'a': {'dtype': F32, 'shape': [2, 2], 'data_offsets': [0, 16]},
                           'b': {'dtype': F32, 'shape': [2, 2], 'data_offsets': [8, 24]}}), one + one[:8])),
        ('gapped-offsets.safetensors', 'gap between data offsets', 'format',
         frame(json.dumps({'a': {'dtype': F32, 'shape': [2], 'data_offsets': [0, 8]},
                           'b': {'dtype': F32, 'shape': [1], 'data_offsets': [12, 16]}}), one)),
        ('byte-length-mismatch.safetensors', 'byte length is not dtype size x shape', 'format',
         frame(json.dumps({'w': {'dtype': F32, 'shape': [2, 3], 'data_offsets': [0, 16]}}), one)),
        ('trailing-bytes.safetensors', 'trailing bytes after the last tensor', 'format',
         frame(json.dumps(good_header), one + b'\x00\x00\x00\x00')),
        ('unknown-dtype.safetensors', 'unknown dtype', 'format',
         frame(json.dumps({'w': {'dtype': 'F24', 'shape': [2, 2], 'data_offsets': [0, 16]}}), one)),
        ('non-string-metadata.safetensors', 'non-string metadata value', 'format',
         frame(json.dumps({'__metadata__': {'format': 'pt', 'rank': 8}, 'w': good_header['w']}), one)),
        # PyTorch checkpoints: the zip container's local-file magic, and a protocol-2 pickle's opcode.
        ('zip-checkpoint.bin', 'PyTorch zip checkpoint (.bin)', 'format',
         b'PK\x03\x04' + b'\x00' * 26 + b'archive/data.pkl' + b'\x00' * 64),
        ('pickle-checkpoint.bin', 'PyTorch pickle checkpoint (.bin)', 'format',
         b'\x80\x02}q\x00(X\x06\x00\x00\x00lora_Aq\x01' + b'\x00' * 32 + b'.'),
        ('truncated.safetensors', 'download cut short (data section truncated)', 'format', full[:len(full) - 20]),
        ('nan-factor.safetensors', 'NaN in a LoRA factor', 'numeric', safetensors(lora_tensors(poison=float('nan')))),
        ('inf-factor.safetensors', 'Inf in a LoRA factor', 'numeric', safetensors(lora_tensors(poison=float('inf')))),
        ('a-without-b.safetensors', 'lora_A without lora_B', 'pairing', safetensors(lora_tensors(drop_b=1))),
        ('rank-mismatch.safetensors', 'rank of A differs from rank of B', 'pairing', safetensors(lora_tensors(rank_b=RANK + 1))),
    ]


def bad_nola_cases():
    return [
        ('unknown-version.nola.safetensors', 'NOLA format_version unknown', 'format', nola_file(version=99)),
        ('unknown-generator.nola.safetensors', 'NOLA generator unknown', 'format', nola_file(generator='mt19937-v9')),
        ('coeffs-count-mismatch.nola.safetensors', 'NOLA coefficient tensor shape differs from num_basis', 'format',
         nola_file(coeff_count=12)),
        ('coeffs-dtype-mismatch.nola.safetensors', 'NOLA coefficient tensor dtype differs from quant mode', 'format',
         nola_file(coeff_dtype='F16')),
        ('coeffs-missing.nola.safetensors', 'NOLA coefficient tensor named in metadata is missing', 'format',
         nola_file(drop_tensor='nola.coeffs.0.B')),
        ('v2-document-not-zlib.nola.safetensors', 'NOLA v2 document tensor is not a zlib stream', 'format',
         nola_file_v2(document=b'{"layers": []}')),
        ('v2-coeffs-short.nola.safetensors', 'NOLA v2 coefficient stream shorter than the layers need', 'format',
         nola_file_v2(coeff_bytes=f32(values(300, RANK * D_IN)))),
        ('v2-envelope-extra.nola.safetensors', 'NOLA v2 envelope holds more than version, generator, document', 'format',
         nola_file_v2(envelope_extra={'layers': []})),
    ]


def nola_v2(layers, config=None, stream=None, module_dtype=F32, extra_doc=None):
    """A version-2 NOLA file of PEFT layers. layers: list of dicts with name, shape_A, d_out, rank, basis,
    num_basis_A, num_basis_B, quant_A, quant_B; the stream defaults to f32 zeros for f32 modes."""
    import hashlib
    import zlib
    fields = ['name', 'style', 'kind', 'shape_A', 'd_out', 'rank', 'alpha', 'scale', 'basis',
              'seed_A', 'seed_B', 'num_basis_A', 'num_basis_B', 'quant_A', 'quant_B', 'error', 'error_expanded']
    rows = [[l['name'], 0, 'linear', l['shape_A'], l['d_out'], l['rank'], None, 1, l.get('basis', 'orthogonal'), 1, 2,
             l['num_basis_A'], l['num_basis_B'], l.get('quant_A', 'f32'), l.get('quant_B', 'f32'), 0.0, None] for l in layers]
    if stream is None:
        stream = b''.join(bytes(4 * (l['num_basis_A'] + l['num_basis_B'])) for l in layers)
    doc = {
        'source': {'family': 'peft', 'file': 'adapter_model.safetensors', 'bytes': 0,
                   'tensors_sha256': '0' * 64, 'metadata': None, 'config': config},
        'coeffs': {'tensor': 'nola.coeffs', 'sha256': hashlib.sha256(stream).hexdigest()},
        'key_styles': [{'A': [PEFT, '.lora_A.weight'], 'B': [PEFT, '.lora_B.weight'], 'dtype_A': module_dtype, 'dtype_B': module_dtype}],
        'layer_fields': fields, 'layers': rows, 'passthrough': [],
    }
    doc.update(extra_doc or {})
    text = json.dumps(doc, separators=(',', ':'))
    packed = zlib.compress(text.encode(), 9)
    envelope = {'format_version': 2, 'generator': NOLA_GENERATOR, 'document': 'nola.document'}
    tensors = [('nola.coeffs', 'U8', [len(stream)], stream), ('nola.document', 'U8', [len(packed)], packed)]
    return safetensors(tensors, {'nola': json.dumps(envelope, separators=(',', ':'))})


def peft_lora(modules, rank=RANK, dtype=F32, raw=None):
    """A PEFT LoRA of `modules` (d_in = d_out = 8); `raw(name, n)` replaces a factor's bytes."""
    out = []
    for i, m in enumerate(modules):
        for f, shape, seed in (('A', [rank, D_IN], 100 + i), ('B', [D_OUT, rank], 200 + i)):
            n = shape[0] * shape[1]
            name = PEFT + m + '.lora_' + f + '.weight'
            data = raw(name, n) if raw else f32(values(seed, n))
            out.append((name, dtype, shape, data))
    return safetensors(out)


def deep_json(levels):
    return '[' * levels + ']' * levels


def issue14_cases(root):
    """Writes the issue-14 hostile inputs under root; returns the manifest entries."""
    cases = []

    def folder(name):
        d = os.path.join(root, name)
        os.makedirs(d, exist_ok=True)
        return d

    def case(input_, kind, cls, commands):
        cases.append({'input': input_, 'kind': kind, 'class': cls, 'commands': commands})

    def write(path, data):
        with open(path, 'wb' if isinstance(data, bytes) else 'w') as f:
            f.write(data)

    # --- 1. amplification: regular-expression keys a backtracking engine takes exponential time on.
    long_a = 'a' * 40 + 'b'
    for name, key, module in (('pattern-nested-plus', '(a+)+$', long_a), ('pattern-star-star', '(.*)*X', 'distilbert.transformer.layer.0.attention.' + 'q' * 40)):
        d = folder(name)
        write(os.path.join(d, 'adapter_model.safetensors'), peft_lora([module]))
        # r = 3 is not the factors' rank 2: refused (pairing) once the key has been matched, in linear time.
        write(os.path.join(d, 'adapter_config.json'), json.dumps({'r': 3, 'lora_alpha': 4, 'rank_pattern': {key: 5}}))
        case(name, 'rank_pattern key %s against a long module path' % key, 'pairing', ['compress', 'inspect'])
    d = folder('pattern-unsupported')
    write(os.path.join(d, 'adapter_model.safetensors'), peft_lora(MODULES))
    write(os.path.join(d, 'adapter_config.json'), json.dumps({'r': 2, 'lora_alpha': 4, 'rank_pattern': {'(q)\\1': 2}}))
    case('pattern-unsupported', 'rank_pattern key with a backreference (outside the matcher subset)', 'format', ['compress', 'inspect'])
    d = folder('nola-pattern-nested-plus')
    k = RANK * D_IN
    one = [{'name': long_a, 'shape_A': [RANK, D_IN], 'd_out': D_OUT, 'rank': RANK, 'num_basis_A': k, 'num_basis_B': k}]
    write(os.path.join(d, 'x.nola.safetensors'), nola_v2(one, config={'r': 3, 'lora_alpha': 4, 'rank_pattern': {'(a+)+$': 5}}))
    case('nola-pattern-nested-plus/x.nola.safetensors', 'stored config with rank_pattern (a+)+$', 'format', ['expand', 'verify'])

    # --- 1. amplification: tiny NOLA files that claim huge work.
    d = folder('nola-huge-factor')
    write(os.path.join(d, 'x.nola.safetensors'), nola_v2([{'name': 'm', 'shape_A': [2, 2 ** 26], 'd_out': 8, 'rank': 2, 'num_basis_A': 1, 'num_basis_B': 1}]))
    case('nola-huge-factor/x.nola.safetensors', 'one factor of 2^27 values from two coefficients', 'io', ['expand', 'verify'])
    d = folder('nola-huge-output')
    write(os.path.join(d, 'x.nola.safetensors'), nola_v2([{'name': 'm%d' % i, 'shape_A': [1, 2 ** 24], 'd_out': 8, 'rank': 1, 'num_basis_A': 1, 'num_basis_B': 1} for i in range(40)]))
    case('nola-huge-output/x.nola.safetensors', '40 layers of 2^24 values: 2.5 GiB of output', 'io', ['expand', 'verify'])
    d = folder('nola-uniform-work')
    kk = 65536
    stream = b'\x55' * (kk * 2 // 8) + bytes(2 * (kk // 64)) + bytes(4)
    write(os.path.join(d, 'x.nola.safetensors'), nola_v2([{'name': 'm', 'shape_A': [1, 2 ** 24], 'd_out': 1, 'rank': 1, 'basis': 'uniform',
                                                           'num_basis_A': kk, 'num_basis_B': 1, 'quant_A': 'int2'}], stream=stream))
    case('nola-uniform-work/x.nola.safetensors', 'uniform basis, k = 65536 over n = 2^24 (19 KB)', 'io', ['expand', 'verify'])
    d = folder('nola-many-layers')
    write(os.path.join(d, 'x.nola.safetensors'), nola_v2([{'name': 'l%d' % i, 'shape_A': [1, 8], 'd_out': 8, 'rank': 1, 'num_basis_A': 1, 'num_basis_B': 1} for i in range(50001)]))
    case('nola-many-layers/x.nola.safetensors', '50,001 layers (more than an expanded file may hold)', 'format', ['expand', 'inspect', 'verify'])
    d = folder('nola-rank-above-source')
    write(os.path.join(d, 'x.nola.safetensors'), nola_v2([{'name': 'm', 'shape_A': [2, 8], 'd_out': 8, 'rank': 4, 'num_basis_A': 4, 'num_basis_B': 4}]))
    case('nola-rank-above-source/x.nola.safetensors', 'NOLA rank 4 above source rank 2', 'format', ['expand', 'inspect', 'verify'])
    d = folder('header-many-tensors')
    header = '{' + ','.join('"t%d":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}' % i for i in range(150000)) + '}'
    write(os.path.join(d, 'x.safetensors'), frame(header))
    case('header-many-tensors/x.safetensors', 'header listing 150,000 tensors', 'format', ['compress', 'inspect'])
    d = folder('huge-factor-lora')
    n = 2 ** 25
    head = frame(json.dumps({PEFT + 'm.lora_A.weight': {'dtype': 'F16', 'shape': [1, n], 'data_offsets': [0, 2 * n]},
                             PEFT + 'm.lora_B.weight': {'dtype': 'F16', 'shape': [4, 1], 'data_offsets': [2 * n, 2 * n + 8]}}))
    with open(os.path.join(d, 'adapter_model.safetensors'), 'wb') as f:
        f.write(head)
        f.truncate(len(head) + 2 * n + 8)  # sparse: no disk space
    write(os.path.join(d, 'adapter_config.json'), json.dumps({'r': 1, 'lora_alpha': 1}))
    case('huge-factor-lora', 'factor of shape [1, 2^25]', 'io', ['compress', 'inspect'])

    # --- 1. deep JSON, files that are not regular, control characters in names.
    d = folder('deep-config')
    write(os.path.join(d, 'adapter_model.safetensors'), peft_lora(MODULES))
    write(os.path.join(d, 'adapter_config.json'), deep_json(100000))
    case('deep-config', 'adapter_config.json nested 100,000 levels', 'format', ['compress', 'inspect'])
    d = folder('nola-deep-config')
    write(os.path.join(d, 'x.nola.safetensors'), nola_v2(one, config={'r': 2, 'deep': json.loads(deep_json(500))}))
    case('nola-deep-config/x.nola.safetensors', 'stored config nested 500 levels', 'format', ['expand', 'inspect', 'verify'])
    d = folder('fifo-input')
    os.mkfifo(os.path.join(d, 'x.safetensors'))
    case('fifo-input/x.safetensors', 'a FIFO as the input', 'io', ['compress', 'inspect'])
    d = folder('fifo-config')
    write(os.path.join(d, 'adapter_model.safetensors'), peft_lora(MODULES))
    os.mkfifo(os.path.join(d, 'adapter_config.json'))
    case('fifo-config', 'a FIFO as adapter_config.json', 'io', ['compress', 'inspect'])
    d = folder('escape-name')
    write(os.path.join(d, 'x.safetensors'), safetensors([(PEFT + 'm\x1b[2K\rfake.lora_A.weight', F32, [RANK, D_IN], f32(values(1, RANK * D_IN)))]))
    case('escape-name/x.safetensors', 'tensor name holding a terminal escape (no layer recognized)', 'format', ['compress', 'inspect'])

    # --- 3. what compress writes, nola can read: factors and alphas it cannot record.
    for dt in ('I32', 'U8', 'BOOL', 'I64', 'F8_E4M3'):
        d = folder('factor-' + dt)
        size = DTYPE_SIZE.get(dt, 1)
        write(os.path.join(d, 'adapter_model.safetensors'), peft_lora(MODULES, dtype=dt, raw=lambda name, n: bytes([1]) * (n * size)))
        write(os.path.join(d, 'adapter_config.json'), json.dumps({'r': RANK, 'lora_alpha': 4}))
        case('factor-' + dt, 'LoRA factors in %s' % dt, 'format', ['compress'])
    d = folder('kohya-bool-alpha')
    t = []
    for f, shape in (('lora_down', [RANK, D_IN]), ('lora_up', [D_OUT, RANK])):
        t.append(('lora_unet_m.%s.weight' % f, F32, shape, f32(values(7, shape[0] * shape[1]))))
    t.append(('lora_unet_m.alpha', 'BOOL', [], b'\x01'))
    write(os.path.join(d, 'x.safetensors'), safetensors(t))
    case('kohya-bool-alpha/x.safetensors', 'kohya alpha tensor of dtype BOOL', 'format', ['compress'])
    d = folder('big-config')
    write(os.path.join(d, 'adapter_model.safetensors'), peft_lora(MODULES))
    write(os.path.join(d, 'adapter_config.json'), json.dumps({'r': RANK, 'lora_alpha': 4, 'pad': 'x' * (17 * 2 ** 20)}))
    case('big-config', 'adapter_config.json of 17 MiB', 'format', ['compress', 'inspect'])
    return cases


def main(argv):
    if len(argv) != 2:
        sys.stderr.write('usage: make-bad-inputs.py OUT_DIR\n')
        return 2
    out = argv[1]
    os.makedirs(out, exist_ok=True)
    manifest = []

    def put(name, kind, cls, data, nola):
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)
        manifest.append({'file': name, 'kind': kind, 'class': cls, 'nola': nola})

    for name, kind, cls, data in bad_safetensors_cases():
        put(name, kind, cls, data, False)
    for name, kind, cls, data in bad_nola_cases():
        put(name, kind, cls, data, True)
    os.makedirs(os.path.join(out, 'good'), exist_ok=True)
    # The LoRA cases are PEFT adapters: give them the config PEFT writes beside the weights (both folders),
    # so nola has nothing to warn about and its only output on stderr is the error.
    config = {'peft_type': 'LORA', 'r': RANK, 'lora_alpha': 2 * RANK, 'target_modules': ['q', 'v']}
    for folder in (out, os.path.join(out, 'good')):
        with open(os.path.join(folder, 'adapter_config.json'), 'w') as f:
            json.dump(config, f, indent=2)
    put('good/lora.safetensors', 'control: valid PEFT LoRA', 'ok', safetensors(lora_tensors()), False)
    put('good/model.nola.safetensors', 'control: valid NOLA file (format version 1)', 'ok', nola_file(), True)
    put('good/model-v2.nola.safetensors', 'control: valid NOLA file (format version 2)', 'ok', nola_file_v2(), True)
    with open(os.path.join(out, 'manifest.json'), 'w') as f:
        json.dump(manifest, f, indent=1)
        f.write('\n')
    root = os.path.join(out, 'issue14')
    os.makedirs(root, exist_ok=True)
    cases = issue14_cases(root)
    with open(os.path.join(root, 'manifest.json'), 'w') as f:
        json.dump(cases, f, indent=1)
        f.write('\n')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
