import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  BUNDLE_V03_MEDIA_TYPE,
  bundleFromJSON,
  isBundleWithDsseEnvelope,
  isBundleWithPublicKey,
} from "@sigstore/bundle";
import { Verifier, toSignedEntity } from "@sigstore/verify";

import { isStellaError } from "../errors.ts";
import { attest } from "./attest.ts";
import { envelopeToBundle, envelopeToBundleJson, parseSignedDocument } from "./bundle.ts";
import { envelopeToJson, type Envelope } from "./envelope.ts";
import { KEY_TYPES, generateKeyPair, loadPrivateKey, loadPublicKey, type KeyType } from "./keys.ts";
import { keySigner, signEnvelope } from "./sign.ts";
import { verifyEnvelope } from "./verify.ts";

async function signed(type: KeyType): Promise<{ env: Envelope; keyid: string; publicPem: string }> {
  const pair = generateKeyPair(type);
  const env = await attest({
    subjects: [{ name: "app", digest: { sha256: "c".repeat(64) } }],
    predicateType: "https://example.com/p/v1",
    predicate: { ok: true },
    signers: [keySigner(loadPrivateKey(pair.privatePem, "k.key"))],
  });
  return { env, keyid: pair.keyid, publicPem: pair.publicPem };
}

type Json = Record<string, unknown>;

function refused(code: string, doc: unknown): void {
  assert.throws(
    () => parseSignedDocument(JSON.stringify(doc), "b.json"),
    (err: unknown) => {
      assert.ok(isStellaError(err, code), `expected ${code}, got ${String(err)}`);
      assert.match(err.message, /^b\.json: /);
      return true;
    },
  );
}

describe("envelopeToBundle", () => {
  for (const type of KEY_TYPES) {
    it(`${type}: a v0.3 public-key bundle that @sigstore/bundle validates, holding the identical envelope`, async () => {
      const { env, keyid, publicPem } = await signed(type);
      const json = JSON.parse(envelopeToBundleJson(env)) as Json;
      assert.equal(json["mediaType"], "application/vnd.dev.sigstore.bundle.v0.3+json");
      assert.equal(json["mediaType"], BUNDLE_V03_MEDIA_TYPE);
      assert.deepEqual(json["verificationMaterial"], {
        publicKey: { hint: keyid },
        timestampVerificationData: {},
      });
      assert.deepEqual(json["dsseEnvelope"], JSON.parse(envelopeToJson(env)));

      const bundle = bundleFromJSON(json); // runs @sigstore/bundle's own validation (assertBundleLatest)
      assert.ok(isBundleWithDsseEnvelope(bundle));
      assert.ok(isBundleWithPublicKey(bundle));
      assert.equal(bundle.verificationMaterial.tlogEntries.length, 0);

      // Round trip: the envelope we read back from the bundle verifies with our verifier.
      const doc = parseSignedDocument(JSON.stringify(json), "b.json");
      assert.equal(doc.format, "bundle");
      assert.equal(doc.keyHint, keyid);
      assert.deepEqual(doc.envelope, env);
      assert.deepEqual(verifyEnvelope(doc.envelope, [loadPublicKey(publicPem, "k.pub")]).verifiedKeyids, [
        keyid,
      ]);
    });
  }

  // sigstore-js verifies ECDSA with SHA-256 whatever the curve, so only P-256 and Ed25519 are comparable.
  for (const type of ["ecdsa-p256", "ed25519"] as const) {
    it(`${type}: @sigstore/verify accepts the bundle with the public key`, async () => {
      const { env, keyid, publicPem } = await signed(type);
      const key = loadPublicKey(publicPem, "k.pub").key;
      const verifier = new Verifier(
        {
          certificateAuthorities: [],
          timestampAuthorities: [],
          tlogs: [],
          ctlogs: [],
          publicKey: (hint) => {
            assert.equal(hint, keyid);
            return { publicKey: key, validFor: () => true };
          },
        },
        { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 },
      );
      const bundle = bundleFromJSON(envelopeToBundle(env));
      assert.equal(verifier.verify(toSignedEntity(bundle)).key, key);

      // …and refuses it once the payload is changed.
      const tampered = envelopeToBundle({ ...env, payload: Buffer.from('{"_type":"x"}').toString("base64") });
      assert.throws(() => verifier.verify(toSignedEntity(bundleFromJSON(tampered))));
    });
  }

  it("refuses a multi-signature envelope (a bundle holds one signature)", async () => {
    const a = keySigner(loadPrivateKey(generateKeyPair("ed25519").privatePem, "a"));
    const b = keySigner(loadPrivateKey(generateKeyPair("ed25519").privatePem, "b"));
    const env = await signEnvelope("t", new Uint8Array(1), [a, b]);
    assert.throws(
      () => envelopeToBundle(env),
      (err) => isStellaError(err, "BUNDLE_UNSUPPORTED"),
    );
  });
});

describe("parseSignedDocument", () => {
  it("reads a bare envelope as dsse", async () => {
    const { env } = await signed("ed25519");
    const doc = parseSignedDocument(envelopeToJson(env), "e.json");
    assert.equal(doc.format, "dsse");
    assert.deepEqual(doc.envelope, env);
  });

  it("refuses damaged bundles with the right code", async () => {
    const { env } = await signed("ecdsa-p256");
    const good = (): Json => JSON.parse(envelopeToBundleJson(env)) as Json;

    const badType = good();
    badType["mediaType"] = "application/vnd.dev.sigstore.bundle.vX+json";
    refused("BUNDLE_INVALID", badType);

    const noMaterial = good();
    delete noMaterial["verificationMaterial"];
    refused("BUNDLE_INVALID", noMaterial);

    const twoSigs = good();
    const inner = twoSigs["dsseEnvelope"] as Json;
    inner["signatures"] = [...(inner["signatures"] as unknown[]), ...(inner["signatures"] as unknown[])];
    refused("BUNDLE_INVALID", twoSigs);

    const keyless = good();
    keyless["verificationMaterial"] = { certificate: { rawBytes: "MIIB" } };
    refused("BUNDLE_UNSUPPORTED", keyless);

    const message = good();
    delete message["dsseEnvelope"];
    message["messageSignature"] = {
      messageDigest: { algorithm: "SHA2_256", digest: "AAAA" },
      signature: "AAAA",
    };
    refused("BUNDLE_UNSUPPORTED", message);

    // The protobuf decoder shrugs at junk in base64; our envelope parser does not.
    const junk = good();
    (junk["dsseEnvelope"] as Json)["payload"] = `${String((junk["dsseEnvelope"] as Json)["payload"])}*`;
    assert.doesNotThrow(() => bundleFromJSON(junk));
    refused("DSSE_BAD_BASE64", junk);
  });
});
