// The admission decision for one workload change under one RolloutGate (issue 7): pure, so the webhook's
// request path reads only in-memory state (checked DeltaAttestations with their scores, kept current by
// informers and the hot-symbol index) and tests can pin every rule. Each image change A→B needs a
// DeltaAttestation for A→B whose signature meets the gate and whose delta_risk — recomputed from its signed
// score inputs, with the functions it changed weighted by how hot the agents see them in A — is within
// maxDeltaRisk; a change B→A back to an image that B was made from is a rollback and needs a rollback
// attestation signed by a key the gate trusts.
import type { RiskResult, ScoreInputs } from "../../core/risk/score.ts";
import type { RolloutGateSpec } from "../api/generated/rolloutgate.ts";
import type { ImageChange } from "./changes.ts";

/** How an attestation is signed for one gate: not at all, by some key, or by a key the gate trusts. */
export type SignatureLevel = "none" | "signed" | "verified";
const LEVELS: readonly SignatureLevel[] = ["none", "signed", "verified"];

/** A DeltaAttestation as the webhook holds it (its envelope checked by the DeltaAttestation controller). */
export interface KnownDelta {
  /** Name of the (cluster-scoped) resource, for messages and events. */
  ref: string;
  baseDigest: string;
  targetDigest: string;
  /** Signatures on the envelope. */
  signatures: number;
  /** Key ids (of every key the operator knows) whose signatures verified. */
  verifiedKeyids: readonly string[];
  /** Why the attestation cannot be used at all (a tampered envelope, a spec the signature does not cover). */
  invalid?: string;
  /** From the signed manifest (forward deltas). */
  scoreInputs?: ScoreInputs;
}

export interface DeltaLookup {
  /** The attestation for base → target, if any. */
  forward(baseDigest: string, targetDigest: string): KnownDelta | undefined;
  /** A rollback attestation from → to (the reverse of a forward delta to → from), if any. */
  rollback(fromDigest: string, toDigest: string): KnownDelta | undefined;
  /**
   * delta_risk of a forward attestation from its signed score inputs, with the changed functions weighted by
   * their current hotness in the base image (cached by the store: scoring 20k functions takes tens of ms).
   */
  risk(delta: KnownDelta): RiskResult | undefined;
}

/** One RolloutGate as the webhook holds it: its spec and the ids of the keys its Secrets hold. */
export interface GateEntry {
  name: string;
  spec: RolloutGateSpec;
  keyids: ReadonlySet<string>;
}

export function signatureLevel(d: KnownDelta, keyids: ReadonlySet<string>): SignatureLevel {
  if (d.verifiedKeyids.some((k) => keyids.has(k))) return "verified";
  return d.signatures > 0 ? "signed" : "none";
}

export interface ChangeVerdict {
  change: ImageChange;
  allowed: boolean;
  /** One line naming the image, and for risk the score, threshold and top three contributors. */
  reason: string;
  /** "rollback" for B→A back to a base of B, "forward" otherwise, "new" without a previous image. */
  kind: "forward" | "rollback" | "new";
  risk?: RiskResult;
  attestation?: string;
  /** A missing attestation under missingAttestation: warn. */
  warning?: boolean;
}

export interface GateDecision {
  /** What the API server is told: always true in audit mode. */
  allowed: boolean;
  /** Whether enforce mode would deny (the same as !allowed in enforce mode). */
  wouldDeny: boolean;
  message: string;
  warnings: string[];
  verdicts: ChangeVerdict[];
}

function short(image: string): string {
  return image.replace(/@sha256:([0-9a-f]{12})[0-9a-f]{52}$/, "@sha256:$1…");
}

function fmt(x: number): string {
  return x.toFixed(3);
}

function verdictFor(entry: GateEntry, change: ImageChange, lookup: DeltaLookup): ChangeVerdict {
  const { name: gateName, spec: gate } = entry;
  const image = `${short(change.to)} (container ${change.container})`;
  if (change.from === undefined) {
    return {
      change,
      allowed: true,
      kind: "new",
      reason: `${image}: new container, no previous image to compare`,
    };
  }
  if (change.fromDigest === undefined || change.toDigest === undefined) {
    const which = change.toDigest === undefined ? change.to : change.from;
    return {
      change,
      allowed: false,
      kind: "forward",
      reason: `${image}: ${short(which)} is not pinned by digest; RolloutGate ${gateName} finds attestations by digest`,
    };
  }
  const need = gate.minProvenance ?? "verified";
  // Back to an image this one was made from: a rollback.
  const reverse = lookup.forward(change.toDigest, change.fromDigest);
  if (reverse && (gate.rollback?.requireSignedAttestation ?? true)) {
    const rb = lookup.rollback(change.fromDigest, change.toDigest);
    const level = rb && rb.invalid === undefined ? signatureLevel(rb, entry.keyids) : "none";
    if (!rb || level !== "verified") {
      const why = !rb
        ? "none found"
        : rb.invalid !== undefined
          ? `${rb.ref} is invalid: ${rb.invalid}`
          : `${rb.ref} is ${level === "none" ? "unsigned" : "not signed by a key the gate trusts"}`;
      return {
        change,
        allowed: false,
        kind: "rollback",
        reason: `${image}: rollback from ${short(change.from)} needs a rollback attestation signed by a trusted key (RolloutGate ${gateName}); ${why}`,
      };
    }
    return {
      change,
      allowed: true,
      kind: "rollback",
      attestation: rb.ref,
      reason: `${image}: rollback from ${short(change.from)} with signed rollback attestation ${rb.ref}`,
    };
  }
  const d = lookup.forward(change.fromDigest, change.toDigest);
  if (!d) {
    const warn = (gate.missingAttestation ?? "deny") === "warn";
    return {
      change,
      allowed: warn,
      warning: warn,
      kind: "forward",
      reason: `${image}: no DeltaAttestation for ${short(change.from)} → ${short(change.to)} (RolloutGate ${gateName}, missingAttestation: ${warn ? "warn" : "deny"})`,
    };
  }
  if (d.invalid !== undefined) {
    return {
      change,
      allowed: false,
      kind: "forward",
      attestation: d.ref,
      reason: `${image}: DeltaAttestation ${d.ref} is invalid: ${d.invalid} (RolloutGate ${gateName})`,
    };
  }
  const level = signatureLevel(d, entry.keyids);
  if (LEVELS.indexOf(level) < LEVELS.indexOf(need)) {
    return {
      change,
      allowed: false,
      kind: "forward",
      attestation: d.ref,
      reason: `${image}: ${d.ref} is ${level === "none" ? "unsigned" : "signed, but not by a key the gate trusts"}; RolloutGate ${gateName} needs ${need}`,
    };
  }
  const risk = lookup.risk(d);
  if (!risk) {
    return {
      change,
      allowed: false,
      kind: "forward",
      attestation: d.ref,
      reason: `${image}: ${d.ref} carries no score inputs (RolloutGate ${gateName})`,
    };
  }
  const max = gate.maxDeltaRisk / 1000;
  const top = risk.topContributors.map((c) => `${c.factor} ${fmt(c.contribution)}`).join(", ");
  // The store scores once per attestation and hotness snapshot; the threshold is the gate's.
  const allowed = risk.score <= max;
  return {
    change,
    allowed,
    kind: "forward",
    attestation: d.ref,
    risk,
    reason:
      `${image}: delta_risk ${fmt(risk.score)} ${allowed ? "≤" : ">"} ${fmt(max)} (RolloutGate ${gateName}, ${d.ref}); ` +
      `top contributors: ${top}`,
  };
}

/** The gate's decision over every image change of one workload create or update. */
export function decide(entry: GateEntry, changes: readonly ImageChange[], lookup: DeltaLookup): GateDecision {
  const verdicts = changes.map((c) => verdictFor(entry, c, lookup));
  const denied = verdicts.filter((v) => !v.allowed);
  const audit = (entry.spec.mode ?? "enforce") === "audit";
  const warnings = verdicts.filter((v) => v.warning === true).map((v) => v.reason);
  if (audit) for (const v of denied) warnings.push(`audit (would deny): ${v.reason}`);
  const message =
    denied.length > 0
      ? denied.map((v) => v.reason).join("; ")
      : verdicts.length === 0
        ? "no image changes"
        : verdicts.map((v) => v.reason).join("; ");
  return { allowed: audit || denied.length === 0, wouldDeny: denied.length > 0, message, warnings, verdicts };
}
