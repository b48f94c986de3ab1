/**
 * TensorFlow.js backend (GPU through @tensorflow/tfjs-node-gpu; the same code on tfjs-core's
 * pure-JS CPU backend for CI). A layer's basis is materialized once with the exact generator,
 * uploaded as float32 (exact: values are multiples of 2^-23 below 1), and synthesis/analysis are
 * matrix products on the device.
 */
import type * as Tf from '@tensorflow/tfjs-core';
import type { Basis } from '../core/basis.js';
import { fillRow } from '../core/generator.js';
import { BackendUnavailableError } from '../errors.js';
import { GPU_INSTALL_HINT, GPU_PACKAGE, type ComputeBackend } from './index.js';

type TfModule = typeof Tf;

/** Bases smaller than this many entries stay on the CPU kernels (upload and launch cost more than they save). */
export const DEVICE_MIN_ENTRIES = 1 << 16;

async function importTf(kind: 'gpu' | 'cpu'): Promise<TfModule> {
  if (kind === 'gpu') {
    const name = GPU_PACKAGE; // a variable: TypeScript must not resolve this optional package at build time
    let tf: TfModule;
    try {
      tf = (await import(name)) as TfModule;
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      // Not installed: the hint says it all. Installed but unable to start (no CUDA): add the loader's first line.
      if (err?.code === 'ERR_MODULE_NOT_FOUND') throw new BackendUnavailableError(GPU_INSTALL_HINT);
      throw new BackendUnavailableError(`${GPU_INSTALL_HINT} (${String(err?.message ?? e).split('\n')[0]})`);
    }
    await tf.ready();
    if (tf.getBackend() !== 'tensorflow') throw new BackendUnavailableError(`${GPU_INSTALL_HINT} (TensorFlow.js started the "${tf.getBackend()}" backend)`);
    return tf;
  }
  const core = '@tensorflow/tfjs-core', cpu = '@tensorflow/tfjs-backend-cpu';
  let tf: TfModule;
  try {
    tf = (await import(core)) as TfModule;
    await import(cpu);
  } catch (e) {
    throw new BackendUnavailableError(`--device tfjs-cpu needs ${core} and ${cpu} (devDependencies): ${(e as Error).message.split('\n')[0]}`);
  }
  tf.env().set('PROD', true); // no "install tfjs-node" banner on stdout: this path is for checks, not speed
  await tf.setBackend('cpu');
  await tf.ready();
  return tf;
}

export async function loadTfjsBackend(kind: 'gpu' | 'cpu'): Promise<ComputeBackend> {
  const tf = await importTf(kind);
  const live: Tf.Tensor[] = [];
  return {
    name: kind === 'gpu' ? 'tfjs-gpu' : 'tfjs-cpu',
    uniformBasis(seed, k, n) {
      if (k * n < DEVICE_MIN_ENTRIES) return undefined;
      const s = createTfjsUniformBasis(tf, seed, k, n);
      live.push(s.tensor);
      return s.basis;
    },
    releaseLayer() {
      for (const t of live.splice(0)) t.dispose();
    },
  };
}

/** The basis b_i = k^(-1/2)·value(seed, i, ·) as one k×n float32 tensor on the device. */
export function createTfjsUniformBasis(tf: TfModule, seed: number, k: number, n: number): { basis: Basis; tensor: Tf.Tensor2D } {
  const values = new Float32Array(k * n);
  for (let i = 0; i < k; i++) fillRow(seed >>> 0, i, values.subarray(i * n, (i + 1) * n));
  const s = tf.tensor2d(values, [k, n], 'float32');
  const norm = 1 / Math.sqrt(k);

  function synthesize(c: ArrayLike<number>, out: Float64Array): void {
    const cv = new Float32Array(k);
    for (let i = 0; i < k; i++) cv[i] = c[i] * norm;
    const y = tf.tidy(() => tf.matMul(tf.tensor2d(cv, [1, k], 'float32'), s));
    const data = y.dataSync();
    y.dispose();
    for (let j = 0; j < n; j++) out[j] = data[j];
  }

  function analyze(x: ArrayLike<number>, out: Float64Array): void {
    const xv = Float32Array.from(x as ArrayLike<number>);
    const z = tf.tidy(() => tf.matMul(s, tf.tensor2d(xv, [n, 1], 'float32')));
    const data = z.dataSync();
    z.dispose();
    for (let i = 0; i < k; i++) out[i] = data[i] * norm;
  }

  return { basis: { family: 'uniform', k, n, orthonormal: false, synthesize, analyze }, tensor: s };
}
