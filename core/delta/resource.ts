// DeltaAttestation resources (crds/schema/deltaattestation.ts) from a signed delta manifest: what
// `stella delta create --emit-cr` writes, and what the operator recomputes from the signed manifest to check that
// a resource's spec says what its envelope signs. Spelled out here (not from the operator's generated types) so
// core does not depend on the operator.
import type { Envelope } from "../dsse/envelope.ts";
import { StellaError } from "../errors.ts";
import type { ScoreInputs } from "../risk/score.ts";
import type { DeltaManifest } from "./manifest.ts";

export const DELTA_CR_API_VERSION = "evidence.stella-ops.org/v1alpha1";
/** The CRD's limits: inline payload, listed names and materials. */
export const MAX_CR_PAYLOAD_CHARS = 1_400_000;
const MAX_CR_NAMES = 64;
const MAX_CR_MATERIALS = 256;

export interface DeltaAttestationDoc {
  apiVersion: typeof DELTA_CR_API_VERSION;
  kind: "DeltaAttestation";
  metadata: { name: string; labels: Record<string, string> };
  spec: Record<string, unknown> & { baseDigest: string; targetDigest: string };
}

/** The digests a workload's image reference carries (image manifest digests), else the artifacts'. */
export function resourceDigests(m: DeltaManifest): { base: string; target: string } {
  const images = m.image_digests;
  return images?.base !== undefined && images.target !== undefined
    ? { base: images.base, target: images.target }
    : { base: m.base_digest, target: m.target_digest };
}

/** score_inputs as the CRD's flat integer map (enums ranked, ratios in thousandths). */
export function flatScoreInputs(si: ScoreInputs): Record<string, number> {
  const rank = { absent: 0, "present-unverified": 1, unverified: 1, verified: 2 } as const;
  const out: Record<string, number> = {
    slsaProvenance: rank[si.provenance.slsaProvenance],
    dsseValid: si.provenance.dsseValid ? 1 : 0,
    transparencyLog: rank[si.provenance.transparencyLog],
    copiedBytes: si.entropy.copiedBytes,
    addedBytes: si.entropy.addedBytes,
    targetBytes: si.entropy.targetBytes,
    addedEntropyMilliBitsPerByte: Math.round(si.entropy.addedEntropyBitsPerByte * 1000),
    depsAdded: si.deps.added,
    depsRemoved: si.deps.removed,
    depsChanged: si.deps.changed,
    signatures: si.attestation.signatures,
    trustedSignatures: si.attestation.trustedSignatures,
    functionsAdded: si.functions.added,
    functionsRemoved: si.functions.removed,
    functionsModified: si.functions.modified,
  };
  if (si.provenance.slsaLevel !== undefined) out.slsaLevel = si.provenance.slsaLevel;
  if (si.attestation.newestSignatureAgeDays !== undefined) {
    out.newestSignatureAgeDays = Math.floor(si.attestation.newestSignatureAgeDays);
  }
  if (si.attestation.keyAgeDays !== undefined) out.keyAgeDays = Math.floor(si.attestation.keyAgeDays);
  if (si.attestation.expired !== undefined) out.expired = si.attestation.expired ? 1 : 0;
  return out;
}

/**
 * A DeltaAttestation resource (cluster-scoped) for `kubectl apply`: the digests (image digests for
 * images, what the admission webhook sees), the ops and function summaries, the materials, integer
 * score inputs and the signed envelope. The operator re-verifies the envelope and computes the risk.
 */
export function deltaAttestationResource(m: DeltaManifest, env: Envelope): DeltaAttestationDoc {
  if (env.payload.length > MAX_CR_PAYLOAD_CHARS) {
    throw new StellaError(
      "DELTA_CR_TOO_LARGE",
      `--emit-cr: the signed manifest is ${env.payload.length} base64 characters, over the DeltaAttestation limit of ${MAX_CR_PAYLOAD_CHARS}`,
    );
  }
  const { base, target } = resourceDigests(m);
  const material = (p: { name: string; version: string; digest?: string }): Record<string, string> => ({
    name: p.name,
    version: p.version,
    ...(p.digest !== undefined && /^sha256:[0-9a-f]{64}$/.test(p.digest) ? { digest: p.digest } : {}),
  });
  return {
    apiVersion: DELTA_CR_API_VERSION,
    kind: "DeltaAttestation",
    metadata: {
      name: `delta-${base.slice(7, 19)}-${target.slice(7, 19)}`,
      labels: { "app.kubernetes.io/managed-by": "stella" },
    },
    spec: {
      baseDigest: base,
      targetDigest: target,
      artifactType: m.artifact_type,
      manifest: {
        opsCopy: m.ops.copyChunkOps + m.ops.copyRangeOps,
        opsAdd: m.ops.addOps,
        addBytes: m.ops.addedBytes,
        changedChunks: m.changed_chunks_total,
      },
      functionsChanged: {
        added: m.functions_changed.added,
        removed: m.functions_changed.removed,
        modified: m.functions_changed.modified,
        names: m.functions_changed.top_symbols.slice(0, MAX_CR_NAMES).map((s) => s.symbol),
      },
      materialsDelta: {
        added: m.materials_delta.added.slice(0, MAX_CR_MATERIALS).map(material),
        removed: m.materials_delta.removed.slice(0, MAX_CR_MATERIALS).map(material),
        changed: m.materials_delta.changed.slice(0, MAX_CR_MATERIALS).map((c) => material(c.to)),
      },
      scoreInputs: flatScoreInputs(m.score_inputs),
      envelope: { payloadType: env.payloadType, payload: env.payload, signatures: env.signatures },
    },
  };
}

/**
 * The rollback's DeltaAttestation (B → A): the rollback manifest's summary, the signed rollback attestation
 * (stellaops.delta-rollback.v1) as its envelope, and `rollbackOf` naming the forward resource. The rollback
 * predicate binds the forward manifest's digest, so the operator can tie it to the forward's signed image digests.
 */
export function rollbackAttestationResource(
  forward: DeltaAttestationDoc,
  rollback: DeltaManifest,
  rollbackEnvelope: Envelope,
): DeltaAttestationDoc {
  const doc = deltaAttestationResource(rollback, rollbackEnvelope);
  return {
    ...doc,
    metadata: {
      ...doc.metadata,
      name: `rollback-${doc.spec.baseDigest.slice(7, 19)}-${doc.spec.targetDigest.slice(7, 19)}`,
    },
    spec: { ...doc.spec, rollbackOf: { name: forward.metadata.name } },
  };
}
