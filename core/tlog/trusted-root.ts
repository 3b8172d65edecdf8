import { createHash, createPublicKey, type KeyObject } from "node:crypto";

import { TrustedRoot } from "@sigstore/protobuf-specs";
import { toTrustMaterial } from "@sigstore/verify";

import { parseJsonDocument } from "../dsse/envelope.ts";
import { keyType } from "../dsse/keys.ts";
import { isObject } from "../json-shape.ts";
import { TlogError } from "./errors.ts";

/**
 * Sigstore TrustedRoot documents (protobuf-specs `TrustedRoot`, JSON form) holding the transparency logs we trust.
 * Only `tlogs` is filled: our signatures are keyed (no Fulcio CA, no CT logs) and Rekor v2 entries carry no
 * signed timestamps.
 */
export const TRUSTED_ROOT_MEDIA_TYPE = "application/vnd.dev.sigstore.trustedroot+json;version=0.1";

/** Largest trusted root we parse (the public Sigstore one is about 10 KiB). */
export const MAX_TRUSTED_ROOT_BYTES = 1024 * 1024;

export interface TlogInstance {
  /** Where the log is served, e.g. `https://log2025-1.rekor.sigstore.dev`. Must contain `origin`. */
  readonly baseUrl: string;
  /** The log's checkpoint-signing public key (SPKI PEM): Ed25519 (what Rekor v2 uses) or ECDSA P-256. */
  readonly publicKeyPem: string;
  /** The checkpoint origin line, Rekor's `--hostname` (e.g. `log2025-1.rekor.sigstore.dev`). */
  readonly origin: string;
  /** Start of the key's validity (publicKey.validFor.start); omitted: unbounded. */
  readonly validFrom?: Date;
}

/** JSON of a TrustedRoot (protobuf JSON mapping: camelCase fields, base64 bytes, RFC 3339 times). */
export type TrustedRootJson = Record<string, unknown>;

/** C2SP signed-note signature type for Ed25519 (https://github.com/C2SP/C2SP/blob/main/signed-note.md). */
const NOTE_ALG_ED25519 = 0x01;

/**
 * The log ID of a Rekor v2 log, which is also its full checkpoint key ID; its first 4 bytes are the key hint that
 * prefixes every checkpoint signature. As rekor-tiles v2 pkg/note KeyHash computes it:
 * - Ed25519: SHA-256(origin || "\n" || 0x01 || 32-byte public key), the C2SP signed-note key ID.
 * - ECDSA: SHA-256(DER SubjectPublicKeyInfo) (rekor-tiles' documented exception to the note spec).
 */
export function rekorLogId(origin: string, publicKey: KeyObject): Buffer {
  const type = keyType(publicKey, `log key for ${origin}`);
  const spki = publicKey.export({ type: "spki", format: "der" });
  if (type === "ed25519") {
    // The SPKI of an Ed25519 key is a fixed 12-byte prefix and the 32-byte key (RFC 8410 §4).
    const raw = spki.subarray(spki.length - 32);
    return createHash("sha256")
      .update(origin, "utf8")
      .update("\n")
      .update(Buffer.from([NOTE_ALG_ED25519]))
      .update(raw)
      .digest();
  }
  return createHash("sha256").update(spki).digest();
}

function keyDetails(publicKey: KeyObject, where: string): string {
  const type = keyType(publicKey, where);
  switch (type) {
    case "ed25519":
      return "PKIX_ED25519";
    case "ecdsa-p256":
      return "PKIX_ECDSA_P256_SHA_256";
    default:
      // @sigstore/verify checks ECDSA checkpoint signatures with SHA-256 only.
      throw new TlogError(
        "TLOG_UNSUPPORTED_KEY",
        `${where}: a ${type} log key is not supported for checkpoints; use Ed25519 or ECDSA P-256`,
      );
  }
}

/** A TrustedRoot whose tlogs make @sigstore/verify accept the checkpoints of these Rekor v2 logs. */
export function makeTrustedRoot(opts: { readonly tlogs: readonly TlogInstance[] }): TrustedRootJson {
  if (opts.tlogs.length === 0) throw new TlogError("TLOG_TRUSTED_ROOT", "trusted root: no tlogs given");
  const tlogs = opts.tlogs.map((t, i) => {
    const where = `trusted root: tlogs[${String(i)}]`;
    // @sigstore/verify matches the checkpoint signature's name (the origin) as a substring of baseUrl.
    if (t.origin === "" || /\s|\+/.test(t.origin)) {
      throw new TlogError(
        "TLOG_TRUSTED_ROOT",
        `${where}: origin ${JSON.stringify(t.origin)} is not a note name`,
      );
    }
    if (!t.baseUrl.includes(t.origin)) {
      throw new TlogError(
        "TLOG_TRUSTED_ROOT",
        `${where}: baseUrl ${t.baseUrl} must contain the checkpoint origin ${t.origin} (verifiers match them)`,
      );
    }
    let key: KeyObject;
    try {
      key = createPublicKey(t.publicKeyPem);
    } catch (cause) {
      throw new TlogError("TLOG_TRUSTED_ROOT", `${where}: publicKeyPem is not a PEM public key`, { cause });
    }
    const logId = rekorLogId(t.origin, key).toString("base64");
    return {
      baseUrl: t.baseUrl,
      hashAlgorithm: "SHA2_256",
      publicKey: {
        rawBytes: key.export({ type: "spki", format: "der" }).toString("base64"),
        keyDetails: keyDetails(key, where),
        ...(t.validFrom === undefined ? {} : { validFor: { start: t.validFrom.toISOString() } }),
      },
      logId: { keyId: logId },
    };
  });
  const root: TrustedRootJson = {
    mediaType: TRUSTED_ROOT_MEDIA_TYPE,
    tlogs,
    certificateAuthorities: [],
    ctlogs: [],
    timestampAuthorities: [],
  };
  toTrustedRoot(root, "trusted root");
  return root;
}

/** The protobuf TrustedRoot for @sigstore/verify; throws TLOG_TRUSTED_ROOT naming `name` if it is not one. */
export function toTrustedRoot(value: unknown, name: string): TrustedRoot {
  if (!isObject(value) || typeof value["mediaType"] !== "string") {
    throw new TlogError("TLOG_TRUSTED_ROOT", `${name}: not a sigstore trusted root (no mediaType)`);
  }
  if (!value["mediaType"].startsWith("application/vnd.dev.sigstore.trustedroot")) {
    throw new TlogError(
      "TLOG_TRUSTED_ROOT",
      `${name}: mediaType ${value["mediaType"]} is not a trusted root`,
    );
  }
  if (!Array.isArray(value["tlogs"]) || value["tlogs"].length === 0) {
    throw new TlogError("TLOG_TRUSTED_ROOT", `${name}: tlogs is missing or empty`);
  }
  try {
    const root = TrustedRoot.fromJSON(value);
    // Builds every key: a malformed key or log ID fails here, not in the middle of a verification.
    toTrustMaterial(root);
    return root;
  } catch (cause) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    throw new TlogError("TLOG_TRUSTED_ROOT", `${name}: invalid trusted root: ${detail}`, { cause });
  }
}

/** Parses a trusted root file's text (UNTRUSTED until this returns); `name` names it in errors. */
export function parseTrustedRoot(json: string, name: string): TrustedRootJson {
  if (Buffer.byteLength(json, "utf8") > MAX_TRUSTED_ROOT_BYTES) {
    throw new TlogError("TLOG_TRUSTED_ROOT", `${name}: larger than ${String(MAX_TRUSTED_ROOT_BYTES)} bytes`);
  }
  let value: unknown;
  try {
    value = parseJsonDocument(json, name, "trusted root");
  } catch (cause) {
    const detail = cause instanceof Error ? cause.message : String(cause);
    throw new TlogError("TLOG_TRUSTED_ROOT", detail, { cause });
  }
  toTrustedRoot(value, name);
  return value as TrustedRootJson;
}
