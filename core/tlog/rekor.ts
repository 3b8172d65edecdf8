import { createHash } from "node:crypto";

import type { SerializedBundle } from "@sigstore/bundle";
import { TransparencyLogEntry } from "@sigstore/protobuf-specs";

import { base64Field, payloadBytes, type Envelope } from "../dsse/envelope.ts";
import type { PublicKey } from "../dsse/keys.ts";
import { pae } from "../dsse/pae.ts";
import { isObject } from "../json-shape.ts";
import { TlogError } from "./errors.ts";

/**
 * A minimal Rekor v2 write client (https://github.com/sigstore/rekor-tiles, CLIENTS.md): one POST that logs a DSSE
 * envelope's signature and answers the TransparencyLogEntry to put in a sigstore bundle.
 */

/** A bundle's `verificationMaterial.tlogEntries[]` element: TransparencyLogEntry in protobuf JSON. */
export type TlogEntryJson = SerializedBundle["verificationMaterial"]["tlogEntries"][number];

export interface RekorClientOptions {
  /** The log's base URL, e.g. `http://127.0.0.1:3000` (no trailing path). */
  readonly url: string;
  /** Whole-request deadline. Rekor v2 answers only once a checkpoint covers the entry: CLIENTS.md asks for ≥ 20 s. */
  readonly timeoutMs?: number;
  /** The fetch to use (tests, proxies); default globalThis.fetch. */
  readonly fetch?: typeof fetch;
}

export const DEFAULT_SUBMIT_TIMEOUT_MS = 30_000;
/** A TransparencyLogEntry with a checkpoint and a proof for a 2^63 tree is a few KiB; refuse anything absurd. */
export const MAX_RESPONSE_BYTES = 1024 * 1024;
const EXCERPT_CHARS = 300;

/**
 * Rekor v2 `hashedrekord` v0.0.2 key details for our key types. Rekor v2 dropped its `dsse` entry type ("use
 * HashedRekordRequestV002 with the hash of the DSSE PAE instead", rekor-tiles api/proto/rekor/v2/dsse.proto), and
 * @sigstore/verify checks such an entry against SHA-256(PAE): so only a key whose signature is over SHA-256 of the
 * PAE works end to end. Ed25519 DSSE signatures are PureEdDSA over the PAE, which Rekor cannot check from a digest
 * (it only accepts Ed25519ph); P-384/P-521 sign SHA-384/512 digests, which @sigstore/verify does not compare.
 */
function hashedRekordKeyDetails(key: PublicKey): string {
  if (key.type === "ecdsa-p256") return "PKIX_ECDSA_P256_SHA_256";
  throw new TlogError(
    "TLOG_UNSUPPORTED_KEY",
    `${key.name}: a ${key.type} key cannot be logged in Rekor v2 for a DSSE envelope; use an ECDSA P-256 key ` +
      `(Rekor v2 logs DSSE as hashedrekord over SHA-256 of the PAE)`,
  );
}

/** The CreateEntryRequest JSON for an envelope signed by `publicKey` (exported for tests and for dry runs). */
export function dsseEntryRequest(envelope: Envelope, publicKey: PublicKey): Record<string, unknown> {
  const [signature, ...more] = envelope.signatures;
  if (signature === undefined || more.length > 0) {
    throw new TlogError(
      "TLOG_SUBMIT",
      `envelope: a log entry records exactly one signature; this envelope has ${String(envelope.signatures.length)}`,
    );
  }
  const keyDetails = hashedRekordKeyDetails(publicKey);
  const digest = createHash("sha256")
    .update(pae(envelope.payloadType, payloadBytes(envelope)))
    .digest();
  const sig = base64Field(signature.sig, "envelope: signatures[0].sig");
  return {
    hashedRekordRequestV002: {
      digest: digest.toString("base64"),
      signature: {
        content: Buffer.from(sig).toString("base64"),
        verifier: {
          publicKey: { rawBytes: publicKey.key.export({ type: "spki", format: "der" }).toString("base64") },
          keyDetails,
        },
      },
    },
  };
}

/**
 * Logs the envelope's (single) signature in the Rekor v2 log at `opts.url` and returns the entry, with its inclusion
 * proof and signed checkpoint, exactly as `verificationMaterial.tlogEntries[]` of a sigstore bundle v0.3 holds it.
 * The log verifies the signature with `publicKey` before accepting it.
 */
export async function submitDsse(
  opts: RekorClientOptions,
  envelope: Envelope,
  publicKey: PublicKey,
): Promise<TlogEntryJson> {
  const body = JSON.stringify(dsseEntryRequest(envelope, publicKey));
  const url = `${opts.url.replace(/\/+$/, "")}/api/v2/log/entries`;
  const doFetch = opts.fetch ?? fetch;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_SUBMIT_TIMEOUT_MS;
  let status: number;
  let text: string;
  try {
    const res = await doFetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    status = res.status;
    text = await readBounded(res, url);
  } catch (cause) {
    if (cause instanceof TlogError) throw cause;
    const detail = cause instanceof Error ? cause.message : String(cause);
    throw new TlogError("TLOG_SUBMIT", `POST ${url}: ${detail} (timeout ${String(timeoutMs)} ms)`, { cause });
  }
  if (status !== 200 && status !== 201) {
    throw new TlogError("TLOG_SUBMIT", `POST ${url}: HTTP ${String(status)}: ${excerpt(text)}`);
  }
  return parseEntryResponse(text, url);
}

async function readBounded(res: Response, url: string): Promise<string> {
  const tooLarge = () =>
    new TlogError(
      "TLOG_RESPONSE",
      `POST ${url}: HTTP ${String(res.status)} response is over the ${String(MAX_RESPONSE_BYTES)}-byte limit`,
    );
  const declared = res.headers.get("content-length");
  if (declared !== null && Number(declared) > MAX_RESPONSE_BYTES) {
    await res.body?.cancel();
    throw tooLarge();
  }
  if (res.body === null) return "";
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_RESPONSE_BYTES) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge();
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function excerpt(text: string): string {
  const oneLine = text.replace(/\s+/g, " ").trim();
  return oneLine.length > EXCERPT_CHARS ? `${oneLine.slice(0, EXCERPT_CHARS)}…` : oneLine || "(empty body)";
}

/** The log's answer is UNTRUSTED here; it is only reshaped, and verified later against a trusted root. */
function parseEntryResponse(text: string, url: string): TlogEntryJson {
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (cause) {
    throw new TlogError("TLOG_RESPONSE", `POST ${url}: response is not JSON: ${excerpt(text)}`, { cause });
  }
  if (!isObject(value)) throw new TlogError("TLOG_RESPONSE", `POST ${url}: response is not a JSON object`);
  const entry = TransparencyLogEntry.fromJSON(value);
  const missing = [
    entry.logId === undefined ? "logId" : "",
    entry.kindVersion === undefined ? "kindVersion" : "",
    entry.inclusionProof?.checkpoint === undefined ? "inclusionProof.checkpoint" : "",
    entry.canonicalizedBody.length === 0 ? "canonicalizedBody" : "",
  ].filter((f) => f !== "");
  if (missing.length > 0) {
    throw new TlogError(
      "TLOG_RESPONSE",
      `POST ${url}: the entry has no ${missing.join(", ")}: ${excerpt(text)}`,
    );
  }
  return TransparencyLogEntry.toJSON(entry) as TlogEntryJson;
}
