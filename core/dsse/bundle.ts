import {
  BUNDLE_V03_MEDIA_TYPE,
  ValidationError,
  assertBundleLatest,
  bundleFromJSON,
  bundleToJSON,
  isBundleWithDsseEnvelope,
  toDSSEBundle,
  type SerializedBundle,
} from "@sigstore/bundle";
import canonicalize from "canonicalize";

import { StellaError } from "../errors.ts";
import {
  base64Field,
  envelopeFromObject,
  parseJsonDocument,
  payloadBytes,
  type Envelope,
} from "./envelope.ts";

/**
 * Sigstore bundles (https://github.com/sigstore/protobuf-specs, bundle v0.3) carrying our DSSE
 * envelope, for tools that speak bundles (cosign verify-blob-attestation --bundle, sigstore-js).
 * Offline and key-based: verificationMaterial is `publicKey.hint` = our keyid, no certificate, no
 * transparency-log entries, no timestamps. Built and validated with @sigstore/bundle itself.
 */
export const BUNDLE_MEDIA_TYPE = BUNDLE_V03_MEDIA_TYPE;

export type BundleErrorCode = "BUNDLE_INVALID" | "BUNDLE_UNSUPPORTED";
export class BundleError extends StellaError<BundleErrorCode> {}

/** The bundle for a single-signature envelope; the envelope inside is the same payload, type, keyid and sig. */
export function envelopeToBundle(env: Envelope): SerializedBundle {
  const [signature, ...more] = env.signatures;
  if (signature === undefined || more.length > 0) {
    throw new BundleError(
      "BUNDLE_UNSUPPORTED",
      `a sigstore bundle holds exactly one signature; this envelope has ${env.signatures.length}`,
    );
  }
  const bundle = toDSSEBundle({
    artifact: Buffer.from(payloadBytes(env)),
    artifactType: env.payloadType,
    signature: Buffer.from(base64Field(signature.sig, "envelope: signatures[0].sig")),
    keyHint: signature.keyid,
  });
  try {
    assertBundleLatest(bundle);
  } catch (cause) {
    throw invalid("bundle", cause);
  }
  return bundleToJSON(bundle);
}

/** The bundle as RFC 8785 canonical JSON. */
export function envelopeToBundleJson(env: Envelope): string {
  const json = canonicalize(envelopeToBundle(env));
  if (json === undefined) throw new BundleError("BUNDLE_INVALID", "bundle: not serialisable");
  return json;
}

/** BUNDLE_INVALID for a bundle @sigstore/bundle refused, naming the fields it names. */
export function invalid(name: string, cause: unknown): BundleError {
  const detail =
    cause instanceof ValidationError
      ? `invalid field(s): ${cause.fields.join(", ")}`
      : cause instanceof Error
        ? cause.message
        : String(cause);
  return new BundleError("BUNDLE_INVALID", `${name}: not a valid sigstore bundle: ${detail}`, { cause });
}

/** True for a parsed JSON document that declares itself a sigstore bundle (any version). */
export function isBundleDocument(value: unknown): boolean {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false;
  const mediaType = (value as Record<string, unknown>)["mediaType"];
  return typeof mediaType === "string" && mediaType.startsWith("application/vnd.dev.sigstore.bundle");
}

export interface ParsedBundle {
  readonly mediaType: string;
  readonly envelope: Envelope;
  /** verificationMaterial.publicKey.hint. */
  readonly keyHint: string;
}

/**
 * Validates an UNTRUSTED parsed bundle with @sigstore/bundle, insists on a public-key DSSE bundle,
 * and returns its envelope validated by our own strict envelope parser (the protobuf JSON decoder
 * is lenient with base64). Transparency-log entries and timestamps, if any, are not checked here.
 */
export function bundleFromObject(value: unknown, name: string): ParsedBundle {
  if (!isBundleDocument(value)) {
    throw new BundleError("BUNDLE_INVALID", `${name}: not a sigstore bundle (no bundle mediaType)`);
  }
  const obj = value as Record<string, unknown>;
  let bundle;
  try {
    bundle = bundleFromJSON(obj);
  } catch (cause) {
    throw invalid(name, cause);
  }
  if (!isBundleWithDsseEnvelope(bundle)) {
    throw new BundleError(
      "BUNDLE_UNSUPPORTED",
      `${name}: the bundle holds a message signature, not a DSSE envelope`,
    );
  }
  const material = bundle.verificationMaterial.content;
  if (material.$case !== "publicKey") {
    throw new BundleError(
      "BUNDLE_UNSUPPORTED",
      `${name}: certificate-based (keyless) bundles are not supported; only public-key bundles`,
    );
  }
  const envelope = envelopeFromObject(obj["dsseEnvelope"], `${name}: dsseEnvelope`);
  return { mediaType: bundle.mediaType, envelope, keyHint: material.publicKey.hint };
}

export interface SignedDocument {
  readonly format: "dsse" | "bundle";
  readonly envelope: Envelope;
  /** Bundles only. */
  readonly keyHint?: string;
}

/** Parses a file's text as a bare DSSE envelope or, if its mediaType says so, a sigstore bundle. */
export function parseSignedDocument(json: string, name: string): SignedDocument {
  const value = parseJsonDocument(json, name, "document");
  if (isBundleDocument(value)) {
    const { envelope, keyHint } = bundleFromObject(value, name);
    return { format: "bundle", envelope, keyHint };
  }
  return { format: "dsse", envelope: envelopeFromObject(value, name) };
}
