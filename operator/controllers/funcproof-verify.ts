import { envelopeFromObject } from "../../core/dsse/envelope.ts";
import type { PublicKey } from "../../core/dsse/keys.ts";
import { IN_TOTO_PAYLOAD_TYPE, parseStatement } from "../../core/dsse/statement.ts";
import { verifyEnvelope } from "../../core/dsse/verify.ts";
import { StellaError } from "../../core/errors.ts";
import { FUNCPROOF_PREDICATE_TYPE, type FuncProof } from "../../core/funcproof/funcproof.ts";
import {
  asFuncProof,
  summarize,
  summaryMismatches,
  type FuncProofSummary,
} from "../../core/funcproof/summary.ts";

/** Reasons of the `Verified` condition: CamelCase, stable, documented in docs/crds.md. */
export type VerifiedReason =
  | "Verified"
  | "SignatureInvalid"
  | "UnknownKey"
  | "SpecMismatch"
  | "MalformedEnvelope"
  | "WrongPredicateType"
  | "NameMismatch"
  | "NoTrustedKeys"
  | "EnvelopeNotInline";

export interface VerifyDecision {
  status: "True" | "False" | "Unknown";
  reason: VerifiedReason;
  message: string;
  verifiedKeyIds: string[];
  /** The signed FuncProof body, when Verified: its function table names stripped frames. */
  proof?: FuncProof;
}

/** The spec fields the controller reads (the generated CRD type is wider). */
export interface FuncProofSpecView extends FuncProofSummary {
  envelope?: unknown;
  envelopeRef?: { digest: string; location?: string };
}

const DSSE_REASONS: Record<string, VerifiedReason> = {
  DSSE_NO_TRUSTED_KEY: "UnknownKey",
  DSSE_SIG_INVALID: "SignatureInvalid",
  DSSE_THRESHOLD_NOT_MET: "SignatureInvalid",
  DSSE_PAYLOAD_TYPE: "MalformedEnvelope",
};

function decision(
  status: VerifyDecision["status"],
  reason: VerifiedReason,
  message: string,
  ids: string[] = [],
): VerifyDecision {
  return { status, reason, message, verifiedKeyIds: ids };
}

/**
 * Decides a FuncProof resource's `Verified` condition: the envelope must verify with a trusted
 * key, carry a FuncProof statement about the file the spec names, and its body must summarise to
 * exactly the spec. Everything in the resource is untrusted input.
 */
export function verifyFuncProofResource(
  name: string,
  spec: FuncProofSpecView,
  trusted: readonly PublicKey[],
): VerifyDecision {
  let verifiedProof: FuncProof | undefined;
  if (name !== spec.buildId) {
    return decision("False", "NameMismatch", `metadata.name ${name} is not spec.buildId ${spec.buildId}`);
  }
  if (spec.envelope === undefined) {
    const where = spec.envelopeRef ? ` (referenced as ${spec.envelopeRef.digest})` : "";
    return decision(
      "Unknown",
      "EnvelopeNotInline",
      `the envelope is not inline${where}; fetching referenced envelopes is not supported yet`,
    );
  }
  if (trusted.length === 0) {
    return decision(
      "Unknown",
      "NoTrustedKeys",
      "no trusted public keys are configured (trusted-keys Secret empty or missing)",
    );
  }
  const where = `FuncProof ${name} spec.envelope`;
  let verified: string[];
  let payload: Uint8Array;
  try {
    const env = envelopeFromObject(spec.envelope, where);
    const res = verifyEnvelope(env, trusted, { name: where, payloadTypes: [IN_TOTO_PAYLOAD_TYPE] });
    verified = [...res.verifiedKeyids];
    payload = res.payload;
  } catch (err) {
    if (err instanceof StellaError) {
      const code: string = (err as StellaError).code;
      return decision("False", DSSE_REASONS[code] ?? "MalformedEnvelope", err.message);
    }
    throw err;
  }
  try {
    const statement = parseStatement(payload, where);
    if (statement.predicateType !== FUNCPROOF_PREDICATE_TYPE) {
      return decision(
        "False",
        "WrongPredicateType",
        `predicateType is ${statement.predicateType}, expected ${FUNCPROOF_PREDICATE_TYPE}`,
        verified,
      );
    }
    const proof = asFuncProof(statement.predicate, `${where} predicate`);
    verifiedProof = proof;
    if (!statement.subject.some((s) => s.digest.sha256 === spec.file.sha256)) {
      return decision(
        "False",
        "SpecMismatch",
        `no statement subject has sha256 ${spec.file.sha256} (spec.file.sha256)`,
        verified,
      );
    }
    const mismatches = summaryMismatches(summarize(proof), spec);
    if (mismatches.length > 0) {
      return decision(
        "False",
        "SpecMismatch",
        `spec disagrees with the signed FuncProof at: ${mismatches.join(", ")}`,
        verified,
      );
    }
  } catch (err) {
    if (err instanceof StellaError) return decision("False", "MalformedEnvelope", err.message, verified);
    throw err;
  }
  return {
    ...decision(
      "True",
      "Verified",
      `signed by ${verified.join(", ")}; spec matches the signed FuncProof`,
      verified,
    ),
    ...(verifiedProof ? { proof: verifiedProof } : {}),
  };
}
