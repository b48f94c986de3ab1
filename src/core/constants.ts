/**
 * Every number that defines the NOLA file format. Mirrored in docs/FORMAT.md; nowhere else.
 */
export const FORMAT_VERSION = 2;
export const GENERATOR = 'lowbias32-v1';

export const GEN_M1 = 0x21f0aaad;
export const GEN_M2 = 0x735a2d97;
export const GEN_ROW_SALT = 0x9e3779b9;
export const GEN_COL_SALT = 0x85ebca6b;
export const GEN_VALUE_SCALE = 2 ** -23;

/** Salt mixed into per-layer seed derivation for factor A and factor B. */
export const SEED_SALT_A = 0x41414141;
export const SEED_SALT_B = 0x42424242;

/** Metadata key in the NOLA safetensors file holding the JSON description. */
export const NOLA_METADATA_KEY = 'nola';
/** Tensor names inside a NOLA file. */
/** Version 2: the one U8 tensor holding every layer's coefficient blocks. */
export const COEFF_TENSOR = 'nola.coeffs';
/** Version 2: the U8 tensor holding the zlib-compressed layer document. */
export const DOCUMENT_TENSOR = 'nola.document';
/** The most bytes a version-2 document may inflate to (the safetensors header limit: 100 MB). */
export const MAX_DOCUMENT_BYTES = 100_000_000;
export const PASSTHROUGH_PREFIX = 'nola.passthrough.';

/** Coefficients per absmax scale in the integer quantization modes (docs/FORMAT.md, "Quantization"). */
export const QUANT_GROUP_SIZE = 64;
