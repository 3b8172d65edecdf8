// Signed documents → OCI referrer artifacts (see referrers.ts for the convention). Pure: the caller pushes.
import type { SerializedBundle } from "@sigstore/bundle";

import { canonicalJson } from "../canonical-json.ts";
import { bundleFromObject, envelopeToBundle, isBundleDocument } from "../dsse/bundle.ts";
import { envelopeFromObject, parseJsonDocument, payloadBytes, type Envelope } from "../dsse/envelope.ts";
import { parseStatement, type Statement } from "../dsse/statement.ts";
import type { ArtifactBlob, ReferrerArtifact } from "../oci/client.ts";
import { ANNOTATIONS, BUNDLE_LAYER_MEDIA_TYPE, artifactTypeFor } from "./referrers.ts";

export interface SignedInput {
  /** The bundle as it will be stored (with its tlog entries, if any). */
  bundle: SerializedBundle | Record<string, unknown>;
  envelope: Envelope;
  statement: Statement;
}

/**
 * Reads a signed document (a sigstore bundle or a bare DSSE envelope). The statement is read, not
 * trusted: attaching publishes what the signer signed; verifying is the auditor's job.
 */
export function readSignedInput(json: string, name: string): SignedInput {
  const value = parseJsonDocument(json, name, "attestation");
  if (isBundleDocument(value)) {
    const { envelope } = bundleFromObject(value, name);
    return {
      bundle: value as Record<string, unknown>,
      envelope,
      statement: parseStatement(payloadBytes(envelope, name), name),
    };
  }
  const envelope = envelopeFromObject(value, name);
  return {
    bundle: envelopeToBundle(envelope),
    envelope,
    statement: parseStatement(payloadBytes(envelope, name), name),
  };
}

export interface EvidenceArtifactOptions {
  /** Extra layers the envelope commits to by digest (e.g. the richgraph body). */
  bodies?: ArtifactBlob[];
  /** Binary path inside the image (FuncProof). */
  path?: string;
  buildId?: string;
}

/** The referrer artifact for a signed document: artifactType from its predicate type, the bundle as layer. */
export function evidenceArtifact(input: SignedInput, opts: EvidenceArtifactOptions = {}): ReferrerArtifact {
  const { statement } = input;
  const subject = statement.subject[0];
  const annotations: Record<string, string> = {
    [ANNOTATIONS.predicateType]: statement.predicateType,
    [ANNOTATIONS.content]: "dsse-envelope",
  };
  if (subject?.digest.sha256 !== undefined)
    annotations[ANNOTATIONS.subject] = `sha256:${subject.digest.sha256}`;
  if (opts.path !== undefined) annotations[ANNOTATIONS.path] = opts.path;
  if (opts.buildId !== undefined) annotations[ANNOTATIONS.buildId] = opts.buildId;
  return {
    artifactType: artifactTypeFor(statement.predicateType),
    blobs: [
      { mediaType: BUNDLE_LAYER_MEDIA_TYPE, bytes: Buffer.from(`${canonicalJson(input.bundle)}\n`) },
      ...(opts.bodies ?? []),
    ],
    annotations,
  };
}
