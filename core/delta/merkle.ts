/**
 * Merkle root over a sequence of chunk ids, shaped like RFC 6962 (Certificate Transparency) so that
 * the tree is fixed by the number of leaves alone and never duplicates a node:
 *
 *   leaf(id)        = SHA-256(0x00 || id)                       (id: the 32 raw bytes of the chunk id)
 *   MTH([])         = SHA-256("")
 *   MTH([x])        = leaf(x)
 *   MTH(xs), n > 1  = SHA-256(0x01 || MTH(xs[0:k]) || MTH(xs[k:n])),  k = largest power of two < n
 *
 * The 0x00 / 0x01 prefixes separate leaves from inner nodes (no second preimages across levels).
 */
import { createHash } from "node:crypto";

import { DeltaError } from "./errors.ts";

function sha(...parts: Uint8Array[]): Buffer {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
}

const LEAF = Uint8Array.of(0);
const NODE = Uint8Array.of(1);

function idBytes(id: string): Buffer {
  if (!/^[0-9a-f]{64}$/.test(id)) {
    throw new DeltaError(
      "DELTA_INVALID_PARAMS",
      `merkle: chunk id must be 64 lower-case hex digits, got "${id}"`,
    );
  }
  return Buffer.from(id, "hex");
}

function mth(leaves: Buffer[], from: number, to: number): Buffer {
  const n = to - from;
  const only = leaves[from];
  if (n === 1 && only !== undefined) return only;
  let k = 1;
  while (k * 2 < n) k *= 2;
  return sha(NODE, mth(leaves, from, from + k), mth(leaves, from + k, to));
}

/** Lower-case hex Merkle root of the chunk ids, in order. */
export function merkleRoot(ids: readonly string[]): string {
  if (ids.length === 0) return sha().toString("hex");
  const leaves = ids.map((id) => sha(LEAF, idBytes(id)));
  return mth(leaves, 0, leaves.length).toString("hex");
}
