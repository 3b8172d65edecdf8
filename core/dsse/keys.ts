import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from "node:crypto";
import { readFileSync, statSync } from "node:fs";

import { StellaError } from "../errors.ts";

/** The signing keys we support. RSA, Ed448 and other curves (secp256k1, brainpool…) are refused. */
export type KeyType = "ecdsa-p256" | "ecdsa-p384" | "ecdsa-p521" | "ed25519";
export const KEY_TYPES: readonly KeyType[] = ["ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "ed25519"];

export type KeyErrorCode =
  "KEY_IO" | "KEY_EXISTS" | "KEY_MALFORMED" | "KEY_ENCRYPTED" | "KEY_NOT_PRIVATE" | "KEY_UNSUPPORTED";
export class KeyError extends StellaError<KeyErrorCode> {}

export interface PublicKey {
  readonly type: KeyType;
  /** See keyId(). Overridable (spread) when trusting an envelope signed under someone else's keyid scheme. */
  readonly keyid: string;
  readonly key: KeyObject;
  /** Where it came from (a file path), for messages. */
  readonly name: string;
}

export interface PrivateKey {
  readonly type: KeyType;
  readonly key: KeyObject;
  readonly publicKey: PublicKey;
  readonly name: string;
}

/** OpenSSL curve names (KeyObject.asymmetricKeyDetails.namedCurve) to our types. */
const CURVES: Readonly<Record<string, KeyType>> = {
  prime256v1: "ecdsa-p256",
  secp384r1: "ecdsa-p384",
  secp521r1: "ecdsa-p521",
};

const NODE_CURVE: Readonly<Record<Exclude<KeyType, "ed25519">, string>> = {
  "ecdsa-p256": "P-256",
  "ecdsa-p384": "P-384",
  "ecdsa-p521": "P-521",
};

/**
 * The digest an ECDSA signature is computed over, by curve, as cosign and securesystemslib do
 * (ecdsa-sha2-nistp256/384/521); null for Ed25519, which signs the message itself (PureEdDSA).
 */
export function signatureDigest(type: KeyType): "sha256" | "sha384" | "sha512" | null {
  switch (type) {
    case "ecdsa-p256":
      return "sha256";
    case "ecdsa-p384":
      return "sha384";
    case "ecdsa-p521":
      return "sha512";
    case "ed25519":
      return null;
  }
}

/** Our key type for a parsed key, or KEY_UNSUPPORTED naming what it is instead. */
export function keyType(key: KeyObject, name: string): KeyType {
  const kind = key.asymmetricKeyType;
  if (kind === "ed25519") return "ed25519";
  if (kind === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve ?? "unknown";
    const type = CURVES[curve];
    if (type !== undefined) return type;
    throw new KeyError(
      "KEY_UNSUPPORTED",
      `${name}: EC curve ${curve} is not supported (supported: P-256, P-384, P-521 and Ed25519)`,
    );
  }
  const what = kind === "rsa" || kind === "rsa-pss" ? "RSA" : (kind ?? "unknown").toUpperCase();
  throw new KeyError(
    "KEY_UNSUPPORTED",
    `${name}: ${what} keys are not supported (supported: ${KEY_TYPES.join(", ")})`,
  );
}

/**
 * The keyid we put in envelopes and bundle hints: lowercase hex SHA-256 of the public key's DER
 * SubjectPublicKeyInfo, so anyone can recompute it with
 * `openssl pkey -pubin -in key.pub -outform DER | sha256sum`.
 */
export function keyId(publicKey: KeyObject): string {
  const spki = publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(spki).digest("hex");
}

function toPem(text: string | Uint8Array): string {
  return typeof text === "string" ? text : Buffer.from(text).toString("utf8");
}

function checkPem(pem: string, name: string): void {
  if (!/-----BEGIN [A-Z0-9 ]+-----/.test(pem)) {
    throw new KeyError("KEY_MALFORMED", `${name}: not a PEM key (no "-----BEGIN …-----" line)`);
  }
  if (/-----BEGIN [A-Z0-9 ]*ENCRYPTED[A-Z0-9 ]*-----/.test(pem) || pem.includes("Proc-Type: 4,ENCRYPTED")) {
    throw new KeyError(
      "KEY_ENCRYPTED",
      `${name}: encrypted private keys are not supported; decrypt it first (\`openssl pkey -in KEY -out PLAIN.pem\`)`,
    );
  }
}

function publicKeyOf(key: KeyObject, name: string): PublicKey {
  return { type: keyType(key, name), keyid: keyId(key), key, name };
}

/** A PEM private key (PKCS#8, or SEC1 "EC PRIVATE KEY"). `name` (the file path) prefixes errors. */
export function loadPrivateKey(pem: string | Uint8Array, name: string): PrivateKey {
  const text = toPem(pem);
  checkPem(text, name);
  if (/-----BEGIN (PUBLIC KEY|CERTIFICATE)-----/.test(text) && !/PRIVATE KEY-----/.test(text)) {
    throw new KeyError(
      "KEY_NOT_PRIVATE",
      `${name}: is a public key or certificate; signing needs the private key`,
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: text, format: "pem" });
  } catch (cause) {
    throw new KeyError("KEY_MALFORMED", `${name}: cannot parse private key: ${(cause as Error).message}`, {
      cause,
    });
  }
  const type = keyType(key, name);
  return { type, key, publicKey: publicKeyOf(createPublicKey(key), name), name };
}

/**
 * A PEM public key (SPKI "PUBLIC KEY"). A private key (its public half is derived) or an X.509
 * certificate (its subject key) is accepted too. `name` (the file path) prefixes errors.
 */
export function loadPublicKey(pem: string | Uint8Array, name: string): PublicKey {
  const text = toPem(pem);
  checkPem(text, name);
  let key: KeyObject;
  try {
    key = createPublicKey({ key: text, format: "pem" });
  } catch (cause) {
    throw new KeyError("KEY_MALFORMED", `${name}: cannot parse public key: ${(cause as Error).message}`, {
      cause,
    });
  }
  return publicKeyOf(key, name);
}

/** Key files are small; anything over this is not a key. */
const MAX_KEY_FILE = 1024 * 1024;

function readKeyFile(path: string): string {
  try {
    if (statSync(path).size > MAX_KEY_FILE) {
      throw new KeyError("KEY_MALFORMED", `${path}: over 1 MiB, not a PEM key`);
    }
    return readFileSync(path, "utf8");
  } catch (cause) {
    if (cause instanceof KeyError) throw cause;
    throw new KeyError("KEY_IO", `${path}: cannot read key: ${(cause as Error).message}`, { cause });
  }
}

export function loadPrivateKeyFile(path: string): PrivateKey {
  return loadPrivateKey(readKeyFile(path), path);
}

export function loadPublicKeyFile(path: string): PublicKey {
  return loadPublicKey(readKeyFile(path), path);
}

export interface GeneratedKeyPair {
  readonly type: KeyType;
  /** PKCS#8, unencrypted: keep it private (keygen writes it mode 0600). */
  readonly privatePem: string;
  /** SPKI. */
  readonly publicPem: string;
  readonly keyid: string;
}

export function generateKeyPair(type: KeyType): GeneratedKeyPair {
  const { privateKey, publicKey } =
    type === "ed25519"
      ? generateKeyPairSync("ed25519")
      : generateKeyPairSync("ec", { namedCurve: NODE_CURVE[type] });
  return {
    type,
    privatePem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    publicPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
    keyid: keyId(publicKey),
  };
}
