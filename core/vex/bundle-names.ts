/**
 * Where a decided statement's signed OpenVEX document and evidence pack are stored, shared by the
 * operator (writer) and `stella vex export` (reader). A ConfigMap rather than an annotation (256 KiB
 * for all annotations together) or a Secret (a signed VEX claim is meant to be shared, not hidden).
 */
import { createHash } from "node:crypto";

/** Data key of the DSSE envelope (RFC 8785 JSON). */
export const VEX_ENVELOPE_KEY = "openvex.dsse.json";
/** Data key of the OpenVEX document itself (RFC 8785 JSON), signed or not. */
export const VEX_DOCUMENT_KEY = "openvex.json";
/** Data key of the evidence pack (Markdown). */
export const VEX_EVIDENCE_KEY = "evidence.md";
/** Annotation holding the OpenVEX document version (an integer ≥ 1). */
export const VEX_VERSION_ANNOTATION = "evidence.stella-ops.org/openvex-version";
/** Annotation holding the sha256 of the DSSE envelope (status.documentDigest). */
export const VEX_DIGEST_ANNOTATION = "evidence.stella-ops.org/document-digest";

/** Object names are DNS subdomains of at most 253 characters. */
const MAX_NAME = 253;

/** "vex-<statement>"; a name too long for the prefix keeps 230 characters and a hash suffix. */
export function vexBundleName(statementName: string): string {
  const name = `vex-${statementName}`;
  if (name.length <= MAX_NAME) return name;
  const hash = createHash("sha256").update(statementName).digest("hex").slice(0, 16);
  return `vex-${statementName.slice(0, MAX_NAME - 4 - 17).replace(/[-.]+$/, "")}-${hash}`;
}
