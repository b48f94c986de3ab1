#!/usr/bin/env python3
"""numpy yardsticks for `npm run bench -- --case ...` (bench/llm.ts); never a runtime dependency.

  yardsticks.py svd-resize SOURCE OUT [MAX_ERROR]
      What kohya's resize_lora does to a PEFT/kohya LoRA: per layer a thin QR of both factors, the
      SVD of the r x r core, the smallest rank whose relative truncation error is <= MAX_ERROR (0.1),
      F16 factors written to OUT. File reading and writing included in the time.
  yardsticks.py decode NOLA OUT
      A straightforward vectorized numpy decoder of a NOLA file: coefficient decoding (rice included,
      scripts/reference/nola_ref.py) and per-layer synthesis with scipy.fft (orthogonal basis: sign
      flip of an orthonormal DCT-III of the scattered coefficients), factors written in their source
      dtype (BF16/F16 rounded to nearest even, else F32).
  yardsticks.py uniform-expand NOLA OUT [CHUNK]
      The uniform basis expanded the vectorized way: per factor and chunk of CHUNK (256) columns the
      uint32 lowbias32 values of the k x CHUNK block (in place), then one BLAS product c @ V. 256
      columns keep the block in cache: 3x the rate of 4096-column chunks on this machine.
  yardsticks.py check-expanded SOURCE_DIR EXPANDED_DIR
      Relative Frobenius error of every layer's ΔW = scale·B·A of an expanded PEFT adapter against its
      source (scripts/reference/nola_ref.py's reader and low-rank error; scale = lora_alpha / r from
      each folder's adapter_config.json, rank_pattern / alpha_pattern honoured).
Each prints one JSON line with its wall time (seconds, measured inside: interpreter start excluded,
imports excluded).
Run with OPENBLAS_NUM_THREADS=1 (bench/llm.ts does): single-threaded BLAS, as the issue specifies.
"""
import json
import os
import struct
import sys
import time

import numpy as np
import scipy.fft

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'scripts', 'reference'))
import nola_ref  # noqa: E402


def to_bf16_bytes(x):
    u = np.ascontiguousarray(x, np.float32).view(np.uint32)
    r = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    return r.astype('<u2').tobytes()


def encode(x, dtype):
    if dtype == 'BF16':
        return to_bf16_bytes(x)
    if dtype == 'F16':
        return np.ascontiguousarray(x, '<f2').tobytes()
    return np.ascontiguousarray(x, '<f4').tobytes()


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype, shape, bytes), written in the given order."""
    header, offset = {}, 0
    for name, dtype, shape, raw in tensors:
        header[name] = {'dtype': dtype, 'shape': list(shape), 'data_offsets': [offset, offset + len(raw)]}
        offset += len(raw)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for t in tensors:
            f.write(t[3])


def svd_resize(source, out, max_error):
    t0 = time.perf_counter()
    _, tens = nola_ref.read_safetensors(source)
    written, ranks = [], []
    for key in sorted(k for k in tens if k.endswith('lora_A.weight')):
        kb = key.replace('lora_A.weight', 'lora_B.weight')
        A, B = nola_ref.factor_mats(tens[key], tens[kb])
        qb, rb = np.linalg.qr(B)          # d_out x r
        qa, ra = np.linalg.qr(A.T)        # d_in x r
        u, s, vt = np.linalg.svd(rb @ ra.T)
        tail = np.sqrt(np.cumsum((s ** 2)[::-1])[::-1])  # tail[k] = ||s[k:]||
        total = tail[0] if tail[0] > 0 else 1.0
        k = next((i for i in range(1, len(s) + 1) if (tail[i] if i < len(s) else 0.0) <= max_error * total), len(s))
        root = np.sqrt(s[:k])
        newb = (qb @ u[:, :k]) * root
        newa = (root[:, None] * vt[:k]) @ qa.T
        written.append((kb, 'F16', newb.shape, encode(newb, 'F16')))
        written.append((key, 'F16', newa.shape, encode(newa, 'F16')))
        ranks.append(k)
    write_safetensors(out, written)
    return {'seconds': time.perf_counter() - t0, 'layers': len(ranks), 'mean_rank': float(np.mean(ranks))}


def orthogonal_parts(seed, k, n):
    """Signs and selection of the orthogonal basis (docs/FORMAT.md): the partial Fisher-Yates
    shuffle is sequential, so it runs over a Python list (several times faster than numpy scalars)."""
    signs = np.where(nola_ref.u32(seed, 0, np.arange(n)) >= 0x80000000, -1.0, 1.0)
    draws = (nola_ref.u32(seed, 1, np.arange(k)).astype(np.int64) % (n - np.arange(k))).tolist()
    p = list(range(n))
    for t, d in enumerate(draws):
        r = t + d
        p[t], p[r] = p[r], p[t]
    return signs, np.array(p[:k])


def idct_ortho(z):
    return scipy.fft.idct(z, type=2, norm='ortho')


def synthesize_factor(e, f, k, seed, c):
    """Factor f ('A': rank x d_in, 'B': d_out x rank) of layer e, vectorized over its rows where it can."""
    r, din, dout = e['rank'], e['d_in'], e['d_out']
    d = din if f == 'A' else dout
    if e['basis'] == 'orthogonal-components':
        # component i: the orthogonal basis of length d at full span, seed u32(seed, 2, i)
        z = np.zeros((r, d))
        signs = np.empty((r, d))
        for i in range(r):
            signs[i], sel = orthogonal_parts(int(nola_ref.u32(seed, 2, i)), d, d)
            z[i, sel] = c[i * d:(i + 1) * d]
        comps = signs * idct_ortho(z)
        return comps if f == 'A' else comps.T
    n = r * d
    if e['basis'] == 'orthogonal':
        signs, sel = orthogonal_parts(seed, k, n)
        z = np.zeros(n)
        z[sel] = c
        x = signs * idct_ortho(z)
    else:
        x = nola_ref.synthesize(e['basis'], seed, k, n, c)
    return x.reshape(r, din) if f == 'A' else x.reshape(dout, r)


def decode(nola_path, out):
    t0 = time.perf_counter()
    layers = nola_ref.load_nola(nola_path)
    written = []
    for e in layers:
        for f in 'AB':
            x = synthesize_factor(e, f, e['num_basis_' + f], e['seed_' + f], e['coeffs_' + f])
            if f == 'B' and e.get('source_scale', e['scale']) != e['scale']:
                x = x * (e['scale'] / e['source_scale'])
            dtype = e.get('dtype_' + f, 'F32')
            written.append((e['key_' + f], dtype, x.shape, encode(x, dtype)))
    write_safetensors(out, written)
    return {'seconds': time.perf_counter() - t0, 'layers': len(layers)}


def uniform_expand(nola_path, out, chunk):
    t0 = time.perf_counter()
    layers = nola_ref.load_nola(nola_path)
    written, values = [], 0
    for e in layers:
        assert e['basis'] == 'uniform', e['basis']
        r, din, dout = e['rank'], e['d_in'], e['d_out']
        for f, n, shape in (('A', r * din, (r, din)), ('B', dout * r, (dout, r))):
            k, seed, c = e['num_basis_' + f], e['seed_' + f], e['coeffs_' + f]
            rk = nola_ref.mix32(np.uint64(seed) ^ nola_ref.mix32(np.arange(k, dtype=np.uint64) ^ np.uint64(0x9E3779B9))).astype(np.uint32)
            x = np.empty(n)
            cs = c / np.sqrt(k) * 2.0 ** -23
            ck = nola_ref.mix32(np.arange(n, dtype=np.uint64) ^ np.uint64(0x85EBCA6B)).astype(np.uint32)
            for j0 in range(0, n, chunk):
                j1 = min(n, j0 + chunk)
                v = rk[:, None] ^ ck[None, j0:j1]
                v ^= v >> np.uint32(16)
                v *= np.uint32(0x21F0AAAD)
                v ^= v >> np.uint32(15)
                v *= np.uint32(0x735A2D97)
                v ^= v >> np.uint32(15)
                w = v.view(np.int32)
                w >>= 8
                x[j0:j1] = cs @ w.astype(np.float64)
            values += k * n
            dtype = e.get('dtype_' + f, 'F32')
            written.append((e['key_' + f], dtype, shape, encode(x.reshape(shape), dtype)))
    write_safetensors(out, written)
    return {'seconds': time.perf_counter() - t0, 'layers': len(layers), 'basis_values': values}


def peft_scale(config, module):
    import re

    def pattern(d, default):
        for key, v in (d or {}).items():
            if module == key or module.endswith('.' + key) or re.fullmatch(key, module):
                return v
        return default
    r = pattern(config.get('rank_pattern'), config['r'])
    alpha = pattern(config.get('alpha_pattern'), config['lora_alpha'])
    return alpha / (np.sqrt(r) if config.get('use_rslora') else r)


def check_expanded(source_dir, expanded_dir):
    t0 = time.perf_counter()
    cfg0 = json.load(open(os.path.join(source_dir, 'adapter_config.json')))
    cfg1 = json.load(open(os.path.join(expanded_dir, 'adapter_config.json')))
    _, src = nola_ref.read_safetensors(os.path.join(source_dir, 'adapter_model.safetensors'))
    _, exp = nola_ref.read_safetensors(os.path.join(expanded_dir, 'adapter_model.safetensors'))
    errors = []
    for key in sorted(k for k in src if k.endswith('lora_A.weight')):
        kb = key.replace('lora_A.weight', 'lora_B.weight')
        module = key[:-len('.lora_A.weight')]
        A0, B0 = nola_ref.factor_mats(src[key], src[kb])
        A, B = nola_ref.factor_mats(exp[key], exp[kb])
        errors.append(nola_ref.lowrank_rel_error(peft_scale(cfg0, module), B0, A0, peft_scale(cfg1, module), B, A))
    return {'seconds': time.perf_counter() - t0, 'layers': len(errors), 'worst': max(errors), 'over_0.1': sum(e > 0.1 for e in errors)}


def main(argv):
    if argv[1] == 'svd-resize':
        print(json.dumps(svd_resize(argv[2], argv[3], float(argv[4]) if len(argv) > 4 else 0.1)))
    elif argv[1] == 'decode':
        print(json.dumps(decode(argv[2], argv[3])))
    elif argv[1] == 'uniform-expand':
        print(json.dumps(uniform_expand(argv[2], argv[3], int(argv[4]) if len(argv) > 4 else 256)))
    elif argv[1] == 'check-expanded':
        print(json.dumps(check_expanded(argv[2], argv[3])))
    else:
        raise SystemExit(__doc__)


if __name__ == '__main__':
    main(sys.argv)
