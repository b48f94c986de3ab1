/** The safetensors layer: strict streaming reader, sorted padded atomic writer, dtype conversions. */
export type { DType, EncodableDType } from './dtypes.js';
export {
  ALL_DTYPES, decodeToFloat32, decodeToFloat64, dtypeSize, encodeFloats, isDType, isEncodableDType, isFloatDType,
} from './dtypes.js';
export type {
  SafetensorsFile, SafetensorsLimits, TensorData, TensorInfo, TensorSpec, WriteOptions,
} from './types.js';
export { DEFAULT_LIMITS, openSafetensors } from './reader.js';
export { encodeHeader, planLayout, writeSafetensors, type ProduceTensor } from './writer.js';
