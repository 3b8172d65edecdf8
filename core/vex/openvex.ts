/**
 * OpenVEX v0.2.0 documents (https://github.com/openvex/spec/blob/main/OPENVEX-SPEC.md) built from a
 * VexDecision, deterministic (RFC 8785 canonical JSON, sets sorted, the timestamp injected by the caller),
 * and validated against the official JSON Schema vendored in schema/openvex-json-schema.ts.
 */
import { createHash } from "node:crypto";

import { Ajv2020, type ErrorObject, type ValidateFunction } from "ajv/dist/2020.js";
import addFormatsModule, { type FormatsPlugin } from "ajv-formats";

import { canonicalBytes } from "../canonical-json.ts";
import { StellaError } from "../errors.ts";
import type { VexDecision, VexJustificationLabel, VexStatusLabel } from "./decision.ts";
import { OPENVEX_JSON_SCHEMA } from "./schema/openvex-json-schema.ts";

export const OPENVEX_CONTEXT = "https://openvex.dev/ns/v0.2.0";
/** The media type OpenVEX documents are published with. */
export const OPENVEX_MEDIA_TYPE = "application/vnd.openvex+json";
export const DEFAULT_TOOLING = "stella-operator";

export type OpenVexErrorCode = "OPENVEX_INVALID" | "OPENVEX_INPUT";
export class OpenVexError extends StellaError<OpenVexErrorCode> {
  readonly errors: readonly string[];
  constructor(code: OpenVexErrorCode, message: string, errors: readonly string[] = []) {
    super(code, message);
    this.errors = errors;
  }
}

export interface OpenVexComponent {
  "@id"?: string;
  identifiers?: { purl?: string; cpe22?: string; cpe23?: string };
  hashes?: Record<string, string>;
  subcomponents?: OpenVexComponent[];
}

export interface OpenVexStatement {
  vulnerability: { "@id"?: string; name: string; description?: string; aliases?: string[] };
  products?: OpenVexComponent[];
  status: VexStatusLabel;
  justification?: VexJustificationLabel;
  impact_statement?: string;
  action_statement?: string;
  status_notes?: string;
  timestamp?: string;
}

export interface OpenVexDocument {
  "@context": string;
  "@id": string;
  author: string;
  role?: string;
  timestamp: string;
  last_updated?: string;
  version: number;
  tooling?: string;
  statements: OpenVexStatement[];
}

export interface OpenVexDocumentOptions {
  /** IRI of the document (stable for one statement; `version` counts its revisions). */
  id: string;
  author: string;
  /** When the document was issued: an injected instant, never the wall clock in here. */
  timestamp: Date | string;
  /** ≥ 1, incremented on every change of the document. */
  version: number;
  tooling?: string;
  role?: string;
  /** Free text for status_notes (defaults to the evidence-pack sentence when the caller passes it). */
  statusNotes?: string;
}

/** Default action statement for affected: OpenVEX requires one, the operator cannot know the fix. */
export const DEFAULT_ACTION_STATEMENT =
  "The vulnerable code executes in production: update the component to a fixed version, or mitigate and re-run the evidence window.";

const SHA256_DIGEST = /^sha256:([0-9a-f]{64})$/;

function rfc3339(t: Date | string): string {
  const d = typeof t === "string" ? new Date(t) : t;
  if (Number.isNaN(d.getTime())) throw new OpenVexError("OPENVEX_INPUT", `timestamp: not a valid time`);
  return d.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/**
 * The OpenVEX product of a decision. An image is identified by its digest (the `@id` is the digest IRI
 * "sha256:…" with the sha-256 hash); a package by its purl; a package inside an image is the image with
 * the package as subcomponent (OPENVEX-SPEC.md § Product: subcomponents are "components of the product").
 */
export function openVexProduct(product: VexDecision["product"]): OpenVexComponent {
  const { imageDigest, purl } = product;
  const pkg: OpenVexComponent | undefined =
    purl === undefined ? undefined : { "@id": purl, identifiers: { purl } };
  if (imageDigest === undefined) {
    if (pkg === undefined) throw new OpenVexError("OPENVEX_INPUT", "product: set imageDigest, purl or both");
    return pkg;
  }
  const m = SHA256_DIGEST.exec(imageDigest);
  const image: OpenVexComponent = { "@id": imageDigest };
  if (m?.[1] !== undefined) image.hashes = { "sha-256": m[1] };
  if (pkg !== undefined) image.subcomponents = [pkg];
  return image;
}

function sortedSet(items: readonly string[] | undefined): string[] | undefined {
  if (items === undefined || items.length === 0) return undefined;
  return [...new Set(items)].sort();
}

/** The OpenVEX document of one decision (one statement). Validated before it is returned. */
export function buildOpenVexDocument(decision: VexDecision, opts: OpenVexDocumentOptions): OpenVexDocument {
  if (!Number.isSafeInteger(opts.version) || opts.version < 1) {
    throw new OpenVexError("OPENVEX_INPUT", `version: must be an integer ≥ 1, got ${opts.version}`);
  }
  const timestamp = rfc3339(opts.timestamp);
  const aliases = sortedSet(decision.vulnerability.aliases);
  const statement: OpenVexStatement = {
    vulnerability: { name: decision.vulnerability.id, ...(aliases ? { aliases } : {}) },
    products: [openVexProduct(decision.product)],
    status: decision.status,
    timestamp,
  };
  if (decision.status === "not_affected" && decision.justification !== undefined) {
    statement.justification = decision.justification;
  }
  if (decision.impactStatement !== undefined) statement.impact_statement = decision.impactStatement;
  if (decision.status === "affected") {
    statement.action_statement = decision.actionStatement ?? DEFAULT_ACTION_STATEMENT;
  }
  if (opts.statusNotes !== undefined && opts.statusNotes !== "") statement.status_notes = opts.statusNotes;
  const doc: OpenVexDocument = {
    "@context": OPENVEX_CONTEXT,
    "@id": opts.id,
    author: opts.author,
    timestamp,
    version: opts.version,
    tooling: opts.tooling ?? DEFAULT_TOOLING,
    statements: [statement],
  };
  if (opts.role !== undefined) doc.role = opts.role;
  assertValidOpenVex(doc);
  return doc;
}

/** RFC 8785 bytes of the document: what is hashed and signed. */
export function openVexBytes(doc: OpenVexDocument): Uint8Array {
  return canonicalBytes(doc);
}

/** "sha256:<hex>" of the canonical document. */
export function openVexDigest(doc: OpenVexDocument): string {
  return `sha256:${createHash("sha256").update(openVexBytes(doc)).digest("hex")}`;
}

// RFC 3987 IRI, checked for shape only (scheme ":" then no whitespace, controls or the characters RFC 3987
// excludes): the OpenVEX schema uses format "iri", which neither Ajv nor ajv-formats defines.
// eslint-disable-next-line no-control-regex -- excluding the C0 controls is the point
const IRI = /^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>"{}|\\^`\u0000-\u001f\u007f]+$/u;

let validator: ValidateFunction | undefined;

function compile(): ValidateFunction {
  if (validator !== undefined) return validator;
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  // ajv-formats is CommonJS with `exports.default`; under nodenext the default import is the module object.
  const mod = addFormatsModule as unknown as { default?: FormatsPlugin } & FormatsPlugin;
  const addFormats: FormatsPlugin = mod.default ?? mod;
  addFormats(ajv, ["uri", "date-time"]);
  ajv.addFormat("iri", IRI);
  validator = ajv.compile(OPENVEX_JSON_SCHEMA);
  return validator;
}

function describeError(e: ErrorObject): string {
  return `${e.instancePath === "" ? "/" : e.instancePath}: ${e.message ?? e.keyword}`;
}

/**
 * Validates against the official schema. UNTRUSTED input is fine here (export and verify paths):
 * the schema bounds the shape; nothing is evaluated. Returns the problems, empty when valid.
 */
export function validateOpenVex(doc: unknown): string[] {
  const validate = compile();
  if (validate(doc)) return [];
  return (validate.errors ?? []).map(describeError);
}

export function assertValidOpenVex(doc: unknown): void {
  const errors = validateOpenVex(doc);
  if (errors.length > 0) {
    throw new OpenVexError("OPENVEX_INVALID", `OpenVEX document invalid: ${errors.join("; ")}`, errors);
  }
}
