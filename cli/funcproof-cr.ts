import { hash } from "node:crypto";

import { stringify } from "yaml";

import { canonicalJson } from "../core/canonical-json.ts";
import type { Envelope } from "../core/dsse/envelope.ts";
import type { FuncProof } from "../core/funcproof/funcproof.ts";
import { summarize } from "../core/funcproof/summary.ts";

export const FUNCPROOF_API_VERSION = "evidence.stella-ops.org/v1alpha1";
/** Largest inline DSSE payload (base64 chars): keeps the object well under etcd's 1.5 MiB limit. */
export const MAX_INLINE_PAYLOAD_CHARS = 1_400_000;

export interface FuncProofResource {
  apiVersion: string;
  kind: "FuncProof";
  metadata: { name: string; labels: Record<string, string> };
  spec: Record<string, unknown>;
}

/**
 * A FuncProof custom resource (cluster-scoped, named by BuildID) for `kubectl apply`. The signed
 * envelope goes inline when it fits; a larger one is referenced by digest (`envelopeRef`) and
 * must be stored next to it (CAS or OCI referrer): never truncated.
 */
export function funcProofResource(
  proof: FuncProof,
  envelope: Envelope,
  envelopeLocation: string,
): FuncProofResource {
  const s = summarize(proof);
  const spec: Record<string, unknown> = {
    buildId: s.buildId,
    file: s.file,
    arch: s.arch,
    sections: s.sections,
    functionCount: s.functionCount,
    bodyDigest: s.bodyDigest,
  };
  if (envelope.payload.length <= MAX_INLINE_PAYLOAD_CHARS) {
    spec.envelope = envelope;
  } else {
    spec.envelopeRef = {
      digest: `sha256:${hash("sha256", canonicalJson(envelope), "hex")}`,
      location: envelopeLocation,
    };
  }
  return {
    apiVersion: FUNCPROOF_API_VERSION,
    kind: "FuncProof",
    metadata: {
      name: s.buildId,
      labels: { "app.kubernetes.io/managed-by": "stella", "evidence.stella-ops.org/arch": s.arch },
    },
    spec,
  };
}

export function toYaml(resources: FuncProofResource[]): string {
  return resources.map((r) => stringify(r, { lineWidth: 0, sortMapEntries: true })).join("---\n");
}
