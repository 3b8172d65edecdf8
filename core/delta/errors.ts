/** Errors of the delta engine. Callers branch on `code`; messages name the file, the field and the limit. */
import { StellaError } from "../errors.ts";

export type DeltaErrorCode =
  /** Bad parameters given by the caller (CDC sizes, codec level, caps). */
  | "DELTA_INVALID_PARAMS"
  /** delta.bin is structurally broken: magic, version, lengths, varints, checksums, truncation. */
  | "DELTA_MALFORMED"
  /** A section's CRC-32 does not match: accidental corruption. */
  | "DELTA_CHECKSUM"
  /** A declared size exceeds a cap (output, ADD bytes, op count). */
  | "DELTA_TOO_LARGE"
  /** An op points outside the base, the output or its data area. */
  | "DELTA_OUT_OF_RANGE"
  /** A COPY chunk names a base chunk that does not exist or does not hash to its id. */
  | "DELTA_UNKNOWN_CHUNK"
  /** The base given to apply is not the base the delta was made from. */
  | "DELTA_BASE_MISMATCH"
  /** The reconstructed output does not hash to the target digest. */
  | "DELTA_TARGET_MISMATCH"
  /** Reading or writing files failed. */
  | "DELTA_IO";

export class DeltaError extends StellaError<DeltaErrorCode> {}
