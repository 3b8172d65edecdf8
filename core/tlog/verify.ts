import { bundleFromJSON } from "@sigstore/bundle";
import { PublicKeyDetails, type TransparencyLogEntry } from "@sigstore/protobuf-specs";
import { Verifier, VerificationError, toSignedEntity, toTrustMaterial } from "@sigstore/verify";

import { bundleFromObject } from "../dsse/bundle.ts";
import type { Envelope } from "../dsse/envelope.ts";
import type { PublicKey } from "../dsse/keys.ts";
import { TlogError, type TlogErrorCode } from "./errors.ts";
import { toTrustedRoot } from "./trusted-root.ts";

/**
 * Offline verification of a sigstore bundle v0.3 whose DSSE envelope was logged in a Rekor v2 log: the envelope's
 * signature with our public key, and for every tlog entry its signed checkpoint (with the trusted root's log key),
 * its Merkle inclusion proof up to that checkpoint, and that the logged body is this envelope's signature and PAE
 * digest. The cryptography is @sigstore/verify's (never hand-rolled); this module adds the lookups and consistency
 * checks @sigstore/verify leaves to callers, and maps its errors to our codes.
 */

export interface TlogVerifyOptions {
  /** TrustedRoot JSON (makeTrustedRoot / parseTrustedRoot) naming the logs whose checkpoints we accept. */
  readonly trustedRoot: object;
  /** The key the envelope must be signed with; the bundle's publicKey.hint must be its keyid. */
  readonly publicKey: PublicKey;
  /** Names the bundle in error messages (usually its path). */
  readonly name: string;
}

export interface VerifiedTlogEntry {
  readonly logIndex: string;
  /** base64 log ID (= the Rekor v2 checkpoint key ID). */
  readonly logId: string;
  /** Tree size of the verified checkpoint the inclusion proof leads to. */
  readonly treeSize: string;
  readonly kind: string;
  readonly version: string;
}

export interface TlogVerification {
  readonly envelope: Envelope;
  readonly entries: VerifiedTlogEntry[];
}

const SIGSTORE_KEY_DETAILS: Partial<Record<PublicKey["type"], PublicKeyDetails>> = {
  "ecdsa-p256": PublicKeyDetails.PKIX_ECDSA_P256_SHA_256,
  "ecdsa-p384": PublicKeyDetails.PKIX_ECDSA_P384_SHA_384,
  "ecdsa-p521": PublicKeyDetails.PKIX_ECDSA_P521_SHA_512,
  ed25519: PublicKeyDetails.PKIX_ED25519,
};

export function verifyTlogBundle(bundle: unknown, opts: TlogVerifyOptions): TlogVerification {
  const { name, publicKey } = opts;
  // Our own strict parse first: a public-key DSSE bundle, its envelope exactly as signed.
  const { envelope, keyHint } = bundleFromObject(bundle, name);
  const root = toTrustedRoot(opts.trustedRoot, `${name}: trusted root`);
  const parsed = bundleFromJSON(bundle);
  const entries = parsed.verificationMaterial.tlogEntries;
  if (entries.length === 0) {
    throw new TlogError(
      "TLOG_MISSING",
      `${name}: the bundle has no transparency-log entry (tlogEntries is empty)`,
    );
  }
  if (keyHint !== publicKey.keyid) {
    throw new TlogError(
      "TLOG_SIGNATURE",
      `${name}: the bundle names key ${keyHint}, not the trusted key ${publicKey.name} (${publicKey.keyid})`,
    );
  }
  entries.forEach((entry, i) => {
    precheckEntry(
      entry,
      `${name}: tlogEntries[${String(i)}]`,
      root.tlogs.map((t) => (t.checkpointKeyId ?? t.logId)?.keyId),
    );
  });

  const material = toTrustMaterial(root, {
    [publicKey.keyid]: {
      rawBytes: publicKey.key.export({ type: "spki", format: "der" }),
      keyDetails: SIGSTORE_KEY_DETAILS[publicKey.type] ?? PublicKeyDetails.PUBLIC_KEY_DETAILS_UNSPECIFIED,
      validFor: undefined,
    },
  });
  // Keyed verification: the signing key is trusted as such, with no validity window to place the signature in, and
  // Rekor v2 entries carry no signed time (integratedTime is 0, no SET): no timestamp is required. A bundle that
  // does carry timestamps still has each one verified. No certificates, so no SCTs.
  const verifier = new Verifier(material, { tlogThreshold: 1, ctlogThreshold: 0, timestampThreshold: 0 });
  try {
    verifier.verify(toSignedEntity(parsed));
  } catch (cause) {
    throw mapError(cause, name);
  }

  const verified = entries.map((entry, i) =>
    checkAgainstCheckpoint(entry, `${name}: tlogEntries[${String(i)}]`),
  );
  return { envelope, entries: verified };
}

/** Lookups before the cryptography, for precise errors (UNTRUSTED input: every field may be absent). */
function precheckEntry(entry: TransparencyLogEntry, where: string, trusted: (Buffer | undefined)[]): void {
  const logId = entry.logId?.keyId;
  if (logId === undefined || logId.length === 0) {
    throw new TlogError("TLOG_INVALID", `${where}: no logId`);
  }
  if (!trusted.some((id) => id?.equals(logId) === true)) {
    throw new TlogError(
      "TLOG_UNTRUSTED",
      `${where}: log ${logId.toString("base64")} is not in the trusted root (a checkpoint from another log)`,
    );
  }
  const proof = entry.inclusionProof;
  if (proof === undefined) {
    throw new TlogError(
      "TLOG_MISSING",
      `${where}: no inclusion proof (an entry without one proves nothing offline)`,
    );
  }
  // @sigstore/verify checks the proof at inclusionProof.logIndex; the entry's own logIndex is what callers read and
  // cite (rekor-tiles CLIENTS.md: "the log index should be read from the top-level logIndex"), so they must agree.
  if (entry.logIndex !== proof.logIndex) {
    throw new TlogError(
      "TLOG_INCLUSION",
      `${where}: logIndex ${entry.logIndex} is not the index the inclusion proof is for (${proof.logIndex})`,
    );
  }
}

/**
 * After @sigstore/verify accepted the checkpoint signature and the proof, the entry's unsigned copies of the tree
 * size and root hash must be the signed checkpoint's (CLIENTS.md: never use them unless compared to it).
 */
function checkAgainstCheckpoint(entry: TransparencyLogEntry, where: string): VerifiedTlogEntry {
  const proof = entry.inclusionProof;
  const note = proof?.checkpoint?.envelope ?? "";
  // Checkpoint body (C2SP tlog-checkpoint): origin, tree size, base64 root hash, then optional lines.
  const [, size, hash] = note.slice(0, note.indexOf("\n\n") + 1).split("\n");
  if (proof === undefined || size === undefined || hash === undefined) {
    throw new TlogError("TLOG_CHECKPOINT", `${where}: checkpoint has no tree size and root hash lines`);
  }
  if (proof.treeSize !== size) {
    throw new TlogError(
      "TLOG_INCLUSION",
      `${where}: inclusionProof.treeSize ${proof.treeSize} is not the signed checkpoint's tree size ${size}`,
    );
  }
  if (!proof.rootHash.equals(Buffer.from(hash, "base64"))) {
    throw new TlogError(
      "TLOG_INCLUSION",
      `${where}: inclusionProof.rootHash is not the signed checkpoint's root hash`,
    );
  }
  return {
    logIndex: entry.logIndex,
    logId: entry.logId?.keyId.toString("base64") ?? "",
    treeSize: size,
    kind: entry.kindVersion?.kind ?? "",
    version: entry.kindVersion?.version ?? "",
  };
}

/**
 * @sigstore/verify 4.x error codes to ours. It reports checkpoint and Merkle failures under one code
 * (TLOG_INCLUSION_PROOF_ERROR); its checkpoint messages all name the checkpoint, its Merkle ones never do.
 */
function mapError(cause: unknown, name: string): TlogError {
  if (!(cause instanceof VerificationError)) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    return new TlogError("TLOG_INVALID", `${name}: transparency-log verification failed: ${detail}`, {
      cause,
    });
  }
  let code: TlogErrorCode;
  let what: string;
  switch (cause.code) {
    case "TLOG_INCLUSION_PROOF_ERROR":
      if (/checkpoint/i.test(cause.message)) {
        code = "TLOG_CHECKPOINT";
        what = "the signed checkpoint does not verify with the trusted log key";
      } else {
        code = "TLOG_INCLUSION";
        what = "the inclusion proof does not lead to the checkpoint's root hash";
      }
      break;
    case "TLOG_INCLUSION_PROMISE_ERROR":
      code = "TLOG_INCLUSION";
      what = "the signed entry timestamp does not verify";
      break;
    case "TLOG_MISSING_INCLUSION_ERROR":
      code = "TLOG_MISSING";
      what = "an entry has neither inclusion proof nor promise";
      break;
    case "TLOG_BODY_ERROR":
      code = "TLOG_BODY";
      what = "the logged entry is not this envelope's signature and PAE digest";
      break;
    case "PUBLIC_KEY_ERROR":
    case "SIGNATURE_ERROR":
      code = "TLOG_SIGNATURE";
      what = "the envelope's signature does not verify with the trusted key";
      break;
    default:
      code = "TLOG_INVALID";
      what = "the transparency-log entries are not acceptable";
  }
  return new TlogError(code, `${name}: ${what} (@sigstore/verify ${cause.code}: ${cause.message})`, {
    cause,
  });
}
