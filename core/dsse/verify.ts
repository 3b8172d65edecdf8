import { verify as cryptoVerify } from "node:crypto";

import { DsseError, base64Field, payloadBytes, type Envelope } from "./envelope.ts";
import { signatureDigest, type PublicKey } from "./keys.ts";
import { pae } from "./pae.ts";

export interface VerifyOptions {
  /** How many distinct trusted keys must have signed; default 1. */
  readonly threshold?: number;
  /** If given, the envelope's payloadType must be one of these (DSSE_PAYLOAD_TYPE otherwise). */
  readonly payloadTypes?: readonly string[];
  /** Names the envelope (a file path) in error messages. */
  readonly name?: string;
}

export interface VerifyResult {
  readonly payloadType: string;
  /** The decoded payload, now authenticated. */
  readonly payload: Uint8Array;
  /** keyids of the distinct trusted keys with a valid signature, in the order their signatures appear. */
  readonly verifiedKeyids: readonly string[];
}

/** One signature against one key; a malformed signature is simply one that does not verify. */
export function verifySignature(key: PublicKey, data: Uint8Array, sig: Uint8Array): boolean {
  try {
    return cryptoVerify(signatureDigest(key.type), data, { key: key.key, dsaEncoding: "der" }, sig);
  } catch {
    return false;
  }
}

/**
 * DSSE multi-signature verification (protocol.md, "(t, n)-ENVELOPE"). For each signature: if its
 * keyid is non-empty, only the trusted key with that keyid is tried, and a signature whose keyid
 * names no trusted key is skipped (that is not an error by itself); with an empty keyid every trusted
 * key is tried. The keyid only narrows the choice of key: acceptance always rests on a signature that
 * verifies. Each trusted key counts once however many signatures it made.
 *
 * Throws DsseError when fewer than `threshold` distinct trusted keys verify:
 * DSSE_NO_TRUSTED_KEY (no signature was even tried: every keyid names an unknown key),
 * DSSE_SIG_INVALID (none verified), DSSE_THRESHOLD_NOT_MET (some, but not enough);
 * then DSSE_PAYLOAD_TYPE if the payloadType is not an accepted one.
 */
export function verifyEnvelope(
  env: Envelope,
  keys: readonly PublicKey[],
  opts: VerifyOptions = {},
): VerifyResult {
  const name = opts.name ?? "envelope";
  const threshold = opts.threshold ?? 1;
  const byId = new Map<string, PublicKey>();
  for (const key of keys) byId.set(key.keyid, key);
  if (!Number.isSafeInteger(threshold) || threshold < 1) {
    throw new DsseError("DSSE_BAD_THRESHOLD", `threshold must be a positive integer, got ${threshold}`);
  }
  if (byId.size === 0) {
    throw new DsseError("DSSE_NO_TRUSTED_KEY", `${name}: no trusted keys given`);
  }
  if (threshold > byId.size) {
    throw new DsseError(
      "DSSE_BAD_THRESHOLD",
      `threshold ${threshold} can never be met with ${byId.size} distinct trusted key(s)`,
    );
  }

  if (env.signatures.length === 0) {
    throw new DsseError("DSSE_NO_SIGNATURES", `${name}: signatures: the envelope has no signatures`);
  }
  const payload = payloadBytes(env, name);
  const data = pae(env.payloadType, payload);
  const accepted = new Set<string>();
  let tried = 0;
  env.signatures.forEach((s, i) => {
    const sig = base64Field(s.sig, `${name}: signatures[${i}].sig`);
    let candidates: PublicKey[];
    if (s.keyid === "") candidates = [...byId.values()];
    else {
      const key = byId.get(s.keyid);
      candidates = key === undefined ? [] : [key];
    }
    for (const key of candidates) {
      if (accepted.has(key.keyid)) continue;
      tried++;
      if (verifySignature(key, data, sig)) {
        accepted.add(key.keyid);
        break;
      }
    }
  });

  if (accepted.size < threshold) {
    if (accepted.size > 0) {
      throw new DsseError(
        "DSSE_THRESHOLD_NOT_MET",
        `${name}: ${accepted.size} trusted key(s) verified, ${threshold} required`,
      );
    }
    if (tried === 0) {
      const ids = env.signatures.map((s) => s.keyid || "(none)").join(", ");
      throw new DsseError(
        "DSSE_NO_TRUSTED_KEY",
        `${name}: no signature names a trusted key (signature keyids: ${ids}; trusted: ${[...byId.keys()].join(", ")})`,
      );
    }
    throw new DsseError("DSSE_SIG_INVALID", `${name}: no signature verifies with the trusted key(s)`);
  }
  if (opts.payloadTypes !== undefined && !opts.payloadTypes.includes(env.payloadType)) {
    throw new DsseError(
      "DSSE_PAYLOAD_TYPE",
      `${name}: payloadType ${JSON.stringify(env.payloadType)} is not accepted (expected ${opts.payloadTypes.join(" or ")})`,
    );
  }
  return { payloadType: env.payloadType, payload, verifiedKeyids: [...accepted] };
}
