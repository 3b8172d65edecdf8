import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { decodeBase64, parseEnvelope } from "../dsse/envelope.ts";
import { generateKeyPair, KEY_TYPES, loadPrivateKey, type GeneratedKeyPair } from "../dsse/keys.ts";
import { keySigner } from "../dsse/sign.ts";
import { IN_TOTO_PAYLOAD_TYPE, parseStatement } from "../dsse/statement.ts";
import { opensslVerify, runStella, tempDir } from "../dsse/testdata/oracles.ts";
import { OPENVEX_PREDICATE_TYPE, signOpenVex } from "./attest.ts";
import { buildOpenVexDocument, openVexDigest, validateOpenVex } from "./openvex.ts";
import { AFFECTED, IMAGE, NOT_IN_PATH } from "./testdata.ts";

const OPTS = {
  id: "urn:uuid:6f1e2d3c-0000-4000-8000-000000000001",
  author: "a",
  timestamp: "2024-05-01T14:00:00Z",
  version: 3,
};

/** DSSE v1 PAE written out here from the spec, not taken from core/dsse/pae.ts. */
function specPae(type: string, body: Uint8Array): Uint8Array {
  const head = Buffer.from(`DSSEv1 ${Buffer.byteLength(type)} ${type} ${body.length} `, "utf8");
  return Buffer.concat([head, body]);
}

describe("signed OpenVEX (DSSE, in-toto Statement v1)", () => {
  let dir = "";
  let cleanup = (): void => undefined;
  const pairs = new Map<string, GeneratedKeyPair>();
  before(() => {
    ({ dir, cleanup } = tempDir("stella-vex-"));
    for (const type of KEY_TYPES) pairs.set(type, generateKeyPair(type));
  });
  after(() => {
    cleanup();
  });

  for (const type of KEY_TYPES) {
    it(`${type}: OpenSSL verifies the signature over the PAE bytes; a tampered PAE fails`, async () => {
      const pair = pairs.get(type)!;
      const doc = buildOpenVexDocument(AFFECTED, OPTS);
      const signed = await signOpenVex(AFFECTED.product, doc, [
        keySigner(loadPrivateKey(pair.privatePem, "k")),
      ]);
      assert.equal(signed.envelope.payloadType, IN_TOTO_PAYLOAD_TYPE);
      const payload = decodeBase64(signed.envelope.payload)!;
      const sig = decodeBase64(signed.envelope.signatures[0]!.sig)!;
      const data = specPae(signed.envelope.payloadType, payload);
      const ok = await opensslVerify(dir, type, pair.publicPem, data, sig);
      assert.equal(ok.code, 0, `openssl refused: ${ok.stdout}${ok.stderr}`);
      const tampered = Uint8Array.from(data);
      tampered[tampered.length - 3] = (tampered[tampered.length - 3] ?? 0) ^ 1;
      const bad = await opensslVerify(dir, type, pair.publicPem, tampered, sig);
      assert.notEqual(bad.code, 0);
    });
  }

  it("the payload is an in-toto Statement about the image whose predicate is the valid document", async () => {
    const pair = pairs.get("ecdsa-p256")!;
    const doc = buildOpenVexDocument(NOT_IN_PATH, OPTS);
    const signed = await signOpenVex(NOT_IN_PATH.product, doc, [
      keySigner(loadPrivateKey(pair.privatePem, "k")),
    ]);
    const stmt = parseStatement(decodeBase64(signed.envelope.payload)!, "payload");
    assert.equal(stmt.predicateType, OPENVEX_PREDICATE_TYPE);
    assert.deepEqual(stmt.subject, [{ name: IMAGE, digest: { sha256: "ab".repeat(32) } }]);
    assert.deepEqual(stmt.predicate, doc);
    assert.deepEqual(validateOpenVex(stmt.predicate), []);
    assert.match(signed.digest, /^sha256:[0-9a-f]{64}$/);
    assert.deepEqual(parseEnvelope(signed.json, "x"), signed.envelope);
  });

  it("a purl-only product is the subject with the document's digest", async () => {
    const pair = pairs.get("ed25519")!;
    const product = { purl: "pkg:npm/left-pad@1.0.0" };
    const doc = buildOpenVexDocument({ ...AFFECTED, product }, OPTS);
    const signed = await signOpenVex(product, doc, [keySigner(loadPrivateKey(pair.privatePem, "k"))]);
    const stmt = parseStatement(decodeBase64(signed.envelope.payload)!, "payload");
    assert.deepEqual(stmt.subject, [
      { name: "pkg:npm/left-pad@1.0.0", digest: { sha256: openVexDigest(doc).slice(7) } },
    ]);
  });

  it("`stella attest verify --key PUB` accepts it, and refuses another key", async () => {
    const pair = pairs.get("ecdsa-p256")!;
    const doc = buildOpenVexDocument(AFFECTED, OPTS);
    const signed = await signOpenVex(AFFECTED.product, doc, [
      keySigner(loadPrivateKey(pair.privatePem, "k")),
    ]);
    const env = join(dir, "vex.dsse.json");
    writeFileSync(env, signed.json);
    writeFileSync(join(dir, "good.pub"), pair.publicPem);
    writeFileSync(join(dir, "other.pub"), pairs.get("ecdsa-p384")!.publicPem);
    const ok = await runStella(["attest", "verify", "--key", join(dir, "good.pub"), env]);
    assert.equal(ok.code, 0, `${ok.stdout}${ok.stderr}`);
    const no = await runStella(["attest", "verify", "--key", join(dir, "other.pub"), env]);
    assert.equal(no.code, 1, `${no.stdout}${no.stderr}`);
  });
});
