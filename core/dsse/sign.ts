import { sign as cryptoSign } from "node:crypto";

import {
  DsseError,
  MAX_ENVELOPE_BYTES,
  encodeBase64,
  type Envelope,
  type EnvelopeSignature,
} from "./envelope.ts";
import { signatureDigest, type PrivateKey } from "./keys.ts";
import { pae } from "./pae.ts";

/**
 * Something that signs PAE bytes: the seam for keys held elsewhere (a KMS, an HSM, a remote signer).
 * `sign` gets the full PAE and returns the raw signature bytes exactly as they go in the envelope.
 */
export interface Signer {
  readonly keyid: string;
  sign(pae: Uint8Array): Promise<Uint8Array>;
}

/**
 * A Signer for a local key. ECDSA: an ASN.1 DER signature over SHA-256/384/512 of the PAE (by curve,
 * see keys.ts signatureDigest), as cosign produces, so `openssl dgst -sha256 -verify key.pub
 * -signature sig.der pae.bin` accepts it. Ed25519: PureEdDSA over the PAE bytes themselves.
 */
export function keySigner(privateKey: PrivateKey): Signer {
  const digest = signatureDigest(privateKey.type);
  return {
    keyid: privateKey.publicKey.keyid,
    sign: (data) =>
      new Promise((resolve, reject) => {
        // The callback form runs in libuv's thread pool.
        cryptoSign(digest, data, { key: privateKey.key, dsaEncoding: "der" }, (err, sig) => {
          if (err) reject(err);
          else resolve(new Uint8Array(sig.buffer, sig.byteOffset, sig.byteLength));
        });
      }),
  };
}

/**
 * Signs `payload` as `payloadType` with every signer (in order: one signature each) and returns the
 * envelope. Refuses a payload whose envelope would exceed what parseEnvelope accepts.
 */
export async function signEnvelope(
  payloadType: string,
  payload: Uint8Array,
  signers: readonly Signer[],
): Promise<Envelope> {
  if (signers.length === 0) {
    throw new DsseError("DSSE_NO_SIGNATURES", "signEnvelope: no signers given");
  }
  const estimate =
    4 * Math.ceil(payload.length / 3) +
    Buffer.byteLength(JSON.stringify(payloadType)) +
    1024 * signers.length +
    128;
  if (estimate > MAX_ENVELOPE_BYTES) {
    throw new DsseError(
      "DSSE_TOO_LARGE",
      `payload of ${payload.length} bytes makes an envelope over the ${MAX_ENVELOPE_BYTES / 1024 / 1024} MiB limit`,
    );
  }
  const bytes = pae(payloadType, payload);
  const signatures: EnvelopeSignature[] = [];
  for (const signer of signers) {
    const sig = await signer.sign(bytes);
    signatures.push({ keyid: signer.keyid, sig: encodeBase64(sig) });
  }
  return { payloadType, payload: encodeBase64(payload), signatures };
}
