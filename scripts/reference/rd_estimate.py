#!/usr/bin/env python3
"""Rate-distortion estimates of a LoRA at a relative error bound (tests and benchmarks only).

Written from docs/ALGORITHM.md ("How close to the limit"), independently of src/core/rd-estimate.ts:
per layer the singular values of the update (thin QRs of both factors, SVD of the small core),
reverse water-filling for theta with sum(min(theta, lambda_i)) = E^2 * sum(lambda_i), then
  gaussian = sum over kept components of (m/2) log2(lambda_i/theta), m = d_in + d_out - 1
  bound    = gaussian + kept * ((d_in/2) log2((d_in+d_out)/d_in) + (d_out/2) log2((d_in+d_out)/d_out))
Prints JSON: fp16 bytes of the factors and the ratios fp16 / estimate.

usage: rd_estimate.py LORA.safetensors [MAX_ERROR]
"""
import json
import sys

import numpy as np

sys.path.insert(0, __file__.rsplit('/', 1)[0])
from nola_ref import read_safetensors, to_float  # noqa: E402
from frontier import pairs  # noqa: E402


def layer_bits(S, d_in, d_out, E):
    lam = S[S > 0] ** 2
    if lam.size == 0:
        return 0.0, 0.0
    D = E * E * lam.sum()
    lo, hi = 0.0, lam.max()
    for _ in range(200):
        th = (lo + hi) / 2
        if np.minimum(th, lam).sum() > D:
            hi = th
        else:
            lo = th
    th = lo
    keep = lam > th
    m = d_in + d_out - 1
    g = float((m / 2 * np.log2(lam[keep] / th)).sum())
    extra = d_in / 2 * np.log2((d_in + d_out) / d_in) + d_out / 2 * np.log2((d_in + d_out) / d_out)
    return g, g + extra * int(keep.sum())


def main():
    path = sys.argv[1]
    E = float(sys.argv[2]) if len(sys.argv) > 2 else 0.1
    _, tens = read_safetensors(path)
    fp16 = gauss = bound = 0.0
    for ka, kb in pairs(tens):
        A0 = to_float(*tens[ka]); B0 = to_float(*tens[kb])
        r = A0.shape[0]; A0 = A0.reshape(r, -1); B0 = B0.reshape(B0.shape[0], r)
        _, Rb = np.linalg.qr(B0)
        _, Ra = np.linalg.qr(A0.T)
        S = np.linalg.svd(Rb @ Ra.T, compute_uv=False)
        g, b = layer_bits(S, A0.shape[1], B0.shape[0], E)
        gauss += g; bound += b
        fp16 += 2 * r * (A0.shape[1] + B0.shape[0])
    print(json.dumps({'file': path, 'max_error': E, 'fp16_bytes': fp16,
                      'gaussian_ratio': fp16 * 8 / gauss, 'bound_ratio': fp16 * 8 / bound}))


if __name__ == '__main__':
    main()
