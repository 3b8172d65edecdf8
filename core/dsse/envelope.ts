import { closeSync, fstatSync, openSync, readSync } from "node:fs";

import canonicalize from "canonicalize";

import { StellaError } from "../errors.ts";
import { describe, isObject } from "../json-shape.ts";

/**
 * The DSSE JSON envelope (https://github.com/secure-systems-lab/dsse/blob/master/envelope.md):
 * `payload` and `sig` are base64 strings, kept exactly as received so that an envelope read and
 * written back (or wrapped in a sigstore bundle) is byte-for-byte the one that was signed.
 */
export interface Envelope {
  readonly payloadType: string;
  /** base64 of the serialized body. */
  readonly payload: string;
  readonly signatures: readonly EnvelopeSignature[];
}

export interface EnvelopeSignature {
  /** Unauthenticated hint naming the key; "" when the envelope omitted it. Ours: see keys.ts `keyId`. */
  readonly keyid: string;
  /** base64 of the signature over PAE(payloadType, payload). */
  readonly sig: string;
}

export type DsseErrorCode =
  | "DSSE_IO"
  | "DSSE_MALFORMED"
  | "DSSE_BAD_BASE64"
  | "DSSE_NO_SIGNATURES"
  | "DSSE_TOO_MANY_SIGNATURES"
  | "DSSE_TOO_LARGE"
  | "DSSE_BAD_THRESHOLD"
  | "DSSE_NO_TRUSTED_KEY"
  | "DSSE_SIG_INVALID"
  | "DSSE_THRESHOLD_NOT_MET"
  | "DSSE_PAYLOAD_TYPE";

export class DsseError extends StellaError<DsseErrorCode> {}

/** Codes meaning "the envelope is well-formed, and the answer is no" (CLI exit 1, not 3). */
export const DSSE_VERIFY_FAILURES: ReadonlySet<string> = new Set<DsseErrorCode>([
  "DSSE_NO_TRUSTED_KEY",
  "DSSE_SIG_INVALID",
  "DSSE_THRESHOLD_NOT_MET",
  "DSSE_PAYLOAD_TYPE",
]);

/** Largest envelope we read: a 64 MiB JSON document (about 48 MiB of payload). */
export const MAX_ENVELOPE_BYTES = 64 * 1024 * 1024;
const MAX_ENVELOPE_TEXT = "64 MiB";
/** Bounds the work an envelope can ask of a verifier (signatures x trusted keys). */
export const MAX_SIGNATURES = 64;

const STD_ALPHABET = /^[A-Za-z0-9+/]*={0,2}$/;
const URL_ALPHABET = /^[A-Za-z0-9_-]*={0,2}$/;

/**
 * Strict base64: the DSSE spec lets signers use the standard or the URL-safe alphabet (RFC 4648 §4, §5)
 * and verifiers must accept both. We accept either alphabet but not a mix, padding either omitted or
 * exactly right, and only the canonical encoding (unused trailing bits zero, checked by a round trip).
 * Everything else, including whitespace, is refused: `Buffer.from(s, "base64")` alone silently skips
 * junk, which would let two different strings carry the same signature. Returns undefined if invalid.
 */
export function decodeBase64(text: string): Uint8Array | undefined {
  const standard = STD_ALPHABET.test(text);
  if (!standard && !URL_ALPHABET.test(text)) return undefined;
  const body = text.replace(/=+$/, "");
  const padding = text.length - body.length;
  if (body.length % 4 === 1) return undefined;
  if (padding > 0 && (body.length + padding) % 4 !== 0) return undefined;
  const encoding = standard ? "base64" : "base64url";
  const bytes = Buffer.from(body, encoding);
  if (bytes.toString(encoding).replace(/=+$/, "") !== body) return undefined;
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Standard, padded base64: what we write. */
export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

/** The envelope's decoded payload (throws DSSE_BAD_BASE64 for a hand-built envelope with a bad one). */
export function payloadBytes(env: Envelope, name = "envelope"): Uint8Array {
  return base64Field(env.payload, `${name}: payload`);
}

/** A decoded signature; `where` names it in the error, e.g. `env.json: signatures[1].sig`. */
export function base64Field(text: string, where: string): Uint8Array {
  const bytes = decodeBase64(text);
  if (bytes === undefined) throw new DsseError("DSSE_BAD_BASE64", `${where}: not valid base64`);
  return bytes;
}

function malformed(where: string, what: string): DsseError {
  return new DsseError("DSSE_MALFORMED", `${where}: ${what}`);
}

/** `obj[field]` as a string; `where` names the field in errors, e.g. `env.json: signatures[0].sig`. */
function stringField(obj: Record<string, unknown>, field: string, where: string): string {
  const value = obj[field];
  if (value === undefined) throw malformed(where, "missing");
  if (typeof value !== "string") throw malformed(where, `expected a string, got ${describe(value)}`);
  return value;
}

/**
 * Validates an already-parsed JSON value as a DSSE envelope. The value is UNTRUSTED (it came from a
 * file or the network): every field is checked for presence and type, base64 is checked strictly,
 * and nothing in it is used before it is checked. `name` (a file path) prefixes every error message.
 * Unknown fields are ignored. Verifying the signatures is verify.ts's job, not this one's.
 */
export function envelopeFromObject(value: unknown, name: string): Envelope {
  if (!isObject(value)) {
    throw new DsseError(
      "DSSE_MALFORMED",
      `${name}: not a DSSE envelope: expected a JSON object, got ${describe(value)}`,
    );
  }
  const payloadType = stringField(value, "payloadType", `${name}: payloadType`);
  if (!payloadType.isWellFormed()) {
    throw malformed(`${name}: payloadType`, "not a well-formed Unicode string (lone surrogate)");
  }
  const payload = stringField(value, "payload", `${name}: payload`);
  base64Field(payload, `${name}: payload`);

  const signatures = value["signatures"];
  if (signatures === undefined) throw malformed(`${name}: signatures`, "missing");
  if (!Array.isArray(signatures)) {
    throw malformed(`${name}: signatures`, `expected an array, got ${describe(signatures)}`);
  }
  if (signatures.length === 0) {
    throw new DsseError("DSSE_NO_SIGNATURES", `${name}: signatures: the envelope has no signatures`);
  }
  if (signatures.length > MAX_SIGNATURES) {
    throw new DsseError(
      "DSSE_TOO_MANY_SIGNATURES",
      `${name}: signatures: ${signatures.length} signatures, over the limit of ${MAX_SIGNATURES}`,
    );
  }
  const out: EnvelopeSignature[] = [];
  signatures.forEach((entry: unknown, i) => {
    const where = `${name}: signatures[${i}]`;
    if (!isObject(entry)) throw malformed(where, `expected an object, got ${describe(entry)}`);
    const sig = stringField(entry, "sig", `${where}.sig`);
    if (sig === "") throw malformed(`${where}.sig`, "empty");
    base64Field(sig, `${where}.sig`);
    const keyid = entry["keyid"];
    if (keyid !== undefined && keyid !== null && typeof keyid !== "string") {
      throw malformed(`${where}.keyid`, `expected a string, got ${describe(keyid)}`);
    }
    out.push({ keyid: keyid ?? "", sig });
  });
  return { payloadType, payload, signatures: out };
}

/** Checks the size limit (the error names it), then parses JSON text as an envelope (see envelopeFromObject). */
export function parseEnvelope(json: string, name: string): Envelope {
  return envelopeFromObject(parseJsonDocument(json, name, "DSSE envelope"), name);
}

/** JSON.parse behind the envelope size limit; shared with the bundle reader. */
export function parseJsonDocument(json: string, name: string, what: string): unknown {
  const size = Buffer.byteLength(json, "utf8");
  if (size > MAX_ENVELOPE_BYTES) {
    throw new DsseError(
      "DSSE_TOO_LARGE",
      `${name}: ${what} is ${size} bytes, over the ${MAX_ENVELOPE_TEXT} limit`,
    );
  }
  try {
    return JSON.parse(json) as unknown;
  } catch (cause) {
    throw new DsseError("DSSE_MALFORMED", `${name}: not JSON: ${(cause as Error).message}`, { cause });
  }
}

/**
 * Reads an envelope (or bundle) file as UTF-8 text, refusing one over the size limit before reading
 * it, so a huge file costs a stat, not 64 MiB of memory and more.
 */
export function readEnvelopeFile(path: string): string {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (cause) {
    throw new DsseError("DSSE_IO", `${path}: cannot open: ${(cause as Error).message}`, { cause });
  }
  let bytes: Uint8Array;
  try {
    const { size } = fstatSync(fd);
    if (size > MAX_ENVELOPE_BYTES) {
      throw new DsseError(
        "DSSE_TOO_LARGE",
        `${path}: file is ${size} bytes, over the ${MAX_ENVELOPE_TEXT} limit`,
      );
    }
    // One byte more than the stat size: a file that grew past it since is refused, not truncated.
    const buf = Buffer.alloc(size + 1);
    let got = 0;
    while (got < buf.length) {
      const n = readSync(fd, buf, got, buf.length - got, null);
      if (n === 0) break;
      got += n;
    }
    if (got > size) throw new DsseError("DSSE_IO", `${path}: file changed while being read`);
    bytes = buf.subarray(0, got);
  } catch (cause) {
    if (cause instanceof DsseError) throw cause;
    throw new DsseError("DSSE_IO", `${path}: cannot read: ${(cause as Error).message}`, { cause });
  } finally {
    closeSync(fd);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (cause) {
    throw new DsseError("DSSE_MALFORMED", `${path}: not UTF-8 text`, { cause });
  }
}

/** RFC 8785 canonical JSON of the envelope: the form we print and write. */
export function envelopeToJson(env: Envelope): string {
  const json = canonicalize({
    payloadType: env.payloadType,
    payload: env.payload,
    signatures: env.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig })),
  });
  if (json === undefined) throw new DsseError("DSSE_MALFORMED", "envelope: not serialisable");
  return json;
}
