/**
 * Every number that defines the NOLA file format. Mirrored in docs/FORMAT.md; nowhere else.
 */
/**
 * The newest format version nola writes. A file states the oldest version that reads it: 3 when it
 * holds a rans block, else 2 (1 only when asked for, --format-version 1).
 */
export const FORMAT_VERSION = 3;
/** The version of a file with no rans block. */
export const FORMAT_VERSION_RICE = 2;
/** What a writer may be asked for: the newest version its file may need. */
export type FormatVersion = 1 | 2 | 3;
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

/**
 * The rans blocks' models (docs/FORMAT.md, "rANS blocks"): entry p is round(2^24 · exp(−1/(2u²)))
 * with u = 2^((p − 24)/8), the model's standard deviation in levels. Normative: readers use these
 * integers, not the formula (computing them again needs an exp that rounds alike everywhere).
 */
export const RANS_R: readonly number[] = [
  0, 0, 0, 0, 2, 24, 205, 1239,
  5628, 20098, 58611, 144164, 307285, 580675, 991630, 1555205,
  2270549, 3121236, 4078822, 5108034, 6171993, 7236411, 8272320, 9257354,
  10175896, 11018477, 11780768, 12462448, 13066109, 13596300, 14058751, 14459778,
  14805841, 15103247, 15357953, 15575456, 15760736, 15918242, 16051906, 16165172,
  16261035, 16342086, 16410554, 16468351, 16517109, 16558222, 16592872, 16622066,
  16646655, 16667359, 16684790, 16699461, 16711808, 16722197, 16730939, 16738293,
  16744480, 16749684, 16754062, 16757743, 16760840, 16763444, 16765635, 16767477,
  16769026, 16770329, 16771424, 16772346, 16773120, 16773772, 16774320, 16774781,
  16775168, 16775494, 16775768, 16775998, 16776192, 16776355, 16776492, 16776607,
  16776704, 16776785, 16776854, 16776912, 16776960, 16777001, 16777035, 16777064,
  16777088, 16777108, 16777125, 16777140, 16777152, 16777162, 16777171, 16777178,
];
