export * from './safetensors/index.js';
export { writeFileAtomic, writeTextAtomic, assertWritable, removeLiveTempFiles, removeStaleTempFiles, assertDistinctOutputs, OutputBatch } from './atomic.js';
export { hashDataSection, hashFileRange, sha256Hex } from './hash.js';
