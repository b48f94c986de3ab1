/**
 * Kernel selection: the WebAssembly SIMD module where it instantiates (every supported Node on
 * x64 and arm64), else plain TypeScript. Both give identical bits, so the choice never changes a
 * result, only the speed.
 */
import { createWasmKernels } from './wasm-kernels.js';
import { tsKernels } from './ts-kernels.js';
import type { UniformKernels } from './types.js';
import { loadOnce } from './load-once.js';

export type { UniformKernels } from './types.js';
export { tsKernels } from './ts-kernels.js';

export type KernelChoice = 'auto' | 'wasm-simd' | 'ts';

let choice: KernelChoice = 'auto';

/** The WebAssembly kernels, or null where they cannot be instantiated. */
export const wasmKernels: () => UniformKernels | null = loadOnce(createWasmKernels);

/** Force an implementation (benchmarks and tests); 'auto' restores the default. */
export function selectKernels(c: KernelChoice): void {
  choice = c;
}

export function uniformKernels(): UniformKernels {
  if (choice === 'ts') return tsKernels;
  const w = wasmKernels();
  if (w === null && choice === 'wasm-simd') throw new Error('WebAssembly SIMD kernels are unavailable on this runtime');
  return w ?? tsKernels;
}
