/**
 * Compute backends for the uniform basis, behind one small interface and loaded lazily:
 *
 * - cpu (default, always available): the WebAssembly SIMD / TypeScript kernels, bases
 *   regenerated on the fly, float64 accumulation.
 * - gpu: TensorFlow.js with @tensorflow/tfjs-node-gpu (an optional peer dependency the user
 *   installs; it needs CUDA 11.2 and cuDNN 8.1). Each layer's bases are generated once on the CPU
 *   by the exact generator, uploaded (float32 holds every value exactly), and the passes of the
 *   fit (synthesis and analysis products: the ALS solves and the refinement steps) run on the
 *   device. Accumulation is float32 there, so results agree with the CPU path to ~1e-6, not bit
 *   for bit.
 * - tfjs-cpu: the same TensorFlow.js code on its pure-JavaScript CPU backend
 *   (@tensorflow/tfjs-core + @tensorflow/tfjs-backend-cpu), so CI checks the GPU code path
 *   without a GPU.
 */
import type { Basis } from '../core/basis.js';
import { BackendUnavailableError, UsageError } from '../errors.js';

export type Device = 'cpu' | 'gpu' | 'auto' | 'tfjs-cpu';

export interface ComputeBackend {
  readonly name: 'cpu' | 'tfjs-gpu' | 'tfjs-cpu';
  /** A uniform basis whose products run on this backend, or undefined to use the CPU kernels. */
  uniformBasis(seed: number, k: number, n: number): Basis | undefined;
  /** Frees what the layers fitted so far left on the device. */
  releaseLayer(): void;
}

/** The --device flag: cpu, gpu or auto (tfjs-cpu is for tests and the device check, not the CLI). */
export function parseDevice(v: string): Exclude<Device, 'tfjs-cpu'> {
  if (v === 'cpu' || v === 'gpu' || v === 'auto') return v;
  throw new UsageError(`--device must be cpu, gpu or auto, got "${v}"`);
}

export const GPU_PACKAGE = '@tensorflow/tfjs-node-gpu';
export const GPU_INSTALL_HINT =
  `--device gpu needs the optional package ${GPU_PACKAGE}: run \`npm install ${GPU_PACKAGE}@4.22.0\` ` +
  '(it downloads libtensorflow 2.9.1 and needs CUDA 11.2 with cuDNN 8.1), or use --device cpu';

/**
 * Loads the backend for a device. `gpu` fails with BackendUnavailableError (exit code 6) when
 * the package or the GPU cannot start; `auto` falls back to the CPU and says why through `warn`.
 */
export async function loadBackend(device: Device, warn?: (message: string) => void): Promise<ComputeBackend> {
  if (device === 'cpu') return (await import('./cpu.js')).cpuBackend;
  const { loadTfjsBackend } = await import('./tfjs.js');
  if (device === 'tfjs-cpu') return loadTfjsBackend('cpu');
  try {
    return await loadTfjsBackend('gpu');
  } catch (e) {
    const reason = e instanceof BackendUnavailableError ? e.message : `${GPU_INSTALL_HINT} (${(e as Error).message})`;
    if (device === 'gpu') throw e instanceof BackendUnavailableError ? e : new BackendUnavailableError(reason);
    warn?.(`--device auto: using the CPU (${reason})`);
    return (await import('./cpu.js')).cpuBackend;
  }
}
