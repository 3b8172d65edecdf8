/**
 * Rollback: the delta back from the current artifact B to the earlier artifact A, accepted only with
 * a signed rollback attestation. `stella delta create --rollback` writes it beside the forward delta:
 *
 *   DIR/delta.bin, DIR/delta-manifest.json            A → B (forward)
 *   DIR/rollback/delta.bin, DIR/rollback/delta-manifest.json   B → A
 *   DIR/rollback/rollback.dsse.json                   in-toto statement, predicate stellaops.delta-rollback.v1
 *
 * The predicate binds the four files by digest and names from = B, to = A. A verifier refuses a
 * rollback without a verifying attestation, one whose digests do not match the files, one that does
 * not start from the artifact given, or one that does not lead back to the forward delta's base.
 * This module is pure (digests in, errors out); the CLI reads files and checks the signature.
 */
import { StellaError } from "../errors.ts";
import type { Subject } from "../dsse/statement.ts";
import type { DeltaManifest } from "./manifest.ts";

export const ROLLBACK_PREDICATE_TYPE = "stellaops.delta-rollback.v1";
export const ROLLBACK_DIR = "rollback";
export const ROLLBACK_ENVELOPE_FILE = "rollback.dsse.json";

export interface RollbackSide {
  digest: string;
  size: number;
  artifact_type: string;
}

export interface RollbackPredicate {
  /** The artifact rolled back from (the forward delta's target). */
  from: RollbackSide;
  /** The artifact the rollback restores (the forward delta's base); the result must hash to it. */
  to: RollbackSide;
  /** The forward delta, A → B: digests of DIR/delta-manifest.json and DIR/delta.bin. */
  forward: { manifest_digest: string; delta_digest: string };
  /** The rollback delta, B → A: digests of DIR/rollback/delta-manifest.json and DIR/rollback/delta.bin. */
  rollback: { manifest_digest: string; delta_digest: string };
  created?: string;
}

export class RollbackError extends StellaError<"ROLLBACK_DENIED"> {
  readonly file: string;
  readonly field: string;
  constructor(file: string, field: string, why: string) {
    super("ROLLBACK_DENIED", `${file}: ${field}: ${why}`);
    this.file = file;
    this.field = field;
  }
}

export interface ManifestRef {
  manifest: DeltaManifest;
  /** sha256:<hex> of the manifest file's bytes. */
  manifestDigest: string;
}

/** The predicate for a forward delta and its reverse; refuses two manifests that are not each other's inverse. */
export function buildRollbackPredicate(
  forward: ManifestRef,
  rollback: ManifestRef,
  created?: string,
): RollbackPredicate {
  const f = forward.manifest;
  const r = rollback.manifest;
  if (r.base_digest !== f.target_digest || r.target_digest !== f.base_digest) {
    throw new RollbackError(
      "rollback/delta-manifest.json",
      "base_digest",
      `the rollback goes ${r.base_digest} → ${r.target_digest}, not back from ${f.target_digest} to ${f.base_digest}`,
    );
  }
  return {
    from: { digest: f.target_digest, size: f.target_size, artifact_type: f.artifact_type },
    to: { digest: f.base_digest, size: f.base_size, artifact_type: f.base_artifact_type },
    forward: { manifest_digest: forward.manifestDigest, delta_digest: f.delta.digest },
    rollback: { manifest_digest: rollback.manifestDigest, delta_digest: r.delta.digest },
    ...(created === undefined ? {} : { created }),
  };
}

/** Subjects of the rollback statement: the artifact restored (`to`) and the one left (`from`). */
export function rollbackSubjects(p: RollbackPredicate): Subject[] {
  return [
    { name: "rollback-from", digest: { sha256: p.from.digest.replace(/^sha256:/, "") } },
    { name: "rollback-to", digest: { sha256: p.to.digest.replace(/^sha256:/, "") } },
  ];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** Validates an (authenticated but untrusted) predicate's shape. */
export function parseRollbackPredicate(value: unknown, file: string): RollbackPredicate {
  const bad = (field: string, why: string): never => {
    throw new RollbackError(file, field, why);
  };
  if (!isObject(value)) return bad("predicate", "missing or not an object");
  for (const side of ["from", "to"]) {
    const s = value[side];
    if (!isObject(s)) return bad(`predicate.${side}`, "missing or not an object");
    if (typeof s.digest !== "string" || !DIGEST.test(s.digest))
      bad(`predicate.${side}.digest`, "not a sha256 digest");
    if (!Number.isSafeInteger(s.size)) bad(`predicate.${side}.size`, "not a byte count");
  }
  for (const part of ["forward", "rollback"]) {
    const s = value[part];
    if (!isObject(s)) return bad(`predicate.${part}`, "missing or not an object");
    for (const k of ["manifest_digest", "delta_digest"]) {
      if (typeof s[k] !== "string" || !DIGEST.test(s[k]))
        bad(`predicate.${part}.${k}`, "not a sha256 digest");
    }
  }
  return value as unknown as RollbackPredicate;
}

export interface RollbackFacts {
  /** sha256:<hex> of the artifact given as --target (what we roll back from). */
  currentDigest: string;
  /** The forward delta's manifest and its file digest, when DIR still holds them. */
  forward?: ManifestRef;
  rollback: ManifestRef;
  /** sha256:<hex> of DIR/rollback/delta.bin. */
  rollbackDeltaDigest: string;
}

/**
 * Checks an authenticated rollback predicate against the files and the artifact at hand. Throws
 * RollbackError naming the predicate field that does not hold.
 */
export function checkRollback(p: RollbackPredicate, facts: RollbackFacts, file: string): void {
  const deny = (field: string, why: string): never => {
    throw new RollbackError(file, field, why);
  };
  const r = facts.rollback.manifest;
  if (p.from.digest !== facts.currentDigest) {
    deny(
      "predicate.from.digest",
      `the attestation rolls back from ${p.from.digest}, the artifact given is ${facts.currentDigest}`,
    );
  }
  if (p.rollback.delta_digest !== facts.rollbackDeltaDigest) {
    deny(
      "predicate.rollback.delta_digest",
      `rollback/delta.bin is ${facts.rollbackDeltaDigest}, the attestation names ${p.rollback.delta_digest}`,
    );
  }
  if (p.rollback.manifest_digest !== facts.rollback.manifestDigest) {
    deny(
      "predicate.rollback.manifest_digest",
      `rollback/delta-manifest.json is ${facts.rollback.manifestDigest}, the attestation names ${p.rollback.manifest_digest}`,
    );
  }
  if (r.base_digest !== p.from.digest) {
    deny(
      "predicate.from.digest",
      `the rollback delta starts from ${r.base_digest}, the attestation says ${p.from.digest}`,
    );
  }
  if (r.target_digest !== p.to.digest) {
    deny(
      "predicate.to.digest",
      `the rollback delta leads to ${r.target_digest}, not to the earlier artifact ${p.to.digest} the attestation names`,
    );
  }
  if (r.target_size !== p.to.size)
    deny(
      "predicate.to.size",
      `the rollback delta writes ${r.target_size} bytes, the attestation says ${p.to.size}`,
    );
  const f = facts.forward;
  if (f !== undefined) {
    if (p.forward.manifest_digest !== f.manifestDigest) {
      deny(
        "predicate.forward.manifest_digest",
        `delta-manifest.json is ${f.manifestDigest}, the attestation names ${p.forward.manifest_digest}`,
      );
    }
    if (f.manifest.base_digest !== p.to.digest || f.manifest.target_digest !== p.from.digest) {
      deny(
        "predicate.to.digest",
        `the forward delta goes ${f.manifest.base_digest} → ${f.manifest.target_digest}; the rollback must go back from its target to its base`,
      );
    }
    if (p.forward.delta_digest !== f.manifest.delta.digest) {
      deny(
        "predicate.forward.delta_digest",
        `the forward manifest names delta ${f.manifest.delta.digest}, the attestation ${p.forward.delta_digest}`,
      );
    }
  }
}
