// How evidence travels as OCI referrers of an image: one artifact manifest per signed document, its
// artifactType naming what the document is, its one layer the sigstore bundle (v0.3) holding the DSSE
// envelope (and transparency-log entries when logged). Optional extra layers carry bodies the envelope
// commits to by digest (a richgraph body). Same convention as cosign's bundle referrers, with the
// predicate type in `dev.sigstore.bundle.predicateType`.
import { BINARYDIFF_PREDICATE_TYPE } from "../binarydiff/binarydiff.ts";
import { DELTA_PREDICATE_TYPE } from "../delta/manifest.ts";
import { ROLLBACK_PREDICATE_TYPE } from "../delta/rollback.ts";
import { FUNCPROOF_MEDIA_TYPE, FUNCPROOF_PREDICATE_TYPE } from "../funcproof/funcproof.ts";
import { EDGE_BUNDLE_PREDICATE_TYPE, RICHGRAPH_PREDICATE_TYPE } from "../graph/model.ts";
import { OPENVEX_MEDIA_TYPE } from "../vex/openvex.ts";
import { OPENVEX_PREDICATE_TYPE } from "../vex/attest.ts";

export const BUNDLE_LAYER_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json";
/** A bare DSSE envelope (in-toto's media type); read for interoperability, never written. */
export const DSSE_LAYER_MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json";
export const RICHGRAPH_BODY_MEDIA_TYPE = "application/vnd.stellaops.richgraph.body+json";
export const CYCLONEDX_MEDIA_TYPE = "application/vnd.cyclonedx+json";
export const GENERIC_ATTESTATION_TYPE = "application/vnd.in-toto+json";

/** Referrer artifactType for each predicate type we publish. */
export const ARTIFACT_TYPES: Readonly<Record<string, string>> = {
  [FUNCPROOF_PREDICATE_TYPE]: FUNCPROOF_MEDIA_TYPE,
  [BINARYDIFF_PREDICATE_TYPE]: "application/vnd.stellaops.binarydiff+json",
  [DELTA_PREDICATE_TYPE]: "application/vnd.stellaops.delta+json",
  [ROLLBACK_PREDICATE_TYPE]: "application/vnd.stellaops.delta-rollback+json",
  [RICHGRAPH_PREDICATE_TYPE]: "application/vnd.stellaops.richgraph+json",
  [EDGE_BUNDLE_PREDICATE_TYPE]: "application/vnd.stellaops.richgraph-edges+json",
  "stellaops.vex-decision.v1": "application/vnd.stellaops.vex-decision+json",
  [OPENVEX_PREDICATE_TYPE]: OPENVEX_MEDIA_TYPE,
};

export const ANNOTATIONS = {
  predicateType: "dev.sigstore.bundle.predicateType",
  content: "dev.sigstore.bundle.content",
  /** Path of the binary inside the image (FuncProof). */
  path: "org.stellaops.evidence.path",
  buildId: "org.stellaops.evidence.buildid",
  /** The statement's first subject as `<alg>:<hex>`, so a verifier can pick referrers without pulling them. */
  subject: "org.stellaops.evidence.subject",
} as const;

export function artifactTypeFor(predicateType: string): string {
  return ARTIFACT_TYPES[predicateType] ?? GENERIC_ATTESTATION_TYPE;
}

/** What kind of evidence a referrer artifactType carries. */
export type EvidenceKind = "funcproof" | "graph" | "vex" | "sbom" | "other";

export function evidenceKind(artifactType: string | undefined): EvidenceKind {
  switch (artifactType) {
    case FUNCPROOF_MEDIA_TYPE:
      return "funcproof";
    case ARTIFACT_TYPES[RICHGRAPH_PREDICATE_TYPE]:
      return "graph";
    case OPENVEX_MEDIA_TYPE:
    case ARTIFACT_TYPES["stellaops.vex-decision.v1"]:
      return "vex";
    case CYCLONEDX_MEDIA_TYPE:
      return "sbom";
    default:
      return "other";
  }
}
