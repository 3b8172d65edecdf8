/**
 * Signs an OpenVEX document as a DSSE envelope holding an in-toto Statement v1 whose predicateType is the
 * OpenVEX context and whose predicate is the document (what `vexctl attest` and `cosign attest --type
 * openvex` produce). In-toto rather than a bare `application/vnd.openvex+json` payload: it is the project's
 * attestation contract (DESIGN.md), `stella attest verify` accepts it by default, and the subject binds
 * the statement to the image digest so a verifier can check it is about the image it is looking at.
 */
import { createHash } from "node:crypto";

import type { Envelope } from "../dsse/envelope.ts";
import { envelopeToJson } from "../dsse/envelope.ts";
import { signEnvelope, type Signer } from "../dsse/sign.ts";
import {
  IN_TOTO_PAYLOAD_TYPE,
  makeStatement,
  statementBytes,
  type JsonObject,
  type Statement,
  type Subject,
} from "../dsse/statement.ts";
import type { VexProductRef } from "./decision.ts";
import { OPENVEX_CONTEXT, openVexDigest, type OpenVexDocument } from "./openvex.ts";

/** The in-toto predicate type for OpenVEX (the OpenVEX context IRI, as the OpenVEX tooling uses). */
export const OPENVEX_PREDICATE_TYPE = OPENVEX_CONTEXT;

const SHA256_DIGEST = /^sha256:([0-9a-f]{64})$/;

/**
 * The subject of the attestation: the image, named by its digest. A purl-only product has no artifact
 * digest; in-toto requires a sha256, so the subject is then the purl with the digest of the canonical
 * OpenVEX document (the attestation is about that document's claim on the package).
 */
export function openVexSubject(product: VexProductRef, doc: OpenVexDocument): Subject {
  const m = product.imageDigest === undefined ? null : SHA256_DIGEST.exec(product.imageDigest);
  if (m?.[1] !== undefined && product.imageDigest !== undefined) {
    return { name: product.imageDigest, digest: { sha256: m[1] } };
  }
  const name = product.purl ?? product.imageDigest ?? "openvex";
  return { name, digest: { sha256: openVexDigest(doc).slice("sha256:".length) } };
}

export function openVexStatement(product: VexProductRef, doc: OpenVexDocument): Statement {
  return makeStatement([openVexSubject(product, doc)], OPENVEX_PREDICATE_TYPE, doc as unknown as JsonObject);
}

export interface SignedOpenVex {
  envelope: Envelope;
  /** RFC 8785 JSON of the envelope: the bytes stored and exported. */
  json: string;
  /** "sha256:<hex>" of `json` (status.documentDigest). */
  digest: string;
}

export async function signOpenVex(
  product: VexProductRef,
  doc: OpenVexDocument,
  signers: readonly Signer[],
): Promise<SignedOpenVex> {
  const envelope = await signEnvelope(
    IN_TOTO_PAYLOAD_TYPE,
    statementBytes(openVexStatement(product, doc)),
    signers,
  );
  const json = envelopeToJson(envelope);
  const digest = `sha256:${createHash("sha256").update(json, "utf8").digest("hex")}`;
  return { envelope, json, digest };
}
