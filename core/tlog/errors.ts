import { StellaError } from "../errors.ts";

/**
 * Transparency-log failures. Verification codes (what a caller branches on):
 * - TLOG_MISSING: the bundle has no tlog entry, or an entry without an inclusion proof.
 * - TLOG_UNTRUSTED: an entry names a log (logId) that the trusted root does not hold.
 * - TLOG_CHECKPOINT: the signed checkpoint is malformed or its signature does not verify with the trusted log key.
 * - TLOG_INCLUSION: the Merkle inclusion proof does not lead to the checkpoint's root hash, or the entry's
 *   logIndex/treeSize/rootHash disagree with what the proof and the checkpoint establish.
 * - TLOG_BODY: the logged entry (canonicalizedBody) is not this envelope's signature and PAE digest.
 * - TLOG_SIGNATURE: the envelope's signature does not verify with the trusted public key (or names another key).
 * - TLOG_INVALID: anything else about the entries that @sigstore/verify refuses (duplicates, malformed fields).
 * Client and set-up codes: TLOG_SUBMIT (HTTP failure), TLOG_RESPONSE (the log answered something that is not an
 * entry), TLOG_UNSUPPORTED_KEY (a key type the log or the verifier cannot use), TLOG_TRUSTED_ROOT (bad root).
 */
export type TlogErrorCode =
  | "TLOG_MISSING"
  | "TLOG_UNTRUSTED"
  | "TLOG_CHECKPOINT"
  | "TLOG_INCLUSION"
  | "TLOG_BODY"
  | "TLOG_SIGNATURE"
  | "TLOG_INVALID"
  | "TLOG_SUBMIT"
  | "TLOG_RESPONSE"
  | "TLOG_UNSUPPORTED_KEY"
  | "TLOG_TRUSTED_ROOT";

export class TlogError extends StellaError<TlogErrorCode> {}

/** Codes meaning "the bundle is readable, and the answer is no". */
export const TLOG_VERIFY_FAILURES: ReadonlySet<string> = new Set<TlogErrorCode>([
  "TLOG_MISSING",
  "TLOG_UNTRUSTED",
  "TLOG_CHECKPOINT",
  "TLOG_INCLUSION",
  "TLOG_BODY",
  "TLOG_SIGNATURE",
  "TLOG_INVALID",
]);
