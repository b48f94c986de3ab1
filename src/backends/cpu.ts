/** The default backend: the CPU kernels of src/core (nothing to load, nothing to free). */
import type { ComputeBackend } from './index.js';

export const cpuBackend: ComputeBackend = {
  name: 'cpu',
  uniformBasis: () => undefined,
  releaseLayer: () => {},
};
