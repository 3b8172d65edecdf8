import canonicalize from "canonicalize";

import { StellaError } from "./errors.ts";

/**
 * RFC 8785 (JSON Canonicalization Scheme) serialisation: every hash or signature over JSON in
 * this project is over these bytes. Throws for values JSON cannot represent (undefined, bigint).
 */
export function canonicalJson(value: unknown): string {
  const out = canonicalize(value);
  if (out === undefined) throw new StellaError("JSON_NOT_REPRESENTABLE", "value has no JSON representation");
  return out;
}

export function canonicalBytes(value: unknown): Uint8Array {
  return Buffer.from(canonicalJson(value), "utf8");
}
