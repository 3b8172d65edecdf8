import { normalizeAarch64 } from "./aarch64.ts";
import { normalizeX86 } from "./x86-64.ts";

/**
 * An ELF machine as the rest of the product names it. Only these two are normalised; the
 * `string & NonNullable<unknown>` keeps the literals visible to editors without narrowing the type.
 */
export type Arch = "x86_64" | "aarch64" | (string & NonNullable<unknown>);

export interface NormalizedCode {
  /** The masked copy (or, when not `supported`, the input itself). */
  bytes: Uint8Array;
  /** Undecodable instructions (x86: invalid, truncated or prefix-only; aarch64: a trailing partial word). */
  invalid: number;
  /** False for an architecture without a normaliser: `bytes` is then the raw input. */
  supported: boolean;
}

/**
 * The bytes a "normalised" function hash is computed over: `code` with the fields that encode where
 * code and data were placed (branch displacements, PC/RIP-relative offsets) zeroed. The input is
 * never modified. See x86-64.ts and aarch64.ts for exactly what is masked.
 */
export function normalizeCode(arch: Arch, code: Uint8Array): NormalizedCode {
  if (arch === "x86_64") {
    const { bytes, invalid } = normalizeX86(code);
    return { bytes, invalid, supported: true };
  }
  if (arch === "aarch64") {
    return { bytes: normalizeAarch64(code), invalid: code.length % 4 === 0 ? 0 : 1, supported: true };
  }
  return { bytes: code, invalid: 0, supported: false };
}
