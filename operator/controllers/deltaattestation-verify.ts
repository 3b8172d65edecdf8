// Checks one DeltaAttestation resource (issue 7): every signature on its envelope against every key the operator
// knows (its trusted-keys Secret and the RolloutGates' keys), then that the envelope signs what the spec says.
// A forward delta's envelope signs the delta manifest (stellaops.delta.v1), so the spec must be exactly what
// `stella delta create --emit-cr` derives from that manifest; a rollback's envelope signs the rollback
// attestation (stellaops.delta-rollback.v1), which binds the forward manifest's digest, so its digests must be
// the forward resource's, swapped. Everything in the resource is untrusted input; the result says which keys
// verified, and each gate decides whether it trusts one of them.
import { canonicalJson } from "../../core/canonical-json.ts";
import {
  DELTA_PREDICATE_TYPE,
  firstDifference,
  parseManifest,
  sha256Digest,
} from "../../core/delta/manifest.ts";
import type { DeltaManifest } from "../../core/delta/manifest.ts";
import { deltaAttestationResource } from "../../core/delta/resource.ts";
import { parseRollbackPredicate, ROLLBACK_PREDICATE_TYPE } from "../../core/delta/rollback.ts";
import { base64Field, envelopeFromObject, payloadBytes, type Envelope } from "../../core/dsse/envelope.ts";
import type { PublicKey } from "../../core/dsse/keys.ts";
import { pae } from "../../core/dsse/pae.ts";
import { IN_TOTO_PAYLOAD_TYPE, parseStatement, type Statement } from "../../core/dsse/statement.ts";
import { verifySignature } from "../../core/dsse/verify.ts";
import { StellaError } from "../../core/errors.ts";
import type { DeltaAttestationSpec } from "../api/generated/deltaattestation.ts";
import type { KnownDelta } from "../webhook/decide.ts";

/** Reasons of the `Verified` condition (docs/crds.md). */
export type DeltaVerifiedReason =
  | "Verified"
  | "SignedByUnknownKey"
  | "SignatureInvalid"
  | "MalformedEnvelope"
  | "WrongPredicateType"
  | "SpecMismatch"
  | "RollbackOfMissing"
  | "RollbackMismatch";

export interface DeltaCheck {
  status: "True" | "False" | "Unknown";
  reason: DeltaVerifiedReason;
  message: string;
  /** What the webhook holds. */
  known: KnownDelta;
  /** A forward delta's signed manifest and the sha256 of its canonical bytes (what a rollback binds). */
  manifest?: { value: DeltaManifest; digest: string };
}

/** The forward resource a rollback names, as checked. */
export interface ForwardView {
  check: DeltaCheck;
  spec: Pick<DeltaAttestationSpec, "baseDigest" | "targetDigest">;
}

/** Per signature: which known key verified it; a signature that names a known key but does not verify taints all. */
function checkSignatures(
  env: Envelope,
  keys: readonly PublicKey[],
  where: string,
): { verified: string[]; broken?: string } {
  const data = pae(env.payloadType, payloadBytes(env, where));
  const byId = new Map(keys.map((k) => [k.keyid, k]));
  const verified = new Set<string>();
  for (const [i, s] of env.signatures.entries()) {
    const sig = base64Field(s.sig, `${where}: signatures[${i}].sig`);
    const named = s.keyid === "" ? undefined : byId.get(s.keyid);
    if (named) {
      if (!verifySignature(named, data, sig)) {
        return {
          verified: [],
          broken: `signatures[${i}] (key ${s.keyid}) does not verify: the envelope was changed after signing`,
        };
      }
      verified.add(named.keyid);
      continue;
    }
    if (s.keyid === "") {
      const key = keys.find((k) => verifySignature(k, data, sig));
      if (key) verified.add(key.keyid);
    }
  }
  return { verified: [...verified].sort() };
}

function result(
  status: DeltaCheck["status"],
  reason: DeltaVerifiedReason,
  message: string,
  known: KnownDelta,
  manifest?: DeltaCheck["manifest"],
): DeltaCheck {
  return { status, reason, message, known, ...(manifest ? { manifest } : {}) };
}

export function checkDeltaAttestation(
  name: string,
  spec: DeltaAttestationSpec,
  keys: readonly PublicKey[],
  forwardOf: (name: string) => ForwardView | undefined,
): DeltaCheck {
  const where = `DeltaAttestation ${name} spec.envelope`;
  const known: KnownDelta = {
    ref: name,
    baseDigest: spec.baseDigest,
    targetDigest: spec.targetDigest,
    signatures: 0,
    verifiedKeyids: [],
  };
  const invalid = (reason: DeltaVerifiedReason, message: string, m?: DeltaCheck["manifest"]): DeltaCheck =>
    result("False", reason, message, { ...known, verifiedKeyids: [], invalid: message }, m);
  let env: Envelope;
  let statement: Statement;
  let sigs: { verified: string[]; broken?: string };
  try {
    env = envelopeFromObject(spec.envelope, where);
    known.signatures = env.signatures.length;
    sigs = checkSignatures(env, keys, where);
    if (env.payloadType !== IN_TOTO_PAYLOAD_TYPE) {
      return invalid(
        "MalformedEnvelope",
        `${where}: payloadType ${env.payloadType} is not ${IN_TOTO_PAYLOAD_TYPE}`,
      );
    }
    statement = parseStatement(payloadBytes(env, where), where);
  } catch (err) {
    if (err instanceof StellaError) return invalid("MalformedEnvelope", err.message);
    throw err;
  }
  if (sigs.broken !== undefined) return invalid("SignatureInvalid", `${where}: ${sigs.broken}`);
  known.verifiedKeyids = sigs.verified;

  let manifest: DeltaCheck["manifest"];
  if (spec.rollbackOf === undefined) {
    if (statement.predicateType !== DELTA_PREDICATE_TYPE) {
      return invalid(
        "WrongPredicateType",
        `${where}: predicateType is ${statement.predicateType}, expected ${DELTA_PREDICATE_TYPE} (or set spec.rollbackOf for a rollback)`,
      );
    }
    try {
      const bytes = new TextEncoder().encode(`${canonicalJson(statement.predicate)}\n`);
      const value = parseManifest(bytes, `${where} predicate`);
      manifest = { value, digest: sha256Digest(bytes) };
    } catch (err) {
      if (err instanceof StellaError) return invalid("MalformedEnvelope", err.message);
      throw err;
    }
    // The spec must say exactly what the signed manifest says (what --emit-cr derives from it).
    const expected = deltaAttestationResource(manifest.value, env).spec;
    const given = JSON.parse(JSON.stringify(spec)) as Record<string, unknown>;
    delete given.envelope;
    delete given.rollbackOf;
    const want: Record<string, unknown> = { ...expected };
    delete want.envelope;
    const diff = firstDifference(given, want);
    if (diff !== undefined) {
      return invalid(
        "SpecMismatch",
        `spec.${diff} differs from the signed delta manifest (the resource was edited after stella delta create --emit-cr)`,
        manifest,
      );
    }
    known.scoreInputs = manifest.value.score_inputs;
  } else {
    const forwardName = spec.rollbackOf.name;
    if (statement.predicateType !== ROLLBACK_PREDICATE_TYPE) {
      return invalid(
        "WrongPredicateType",
        `${where}: predicateType is ${statement.predicateType}, expected ${ROLLBACK_PREDICATE_TYPE} for a rollback`,
      );
    }
    const forward = forwardOf(forwardName);
    if (!forward?.check.manifest || forward.check.known.invalid !== undefined) {
      const why = forward ? `it is not valid (${forward.check.message})` : "it does not exist";
      return result(
        "Unknown",
        "RollbackOfMissing",
        `spec.rollbackOf.name: DeltaAttestation ${forwardName}: ${why}`,
        {
          ...known,
          invalid: `the forward DeltaAttestation ${forwardName} ${forward ? "is not valid" : "does not exist"}`,
        },
      );
    }
    try {
      const p = parseRollbackPredicate(statement.predicate, `${where} predicate`);
      const fm = forward.check.manifest;
      const problems: string[] = [];
      if (p.forward.manifest_digest !== fm.digest) {
        problems.push(
          `predicate.forward.manifest_digest ${p.forward.manifest_digest} is not ${forwardName}'s signed manifest (${fm.digest})`,
        );
      }
      if (p.from.digest !== fm.value.target_digest || p.to.digest !== fm.value.base_digest) {
        problems.push(`predicate.from/to do not reverse ${forwardName}'s target/base`);
      }
      if (spec.baseDigest !== forward.spec.targetDigest || spec.targetDigest !== forward.spec.baseDigest) {
        problems.push(`spec.baseDigest/targetDigest are not ${forwardName}'s targetDigest/baseDigest`);
      }
      if (problems.length > 0) return invalid("RollbackMismatch", problems.join("; "));
    } catch (err) {
      if (err instanceof StellaError) return invalid("MalformedEnvelope", err.message);
      throw err;
    }
  }
  if (sigs.verified.length === 0) {
    const ids = env.signatures.map((s) => s.keyid || "(no keyid)").join(", ");
    return result(
      "False",
      "SignedByUnknownKey",
      `no signature is by a trusted key (signature keyids: ${ids || "none"}); the content is consistent`,
      known,
      manifest,
    );
  }
  return result(
    "True",
    "Verified",
    `signed by ${sigs.verified.join(", ")}; spec matches the signed ${spec.rollbackOf ? "rollback attestation" : "delta manifest"}`,
    known,
    manifest,
  );
}
