#!/usr/bin/env python3
"""Reference size/error frontier of a data-free LoRA compressor (benchmarks only).

Per layer: SVD of the update, truncate to rank t, balanced split B = U sqrt(S), A = sqrt(S) V^T,
rotate each factor by random signs and a random orthogonal matrix (QR of a Gaussian), quantize
with group-64 absmax at b bits (f16 scales), and measure the relative error. For --max-error E,
pick per layer the fewest bytes over t in 1..r and b in 3..8 with error <= E. Prints the total
bytes and the ratio to the fp16 LoRA factors. Written from the issue text, independently of nola.

usage: frontier.py LORA.safetensors [MAX_ERROR]
"""
import json
import sys

import numpy as np

sys.path.insert(0, __file__.rsplit('/', 1)[0])
from nola_ref import lowrank_rel_error, read_safetensors, to_float  # noqa: E402


def quant(x, bits, group=64):
    flat = x.ravel()
    pad = (-len(flat)) % group
    g = np.concatenate([flat, np.zeros(pad)]).reshape(-1, group)
    L = 2 ** (bits - 1) - 1
    scale = np.abs(g).max(axis=1, keepdims=True) / L
    scale = scale.astype(np.float16).astype(np.float64)
    scale[scale == 0] = 1
    q = np.clip(np.round(g / scale), -L, L) * scale
    return q.ravel()[: len(flat)].reshape(x.shape), len(flat) * bits / 8 + 2 * g.shape[0]


_ROT = {}


def rotation(n):
    """One random orthogonal matrix per dimension (QR of a Gaussian), cached; None above 2048."""
    if n > 2048:
        return None
    if n not in _ROT:
        _ROT[n], _ = np.linalg.qr(np.random.default_rng(n).standard_normal((n, n)))
    return _ROT[n]


def pairs(tensors):
    names = list(tensors)
    for n in names:
        for a, b in (('lora_A.weight', 'lora_B.weight'), ('lora.down.weight', 'lora.up.weight'), ('lora_down.weight', 'lora_up.weight')):
            if n.endswith(a):
                yield n, n[: -len(a)] + b


def main():
    path = sys.argv[1]
    E = float(sys.argv[2]) if len(sys.argv) > 2 else 0.1
    _, tens = read_safetensors(path)
    total = fp16 = 0
    for ka, kb in pairs(tens):
        A0 = to_float(*tens[ka]); B0 = to_float(*tens[kb])
        r = A0.shape[0]; A0 = A0.reshape(r, -1); B0 = B0.reshape(B0.shape[0], r)
        # SVD of T = B0 A0 through thin QRs of both factors (T is never formed).
        Qb, Rb = np.linalg.qr(B0)
        Qa, Ra = np.linalg.qr(A0.T)
        Uc, S, Vct = np.linalg.svd(Rb @ Ra.T)
        U, Vt = Qb @ Uc, (Qa @ Vct.T).T
        fp16 += 2 * r * (A0.shape[1] + B0.shape[0])
        best = None
        for t in range(1, r + 1):
            B = U[:, :t] * np.sqrt(S[:t]); A = np.sqrt(S[:t])[:, None] * Vt[:t]
            QA = rotation(A.shape[1])
            for bits in range(3, 9):
                if QA is not None:
                    Aq, ba = quant(A @ QA, bits); Aq = Aq @ QA.T
                else:
                    Aq, ba = quant(A, bits)
                Bq, bb = quant(B, bits)
                err = lowrank_rel_error(1.0, B0, A0, 1.0, Bq, Aq)
                if err <= E and (best is None or ba + bb < best):
                    best = ba + bb
        total += best if best is not None else 2 * r * (A0.shape[1] + B0.shape[0])
    print(json.dumps({'file': path, 'max_error': E, 'bytes': total, 'fp16_bytes': fp16, 'ratio_vs_fp16': fp16 / total}))


if __name__ == '__main__':
    main()
